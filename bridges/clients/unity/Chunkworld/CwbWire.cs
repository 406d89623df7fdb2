// CwbWire.cs: the cwb/2 message codec (bridges/PROTOCOL.md, section 2) on top of Msgpack.cs.
//
// A message is frames [tag "cwb/2", msgpack header map, raw buffer per header["bufs"] entry].
// The header keys go in the protocol's order: type, id, re, session, seq, time, body, bufs.
// Buffers stay raw byte[]: a chunk's "frames" buffer is uint8 (F, H, W, 3), C order, i.e. RGB
// rows from the top of the image down, one frame after the other (see WireArray.FrameRgb).
//
// Use:
//   List<byte[]> frames = CwbWire.Encode("step", 3, "a1b2", 3, CwbWire.Now(),
//                                        new MsgpackMap { { "action", 3 } });
//   WireMessage msg = CwbWire.Decode(frames);   // throws CwbWireException (BAD_MESSAGE / BAD_BUFFER)

using System;
using System.Collections.Generic;
using System.Text;

namespace Chunkworld
{
    /// <summary>A message that is not valid cwb/2; Code is "BAD_MESSAGE" or "BAD_BUFFER".</summary>
    public sealed class CwbWireException : Exception
    {
        public readonly string Code;

        public CwbWireException(string code, string message) : base(code + ": " + message)
        {
            Code = code;
        }
    }

    /// <summary>One raw buffer of a message: dtype ("uint8", "int32", "int64", "float32", all
    /// little-endian), shape, and the bytes in C order.</summary>
    public sealed class WireArray
    {
        public string Dtype;
        public long[] Shape;
        public byte[] Data;

        /// <summary>For a uint8 (F, H, W, 3) chunk: F, H and W.</summary>
        public int Frames { get { CheckRgb(); return (int)Shape[0]; } }
        public int Height { get { CheckRgb(); return (int)Shape[1]; } }
        public int Width { get { CheckRgb(); return (int)Shape[2]; } }

        /// <summary>Frame `index` of a uint8 (F, H, W, 3) buffer: H * W * 3 bytes, RGB, rows
        /// from the top of the image down (row y = 0 first).</summary>
        public byte[] FrameRgb(int index)
        {
            int size = Height * Width * 3;
            if (index < 0 || index >= Frames) throw new ArgumentOutOfRangeException("index", "frame " + index + " of " + Frames);
            var rgb = new byte[size];
            Buffer.BlockCopy(Data, index * size, rgb, 0, size);
            return rgb;
        }

        /// <summary>Frame `index` with its rows flipped (bottom row first): the layout Unity's
        /// Texture2D.LoadRawTextureData expects for TextureFormat.RGB24, whose origin is the
        /// bottom-left corner. Pixel (x, y) of the image (y from the top) lands at
        /// ((H - 1 - y) * W + x) * 3.</summary>
        public byte[] FrameRgbBottomUp(int index)
        {
            int row = Width * 3, height = Height;
            byte[] top = FrameRgb(index);
            var flipped = new byte[top.Length];
            for (int y = 0; y < height; y++)
                Buffer.BlockCopy(top, y * row, flipped, (height - 1 - y) * row, row);
            return flipped;
        }

        private void CheckRgb()
        {
            if (Dtype != "uint8" || Shape.Length != 4 || Shape[3] != 3)
                throw new InvalidOperationException("not a uint8 (F, H, W, 3) frames buffer");
        }
    }

    /// <summary>A decoded cwb/2 message (reply, error or published chunk).</summary>
    public sealed class WireMessage
    {
        public string Type;
        public long Id;
        public long? Re;
        public string Session;
        public long Seq;
        public double Time;
        public MsgpackMap Body;
        public Dictionary<string, WireArray> Arrays;
    }

    public static class CwbWire
    {
        public const string Tag = "cwb/2";
        private static readonly Dictionary<string, int> ItemSize = new Dictionary<string, int>
        {
            { "uint8", 1 }, { "int32", 4 }, { "int64", 8 }, { "float32", 4 },
        };

