// Zmtp.cs: one ZeroMQ connection (ZMTP 3.0, NULL security) over TcpClient, in plain C#.
//
// Enough of ZMTP to talk to libzmq's ROUTER (as a DEALER) and PUB (as a SUB):
//
//   greeting  64 bytes each way: ff 00*7 01 7f | 03 00 (version 3.0) | "NULL" + 16 zeros
//             | as-server 00 | 31 zeros
//   handshake each side sends a READY command: 05 "READY", then properties, each
//             name-length (1 byte) name value-length (4 bytes, big-endian) value:
//             "Socket-Type" = "DEALER" or "SUB", and "Identity" = the routing id (DEALER)
//   frames    flags (bit 0 MORE, bit 1 LONG, bit 2 COMMAND), then the size in 1 byte (short)
//             or 8 bytes big-endian (long), then the body. A message is frames up to the first
//             without MORE.
//   commands  after the handshake: a PING (04 "PING" ttl(2) context) is answered with
//             PONG (04 "PONG" context). libzmq's heartbeats (the bridge sets them, 3 s timeout)
//             disconnect a peer that does not answer, so call Poll() at least every second.
//   SUB       subscribes by sending the message 01 + topic (ZMTP 3.0 form, libzmq accepts it).
//
// Single-threaded and non-blocking after Open(): nothing runs in the background, so Poll() is
// what reads the network and answers heartbeats (call it from Update(), or use the blocking
// calls of ChunkworldClient, which poll while they wait).
// No reconnect: on a lost connection `State` becomes Error and `Error` says why; make a new
// socket. No CURVE: the bridge allows NULL security only on loopback.
//
// Use:
//   var sock = new ZmtpSocket("DEALER", routingId);
//   sock.Open("tcp://127.0.0.1:5555", 1000);          // TCP connect; the handshake runs in Poll()
//   sock.Send(new[] { new byte[0], tag, header });   // queued until the handshake is done
//   sock.Poll(1);                                    // read (waiting up to 1 ms), answer PINGs
//   List<byte[]> msg = sock.Receive();               // one complete message, or null

using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Text;

namespace Chunkworld
{
    public enum ZmtpState { Closed, Greeting, Handshake, Ready, Error }

    public sealed class ZmtpSocket : IDisposable
    {
        private const int FlagMore = 1;
        private const int FlagLong = 2;
        private const int FlagCommand = 4;
        /// <summary>A larger declared frame size is treated as a broken stream.</summary>
        public const long MaxFrameBytes = 1L << 30;

        public readonly string SocketType;  // "DEALER" or "SUB"
        public readonly byte[] RoutingId;  // sent as "Identity" (the ROUTER's name for this connection)
        public ZmtpState State { get; private set; }
        public string Error { get; private set; }  // why State is Error
        public string PeerType { get; private set; }  // the peer's Socket-Type, once Ready
        public int Pings { get; private set; }  // heartbeat PINGs answered

        private TcpClient _tcp;
        private Socket _sock;
        private byte[] _in = new byte[64 * 1024];  // bytes received, unparsed from _pos to _len
        private int _pos, _len;
        private List<byte[]> _frames = new List<byte[]>();  // frames of the message being received
        private readonly Queue<List<byte[]>> _inbox = new Queue<List<byte[]>>();  // complete messages
        private readonly Queue<byte[]> _outbox = new Queue<byte[]>();  // encoded, waiting for the handshake

        public ZmtpSocket(string socketType, byte[] routingId = null)
        {
            if (socketType != "DEALER" && socketType != "SUB")
                throw new ArgumentException("socketType must be \"DEALER\" or \"SUB\", got " + socketType);
            SocketType = socketType;
            RoutingId = routingId ?? new byte[0];
            State = ZmtpState.Closed;
            Error = "";
            PeerType = "";
        }

        public bool IsReady { get { return State == ZmtpState.Ready; } }

