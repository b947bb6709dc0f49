// A compile-only stub of the UnityEngine types the package's Unity layer uses, with Unity's own signatures,
// so the layer is type-checked by mcs without a Unity install. Nothing here runs; bodies do the minimum.
using System;

namespace UnityEngine
{
    public class Object
    {
        public string name { get; set; }
        public static void Destroy(Object obj) { }
        public static void DestroyImmediate(Object obj) { }
        public static implicit operator bool(Object obj) { return !ReferenceEquals(obj, null); }
    }

    public class ScriptableObject : Object { }

    public class Component : Object
    {
        public GameObject gameObject { get { return null; } }
        public T GetComponent<T>() { return default(T); }
    }

    public class Behaviour : Component
    {
        public bool enabled { get; set; }
    }

    public class MonoBehaviour : Behaviour { }

    public sealed class GameObject : Object
    {
        public GameObject(string name) { this.name = name; }
        public T AddComponent<T>() where T : Component { return null; }
        public void SetActive(bool value) { }
    }

    public static class Debug
    {
        public static void Log(object message, Object context) { }
        public static void LogWarning(object message, Object context) { }
        public static void LogError(object message, Object context) { }
        public static void LogException(Exception exception, Object context) { }
    }

    public static class Application
    {
        public static bool isPlaying { get { return false; } }
    }

    public static class Mathf
    {
        public static int Clamp(int value, int min, int max) { return value < min ? min : value > max ? max : value; }
    }

    public struct Rect
    {
        public Rect(float x, float y, float width, float height) { }
    }

    public enum TextureFormat { RGB24 = 3, RGBA32 = 4 }

    public class Texture : Object
    {
        public virtual int width { get { return 0; } set { } }
        public virtual int height { get { return 0; } set { } }
    }

    public sealed class Texture2D : Texture
    {
        public Texture2D(int width, int height, TextureFormat textureFormat, bool mipChain) { }
        public void ReadPixels(Rect source, int destX, int destY) { }
        public void Apply() { }
    }

    public class RenderTexture : Texture
    {
        public static RenderTexture active { get; set; }
        public static RenderTexture GetTemporary(int width, int height, int depthBuffer) { return null; }
        public static void ReleaseTemporary(RenderTexture temp) { }
    }

    public sealed class Camera : Behaviour
    {
        public RenderTexture targetTexture { get; set; }
        public void Render() { }
    }

    public static class ImageConversion
    {
        public static byte[] EncodeToPNG(this Texture2D tex) { return null; }
        public static byte[] EncodeToJPG(this Texture2D tex, int quality) { return null; }
    }

    public sealed class GUIStyle { }

    public sealed class GUISkin : ScriptableObject
    {
        public GUIStyle box { get { return null; } }
    }

    public sealed class GUILayoutOption { }

    public static class GUI
    {
        public static GUISkin skin { get { return null; } }
    }

    public static class GUILayout
    {
        public static void BeginArea(Rect screenRect, GUIStyle style) { }
        public static void EndArea() { }
        public static void BeginHorizontal(params GUILayoutOption[] options) { }
        public static void EndHorizontal() { }
        public static void Label(string text, params GUILayoutOption[] options) { }
        public static string TextField(string text, params GUILayoutOption[] options) { return text; }
        public static bool Button(string text, params GUILayoutOption[] options) { return false; }
    }

    public class PropertyAttribute : Attribute { }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute { }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class TooltipAttribute : PropertyAttribute
    {
        public TooltipAttribute(string tooltip) { }
    }

    [AttributeUsage(AttributeTargets.Field, AllowMultiple = true)]
    public sealed class HeaderAttribute : PropertyAttribute
    {
        public HeaderAttribute(string header) { }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class RangeAttribute : PropertyAttribute
    {
        public RangeAttribute(float min, float max) { }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class DisallowMultipleComponent : Attribute { }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class AddComponentMenu : Attribute
    {
        public AddComponentMenu(string menuName) { }
    }
}

namespace UnityEngine.Events
{
    public abstract class UnityEventBase { }

    public class UnityEvent : UnityEventBase
    {
        public void Invoke() { }
    }

    // Abstract as in Unity before 2020.1: a serialised event needs a concrete subclass.
    public abstract class UnityEvent<T0> : UnityEventBase
    {
        public void Invoke(T0 arg0) { }
    }

    public abstract class UnityEvent<T0, T1> : UnityEventBase
    {
        public void Invoke(T0 arg0, T1 arg1) { }
    }
}
