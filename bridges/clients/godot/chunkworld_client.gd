# chunkworld_client.gd: drive a chunkworld session over the bridge (cwb/2) from Godot 3.
#
# A DEALER connection for requests (hello, reset, step, ...) and, after observe(), a SUB
# connection for the chunks the server publishes. Pure GDScript: zmtp.gd speaks ZeroMQ,
# msgpack.gd and cwb_wire.gd the message format.
#
# Blocking use (each call waits up to timeout_ms, answering heartbeats meanwhile):
#
#   var Client = preload("res://addons/chunkworld/chunkworld_client.gd")
#   var cw = Client.new()
#   if not cw.open("tcp://127.0.0.1:5555"): push_error(cw.error)
#   var hello = cw.hello()                       # hello["body"]["model"]: the session's facts
#   var chunk = cw.reset(0, "a knight in a forest")   # seed, prompt
#   chunk = cw.step("right")                     # an action name, an id, or one per frame
#   if chunk["ok"]: $Screen.texture = cw.frame_texture(chunk, 0)
#   else: print(chunk["code"], ": ", chunk["message"])
#
# Non-blocking use (from _process): id = cw.send_request("step", {"action": 1}); then every
# frame cw.poll() and cw.take_reply(id) until it is not null. Call poll() (or a blocking call)
# at least once a second: the server drops a connection whose heartbeats go unanswered.
#
# Results are Dictionaries with "ok". A reply: {ok, type, id, re, session, seq, time, body,
# arrays}; a chunk: {ok, tick, action_tick, ms, seq, session, cause, frames}, where frames is
# {dtype: "uint8", shape: [F, H, W, 3], data: PoolByteArray}. A failure: {ok: false, code,
# message, retryable, local}; `local` is true for TIMEOUT / DISCONNECTED / BAD_MESSAGE found
# on this side, false for the server's error codes (bridges/PROTOCOL.md, section 4).
extends Reference

const Zmtp = preload("zmtp.gd")
const Wire = preload("cwb_wire.gd")

const MAX_CHUNKS = 16  # published chunks kept for next_chunk(); older ones drop (like RCVHWM)
const MAX_REPLIES = 64  # replies kept for take_reply()

signal chunk_published(chunk)  # emitted by poll() for each chunk from the frames socket

var timeout_ms := 10000
var error := ""  # why open() or observe() failed
var session_id := ""  # from the hello reply: the session token, sent with every request; keep it secret
var observer_token := ""  # from the hello reply: the frames topic, for read-only subscribers
var facts := {}  # hello reply body["model"]: frame_height, frame_width, chunk_frames, actions, ...
var limits := {}  # hello reply body["limits"]
var frames_endpoint := ""

var _control_endpoint := ""
var _control: Reference = null  # Zmtp DEALER
var _frames: Reference = null  # Zmtp SUB, after observe()
var _ids := 0
var _seq := 0
var _replies := {}  # request id -> reply, for send_request()/take_reply()
var _pending := {}  # ids sent with send_request() and not answered yet
var _chunks := []


# Connect the control socket and wait for the ZeroMQ handshake. Returns false (and sets
# `error`) when the server is not there within timeout_ms.
func open(control_endpoint: String) -> bool:
	var rng := RandomNumberGenerator.new()
	rng.randomize()
	var id := "cw-".to_ascii()
	for _i in range(12):
		id.append(rng.randi_range(0, 255))
	_control_endpoint = control_endpoint
	_control = Zmtp.new("DEALER", id)
	return _handshake(_control, control_endpoint)


# Subscribe to this session's published chunks (call after hello()). Chunks published before
# the subscription reaches the server are not seen (ZeroMQ's "slow joiner"); the reply to each
# reset/step carries the same chunk anyway.
func observe() -> bool:
	assert(session_id != "", "hello() first")
	_frames = Zmtp.new("SUB")
	if not _handshake(_frames, frames_endpoint):
		return false
	return _frames.subscribe(observer_token.to_utf8())


