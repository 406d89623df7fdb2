// TestClient.cs: the console check of the C# client, run by tests/test_unity_client.py.
//
//   mcs -out:test_client.exe bridges/clients/unity/Chunkworld/*.cs bridges/clients/unity/Tests/TestClient.cs
//   CWB_INPUT=input.txt [CWB_CONTROL=tcp://127.0.0.1:PORT] mono test_client.exe
//
// input.txt, one item a line (hex is lowercase):
//   vector NAME HEX_FRAME0 HEX_FRAME1 [HEX_FRAME2 ...]   the cwb/2 vectors (tests/vectors/cwb2.json)
//   values HEX                                          msgpack of a list of values
//   bad HEX                                             one invalid msgpack input
// With CWB_CONTROL set it also drives a fake session:
// hello -> reset -> 3 steps -> chunks on SUB -> errors -> snapshot/restore -> close.
// It prints one line "CWB_RESULT {json}" and exits 0; the pytest side checks the values.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using Chunkworld;

public static class TestClient
{
    private const double T = 1700000000.25;  // the vectors' fixed time

    public static int Main()
    {
        string input = Environment.GetEnvironmentVariable("CWB_INPUT") ?? "";
        if (!File.Exists(input))
        {
            Console.WriteLine("CWB_FAILED cannot read CWB_INPUT=" + input);
            return 1;
        }
        var result = new MsgpackMap { { "codec", Codec(File.ReadAllLines(input)) } };
        string control = Environment.GetEnvironmentVariable("CWB_CONTROL") ?? "";
        if (control != "") result["session"] = Session(control);
        Console.WriteLine("CWB_RESULT " + Json(result));
        return 0;
    }

    // ---------------------------------------------------------------- msgpack and cwb/2

    private static MsgpackMap Codec(string[] lines)
    {
        var vectors = new List<object>();
        var bad = new List<object>();
        var values = new MsgpackMap();
        foreach (string line in lines)
        {
            string[] parts = line.Trim().Split(' ');
            if (parts[0] == "vector")
            {
                var frames = new List<byte[]>();
                for (int i = 2; i < parts.Length; i++) frames.Add(Unhex(parts[i]));
                vectors.Add(Vector(parts[1], frames));
            }
            else if (parts[0] == "values")
            {
                values["values_error"] = "";
                try
                {
                    object value = Msgpack.Decode(Unhex(parts[1]));
                    values["values"] = value;
                    values["values_reencoded"] = Hex(Msgpack.Encode(value));
                }
                catch (MsgpackException e) { values["values_error"] = e.Message; }
            }
            else if (parts[0] == "bad")
            {
                try { Msgpack.Decode(Unhex(parts[1])); bad.Add(""); }
                catch (MsgpackException e) { bad.Add(e.Message); }
            }
        }
        // The requests as the client builds them, from C# values.
        var built = new MsgpackMap
        {
            { "ping", HexFrames(CwbWire.Encode("ping", 1, null, 1, T, new MsgpackMap())) },
            { "hello", HexFrames(CwbWire.Encode("hello", 2, null, 2, T, new MsgpackMap {
                { "versions", new List<object> { 2 } }, { "options", new MsgpackMap() } })) },
            { "step", HexFrames(CwbWire.Encode("step", 3, "a1b2", 3, T, new MsgpackMap { { "action", 3 } })) },
        };
        var codec = new MsgpackMap { { "vectors", vectors }, { "built", built }, { "bad", bad } };
        foreach (var kv in values) codec[kv.Key] = kv.Value;
        return codec;
    }

    private static MsgpackMap Vector(string name, List<byte[]> frames)
    {
        var out_ = new MsgpackMap { { "name", name }, { "error", "" }, { "header", null }, { "reencoded", "" } };
        try
        {
            object header = Msgpack.Decode(frames[1]);
            out_["header"] = header;
            out_["reencoded"] = Hex(Msgpack.Encode(header));
        }
        catch (MsgpackException e) { out_["error"] = e.Message; }
        var wire = new MsgpackMap { { "error", "" } };
        try
        {
            WireMessage msg = CwbWire.Decode(frames);
            var arrays = new MsgpackMap();
            foreach (var kv in msg.Arrays)
                arrays[kv.Key] = new MsgpackMap {
                    { "dtype", kv.Value.Dtype }, { "shape", new List<long>(kv.Value.Shape) }, { "hex", Hex(kv.Value.Data) } };
            wire["type"] = msg.Type;
            wire["id"] = msg.Id;
            wire["re"] = msg.Re;
            wire["session"] = msg.Session;
            wire["seq"] = msg.Seq;
            wire["time"] = msg.Time;
            wire["body"] = msg.Body;
            wire["arrays"] = arrays;
        }
        catch (CwbWireException e) { wire["error"] = e.Message; }
        out_["wire"] = wire;
        return out_;
    }

