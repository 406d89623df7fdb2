// Conformance.cs: replays the cwb/2 conformance suite (tests/vectors/conformance.json) against a
// bridge server whose session factory is the fake, over this client's own ZMTP and msgpack.
//
//   mcs -out:conformance.exe bridges/clients/unity/Chunkworld/*.cs bridges/clients/unity/Tests/Conformance.cs
//   CWB_SUITE=tests/vectors/conformance.json CWB_CONTROL=tcp://127.0.0.1:PORT mono conformance.exe
//
// Each exchange runs on a fresh DEALER connection, step by step, as the suite's description says:
// a request is a header map (sent as ["", "cwb/2", msgpack(header)]; "$session" stands for the
// token of the exchange's last hello reply) or "raw" frames in hex; the reply's header fields in
// "expect", the "body" keys listed (an empty "body" means an empty body), "body_keys" (the exact
// key set) and "frames_shape" (the frames buffer's shape) must match; "same_as" names an earlier
// step whose reply must be byte-identical. It prints "CWB_RESULT {json}" (per exchange: name,
// steps run, failures), then "N passed, N failed" (exchanges), and exits 0 when all passed.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Chunkworld;

public static class Conformance
{
    private const int TimeoutMs = 10000;

    public static int Main()
    {
        string path = Environment.GetEnvironmentVariable("CWB_SUITE") ?? "";
        string control = Environment.GetEnvironmentVariable("CWB_CONTROL") ?? "";
        if (!File.Exists(path) || control == "")
        {
            Console.WriteLine("CWB_FAILED set CWB_SUITE (the suite's JSON file) and CWB_CONTROL (tcp://HOST:PORT)");
            return 2;
        }
        var suite = (MsgpackMap)new JsonReader(File.ReadAllText(path)).Document();
        var results = new List<object>();
        int failed = 0;
        foreach (object exchange in (List<object>)suite["exchanges"])
        {
            var result = Exchange((MsgpackMap)exchange, control);
            if (((List<object>)result["failures"]).Count > 0) failed++;
            results.Add(result);
        }
        var report = new MsgpackMap { { "client", "unity" }, { "exchanges", results } };
        Console.WriteLine("CWB_RESULT " + Json(report));
        Console.WriteLine((results.Count - failed) + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }

    private static MsgpackMap Exchange(MsgpackMap exchange, string control)
    {
        var failures = new List<object>();
        var replies = new List<List<byte[]>>();
        object session = null;
        var steps = (List<object>)exchange["steps"];
        using (var sock = new ZmtpSocket("DEALER"))
        {
            bool open = sock.Open(control, TimeoutMs);
            if (!open) failures.Add("connect: " + sock.Error);
            for (int i = 0; open && i < steps.Count; i++)
            {
                var step = (MsgpackMap)steps[i];
                var frames = new List<byte[]> { new byte[0] };
                if (step.ContainsKey("raw"))
                    foreach (object h in (List<object>)step["raw"]) frames.Add(Unhex((string)h));
                else
                {
                    frames.Add(Encoding.ASCII.GetBytes("cwb/2"));
                    frames.Add(Msgpack.Encode(Fill(step["send"], session)));
                }
                sock.Send(frames);
                var reply = Receive(sock);
                if (reply == null)
                {
                    failures.Add("step " + i + ": no reply in " + TimeoutMs + " ms (" + sock.Error + ")");
                    break;
                }
                replies.Add(reply);
                if (step.ContainsKey("same_as"))
                {
                    var earlier = replies[(int)(long)step["same_as"]];
                    if (reply.Count != earlier.Count || reply.Where((f, k) => !f.SequenceEqual(earlier[k])).Any())
                        failures.Add("step " + i + ": reply is not byte-identical to step " + step["same_as"] + "'s");
                    continue;
                }
                string why = Check(step, reply);
                if (why != "") failures.Add("step " + i + ": " + why);
                var header = Decoded(reply) as MsgpackMap;
                if (header != null && header.ContainsKey("type") && (header["type"] as string) == "hello")
                    session = ((MsgpackMap)header["body"])["session"];
            }
        }
        return new MsgpackMap { { "name", exchange["name"] }, { "steps", (long)replies.Count }, { "failures", failures } };
    }

    private static object Decoded(List<byte[]> reply)
    {
        try { return reply.Count >= 2 ? Msgpack.Decode(reply[1]) : null; }
        catch (MsgpackException) { return null; }
    }

    // "" when the reply (frames after the empty delimiter) is what the step expects, else why not.
    private static string Check(MsgpackMap step, List<byte[]> reply)
    {
        if (reply.Count < 2 || Encoding.ASCII.GetString(reply[0]) != "cwb/2")
            return "reply is not [\"cwb/2\", header, ...]";
        var header = Decoded(reply) as MsgpackMap;
        if (header == null) return "reply header is not a msgpack map";
        var body = header.ContainsKey("body") ? (header["body"] as MsgpackMap) ?? new MsgpackMap() : new MsgpackMap();
        if (step.ContainsKey("expect"))
            foreach (var kv in (MsgpackMap)step["expect"])
            {
                object got = header.ContainsKey(kv.Key) ? header[kv.Key] : null;
                if (!Same(got, kv.Value)) return "header " + kv.Key + " is " + Json(got) + ", expected " + Json(kv.Value);
            }
        if (step.ContainsKey("body"))
        {
            var want = (MsgpackMap)step["body"];
            if (want.Count == 0 && body.Count != 0) return "body is " + Json(body) + ", expected {}";
            foreach (var kv in want)
                if (!body.ContainsKey(kv.Key) || !Same(body[kv.Key], kv.Value))
                    return "body " + kv.Key + " is " + (body.ContainsKey(kv.Key) ? Json(body[kv.Key]) : "missing") + ", expected " + Json(kv.Value);
        }
        if (step.ContainsKey("body_keys"))
        {
            var got = body.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
            var want = ((List<object>)step["body_keys"]).Cast<string>().OrderBy(k => k, StringComparer.Ordinal).ToList();
            if (!got.SequenceEqual(want)) return "body keys are " + string.Join(",", got) + ", expected " + string.Join(",", want);
        }
        if (step.ContainsKey("frames_shape"))
        {
            object shape = null;
            if (header.ContainsKey("bufs"))
                foreach (object d in (IList)header["bufs"])
                {
                    var desc = d as MsgpackMap;
                    if (desc != null && desc.ContainsKey("name") && (desc["name"] as string) == "frames") shape = desc["shape"];
                }
            if (!Same(shape, step["frames_shape"])) return "frames shape is " + Json(shape) + ", expected " + Json(step["frames_shape"]);
        }
        return "";
    }

    private static List<byte[]> Receive(ZmtpSocket sock)
    {
        var until = DateTime.UtcNow.AddMilliseconds(TimeoutMs);
        while (DateTime.UtcNow < until && sock.State != ZmtpState.Error)
        {
            sock.Poll(10);
            var msg = sock.Receive();
            if (msg != null) return msg.Count > 0 && msg[0].Length == 0 ? msg.GetRange(1, msg.Count - 1) : msg;
        }
        return null;
    }

    // Deep equality of decoded msgpack and JSON values: numbers compare by value.
    private static bool Same(object a, object b)
    {
        if (a == null || b == null) return a == null && b == null;
        if (IsNumber(a) && IsNumber(b)) return Convert.ToDouble(a) == Convert.ToDouble(b);
        var la = a as IList; var lb = b as IList;
        if (la != null && lb != null && !(a is byte[]) && !(b is byte[]))
            return la.Count == lb.Count && Enumerable.Range(0, la.Count).All(i => Same(la[i], lb[i]));
        var ma = a as MsgpackMap; var mb = b as MsgpackMap;
        if (ma != null && mb != null)
            return ma.Count == mb.Count && ma.All(kv => mb.ContainsKey(kv.Key) && Same(kv.Value, mb[kv.Key]));
        return a.GetType() == b.GetType() && a.Equals(b);
    }

    private static bool IsNumber(object v) { return v is long || v is int || v is double; }

    private static object Fill(object value, object session)
    {
        if (value is string && (string)value == "$session") return session;
        var map = value as MsgpackMap;
        if (map == null) return value;
        var out_ = new MsgpackMap();
        foreach (var kv in map) out_.Add(kv.Key, Fill(kv.Value, session));
        return out_;
    }

    private static byte[] Unhex(string text)
    {
        var out_ = new byte[text.Length / 2];
        for (int i = 0; i < out_.Length; i++) out_[i] = byte.Parse(text.Substring(2 * i, 2), NumberStyles.HexNumber);
        return out_;
    }

    private static string Json(object value)
    {
        if (value == null) return "null";
        if (value is bool) return (bool)value ? "true" : "false";
        if (value is long || value is int) return Convert.ToInt64(value).ToString(CultureInfo.InvariantCulture);
        if (value is double) return ((double)value).ToString("R", CultureInfo.InvariantCulture);
        var s = value as string;
        if (s != null)
        {
            var sb = new StringBuilder("\"");
            foreach (char c in s)
            {
                if (c == '"' || c == '\\') sb.Append('\\').Append(c);
                else if (c < 0x20 || c > 0x7e) sb.AppendFormat("\\u{0:x4}", (int)c);
                else sb.Append(c);
            }
            return sb.Append('"').ToString();
        }
        var bin = value as byte[];
        if (bin != null) return "{\"bin\":\"" + BitConverter.ToString(bin).Replace("-", "").ToLowerInvariant() + "\"}";
        var map = value as MsgpackMap;
        if (map != null) return "{" + string.Join(",", map.Select(kv => Json(kv.Key) + ":" + Json(kv.Value))) + "}";
        var list = (IList)value;
        return "[" + string.Join(",", list.Cast<object>().Select(Json)) + "]";
    }

    /// <summary>A small JSON reader: objects as MsgpackMap (key order kept), arrays as List,
    /// whole numbers as long (the suite's ids and counts are ints), others as double.</summary>
    private sealed class JsonReader
    {
        private readonly string _s;
        private int _i;

        public JsonReader(string text) { _s = text; }

        public object Document()
        {
            object value = Value();
            Space();
            if (_i != _s.Length) throw new FormatException("trailing text at " + _i);
            return value;
        }

        private void Space() { while (_i < _s.Length && char.IsWhiteSpace(_s[_i])) _i++; }

        private object Value()
        {
            Space();
            char c = _s[_i];
            if (c == '{')
            {
                var map = new MsgpackMap();
                _i++;
                Space();
                if (_s[_i] == '}') { _i++; return map; }
                while (true)
                {
                    Space();
                    string key = Str();
                    Space();
                    Expect(':');
                    map.Add(key, Value());
                    Space();
                    if (_s[_i] == ',') { _i++; continue; }
                    Expect('}');
                    return map;
                }
            }
            if (c == '[')
            {
                var list = new List<object>();
                _i++;
                Space();
                if (_s[_i] == ']') { _i++; return list; }
                while (true)
                {
                    list.Add(Value());
                    Space();
                    if (_s[_i] == ',') { _i++; continue; }
                    Expect(']');
                    return list;
                }
            }
            if (c == '"') return Str();
            if (_s.Substring(_i).StartsWith("true")) { _i += 4; return true; }
            if (_s.Substring(_i).StartsWith("false")) { _i += 5; return false; }
            if (_s.Substring(_i).StartsWith("null")) { _i += 4; return null; }
            int start = _i;
            while (_i < _s.Length && "+-0123456789.eE".IndexOf(_s[_i]) >= 0) _i++;
            string number = _s.Substring(start, _i - start);
            long n;
            if (long.TryParse(number, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out n)) return n;
            return double.Parse(number, CultureInfo.InvariantCulture);
        }

        private void Expect(char c)
        {
            if (_i >= _s.Length || _s[_i] != c) throw new FormatException("expected '" + c + "' at " + _i);
            _i++;
        }

        private string Str()
        {
            Expect('"');
            var sb = new StringBuilder();
            while (_s[_i] != '"')
            {
                char c = _s[_i++];
                if (c != '\\') { sb.Append(c); continue; }
                char e = _s[_i++];
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u': sb.Append((char)int.Parse(_s.Substring(_i, 4), NumberStyles.HexNumber)); _i += 4; break;
                    default: sb.Append(e); break;
                }
            }
            _i++;
            return sb.ToString();
        }
    }
}
