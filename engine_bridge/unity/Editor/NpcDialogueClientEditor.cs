// Editor support: an Inspector for NpcDialogueClient that shows the connection and can send `hello` in Play
// mode, and a GameObject menu entry that creates a client object.
using System;
using System.Threading.Tasks;
using UnityEditor;
using UnityEngine;

namespace NpcDialogue.Editor
{
    /// <summary>Inspector of <see cref="NpcDialogueClient"/> with a connection check.</summary>
    [CustomEditor(typeof(NpcDialogueClient))]
    public sealed class NpcDialogueClientEditor : UnityEditor.Editor
    {
        private string _status = "";
        private Task<NpcWelcome> _hello;

        /// <summary>Draws the default fields, then the live status and a "Send hello" button in Play mode.</summary>
        public override void OnInspectorGUI()
        {
            DrawDefaultInspector();
            var component = (NpcDialogueClient)target;
            if (!EditorApplication.isPlaying)
            {
                EditorGUILayout.HelpBox("Enter Play mode to connect. Start the server first: npc-runtime serve", MessageType.Info);
                return;
            }
            EditorGUILayout.LabelField("Connection", component.IsConnected ? "connected" : "not connected");
            if (GUILayout.Button("Send hello") && component.Client != null)
            {
                _hello = component.HelloAsync();
                _status = "waiting for welcome...";
            }
            if (_hello != null && _hello.IsCompleted)
            {
                _status = _hello.Status == TaskStatus.RanToCompletion
                    ? "personas: " + string.Join(", ", _hello.Result.Personas.ToArray()) + " (" + _hello.Result.Provider + ")"
                    : "failed: " + (_hello.Exception != null ? _hello.Exception.GetBaseException().Message : "cancelled");
                _hello = null;
            }
            if (_status.Length > 0) EditorGUILayout.HelpBox(_status, MessageType.None);
            Repaint();
        }

        /// <summary>GameObject > NPC Dialogue > Client: a new object with an NpcDialogueClient.</summary>
        [MenuItem("GameObject/NPC Dialogue/Client", false, 10)]
        private static void CreateClient(MenuCommand command)
        {
            var go = new GameObject("NPC Dialogue Client");
            go.AddComponent<NpcDialogueClient>();
            GameObjectUtility.SetParentAndAlign(go, command.context as GameObject);
            Undo.RegisterCreatedObjectUndo(go, "Create NPC Dialogue Client");
            Selection.activeObject = go;
        }
    }
}