    private static List<object> HexFrames(List<byte[]> frames)
    {
        var hex = new List<object>();
        foreach (byte[] frame in frames) hex.Add(Hex(frame));
        return hex;
    }

    // ---------------------------------------------------------------- a session on the fake

    private static MsgpackMap Session(string control)
    {
        var out_ = new MsgpackMap();
        var cw = new ChunkworldClient { TimeoutMs = 5000 };
        out_["open"] = cw.Open(control);
        if (!(bool)out_["open"])
        {
            out_["open_error"] = cw.Error;
            return out_;
        }
        out_["ping"] = cw.Ping().Ok;
        out_["bad_hello"] = Code(cw.Request("hello", new MsgpackMap {
            { "versions", new List<object> { 2 } }, { "options", new MsgpackMap { { "bogus", 1 } } } }));
        Reply hello = cw.Hello(new MsgpackMap { { "height", 24 }, { "width", 32 }, { "chunk_frames", 2 } });
        out_["hello_ok"] = hello.Ok;
        out_["session"] = cw.SessionId;
        out_["observer"] = cw.ObserverToken;
        out_["facts"] = cw.Facts;
        out_["limit_keys"] = new List<string>(cw.Limits.Keys);
        out_["frames_endpoint"] = cw.FramesEndpoint;
        out_["step_before_reset"] = Code(cw.Step(1));
        out_["observe"] = cw.Observe();
        int events = 0;
        cw.ChunkPublished += chunk => events++;
        Pump(cw, 300);  // let the subscription reach the PUB socket before the first chunk

        var chunks = new List<Chunk> { cw.Reset(7) };
        foreach (object action in new object[] { "left", 3, new object[] { "jump", 0 } })
            chunks.Add(cw.Step(action));
        var replies = new List<object>();
        foreach (Chunk chunk in chunks) replies.Add(Describe(chunk));
        out_["replies"] = replies;
        out_["bad_actions"] = new List<object> { Code(cw.Step(99)), Code(cw.Step("fly")), Code(cw.Step(new[] { "left" })) };
        out_["published"] = Published(cw, chunks.Count);
        out_["published_events"] = events;

        Chunk first = chunks[0];
        Chunk chunk0 = first.Ok ? first : null;
        if (chunk0 != null)
        {
            int last = chunk0.FrameCount - 1, w = chunk0.Frames.Width, h = chunk0.Frames.Height;
            byte[] top = chunk0.FrameRgb(0), bottomUp = chunk0.FrameRgbBottomUp(0);
            byte[] lastTop = chunk0.FrameRgb(last), lastBottomUp = chunk0.FrameRgbBottomUp(last);
            out_["image"] = new MsgpackMap
            {
                { "frames", chunk0.FrameCount }, { "width", w }, { "height", h }, { "rgb_bytes", top.Length },
                { "frame0_x1_y0", Rgb(top, w, 1, 0) }, { "last_x31_y23", Rgb(lastTop, w, 31, 23) },
                // Unity's layout: texture row 0 is the image's bottom row (y = H - 1).
                { "unity_frame0_x1_row23", Rgb(bottomUp, w, 1, h - 1) }, { "unity_last_x31_row0", Rgb(lastBottomUp, w, 31, 0) },
            };
        }

        Reply snap = cw.Snapshot();
        string after = Sha256(cw.Step(2));
        out_["restore_ok"] = cw.Restore(snap.Body["snapshot"] as string).Ok;
        out_["same_after_restore"] = after != null && Sha256(cw.Step(2)) == after;

        Pump(cw, 4500);  // past the server's heartbeat (1 s) + timeout (3 s): PONGs keep both links
        out_["ping_after_idle"] = cw.Ping().Ok;
        out_["heartbeats_answered"] = cw.HeartbeatsAnswered();
        Chunk tick = cw.Step(0);
        out_["tick_after_idle"] = tick.Ok ? (object)tick.Tick : null;
        List<object> late = Published(cw, 3);  // the two steps around restore, then the one after idling
        out_["published_after_idle"] = late.Count == 3 ? ((MsgpackMap)late[2])["tick"] : null;

        out_["close"] = cw.CloseSession().Ok;
        out_["step_after_close"] = Code(cw.Request("step", new MsgpackMap { { "action", 1 } }));
        cw.Close();
        cw.Close();  // safe twice
        return out_;
    }

