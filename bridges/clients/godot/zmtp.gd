# zmtp.gd: one ZeroMQ connection (ZMTP 3.0, NULL security) over StreamPeerTCP, in pure GDScript.
#
# Enough of ZMTP to talk to libzmq's ROUTER (as a DEALER) and PUB (as a SUB):
#
#   greeting  64 bytes each way: ff 00*7 01 7f | 03 00 (version 3.0) | "NULL" + 16 zeros
#             | as-server 00 | 31 zeros
#   handshake each side sends a READY command: 05 "READY", then properties, each
#             name-length (1 byte) name value-length (4 bytes, big-endian) value:
#             "Socket-Type" = "DEALER" or "SUB", and "Identity" = the routing id (DEALER)
#   frames    flags (bit 0 MORE, bit 1 LONG, bit 2 COMMAND), then the size in 1 byte (short)
#             or 8 bytes big-endian (long), then the body. A message is frames up to the first
#             without MORE.
#   commands  after the handshake: a PING (04 "PING" ttl(2) context) is answered with
#             PONG (04 "PONG" context). libzmq's heartbeats (the bridge sets them, 3 s timeout)
#             disconnect a peer that does not answer, so call poll() at least every second.
#   SUB       subscribes by sending the message 01 + topic (ZMTP 3.0 form, libzmq accepts it).
#
# No reconnect: on a lost connection `state` becomes ERROR and `error` says why; make a new
# socket. No CURVE: the bridge allows NULL security only on loopback.
#
# Use:
#   var sock = Zmtp.new("DEALER", routing_id)
#   sock.open("tcp://127.0.0.1:5555")
#   sock.send_multipart([PoolByteArray(), "cwb/2".to_ascii(), header])  # queued until ready
#   sock.poll()                            # non-blocking: read, answer PINGs, queue messages
#   var msg = sock.recv_multipart()        # Array of PoolByteArray, or null
extends Reference

enum {CLOSED, CONNECTING, GREETING, HANDSHAKE, READY, ERROR}

const FLAG_MORE = 1
const FLAG_LONG = 2
const FLAG_COMMAND = 4
const MAX_FRAME_BYTES = 1 << 30  # a larger declared size is treated as a broken stream
const PEERS = {"DEALER": ["ROUTER", "DEALER"], "SUB": ["PUB", "XPUB"]}

var socket_type: String  # "DEALER" or "SUB"
var routing_id: PoolByteArray  # sent as "Identity" (the ROUTER's name for this connection)
var state: int = CLOSED
var error: String = ""  # why state is ERROR
var peer_type: String = ""  # the peer's Socket-Type, once READY
var pings := 0  # heartbeat PINGs answered

var _tcp := StreamPeerTCP.new()
var _in := PoolByteArray()  # bytes received and not parsed yet, from _pos on
var _pos := 0
var _frames := []  # frames of the message being received
var _inbox := []  # complete messages: Arrays of PoolByteArray
var _outbox := []  # encoded messages waiting for the handshake


func _init(type: String, id: PoolByteArray = PoolByteArray()) -> void:
	assert(PEERS.has(type))
	socket_type = type
	routing_id = id


# Start connecting to "tcp://HOST:PORT" (HOST may be an IPv4/IPv6 address or a name).
# Returns OK, or an error code with `error` set. The handshake runs in poll().
func open(endpoint: String) -> int:
	var rest := endpoint.trim_prefix("tcp://")
	var colon := rest.find_last(":")
	if not endpoint.begins_with("tcp://") or colon <= 0:
		return _fail("endpoint %s is not tcp://HOST:PORT" % endpoint, ERR_INVALID_PARAMETER)
	var host := rest.substr(0, colon).trim_prefix("[").trim_suffix("]")
	var port := int(rest.substr(colon + 1))
	var err := _tcp.connect_to_host(host, port)
	if err != OK:
		return _fail("cannot connect to %s (error %d)" % [endpoint, err], err)
	_tcp.set_no_delay(true)
	state = CONNECTING
	return OK


func is_ready() -> bool:
	return state == READY


