// Results.cs: what ChunkworldClient's calls return: a Reply, or for reset/step a Chunk.
//
// Both carry Ok. On failure Code, Message, Retryable and Local say why: Local = false carries
// the server's error codes (BAD_ACTION, NOT_RESET, UNKNOWN_SESSION, BUSY, ... see
// bridges/PROTOCOL.md section 4); Local = true is TIMEOUT, DISCONNECTED or BAD_MESSAGE found on
// this side.

using System.Collections.Generic;

namespace Chunkworld
{
    /// <summary>A reply to one request (or a failure to get one).</summary>
    public sealed class Reply
    {
        public bool Ok;
        public string Type = "";
        public long Id;
        public long? Re;  // the id of the request answered
        public string Session;
        public long Seq;
        public double Time;
        public MsgpackMap Body = new MsgpackMap();  // the type's fields (PROTOCOL.md section 3)
        public Dictionary<string, WireArray> Arrays = new Dictionary<string, WireArray>();

        public string Code;  // on failure: the error code
        public string Message;  // on failure: how to fix the call
        public bool Retryable;
        public bool Local;

        /// <summary>A decoded message as a reply; an error message gives Ok = false.</summary>
        public static Reply From(WireMessage msg)
        {
            var reply = new Reply
            {
                Ok = msg.Type != "error", Type = msg.Type, Id = msg.Id, Re = msg.Re, Session = msg.Session,
                Seq = msg.Seq, Time = msg.Time, Body = msg.Body, Arrays = msg.Arrays,
            };
            if (!reply.Ok)
            {
                reply.Code = "" + msg.Body["code"];
                reply.Message = "" + msg.Body["message"];
                reply.Retryable = msg.Body["retryable"] is bool && (bool)msg.Body["retryable"];
            }
            return reply;
        }

        /// <summary>A failure found on this side (TIMEOUT, DISCONNECTED, BAD_MESSAGE).</summary>
        public static Reply LocalError(string code, string message, bool retryable = false)
        {
            return new Reply { Ok = false, Type = "error", Code = code, Message = message, Retryable = retryable, Local = true };
        }
    }

    /// <summary>One chunk of frames: a reset/step reply, or a chunk published on the frames
    /// socket (then Seq is the per-session chunk counter and Cause is "reset" or "step").</summary>
    public sealed class Chunk
    {
        public bool Ok;
        public long Tick;  // reset gives 0, each step +1
        public long ActionTick;  // the tick whose frames this step's action first shapes
        public double Ms;  // the tick's compute time on the server
        public long Seq;
        public string Session;
        public string Cause;  // published chunks only: "reset" or "step"
        public WireArray Frames;  // uint8 (F, H, W, 3)

        public string Code;  // on failure, as in Reply
        public string Message;
        public bool Retryable;
        public bool Local;

        /// <summary>How many frames the chunk holds (F).</summary>
        public int FrameCount { get { return Frames.Frames; } }

        /// <summary>Frame `index` as RGB bytes, top row first (see WireArray.FrameRgb).</summary>
        public byte[] FrameRgb(int index) { return Frames.FrameRgb(index); }

        /// <summary>Frame `index` as RGB bytes, bottom row first: ready for Unity's
        /// Texture2D(W, H, TextureFormat.RGB24, false).LoadRawTextureData (see ChunkworldUnity.cs).</summary>
        public byte[] FrameRgbBottomUp(int index) { return Frames.FrameRgbBottomUp(index); }

        /// <summary>A reply to reset or step as a chunk; failures pass through.</summary>
        public static Chunk From(Reply reply)
        {
            if (!reply.Ok)
                return new Chunk { Ok = false, Code = reply.Code, Message = reply.Message, Retryable = reply.Retryable, Local = reply.Local };
            WireArray frames;
            if (!reply.Arrays.TryGetValue("frames", out frames) || frames.Dtype != "uint8"
                || frames.Shape.Length != 4 || frames.Shape[3] != 3)
                return new Chunk { Ok = false, Code = "BAD_MESSAGE", Message = "a chunk needs a uint8 (F, H, W, 3) 'frames' buffer", Local = true };
            return new Chunk
            {
                Ok = true, Tick = AsLong(reply.Body["tick"]), ActionTick = AsLong(reply.Body["action_tick"]),
                Ms = reply.Body["ms"] is double ? (double)reply.Body["ms"] : 0.0, Seq = reply.Seq,
                Session = reply.Session, Cause = reply.Body["cause"] as string, Frames = frames,
            };
        }

        private static long AsLong(object value) { return value is long ? (long)value : -1; }
    }
}
