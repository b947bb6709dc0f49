// A compile-only stub of the UnityEditor types the package's Editor folder uses, with Unity's signatures.
using System;
using Object = UnityEngine.Object;
using UnityEngine;

namespace UnityEditor
{
    public class Editor : ScriptableObject
    {
        public Object target { get { return null; } }
        public bool DrawDefaultInspector() { return false; }
        public void Repaint() { }
        public virtual void OnInspectorGUI() { }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class CustomEditor : Attribute
    {
        public CustomEditor(Type inspectedType) { }
    }

    [AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
    public sealed class MenuItem : Attribute
    {
        public MenuItem(string itemName, bool isValidateFunction, int priority) { }
    }

    public sealed class MenuCommand
    {
        public Object context;
    }

    public enum MessageType { None, Info, Warning, Error }

    public static class EditorApplication
    {
        public static bool isPlaying { get { return false; } }
    }

    public static class EditorGUILayout
    {
        public static void HelpBox(string message, MessageType type) { }
        public static void LabelField(string label, string label2, params GUILayoutOption[] options) { }
    }

    public static class GameObjectUtility
    {
        public static void SetParentAndAlign(GameObject child, GameObject parent) { }
    }

    public static class Undo
    {
        public static void RegisterCreatedObjectUndo(Object objectToUndo, string name) { }
    }

    public static class Selection
    {
        public static Object activeObject { get; set; }
    }
}