func _handshake(sock: Reference, endpoint: String) -> bool:
	if sock.open(endpoint) != OK:
		error = sock.error
		return false
	var deadline := OS.get_ticks_msec() + timeout_ms
	while not sock.is_ready() and sock.state != Zmtp.ERROR and OS.get_ticks_msec() < deadline:
		sock.poll()
		OS.delay_msec(1)
	if not sock.is_ready():
		error = sock.error if sock.error != "" else "no ZeroMQ handshake with %s in %d ms" % [
				endpoint, timeout_ms]
		sock.close()
		return false
	return true


# ---------------------------------------------------------------- requests

func ping() -> Dictionary:
	return request("ping")


# Start a session; `options` go to the server's session factory. Sets session_id, facts,
# limits and frames_endpoint.
func hello(options: Dictionary = {}) -> Dictionary:
	var reply := request("hello", {"versions": [2], "client": "chunkworld-godot", "options": options})
	if reply["ok"]:
		session_id = reply["body"]["session"]
		observer_token = reply["body"]["observer"]
		facts = reply["body"]["model"]
		limits = reply["body"]["limits"]
		frames_endpoint = _reachable(reply["body"]["frames_endpoint"])
	return reply


# seed_value: int or null (the body field "seed"); prompt: String or null. Returns a chunk, tick 0.
func reset(seed_value = null, prompt = null) -> Dictionary:
	return as_chunk(request("reset", {"prompt": prompt, "seed": seed_value}))


# action: null ("noop"), an id (int), a name (String), or an Array of chunk_frames of them.
func step(action = null, prompt = null) -> Dictionary:
	return as_chunk(request("step", {"action": action, "prompt": prompt}))


func set_prompt(prompt: String) -> Dictionary:
	return request("set_prompt", {"prompt": prompt})


# The reply's body["snapshot"] is the id to pass to restore().
func snapshot() -> Dictionary:
	return request("snapshot")


func restore(snapshot_id: String) -> Dictionary:
	return request("restore", {"snapshot": snapshot_id})


func close_session() -> Dictionary:
	var reply := request("close")
	if reply["ok"]:
		session_id = ""
	return reply


# Send one request and wait for its reply (up to timeout_ms). Replies to other requests that
# arrive meanwhile are kept for take_reply() if they were sent with send_request().
func request(type: String, body: Dictionary = {}) -> Dictionary:
	var id := send_request(type, body)
	if id == 0:
		var why: String = _control.error if _control != null else "open() first"
		return _local_error("DISCONNECTED", "the control connection is down: " + why)
	var deadline := OS.get_ticks_msec() + timeout_ms
	while OS.get_ticks_msec() < deadline:
		poll()
		if _replies.has(id):
			var reply = _replies[id]
			_replies.erase(id)
			return reply
		if _control.state == Zmtp.ERROR:
			_pending.erase(id)
			return _local_error("DISCONNECTED", _control.error)
		OS.delay_msec(1)
	_pending.erase(id)
	return _local_error("TIMEOUT", "no reply to %s in %d ms; is the server running?" % [
			type, timeout_ms], true)


# Send without waiting; returns the request id (0 if the connection is down).
func send_request(type: String, body: Dictionary = {}) -> int:
	if _control == null:
		return 0
	_ids += 1
	_seq += 1
	var session = null if type == "ping" or type == "hello" else session_id
	var frames := Wire.encode(type, _ids, session, _seq, OS.get_system_time_msecs() / 1000.0, body)
	frames.push_front(PoolByteArray())  # the empty delimiter a REQ socket would add
	if not _control.send_multipart(frames):
		return 0
	_pending[_ids] = true
	return _ids


# The reply to a send_request() id once it has come (after poll()), else null.
func take_reply(id: int):
	if not _replies.has(id):
		return null
	var reply = _replies[id]
	_replies.erase(id)
	return reply


# Read both sockets: answer heartbeats, file replies, queue and emit published chunks.
func poll() -> void:
	if _control != null:
		_control.poll()
		var parts = _control.recv_multipart()
		while parts != null:
			_file_reply(parts)
			parts = _control.recv_multipart()
	if _frames != null:
		_frames.poll()
		var parts = _frames.recv_multipart()
		while parts != null:
			var chunk := as_chunk(_reply(Wire.decode(parts.slice(1, parts.size() - 1))))
			if chunk["ok"]:
				_chunks.append(chunk)
				if _chunks.size() > MAX_CHUNKS:
					_chunks.pop_front()
				emit_signal("chunk_published", chunk)
			parts = _frames.recv_multipart()