# Queue one message (an Array of PoolByteArray or String frames); it goes out at once when the
# handshake is done, else when it completes. Returns false if the socket is broken.
func send_multipart(frames: Array) -> bool:
	if state == ERROR or state == CLOSED:
		return false
	var out := StreamPeerBuffer.new()
	out.big_endian = true
	for i in range(frames.size()):
		var body = frames[i]
		if typeof(body) == TYPE_STRING:
			body = body.to_utf8()
		_put_frame(out, 0 if i == frames.size() - 1 else FLAG_MORE, body)
	_outbox.append(out.data_array)
	_flush()
	return state != ERROR


# SUB only: receive messages whose first frame starts with `topic`.
func subscribe(topic: PoolByteArray) -> bool:
	assert(socket_type == "SUB")
	var body := PoolByteArray([1])
	body.append_array(topic)
	return send_multipart([body])


# The next complete message (Array of PoolByteArray), or null. Call poll() first.
func recv_multipart():
	return _inbox.pop_front() if _inbox.size() > 0 else null


# Read what the network has, advance the handshake, answer PINGs, queue complete messages.
# Never blocks. Returns the number of messages waiting in recv_multipart().
func poll() -> int:
	if state == CONNECTING:
		match _tcp.get_status():
			StreamPeerTCP.STATUS_CONNECTED:
				state = GREETING
				_send_raw(_greeting())
			StreamPeerTCP.STATUS_ERROR, StreamPeerTCP.STATUS_NONE:
				_fail("TCP connection refused or failed")
	if state == GREETING or state == HANDSHAKE or state == READY:
		_read()
	while state != ERROR and _parse_one():
		pass
	return _inbox.size()


func close() -> void:
	if state != CLOSED:
		_tcp.disconnect_from_host()
	state = CLOSED


# ---------------------------------------------------------------- internals

func _fail(why: String, code: int = FAILED) -> int:
	if state != ERROR:
		error = why
	state = ERROR
	_tcp.disconnect_from_host()
	return code


func _greeting() -> PoolByteArray:
	var g := PoolByteArray([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0])  # signature, version 3.0
	var mechanism := "NULL".to_ascii()
	mechanism.resize(20)  # padded with zeros
	for i in range(4, 20):
		mechanism[i] = 0
	g.append_array(mechanism)
	var tail := PoolByteArray()
	tail.resize(32)  # as-server 0, then 31 filler bytes
	for i in range(32):
		tail[i] = 0
	g.append_array(tail)
	assert(g.size() == 64)
	return g


func _ready_command() -> PoolByteArray:
	var body := StreamPeerBuffer.new()
	body.big_endian = true
	body.put_u8(5)
	body.put_data("READY".to_ascii())
	_put_property(body, "Socket-Type", socket_type.to_ascii())
	if socket_type == "DEALER" and routing_id.size() > 0:
		_put_property(body, "Identity", routing_id)
	var out := StreamPeerBuffer.new()
	out.big_endian = true
	_put_frame(out, FLAG_COMMAND, body.data_array)
	return out.data_array


static func _put_property(buf: StreamPeerBuffer, name: String, value: PoolByteArray) -> void:
	buf.put_u8(name.length())
	buf.put_data(name.to_ascii())
	buf.put_u32(value.size())
	if value.size() > 0:
		buf.put_data(value)


static func _put_frame(out: StreamPeerBuffer, flags: int, body: PoolByteArray) -> void:
	if body.size() > 255:
		out.put_u8(flags | FLAG_LONG)
		out.put_u64(body.size())
	else:
		out.put_u8(flags)
		out.put_u8(body.size())
	if body.size() > 0:
		out.put_data(body)


func _send_raw(bytes: PoolByteArray) -> void:
	if _tcp.put_data(bytes) != OK:  # blocks until all is written
		_fail("connection lost while sending")


func _flush() -> void:
	while state == READY and _outbox.size() > 0:
		_send_raw(_outbox.pop_front())


