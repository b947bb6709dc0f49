// Captures what an NPC sees as a PNG or JPEG NpcImage: from a Camera (rendered once into a temporary
// target of the requested size) or from an existing RenderTexture. Main thread only, like all rendering.
using System;
using UnityEngine;

namespace NpcDialogue
{
    /// <summary>Screenshots for <see cref="NpcSayRequest.Image"/>.</summary>
    public static class NpcScreenshot
    {
        /// <summary>The protocol's default limits on image size.</summary>
        public const int MaxWidth = 1920;
        /// <summary>The protocol's default limits on image size.</summary>
        public const int MaxHeight = 1080;

        /// <summary>Renders <paramref name="camera"/> once at <paramref name="width"/>×<paramref name="height"/> and encodes it.</summary>
        public static NpcImage Capture(Camera camera, int width, int height, bool jpeg, int jpegQuality)
        {
            if (camera == null) throw new ArgumentNullException("camera");
            CheckSize(width, height);
            RenderTexture target = RenderTexture.GetTemporary(width, height, 24);
            RenderTexture previousTarget = camera.targetTexture;
            try
            {
                camera.targetTexture = target;
                camera.Render();
                return Capture(target, jpeg, jpegQuality);
            }
            finally
            {
                camera.targetTexture = previousTarget;
                RenderTexture.ReleaseTemporary(target);
            }
        }

        /// <summary>Reads <paramref name="source"/> back from the GPU and encodes it at its own size.</summary>
        public static NpcImage Capture(RenderTexture source, bool jpeg, int jpegQuality)
        {
            if (source == null) throw new ArgumentNullException("source");
            int width = source.width;
            int height = source.height;
            CheckSize(width, height);
            RenderTexture previousActive = RenderTexture.active;
            var pixels = new Texture2D(width, height, TextureFormat.RGB24, false);
            try
            {
                RenderTexture.active = source;
                pixels.ReadPixels(new Rect(0, 0, width, height), 0, 0);
                pixels.Apply();
                byte[] data = jpeg
                    ? ImageConversion.EncodeToJPG(pixels, Mathf.Clamp(jpegQuality, 1, 100))
                    : ImageConversion.EncodeToPNG(pixels);
                return new NpcImage(jpeg ? "jpeg" : "png", data, width, height);
            }
            finally
            {
                RenderTexture.active = previousActive;
                if (Application.isPlaying) UnityEngine.Object.Destroy(pixels);
                else UnityEngine.Object.DestroyImmediate(pixels);
            }
        }

        private static void CheckSize(int width, int height)
        {
            if (width <= 0 || height <= 0 || width > MaxWidth || height > MaxHeight)
            {
                throw new ArgumentException("screenshot size must be within 1x1 .. " + MaxWidth + "x" + MaxHeight);
            }
        }
    }
}
