// ChunkworldClient.cs: drive a chunkworld session over the bridge (cwb/2) from C# / Unity.
//
// A DEALER connection for requests (hello, reset, step, ...) and, after Observe(), a SUB
// connection for the chunks the server publishes. Plain C# (.NET Standard 2.0, no packages):
// Zmtp.cs speaks ZeroMQ, Msgpack.cs and CwbWire.cs the message format.
//
// Blocking use (each call waits up to TimeoutMs, answering heartbeats meanwhile):
//
//   var cw = new ChunkworldClient();
//   if (!cw.Open("tcp://127.0.0.1:5555")) throw new Exception(cw.Error);
//   Reply hello = cw.Hello();                       // cw.Facts: the session's facts
//   Chunk chunk = cw.Reset(0, "a knight in a forest");   // seed, prompt
//   chunk = cw.Step("right");                       // an action name, an id, or one per frame
//   if (chunk.Ok) { byte[] rgb = chunk.FrameRgb(0); }   // H * W * 3 bytes, top row first
//   else Console.WriteLine(chunk.Code + ": " + chunk.Message);
//
// Non-blocking use (from Update): long id = cw.SendRequest("step", new MsgpackMap { { "action", 1 } });
// then every frame cw.Poll() and cw.TakeReply(id) until it is not null. Call Poll() (or a
// blocking call) at least once a second: the server drops a connection whose heartbeats go
// unanswered. Not thread-safe: use one client from one thread.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace Chunkworld
{
    public sealed class ChunkworldClient : IDisposable
    {
        public const int MaxChunks = 16;  // published chunks kept for NextChunk(); older ones drop (like RCVHWM)
        public const int MaxReplies = 64;  // replies kept for TakeReply()

        /// <summary>Raised by Poll() for each chunk from the frames socket.</summary>
        public event Action<Chunk> ChunkPublished;

        public int TimeoutMs = 10000;
        public string Error = "";  // why Open() or Observe() failed
        public string SessionId = "";  // from the hello reply: the session token, sent with every request; keep it secret
        public string ObserverToken = "";  // from the hello reply: the frames topic, for read-only subscribers
        public MsgpackMap Facts = new MsgpackMap();  // frame_height, frame_width, chunk_frames, actions, ...
        public MsgpackMap Limits = new MsgpackMap();  // hello reply body["limits"]
        public string FramesEndpoint = "";

        private string _controlEndpoint = "";
        private ZmtpSocket _control;  // DEALER
        private ZmtpSocket _frames;  // SUB, after Observe()
        private long _ids;
        private long _seq;
        private readonly Dictionary<long, Reply> _replies = new Dictionary<long, Reply>();  // for TakeReply()
        private readonly HashSet<long> _pending = new HashSet<long>();  // sent, not answered yet
        private readonly Queue<Chunk> _chunks = new Queue<Chunk>();

        /// <summary>Connect the control socket and wait for the ZeroMQ handshake. Returns false
        /// (and sets Error) when the server is not there within TimeoutMs.</summary>
        public bool Open(string controlEndpoint)
        {
            var id = new byte[15];  // "cw-" + 12 random bytes, like the Python client
            Encoding.ASCII.GetBytes("cw-", 0, 3, id, 0);
            var random = new byte[12];
            using (var rng = RandomNumberGenerator.Create()) rng.GetBytes(random);
            Buffer.BlockCopy(random, 0, id, 3, 12);
            _controlEndpoint = controlEndpoint;
            _control = new ZmtpSocket("DEALER", id);
            return Handshake(_control, controlEndpoint);
        }

        /// <summary>Subscribe to this session's published chunks (call after Hello()). Chunks
        /// published before the subscription reaches the server are not seen (ZeroMQ's "slow
        /// joiner"); the reply to each reset/step carries the same chunk anyway.</summary>
        public bool Observe()
        {
            if (SessionId == "") throw new InvalidOperationException("call Hello() before Observe()");
            _frames = new ZmtpSocket("SUB");
            return Handshake(_frames, FramesEndpoint) && _frames.Subscribe(Encoding.UTF8.GetBytes(ObserverToken));
        }

        private bool Handshake(ZmtpSocket sock, string endpoint)
        {
            var clock = Stopwatch.StartNew();
            if (!sock.Open(endpoint, TimeoutMs))
            {
                Error = sock.Error;
                return false;
            }
            while (!sock.IsReady && sock.State != ZmtpState.Error && clock.ElapsedMilliseconds < TimeoutMs)
                sock.Poll(1);
            if (sock.IsReady) return true;
            Error = sock.Error != "" ? sock.Error : "no ZeroMQ handshake with " + endpoint + " in " + TimeoutMs + " ms";
            sock.Close();
            return false;
        }

        // ---------------------------------------------------------------- requests

        public Reply Ping() { return Request("ping"); }

        /// <summary>Start a session; `options` go to the server's session factory (null: its
        /// defaults). Sets SessionId, Facts, Limits and FramesEndpoint.</summary>
        public Reply Hello(MsgpackMap options = null)
        {
            var body = new MsgpackMap
            {
                { "versions", new List<object> { 2 } }, { "client", "chunkworld-unity" },
                { "options", options ?? new MsgpackMap() },
            };
            Reply reply = Request("hello", body);
            if (reply.Ok)
            {
                SessionId = reply.Body["session"] as string ?? "";
                ObserverToken = reply.Body["observer"] as string ?? "";
                Facts = reply.Body["model"] as MsgpackMap ?? new MsgpackMap();
                Limits = reply.Body["limits"] as MsgpackMap ?? new MsgpackMap();
                FramesEndpoint = Reachable(reply.Body["frames_endpoint"] as string ?? "");
            }
            return reply;
        }

        /// <summary>Start (or restart) the world at tick 0. seed and prompt may be null.</summary>
        public Chunk Reset(long? seed = null, string prompt = null)
        {
            return Chunk.From(Request("reset", new MsgpackMap { { "prompt", prompt }, { "seed", seed } }));
        }

        /// <summary>One tick. action: null ("noop"), an id (int), a name (string), or an array
        /// or list of exactly chunk_frames of them (one per frame).</summary>
        public Chunk Step(object action = null, string prompt = null)
        {
            return Chunk.From(Request("step", new MsgpackMap { { "action", action }, { "prompt", prompt } }));
        }

        public Reply SetPrompt(string prompt) { return Request("set_prompt", new MsgpackMap { { "prompt", prompt } }); }

        /// <summary>The reply's Body["snapshot"] is the id to pass to Restore().</summary>
        public Reply Snapshot() { return Request("snapshot"); }

        public Reply Restore(string snapshotId) { return Request("restore", new MsgpackMap { { "snapshot", snapshotId } }); }

        /// <summary>End the session on the server (the connections stay open).</summary>
        public Reply CloseSession()
        {
            Reply reply = Request("close");
            if (reply.Ok) SessionId = "";
            return reply;
        }

        /// <summary>Send one request and wait for its reply (up to TimeoutMs). Replies to other
        /// requests that arrive meanwhile are kept for TakeReply().</summary>
        public Reply Request(string type, MsgpackMap body = null)
        {
            long id = SendRequest(type, body);
            if (id == 0)
                return Reply.LocalError("DISCONNECTED", "the control connection is down: " + (_control != null ? _control.Error : "Open() first"));
            var clock = Stopwatch.StartNew();
            while (clock.ElapsedMilliseconds < TimeoutMs)
            {
                Poll(1);
                Reply reply = TakeReply(id);
                if (reply != null) return reply;
                if (_control.State == ZmtpState.Error)
                {
                    _pending.Remove(id);
                    return Reply.LocalError("DISCONNECTED", _control.Error);
                }
            }
            _pending.Remove(id);
            return Reply.LocalError("TIMEOUT", "no reply to " + type + " in " + TimeoutMs + " ms; is the server running?", true);
        }

        /// <summary>Send without waiting; returns the request id (0 if the connection is down).</summary>
        public long SendRequest(string type, MsgpackMap body = null)
        {
            if (_control == null) return 0;
            _ids++;
            _seq++;
            string session = type == "ping" || type == "hello" ? null : SessionId;
            List<byte[]> frames = CwbWire.Encode(type, _ids, session, _seq, CwbWire.Now(), body);
            frames.Insert(0, new byte[0]);  // the empty delimiter a REQ socket would add
            if (!_control.Send(frames)) return 0;
            _pending.Add(_ids);
            return _ids;
        }

        /// <summary>The reply to a SendRequest() id once it has come (after Poll()), else null.</summary>
        public Reply TakeReply(long id)
        {
            Reply reply;
            if (!_replies.TryGetValue(id, out reply)) return null;
            _replies.Remove(id);
            return reply;
        }

        /// <summary>Read both sockets (waiting up to waitMs on the control one): answer
        /// heartbeats, file replies, queue published chunks and raise ChunkPublished.</summary>
        public void Poll(int waitMs = 0)
        {
            if (_control != null)
            {
                _control.Poll(waitMs);
                for (List<byte[]> parts = _control.Receive(); parts != null; parts = _control.Receive())
                    FileReply(parts);
            }
            if (_frames != null)
            {
                _frames.Poll(0);
                for (List<byte[]> parts = _frames.Receive(); parts != null; parts = _frames.Receive())
                {
                    Chunk chunk = Chunk.From(Decode(parts.GetRange(1, parts.Count - 1)));  // drop the topic
                    if (!chunk.Ok) continue;
                    _chunks.Enqueue(chunk);
                    if (_chunks.Count > MaxChunks) _chunks.Dequeue();
                    if (ChunkPublished != null) ChunkPublished(chunk);
                }
            }
        }

        /// <summary>The oldest published chunk not taken yet (after Poll()), else null.</summary>
        public Chunk NextChunk() { return _chunks.Count > 0 ? _chunks.Dequeue() : null; }

        /// <summary>Heartbeat PINGs answered on both connections (a sign Poll() runs often enough).</summary>
        public int HeartbeatsAnswered()
        {
            return (_control != null ? _control.Pings : 0) + (_frames != null ? _frames.Pings : 0);
        }

        /// <summary>Close both connections (the server ends the session after idle_ttl_s; call
        /// CloseSession() first to end it now). Safe twice.</summary>
        public void Close()
        {
            if (_control != null) _control.Close();
            if (_frames != null) _frames.Close();
            _control = null;
            _frames = null;
        }

        public void Dispose() { Close(); }

        // ---------------------------------------------------------------- internals

        private void FileReply(List<byte[]> parts)
        {
            if (parts.Count > 0 && parts[0].Length == 0) parts.RemoveAt(0);  // the empty delimiter
            Reply reply = Decode(parts);
            if (reply.Re == null || !_pending.Remove(reply.Re.Value)) return;  // nobody waits for it any more
            _replies[reply.Re.Value] = reply;
            if (_replies.Count > MaxReplies)
            {
                long oldest = long.MaxValue;
                foreach (long key in _replies.Keys) oldest = Math.Min(oldest, key);
                _replies.Remove(oldest);
            }
        }

        private static Reply Decode(IList<byte[]> parts)
        {
            try { return Reply.From(CwbWire.Decode(parts)); }
            catch (CwbWireException e) { return Reply.LocalError("BAD_MESSAGE", e.Message); }
        }

        // The frames endpoint as this client can reach it: a wildcard host becomes the control host.
        private string Reachable(string endpoint)
        {
            string rest = endpoint.StartsWith("tcp://") ? endpoint.Substring(6) : endpoint;
            int colon = rest.LastIndexOf(':');
            if (colon < 0) return endpoint;
            string host = rest.Substring(0, colon);
            if (host != "*" && host != "0.0.0.0" && host != "::" && host != "[::]") return endpoint;
            string control = _controlEndpoint.Substring(6);
            return "tcp://" + control.Substring(0, control.LastIndexOf(':')) + rest.Substring(colon);
        }
    }
}
