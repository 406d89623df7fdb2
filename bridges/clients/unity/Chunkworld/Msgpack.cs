// Msgpack.cs: a minimal msgpack encoder/decoder for the chunkworld bridge (cwb/2).
//
// Covers the types the protocol uses: nil, bool, int, float, str, bin, array, map.
// Extension types (timestamps included) are refused, as the server refuses them.
// The encoder picks the smallest encoding, like Python's msgpack.packb(use_bin_type=True), so
// a header encoded here is byte for byte the header the Python client sends:
//
//   null -> c0    false/true -> c2/c3    float/double -> cb + 8 bytes (always float64)
//   integers -> fixint / cc cd ce cf (unsigned) / d0 d1 d2 d3 (negative)
//   string -> fixstr / d9 da db (UTF-8)   byte[] -> c4 c5 c6 (bin)
//   IList -> fixarray / dc dd              MsgpackMap or IDictionary -> fixmap / de df
//
// Decoded values are C# objects: null, bool, long, double, string, byte[], List<object> and
// MsgpackMap (string keys, insertion order kept, so a decoded header re-encodes to the same bytes).
//
// Use:
//   byte[] bytes = Msgpack.Encode(new MsgpackMap { { "type", "ping" }, { "id", 1 } });
//   object value = Msgpack.Decode(bytes);   // throws MsgpackException on bad input

