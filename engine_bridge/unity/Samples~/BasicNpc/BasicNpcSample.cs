// Sample: talk to one NPC from a small on-screen panel. Add this component to an empty GameObject in any
// scene and press Play (with the server running); it creates the client and the speaker it needs.
using UnityEngine;

namespace NpcDialogue.Samples
{
    /// <summary>An IMGUI panel: type a line, press Say, watch the streamed answer and its emotion.</summary>
    [AddComponentMenu("NPC Dialogue/Samples/Basic NPC Sample")]
    public sealed class BasicNpcSample : MonoBehaviour
    {
        [SerializeField] private string persona = "blacksmith";
        [SerializeField] private string timeOfDay = "evening";
        [SerializeField] private Camera npcEyes = null;

        private NpcDialogueClient _client;
        private NpcSpeaker _speaker;
        private string _playerText = "Good evening! Do you sell swords?";
        private string _status = "connecting...";

        private void Awake()
        {
            // Components are added while this object is inactive so that their fields are set before OnEnable.
            var holder = new GameObject("NPC Dialogue (sample)");
            holder.SetActive(false);
            _client = holder.AddComponent<NpcDialogueClient>();
            _speaker = holder.AddComponent<NpcSpeaker>();
            _speaker.Persona = persona;
            _speaker.Session = "sample:" + persona;
            _speaker.Context["time_of_day"] = timeOfDay;
            _speaker.Context["location"] = "village square";
            _client.Connected += () => _status = "connected";
            _client.Disconnected += reason => _status = "disconnected: " + reason;
            _client.RequestFailed += failure => _status = failure.Code + ": " + failure.ErrorMessage;
            _speaker.Client = _client;
            _speaker.Eyes = npcEyes;
            holder.SetActive(true);
        }

        private void OnGUI()
        {
            GUILayout.BeginArea(new Rect(10, 10, 520, 260), GUI.skin.box);
            GUILayout.Label("NPC: " + persona + "    server: " + _status);
            _playerText = GUILayout.TextField(_playerText);
            GUILayout.BeginHorizontal();
            if (GUILayout.Button("Say") && _playerText.Trim().Length > 0) _speaker.Say(_playerText);
            if (GUILayout.Button("Cancel")) _speaker.CancelLine();
            GUILayout.EndHorizontal();
            GUILayout.Label(_speaker.CurrentLine ?? "");
            if (!string.IsNullOrEmpty(_speaker.Emotion))
            {
                GUILayout.Label(string.Format("emotion: {0} ({1:0.00})", _speaker.Emotion, _speaker.Intensity));
            }
            GUILayout.EndArea();
        }
    }
}