        /// <summary>Connect to "tcp://HOST:PORT" (HOST an IPv4/IPv6 address or a name), waiting
        /// up to timeoutMs for TCP, and send the greeting; the handshake then runs in Poll().
        /// Returns false with `Error` set on failure.</summary>
        public bool Open(string endpoint, int timeoutMs)
        {
            int colon = endpoint.LastIndexOf(':');
            int port;
            if (!endpoint.StartsWith("tcp://") || colon <= 6 || !int.TryParse(endpoint.Substring(colon + 1), out port))
                return Fail("endpoint " + endpoint + " is not tcp://HOST:PORT");
            string host = endpoint.Substring(6, colon - 6).TrimStart('[').TrimEnd(']');
            try
            {
                _tcp = new TcpClient(host.Contains(":") ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork);
                if (!_tcp.ConnectAsync(host, port).Wait(timeoutMs))
                    return Fail("no TCP connection to " + endpoint + " in " + timeoutMs + " ms");
            }
            catch (Exception e)
            {
                return Fail("cannot connect to " + endpoint + ": " + (e.InnerException ?? e).Message);
            }
            _tcp.NoDelay = true;
            _sock = _tcp.Client;
            State = ZmtpState.Greeting;
            SendRaw(Greeting());
            return State != ZmtpState.Error;
        }

        /// <summary>Queue one message; it goes out at once when the handshake is done, else
        /// when it completes. Returns false if the socket is broken.</summary>
        public bool Send(IList<byte[]> frames)
        {
            if (State == ZmtpState.Error || State == ZmtpState.Closed) return false;
            var out_ = new MemoryStream();
            for (int i = 0; i < frames.Count; i++)
                PutFrame(out_, i == frames.Count - 1 ? 0 : FlagMore, frames[i]);
            _outbox.Enqueue(out_.ToArray());
            Flush();
            return State != ZmtpState.Error;
        }

        /// <summary>SUB only: receive messages whose first frame starts with `topic`.</summary>
        public bool Subscribe(byte[] topic)
        {
            if (SocketType != "SUB") throw new InvalidOperationException("Subscribe() is for SUB sockets");
            var body = new byte[topic.Length + 1];
            body[0] = 1;
            Buffer.BlockCopy(topic, 0, body, 1, topic.Length);
            return Send(new[] { body });
        }

        /// <summary>The next complete message (its frames), or null. Call Poll() first.</summary>
        public List<byte[]> Receive()
        {
            return _inbox.Count > 0 ? _inbox.Dequeue() : null;
        }

        /// <summary>Read what the network has (waiting up to waitMs for the first bytes), advance
        /// the handshake, answer PINGs, queue complete messages. Returns the number of messages
        /// waiting in Receive().</summary>
        public int Poll(int waitMs = 0)
        {
            if (State == ZmtpState.Greeting || State == ZmtpState.Handshake || State == ZmtpState.Ready)
                Read(waitMs);
            while (State != ZmtpState.Error && ParseOne()) { }
            return _inbox.Count;
        }

        /// <summary>Close the connection. Safe twice.</summary>
        public void Close()
        {
            if (_tcp != null) _tcp.Close();
            _tcp = null;
            _sock = null;
            State = ZmtpState.Closed;
        }

        public void Dispose() { Close(); }

        // ---------------------------------------------------------------- internals

        private bool Fail(string why)
        {
            if (State != ZmtpState.Error) Error = why;
            State = ZmtpState.Error;
            if (_tcp != null) _tcp.Close();
            _tcp = null;
            _sock = null;
            return false;
        }

        private static byte[] Greeting()
        {
            var g = new byte[64];  // zeros: padding, as-server 0, filler
            g[0] = 0xff;  // signature ff 00*7 01 7f, as libzmq writes it
            g[8] = 1;
            g[9] = 0x7f;
            g[10] = 3;  // version 3.0
            g[11] = 0;
            Encoding.ASCII.GetBytes("NULL", 0, 4, g, 12);
            return g;
        }