func _read() -> void:
	# get_partial_data also notices a closed connection (EOF) when nothing is available.
	var got: Array = _tcp.get_partial_data(max(_tcp.get_available_bytes(), 1))
	if got[0] != OK:
		_fail("connection closed by the server")
		return
	if got[1].size() > 0:
		if _pos > 0 and 2 * _pos >= _in.size():  # drop parsed bytes now and then
			_in = _slice(_in, _pos, _in.size())
			_pos = 0
		_in.append_array(got[1])


static func _slice(bytes: PoolByteArray, from: int, to: int) -> PoolByteArray:
	if to <= from:
		return PoolByteArray()
	return bytes.subarray(from, to - 1)  # subarray's end is inclusive


# Parse one greeting or frame from _in. Returns true if it consumed something.
func _parse_one() -> bool:
	var left := _in.size() - _pos
	if state == GREETING:
		if left < 64:
			return false
		var g := _slice(_in, _pos, _pos + 64)
		_pos += 64
		if g[0] != 0xff or g[9] & 1 == 0:
			_fail("not a ZeroMQ peer (bad greeting signature)")
		elif g[10] < 3:
			_fail("peer speaks ZMTP %d.%d; need 3.0 or later" % [g[10], g[11]])
		elif _slice(g, 12, 32).get_string_from_ascii() != "NULL":
			_fail("peer wants security mechanism %s; this client has NULL only (no CURVE)"
					% _slice(g, 12, 32).get_string_from_ascii())
		else:
			state = HANDSHAKE
			_send_raw(_ready_command())
		return true
	if left < 2:
		return false
	var flags: int = _in[_pos]
	var head := 2
	var size: int = _in[_pos + 1]
	if flags & FLAG_LONG:
		head = 9
		if left < head:
			return false
		var num := StreamPeerBuffer.new()
		num.big_endian = true
		num.data_array = _slice(_in, _pos + 1, _pos + 9)
		size = num.get_u64()
		if size < 0 or size > MAX_FRAME_BYTES:
			_fail("frame of %d bytes is over MAX_FRAME_BYTES" % size)
			return false
	if left < head + size:
		return false
	var body := _slice(_in, _pos + head, _pos + head + size)
	_pos += head + size
	if flags & FLAG_COMMAND:
		_command(body)
	elif state != READY:
		_fail("message before the handshake finished")
	else:
		_frames.append(body)
		if flags & FLAG_MORE == 0:
			_inbox.append(_frames)
			_frames = []
	return true


func _command(body: PoolByteArray) -> void:
	var name_len: int = body[0] if body.size() > 0 else 0
	var name := _slice(body, 1, 1 + name_len).get_string_from_ascii()
	var data := _slice(body, 1 + name_len, body.size())
	if name == "READY" and state == HANDSHAKE:
		var props := _properties(data)
		peer_type = props.get("Socket-Type", PoolByteArray()).get_string_from_ascii()
		if not peer_type in PEERS[socket_type]:
			_fail("a %s cannot talk to a %s socket" % [socket_type, peer_type])
			return
		state = READY
		_flush()
	elif name == "ERROR":
		_fail("peer refused the handshake: " + _slice(data, 1, data.size()).get_string_from_utf8())
	elif name == "PING" and state == READY:
		pings += 1
		var pong := PoolByteArray([4])
		pong.append_array("PONG".to_ascii())
		pong.append_array(_slice(data, 2, data.size()))  # echo the context after the TTL
		var out := StreamPeerBuffer.new()
		out.big_endian = true
		_put_frame(out, FLAG_COMMAND, pong)
		_send_raw(out.data_array)
	# PONG and unknown commands are ignored, as ZMTP asks.


static func _properties(data: PoolByteArray) -> Dictionary:
	var props := {}
	var i := 0
	while i < data.size():
		var n: int = data[i]
		var name := _slice(data, i + 1, i + 1 + n).get_string_from_ascii()
		i += 1 + n
		if i + 4 > data.size():
			break
		var size: int = (data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]
		props[name] = _slice(data, i + 4, i + 4 + size)
		i += 4 + size
	return props