using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Chunkworld
{
    /// <summary>Bad msgpack input (truncated, trailing bytes, extension types, ...) or a value
    /// msgpack cannot carry here.</summary>
    public sealed class MsgpackException : Exception
    {
        public MsgpackException(string message) : base(message) { }
    }

    /// <summary>A map with string keys that keeps insertion order (the protocol fixes the order
    /// of header keys). Setting an existing key keeps its place.</summary>
    public sealed class MsgpackMap : IEnumerable<KeyValuePair<string, object>>
    {
        private readonly List<string> _keys = new List<string>();
        private readonly Dictionary<string, object> _values = new Dictionary<string, object>();

        public int Count { get { return _keys.Count; } }
        public IList<string> Keys { get { return _keys.AsReadOnly(); } }

        public void Add(string key, object value)
        {
            if (key == null) throw new ArgumentNullException("key");
            if (!_values.ContainsKey(key)) _keys.Add(key);
            _values[key] = value;
        }

        /// <summary>The value for `key`; null when absent (msgpack nil reads the same).</summary>
        public object this[string key]
        {
            get { object v; return _values.TryGetValue(key, out v) ? v : null; }
            set { Add(key, value); }
        }

        public bool ContainsKey(string key) { return _values.ContainsKey(key); }

        public IEnumerator<KeyValuePair<string, object>> GetEnumerator()
        {
            foreach (string key in _keys) yield return new KeyValuePair<string, object>(key, _values[key]);
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }
    }

    public static class Msgpack
    {
        /// <summary>Deeper nesting is refused when decoding (the server allows 16).</summary>
        public const int MaxDepth = 32;

        private static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);  // throws on bad UTF-8

        // ---------------------------------------------------------------- encode

        /// <summary>The msgpack bytes of `value`. Throws MsgpackException for a type msgpack
        /// cannot carry here (anything but the types listed at the top of this file).</summary>
        public static byte[] Encode(object value)
        {
            var buf = new MemoryStream();
            Write(buf, value, 0);
            return buf.ToArray();
        }

        private static void Write(MemoryStream buf, object value, int depth)
        {
            if (depth > MaxDepth) throw new MsgpackException("nesting deeper than " + MaxDepth);
            if (value == null) { buf.WriteByte(0xc0); return; }
            if (value is bool) { buf.WriteByte((bool)value ? (byte)0xc3 : (byte)0xc2); return; }
            if (value is ulong) { WriteUInt(buf, (ulong)value); return; }
            if (value is sbyte || value is byte || value is short || value is ushort
                || value is int || value is uint || value is long)
            {
                long n = Convert.ToInt64(value);
                if (n >= 0) WriteUInt(buf, (ulong)n); else WriteNegative(buf, n);
                return;
            }
            if (value is double || value is float)
            {
                buf.WriteByte(0xcb);
                PutBig(buf, (ulong)BitConverter.DoubleToInt64Bits(Convert.ToDouble(value)), 8);
                return;
            }
            var text = value as string;
            if (text != null)
            {
                byte[] utf8 = Utf8.GetBytes(text);
                WriteHead(buf, utf8.Length, utf8.Length < 32 ? 0xa0 : -1, 0xd9, 0xda, 0xdb);
                buf.Write(utf8, 0, utf8.Length);
                return;
            }
            var bin = value as byte[];
            if (bin != null)
            {
                WriteHead(buf, bin.Length, -1, 0xc4, 0xc5, 0xc6);
                buf.Write(bin, 0, bin.Length);
                return;
            }
            var map = value as MsgpackMap;
            if (map != null)
            {
                WriteHead(buf, map.Count, map.Count < 16 ? 0x80 : -1, -1, 0xde, 0xdf);
                foreach (var kv in map) { Write(buf, kv.Key, depth + 1); Write(buf, kv.Value, depth + 1); }
                return;
            }
            var dict = value as IDictionary;
            if (dict != null)
            {
                WriteHead(buf, dict.Count, dict.Count < 16 ? 0x80 : -1, -1, 0xde, 0xdf);
                foreach (DictionaryEntry kv in dict)
                {
                    if (!(kv.Key is string)) throw new MsgpackException("map keys must be strings, got " + kv.Key);
                    Write(buf, kv.Key, depth + 1);
                    Write(buf, kv.Value, depth + 1);
                }
                return;
            }
            var list = value as IList;
            if (list != null)
            {
                WriteHead(buf, list.Count, list.Count < 16 ? 0x90 : -1, -1, 0xdc, 0xdd);
                foreach (object item in list) Write(buf, item, depth + 1);
                return;
            }
            throw new MsgpackException("cannot encode a value of type " + value.GetType().FullName);
        }

        // A length head: fix form (fixBase | n) when fixBase >= 0, else the 8/16/32-bit form
        // (op8 < 0: no 8-bit form, as for arrays and maps).
        private static void WriteHead(MemoryStream buf, int n, int fixBase, int op8, int op16, int op32)
        {
            if (fixBase >= 0) buf.WriteByte((byte)(fixBase | n));
            else if (op8 >= 0 && n < 0x100) { buf.WriteByte((byte)op8); buf.WriteByte((byte)n); }
            else if (n < 0x10000) { buf.WriteByte((byte)op16); PutBig(buf, (ulong)n, 2); }
            else { buf.WriteByte((byte)op32); PutBig(buf, (ulong)n, 4); }
        }

        private static void WriteUInt(MemoryStream buf, ulong n)
        {
            if (n < 0x80) buf.WriteByte((byte)n);  // positive fixint
            else if (n < 0x100) { buf.WriteByte(0xcc); buf.WriteByte((byte)n); }
            else if (n < 0x10000) { buf.WriteByte(0xcd); PutBig(buf, n, 2); }
            else if (n <= 0xffffffffUL) { buf.WriteByte(0xce); PutBig(buf, n, 4); }
            else { buf.WriteByte(0xcf); PutBig(buf, n, 8); }
        }

        private static void WriteNegative(MemoryStream buf, long n)
        {
            if (n >= -32) buf.WriteByte((byte)(n & 0xff));  // negative fixint 0xe0..0xff
            else if (n >= -0x80) { buf.WriteByte(0xd0); PutBig(buf, (ulong)n, 1); }
            else if (n >= -0x8000) { buf.WriteByte(0xd1); PutBig(buf, (ulong)n, 2); }
            else if (n >= -0x80000000L) { buf.WriteByte(0xd2); PutBig(buf, (ulong)n, 4); }
            else { buf.WriteByte(0xd3); PutBig(buf, (ulong)n, 8); }
        }

        // The low `width` bytes of n, big-endian.
        private static void PutBig(MemoryStream buf, ulong n, int width)
        {
            for (int shift = 8 * (width - 1); shift >= 0; shift -= 8) buf.WriteByte((byte)(n >> shift));
        }

        // ---------------------------------------------------------------- decode

        /// <summary>Decode exactly one msgpack value. Throws MsgpackException for truncated
        /// input, trailing bytes, extension types, bad UTF-8, non-string map keys, uint64 past
        /// long's range or nesting past MaxDepth.</summary>
        public static object Decode(byte[] bytes)
        {
            var reader = new Reader(bytes);
            object value = reader.Value(0);
            if (reader.Left > 0) throw new MsgpackException(reader.Left + " trailing bytes after the value");
            return value;
        }

        private sealed class Reader
        {
            private readonly byte[] _data;
            private int _pos;

            public Reader(byte[] data) { _data = data; }

            public int Left { get { return _data.Length - _pos; } }

            private void Need(long n, string what)
            {
                if (Left < n) throw new MsgpackException("truncated: " + what + " needs " + n + " bytes, " + Left + " left");
            }

            private ulong Big(int width)
            {
                Need(width, "a " + width + "-byte number");
                ulong n = 0;
                for (int i = 0; i < width; i++) n = (n << 8) | _data[_pos++];
                return n;
            }

            public object Value(int depth)
            {
                if (depth > MaxDepth) throw new MsgpackException("nesting deeper than " + MaxDepth);
                Need(1, "a value");
                int b = _data[_pos++];
                if (b < 0x80) return (long)b;
                if (b >= 0xe0) return (long)(b - 0x100);
                if (b >= 0xa0 && b <= 0xbf) return Str(b & 0x1f);
                if (b >= 0x90 && b <= 0x9f) return Array(b & 0x0f, depth);
                if (b >= 0x80 && b <= 0x8f) return Map(b & 0x0f, depth);
                switch (b)
                {
                    case 0xc0: return null;
                    case 0xc2: return false;
                    case 0xc3: return true;
                    case 0xcc: return (long)Big(1);
                    case 0xcd: return (long)Big(2);
                    case 0xce: return (long)Big(4);
                    case 0xcf:
                        ulong u = Big(8);
                        if (u > long.MaxValue) throw new MsgpackException("uint64 value past 2^63-1 does not fit a long");
                        return (long)u;
                    case 0xd0: return (long)(sbyte)Big(1);
                    case 0xd1: return (long)(short)Big(2);
                    case 0xd2: return (long)(int)Big(4);
                    case 0xd3: return (long)Big(8);
                    case 0xca: return (double)BitConverter.ToSingle(BitConverter.GetBytes((int)Big(4)), 0);
                    case 0xcb: return BitConverter.Int64BitsToDouble((long)Big(8));
                    case 0xd9: return Str((long)Big(1));
                    case 0xda: return Str((long)Big(2));
                    case 0xdb: return Str((long)Big(4));
                    case 0xc4: return Bin((long)Big(1));
                    case 0xc5: return Bin((long)Big(2));
                    case 0xc6: return Bin((long)Big(4));
                    case 0xdc: return Array((long)Big(2), depth);
                    case 0xdd: return Array((long)Big(4), depth);
                    case 0xde: return Map((long)Big(2), depth);
                    case 0xdf: return Map((long)Big(4), depth);
                    case 0xc1: throw new MsgpackException("byte 0xc1 is never used in msgpack");
                }
                throw new MsgpackException(string.Format("msgpack extension type (0x{0:x2}) is not allowed", b));
            }

            private byte[] Bin(long n)
            {
                Need(n, "bin/str");
                var bytes = new byte[n];
                Buffer.BlockCopy(_data, _pos, bytes, 0, (int)n);
                _pos += (int)n;
                return bytes;
            }

            private string Str(long n)
            {
                byte[] raw = Bin(n);
                try { return Utf8.GetString(raw); }
                catch (ArgumentException) { throw new MsgpackException("string is not valid UTF-8"); }
            }

            private List<object> Array(long n, int depth)
            {
                Need(n, "an array of " + n + " items");  // every item takes at least one byte
                var items = new List<object>((int)n);
                for (long i = 0; i < n; i++) items.Add(Value(depth + 1));
                return items;
            }

            private MsgpackMap Map(long n, int depth)
            {
                Need(2 * n, "a map of " + n + " entries");
                var map = new MsgpackMap();
                for (long i = 0; i < n; i++)
                {
                    var key = Value(depth + 1) as string;
                    if (key == null) throw new MsgpackException("map keys must be strings");
                    map[key] = Value(depth + 1);
                }
                return map;
            }
        }
    }
}
