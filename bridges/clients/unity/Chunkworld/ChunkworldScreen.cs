// ChunkworldScreen.cs: an example MonoBehaviour that plays a chunkworld session in Unity.
//
// Attach it to a GameObject with a Renderer (e.g. a Quad), start `chunkworld serve`, press
// Play; hold the right arrow to walk right. Unity wants a MonoBehaviour in a file of its own
// name, hence this file. Compiled only inside Unity (UNITY_5_3_OR_NEWER).
#if UNITY_5_3_OR_NEWER
using UnityEngine;

namespace Chunkworld
{
    /// <summary>Steps the world once per reply without blocking the game (one request in
    /// flight at a time) and shows each chunk's last frame as the Renderer's main texture.</summary>
    public sealed class ChunkworldScreen : MonoBehaviour
    {
        public string Control = "tcp://127.0.0.1:5555";
        public string Prompt = "a knight walks through a forest";

        private ChunkworldClient _cw;
        private Texture2D _texture;
        private long _pending;  // a step in flight (0: none)

        private void Start()
        {
            _cw = new ChunkworldClient();
            if (!_cw.Open(Control)) { Debug.LogError(_cw.Error); enabled = false; return; }
            Reply hello = _cw.Hello();
            if (!hello.Ok) { Debug.LogError(hello.Code + ": " + hello.Message); enabled = false; return; }
            Show(_cw.Reset(0, Prompt));
        }

        private void Update()
        {
            _cw.Poll();  // answers the server's heartbeats; call it every frame
            if (_pending == 0)
            {
                string action = Input.GetKey(KeyCode.RightArrow) ? "right" : "noop";
                _pending = _cw.SendRequest("step", new MsgpackMap { { "action", action } });
                return;
            }
            Reply reply = _cw.TakeReply(_pending);  // null until it has come
            if (reply == null) return;
            _pending = 0;
            Show(Chunk.From(reply));
        }

        private void Show(Chunk chunk)
        {
            if (!chunk.Ok) { Debug.LogError(chunk.Code + ": " + chunk.Message); return; }
            // chunk.Frames.Shape is [F, H, W, 3]; this shows the last of the F frames.
            _texture = ChunkworldTextures.ToTexture2D(chunk, chunk.FrameCount - 1, _texture);
            GetComponent<Renderer>().material.mainTexture = _texture;
        }

        private void OnDestroy()
        {
            if (_cw == null) return;
            _cw.CloseSession();
            _cw.Close();
        }
    }
}
#endif