        private byte[] ReadyCommand()
        {
            var body = new MemoryStream();
            body.WriteByte(5);
            body.Write(Encoding.ASCII.GetBytes("READY"), 0, 5);
            PutProperty(body, "Socket-Type", Encoding.ASCII.GetBytes(SocketType));
            if (SocketType == "DEALER" && RoutingId.Length > 0) PutProperty(body, "Identity", RoutingId);
            var out_ = new MemoryStream();
            PutFrame(out_, FlagCommand, body.ToArray());
            return out_.ToArray();
        }

        private static void PutProperty(MemoryStream buf, string name, byte[] value)
        {
            buf.WriteByte((byte)name.Length);
            buf.Write(Encoding.ASCII.GetBytes(name), 0, name.Length);
            PutBig(buf, (ulong)value.Length, 4);
            buf.Write(value, 0, value.Length);
        }

        private static void PutFrame(MemoryStream out_, int flags, byte[] body)
        {
            if (body.Length > 255)
            {
                out_.WriteByte((byte)(flags | FlagLong));
                PutBig(out_, (ulong)body.Length, 8);
            }
            else
            {
                out_.WriteByte((byte)flags);
                out_.WriteByte((byte)body.Length);
            }
            out_.Write(body, 0, body.Length);
        }

        private static void PutBig(MemoryStream buf, ulong n, int width)
        {
            for (int shift = 8 * (width - 1); shift >= 0; shift -= 8) buf.WriteByte((byte)(n >> shift));
        }

        private void SendRaw(byte[] bytes)
        {
            if (_sock == null)
            {
                Fail("not connected");
                return;
            }
            try
            {
                int sent = 0;  // Send blocks until the kernel takes the bytes
                while (sent < bytes.Length) sent += _sock.Send(bytes, sent, bytes.Length - sent, SocketFlags.None);
            }
            catch (Exception e) when (e is SocketException || e is ObjectDisposedException)
            {
                Fail("connection lost while sending: " + e.Message);
            }
        }

        private void Flush()
        {
            while (State == ZmtpState.Ready && _outbox.Count > 0) SendRaw(_outbox.Dequeue());
        }

        private void Read(int waitMs)
        {
            try
            {
                if (!_sock.Poll(Math.Max(waitMs, 0) * 1000, SelectMode.SelectRead)) return;  // nothing yet
                if (_sock.Available == 0)  // readable with nothing to read: the peer closed
                {
                    Fail("connection closed by the server");
                    return;
                }
                while (_sock.Available > 0)
                {
                    if (_pos > 0 && 2 * _pos >= _len)  // drop parsed bytes now and then
                    {
                        Buffer.BlockCopy(_in, _pos, _in, 0, _len - _pos);
                        _len -= _pos;
                        _pos = 0;
                    }
                    if (_len + _sock.Available > _in.Length)
                        Array.Resize(ref _in, Math.Max(2 * _in.Length, _len + _sock.Available));
                    int got = _sock.Receive(_in, _len, _in.Length - _len, SocketFlags.None);
                    if (got == 0)
                    {
                        Fail("connection closed by the server");
                        return;
                    }
                    _len += got;
                }
            }
            catch (SocketException e)
            {
                Fail("connection lost: " + e.Message);
            }
        }

        private byte[] Slice(int from, int to)
        {
            var bytes = new byte[Math.Max(to - from, 0)];
            Buffer.BlockCopy(_in, from, bytes, 0, bytes.Length);
            return bytes;
        }