    private static void Pump(ChunkworldClient cw, int ms)
    {
        var clock = Stopwatch.StartNew();
        while (clock.ElapsedMilliseconds < ms) cw.Poll(5);
    }

    private static List<object> Published(ChunkworldClient cw, int count)
    {
        var seen = new List<object>();
        var clock = Stopwatch.StartNew();
        while (seen.Count < count && clock.ElapsedMilliseconds < 5000)
        {
            cw.Poll(2);
            for (Chunk chunk = cw.NextChunk(); chunk != null; chunk = cw.NextChunk()) seen.Add(Describe(chunk));
        }
        return seen;
    }

    private static object Code(Reply reply) { return reply.Ok ? null : reply.Code; }

    private static object Code(Chunk chunk) { return chunk.Ok ? null : chunk.Code; }

    private static MsgpackMap Describe(Chunk chunk)
    {
        if (!chunk.Ok) return new MsgpackMap { { "ok", false }, { "code", chunk.Code }, { "message", chunk.Message } };
        return new MsgpackMap
        {
            { "ok", true }, { "tick", chunk.Tick }, { "action_tick", chunk.ActionTick }, { "seq", chunk.Seq },
            { "session", chunk.Session }, { "cause", chunk.Cause }, { "shape", new List<long>(chunk.Frames.Shape) },
            { "sha256", Sha256(chunk) },
        };
    }

    private static string Sha256(Chunk chunk)
    {
        if (!chunk.Ok) return null;
        using (var sha = SHA256.Create()) return Hex(sha.ComputeHash(chunk.Frames.Data));
    }

    private static List<object> Rgb(byte[] rgb, int width, int x, int row)
    {
        int at = (row * width + x) * 3;
        return new List<object> { (long)rgb[at], (long)rgb[at + 1], (long)rgb[at + 2] };
    }

    // ---------------------------------------------------------------- hex and JSON

    private static byte[] Unhex(string text)
    {
        var bytes = new byte[text.Length / 2];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = byte.Parse(text.Substring(2 * i, 2), NumberStyles.HexNumber);
        return bytes;
    }

    private static string Hex(byte[] bytes)
    {
        return BitConverter.ToString(bytes).Replace("-", "").ToLowerInvariant();
    }

    // JSON of the values above; byte[] as {"bin": hex}, non-ASCII escaped (\uXXXX).
    private static string Json(object value)
    {
        var sb = new StringBuilder();
        WriteJson(sb, value);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, object value)
    {
        if (value == null) { sb.Append("null"); return; }
        if (value is bool) { sb.Append((bool)value ? "true" : "false"); return; }
        if (value is int || value is long) { sb.Append(Convert.ToInt64(value).ToString(CultureInfo.InvariantCulture)); return; }
        if (value is double)
        {
            string text = ((double)value).ToString("R", CultureInfo.InvariantCulture);
            sb.Append(text.IndexOfAny(new[] { '.', 'E', 'N', 'I' }) < 0 ? text + ".0" : text);
            return;
        }
        var s = value as string;
        if (s != null)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                if (c == '"' || c == '\\') sb.Append('\\').Append(c);
                else if (c < 0x20 || c > 0x7e) sb.AppendFormat("\\u{0:x4}", (int)c);
                else sb.Append(c);
            }
            sb.Append('"');
            return;
        }
        var bin = value as byte[];
        if (bin != null) { sb.Append("{\"bin\":\"").Append(Hex(bin)).Append("\"}"); return; }
        var map = value as MsgpackMap;
        if (map != null)
        {
            sb.Append('{');
            bool firstKey = true;
            foreach (var kv in map)
            {
                if (!firstKey) sb.Append(',');
                firstKey = false;
                WriteJson(sb, kv.Key);
                sb.Append(':');
                WriteJson(sb, kv.Value);
            }
            sb.Append('}');
            return;
        }
        var list = value as IEnumerable;
        if (list == null) throw new ArgumentException("no JSON for " + value.GetType());
        sb.Append('[');
        bool firstItem = true;
        foreach (object item in list)
        {
            if (!firstItem) sb.Append(',');
            firstItem = false;
            WriteJson(sb, item);
        }
        sb.Append(']');
    }
}
