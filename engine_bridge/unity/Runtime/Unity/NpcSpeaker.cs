// One talking NPC: its persona and session, optional "eyes" (a Camera or RenderTexture) whose screenshot
// goes with every line, scene facts, and UnityEvents for the streamed text, the finished line and the emotion.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;

namespace NpcDialogue
{
    /// <summary>
    /// Put on an NPC, set its persona, point it at the scene's <see cref="NpcDialogueClient"/> and call
    /// <see cref="Say"/> (e.g. from a UI button) or await <see cref="SayAsync"/>. Events fire on the main thread.
    /// </summary>
    [AddComponentMenu("NPC Dialogue/NPC Speaker")]
    public sealed class NpcSpeaker : MonoBehaviour
    {
        [SerializeField] private NpcDialogueClient client = null;

        [Tooltip("Persona id on the server, e.g. blacksmith")]
        [SerializeField] private string persona = "blacksmith";

        [Tooltip("Conversation id; one per save slot and NPC keeps histories apart. Empty: '<persona>'.")]
        [SerializeField] private string session = "";

        [Header("What the NPC sees (optional)")]
        [SerializeField] private Camera eyes = null;
        [SerializeField] private RenderTexture eyesTexture = null;
        [SerializeField] private int screenshotWidth = 320;
        [SerializeField] private int screenshotHeight = 180;
        [SerializeField] private bool jpeg = true;
        [Range(1, 100)]
        [SerializeField] private int jpegQuality = 75;

        [Header("Generation")]
        [SerializeField] private int maxTokens = 24;
        [SerializeField] private float temperature = 0.7f;

        [Header("Events")]
        [Tooltip("The line so far, after every streamed piece")]
        [SerializeField] private NpcTextEvent onLineChanged = new NpcTextEvent();
        [SerializeField] private NpcTextEvent onLineFinished = new NpcTextEvent();
        [SerializeField] private NpcEmotionEvent onEmotion = new NpcEmotionEvent();
        [SerializeField] private NpcTextEvent onFailed = new NpcTextEvent();

        private readonly Dictionary<string, string> _context = new Dictionary<string, string>();
        private CancellationTokenSource _speaking;

        /// <summary>Scene facts sent with every line (time_of_day, weather, location, nearby, player_item, ...).</summary>
        public Dictionary<string, string> Context { get { return _context; } }

        /// <summary>The client this NPC talks through (normally assigned in the Inspector).</summary>
        public NpcDialogueClient Client
        {
            get { return client; }
            set { client = value; }
        }

        /// <summary>The camera whose view goes with every line (null: none, unless a RenderTexture is set).</summary>
        public Camera Eyes
        {
            get { return eyes; }
            set { eyes = value; }
        }

        /// <summary>The persona id.</summary>
        public string Persona
        {
            get { return persona; }
            set { persona = value; }
        }

        /// <summary>The session id in use.</summary>
        public string Session
        {
            get { return string.IsNullOrEmpty(session) ? persona : session; }
            set { session = value; }
        }

        /// <summary>The line so far (streamed) or the last finished line.</summary>
        public string CurrentLine { get; private set; }

        /// <summary>The emotion of the last finished line.</summary>
        public string Emotion { get; private set; }

        /// <summary>Its intensity 0..1.</summary>
        public float Intensity { get; private set; }

        /// <summary>True while a line is being generated.</summary>
        public bool IsSpeaking { get { return _speaking != null; } }

        /// <summary>Fire-and-forget <see cref="SayAsync"/> for UI buttons; failures go to onFailed and the Console.</summary>
        public void Say(string playerText)
        {
            SayAndReport(playerText);
        }

        /// <summary>Stops the line being generated, if any.</summary>
        public void CancelLine()
        {
            if (_speaking != null) _speaking.Cancel();
        }

        /// <summary>
        /// Sends what the player said (with a screenshot when eyes are set) and completes with the NPC's line.
        /// A line still being spoken is cancelled first.
        /// </summary>
        public async Task<NpcReply> SayAsync(string playerText, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (client == null) throw new InvalidOperationException("NpcSpeaker '" + name + "' has no NpcDialogueClient assigned");
            CancelLine();
            var request = new NpcSayRequest
            {
                Persona = persona,
                Session = Session,
                Text = playerText,
                Image = CaptureEyes(),
                Options = new NpcSayOptions { MaxTokens = maxTokens, Temperature = temperature, Stream = true },
            };
            foreach (KeyValuePair<string, string> pair in _context) request.Context[pair.Key] = pair.Value;
            var speaking = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _speaking = speaking;
            CurrentLine = "";
            try
            {
                // Chunks of a line that was just cancelled may still arrive; only the current line's count.
                NpcReply reply = await client.SayAsync(request, chunk => { if (_speaking == speaking) OnChunk(chunk); }, speaking.Token);
                CurrentLine = reply.Text;
                Emotion = reply.Emotion;
                Intensity = (float)reply.Intensity;
                onLineFinished.Invoke(reply.Text);
                onEmotion.Invoke(reply.Emotion, Intensity);
                return reply;
            }
            finally
            {
                if (_speaking == speaking) _speaking = null;
                speaking.Dispose();
            }
        }

        private async void SayAndReport(string playerText)
        {
            try
            {
                await SayAsync(playerText);
            }
            catch (OperationCanceledException)
            {
                // Cancelled on purpose (CancelLine or a newer line); nothing to report.
            }
            catch (Exception exc)
            {
                onFailed.Invoke(exc.Message);
                Debug.LogWarning("[NpcDialogue] " + name + ": " + exc.Message, this);
            }
        }

        private void OnChunk(NpcChunk chunk)
        {
            CurrentLine += chunk.Text;
            onLineChanged.Invoke(CurrentLine);
        }

        private NpcImage CaptureEyes()
        {
            if (eyesTexture != null) return NpcScreenshot.Capture(eyesTexture, jpeg, jpegQuality);
            if (eyes != null) return NpcScreenshot.Capture(eyes, screenshotWidth, screenshotHeight, jpeg, jpegQuality);
            return null;
        }

        private void OnDisable()
        {
            CancelLine();
        }
    }
}