        /// <summary>Unix time in seconds, the header's "time".</summary>
        public static double Now()
        {
            return (DateTime.UtcNow - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalMilliseconds / 1000.0;
        }

        /// <summary>The frames of one request: [tag, header] (no buffers: this client sends
        /// none). `session` is null for ping and hello.</summary>
        public static List<byte[]> Encode(string type, long id, string session, long seq, double time, MsgpackMap body)
        {
            var header = new MsgpackMap
            {
                { "type", type }, { "id", id }, { "re", null }, { "session", session }, { "seq", seq },
                { "time", time }, { "body", body ?? new MsgpackMap() },
            };
            return new List<byte[]> { Encoding.ASCII.GetBytes(Tag), Msgpack.Encode(header) };
        }

        /// <summary>Decode [tag, header, *buffers] (a reply, or a published chunk without its
        /// topic frame). Throws CwbWireException.</summary>
        public static WireMessage Decode(IList<byte[]> frames)
        {
            if (frames.Count < 2)
                throw Bad("got " + frames.Count + " frame(s); need [tag, header, *buffers]");
            if (Encoding.ASCII.GetString(frames[0]) != Tag)
                throw Bad("first frame is not the tag " + Tag);
            object value;
            try { value = Msgpack.Decode(frames[1]); }
            catch (MsgpackException e) { throw Bad("header is not msgpack: " + e.Message); }
            var header = value as MsgpackMap;
            if (header == null) throw Bad("header is not a map");
            if (!(header["type"] is string) || !(header["id"] is long))
                throw Bad("header needs a str 'type' and an int 'id'");
            var msg = new WireMessage
            {
                Type = (string)header["type"],
                Id = (long)header["id"],
                Re = header["re"] as long?,
                Session = header["session"] as string,
                Seq = header["seq"] is long ? (long)header["seq"] : 0,
                Time = ToDouble(header["time"]),
                Body = header["body"] as MsgpackMap ?? new MsgpackMap(),
                Arrays = new Dictionary<string, WireArray>(),
            };
            var descs = header["bufs"] == null ? new List<object>() : header["bufs"] as List<object>;
            if (descs == null || descs.Count != frames.Count - 2)
                throw Bad("'bufs' does not match the " + (frames.Count - 2) + " buffer frame(s)");
            for (int i = 0; i < descs.Count; i++)
                AddArray(msg, i, descs[i] as MsgpackMap, frames[2 + i]);
            return msg;
        }

        private static void AddArray(WireMessage msg, int i, MsgpackMap desc, byte[] data)
        {
            if (desc == null || !(desc["name"] is string))
                throw new CwbWireException("BAD_BUFFER", "bufs[" + i + "] is not {name, dtype, shape, encoding}");
            string name = (string)desc["name"];
            var dtype = desc["dtype"] as string;
            string encoding = desc["encoding"] as string ?? "raw";
            if (dtype == null || !ItemSize.ContainsKey(dtype) || encoding != "raw")
                throw new CwbWireException("BAD_BUFFER", "buffer " + name + ": want a raw uint8, int32, int64 or float32");
            var shapeList = desc["shape"] as List<object>;
            if (shapeList == null)
                throw new CwbWireException("BAD_BUFFER", "buffer " + name + " has no shape");
            var shape = new long[shapeList.Count];
            long nbytes = ItemSize[dtype];
            for (int d = 0; d < shape.Length; d++)
            {
                if (!(shapeList[d] is long) || (long)shapeList[d] < 0)
                    throw new CwbWireException("BAD_BUFFER", "buffer " + name + " has a bad shape");
                shape[d] = (long)shapeList[d];
                nbytes *= shape[d];
            }
            if (data.Length != nbytes)
                throw new CwbWireException("BAD_BUFFER", string.Format(
                    "buffer {0} has {1} bytes, {2} x [{3}] needs {4}", name, data.Length, dtype, string.Join(", ", shape), nbytes));
            msg.Arrays[name] = new WireArray { Dtype = dtype, Shape = shape, Data = data };
        }

        private static double ToDouble(object value)
        {
            if (value is double) return (double)value;
            if (value is long) return (long)value;
            return 0.0;
        }

        private static CwbWireException Bad(string why)
        {
            return new CwbWireException("BAD_MESSAGE", why);
        }
    }
}