# The oldest published chunk not taken yet (after poll()), else null.
func next_chunk():
	return _chunks.pop_front() if _chunks.size() > 0 else null


# Heartbeat PINGs answered on both connections (a sign poll() runs often enough).
func heartbeats_answered() -> int:
	var n := 0
	for sock in [_control, _frames]:
		if sock != null:
			n += sock.pings
	return n


# Close both connections (the server ends the session after idle_ttl_s; call close_session()
# first to end it now). Safe twice.
func close() -> void:
	for sock in [_control, _frames]:
		if sock != null:
			sock.close()
	_control = null
	_frames = null


# ---------------------------------------------------------------- frames

# How many frames a chunk holds (F).
static func frame_count(chunk: Dictionary) -> int:
	return chunk["frames"]["shape"][0]


# Frame `index` of a chunk as an RGB8 Image.
static func frame_image(chunk: Dictionary, index: int) -> Image:
	return Wire.frame_image(chunk["frames"], index)


# Frame `index` of a chunk as an ImageTexture (for a TextureRect or Sprite).
static func frame_texture(chunk: Dictionary, index: int) -> ImageTexture:
	var texture := ImageTexture.new()
	texture.create_from_image(frame_image(chunk, index), 0)  # no filter, no mipmaps
	return texture


# ---------------------------------------------------------------- internals

func _file_reply(parts: Array) -> void:
	if parts.size() > 0 and parts[0].size() == 0:
		parts.pop_front()  # the empty delimiter
	var reply := _reply(Wire.decode(parts))
	var re = reply.get("re")
	if typeof(re) == TYPE_INT and _pending.has(re):
		_pending.erase(re)
		_replies[re] = reply
		if _replies.size() > MAX_REPLIES:
			_replies.erase(_replies.keys()[0])
	# else: a reply nobody waits for any more (its request timed out); dropped


func _reply(msg: Dictionary) -> Dictionary:
	if msg["error"] != "":
		var bad := _local_error("BAD_MESSAGE", msg["error"])
		bad["re"] = null
		return bad
	msg.erase("error")
	msg["ok"] = msg["type"] != "error"
	if not msg["ok"]:
		msg["code"] = str(msg["body"].get("code"))
		msg["message"] = str(msg["body"].get("message"))
		msg["retryable"] = msg["body"].get("retryable") == true
		msg["local"] = false
	return msg


# A reply to reset or step (e.g. from take_reply()) as a chunk; failures pass through.
static func as_chunk(reply: Dictionary) -> Dictionary:
	if not reply["ok"]:
		return reply
	var body: Dictionary = reply["body"]
	var frames = reply["arrays"].get("frames")
	if frames == null or frames["dtype"] != "uint8" or frames["shape"].size() != 4:
		return _local_error("BAD_MESSAGE", "a chunk needs a uint8 (F, H, W, 3) 'frames' buffer")
	return {
		"ok": true, "tick": body.get("tick"), "action_tick": body.get("action_tick"),
		"ms": body.get("ms"), "seq": reply["seq"], "session": reply["session"],
		"cause": body.get("cause"), "frames": frames,
	}


static func _local_error(code: String, message: String, retryable: bool = false) -> Dictionary:
	return {"ok": false, "type": "error", "code": code, "message": message,
			"retryable": retryable, "local": true}


# The frames endpoint as this client can reach it: a wildcard host becomes the control host.
func _reachable(endpoint: String) -> String:
	var rest := endpoint.trim_prefix("tcp://")
	var host := rest.substr(0, rest.find_last(":"))
	if host in ["*", "0.0.0.0", "::", "[::]"]:
		var control := _control_endpoint.trim_prefix("tcp://")
		return "tcp://%s%s" % [control.substr(0, control.find_last(":")), rest.substr(rest.find_last(":"))]
	return endpoint
