// ChunkworldTextures.cs: chunk frames as Unity Texture2D (see ChunkworldScreen.cs for a use).
//
// Compiled only inside Unity (UNITY_5_3_OR_NEWER), so the rest of the client builds and is
// tested with plain mcs/mono. Not exercised by tests/test_unity_client.py (no Unity there);
// what it relies on, Chunk.FrameRgbBottomUp, is.
#if UNITY_5_3_OR_NEWER
using UnityEngine;

namespace Chunkworld
{
    public static class ChunkworldTextures
    {
        /// <summary>Frame `index` of a chunk as an RGB24 texture (W x H, point filtering, no
        /// mipmaps). Pass the texture from the previous call as `reuse` to avoid allocating one
        /// per frame; a texture of another size is replaced.</summary>
        public static Texture2D ToTexture2D(Chunk chunk, int index, Texture2D reuse = null)
        {
            int width = chunk.Frames.Width, height = chunk.Frames.Height;
            Texture2D texture = reuse;
            if (texture == null || texture.width != width || texture.height != height || texture.format != TextureFormat.RGB24)
            {
                texture = new Texture2D(width, height, TextureFormat.RGB24, false);
                texture.filterMode = FilterMode.Point;
                texture.wrapMode = TextureWrapMode.Clamp;
            }
            // Unity's texture rows go bottom-up; the wire's go top-down.
            texture.LoadRawTextureData(chunk.FrameRgbBottomUp(index));
            texture.Apply(false);
            return texture;
        }
    }
}
#endif