        // Parse one greeting or frame from _in. Returns true if it consumed something.
        private bool ParseOne()
        {
            int left = _len - _pos;
            if (State == ZmtpState.Greeting)
            {
                if (left < 64) return false;
                byte[] g = Slice(_pos, _pos + 64);
                _pos += 64;
                string mechanism = Encoding.ASCII.GetString(g, 12, 20).TrimEnd('\0');
                if (g[0] != 0xff || (g[9] & 1) == 0)
                    Fail("not a ZeroMQ peer (bad greeting signature)");
                else if (g[10] < 3)
                    Fail("peer speaks ZMTP " + g[10] + "." + g[11] + "; need 3.0 or later");
                else if (mechanism != "NULL")
                    Fail("peer wants security mechanism " + mechanism + "; this client has NULL only (no CURVE)");
                else
                {
                    State = ZmtpState.Handshake;
                    SendRaw(ReadyCommand());
                }
                return true;
            }
            if (left < 2) return false;
            int flags = _in[_pos];
            int head = 2;
            long size = _in[_pos + 1];
            if ((flags & FlagLong) != 0)
            {
                head = 9;
                if (left < head) return false;
                size = 0;
                for (int i = 1; i < 9; i++) size = (size << 8) | _in[_pos + i];
                if (size < 0 || size > MaxFrameBytes)
                {
                    Fail("frame of " + size + " bytes is over MaxFrameBytes");
                    return false;
                }
            }
            if (left < head + size) return false;
            byte[] body = Slice(_pos + head, _pos + head + (int)size);
            _pos += head + (int)size;
            if ((flags & FlagCommand) != 0)
                Command(body);
            else if (State != ZmtpState.Ready)
                Fail("message before the handshake finished");
            else
            {
                _frames.Add(body);
                if ((flags & FlagMore) == 0)
                {
                    _inbox.Enqueue(_frames);
                    _frames = new List<byte[]>();
                }
            }
            return true;
        }

        private void Command(byte[] body)
        {
            int nameLen = body.Length > 0 ? body[0] : 0;
            if (1 + nameLen > body.Length)
            {
                Fail("malformed command from the peer");
                return;
            }
            string name = Encoding.ASCII.GetString(body, 1, nameLen);
            int data = 1 + nameLen;  // where the command's data starts
            if (name == "READY" && State == ZmtpState.Handshake)
            {
                byte[] type;
                PeerType = Properties(body, data).TryGetValue("Socket-Type", out type) ? Encoding.ASCII.GetString(type) : "";
                bool fits = SocketType == "DEALER" ? PeerType == "ROUTER" || PeerType == "DEALER"
                                                   : PeerType == "PUB" || PeerType == "XPUB";
                if (!fits)
                {
                    Fail("a " + SocketType + " cannot talk to a " + PeerType + " socket");
                    return;
                }
                State = ZmtpState.Ready;
                Flush();
            }
            else if (name == "ERROR")
            {
                int from = Math.Min(data + 1, body.Length);
                Fail("peer refused the handshake: " + Encoding.UTF8.GetString(body, from, body.Length - from));
            }
            else if (name == "PING" && State == ZmtpState.Ready)
            {
                Pings++;
                int context = Math.Min(data + 2, body.Length);  // the context follows the 2-byte TTL
                var pong = new MemoryStream();
                pong.WriteByte(4);
                pong.Write(Encoding.ASCII.GetBytes("PONG"), 0, 4);
                pong.Write(body, context, body.Length - context);  // echo the context
                var out_ = new MemoryStream();
                PutFrame(out_, FlagCommand, pong.ToArray());
                SendRaw(out_.ToArray());
            }
            // PONG and unknown commands are ignored, as ZMTP asks.
        }

        private static Dictionary<string, byte[]> Properties(byte[] body, int i)
        {
            var props = new Dictionary<string, byte[]>();
            while (i < body.Length)
            {
                int n = body[i];
                if (i + 1 + n + 4 > body.Length) break;
                string name = Encoding.ASCII.GetString(body, i + 1, n);
                i += 1 + n;
                int size = (body[i] << 24) | (body[i + 1] << 16) | (body[i + 2] << 8) | body[i + 3];
                if (size < 0 || i + 4 + size > body.Length) break;
                var value = new byte[size];
                Buffer.BlockCopy(body, i + 4, value, 0, size);
                props[name] = value;
                i += 4 + size;
            }
            return props;
        }
    }
}
