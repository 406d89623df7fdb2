# conformance.gd: replays the cwb/2 conformance suite (tests/vectors/conformance.json) against a
# bridge server whose session factory is the fake, over this client's own ZMTP and msgpack.
#
#   CWB_SUITE=tests/vectors/conformance.json CWB_CONTROL=tcp://127.0.0.1:PORT \
#       godot3-server --no-window --path bridges/clients/godot -s conformance.gd
#
# Each exchange runs on a fresh DEALER connection, step by step, as the suite's description
# says: a request is a header map (sent as ["", "cwb/2", msgpack(header)]; "$session" stands for
# the token of the exchange's last hello reply) or "raw" frames in hex; the reply's header fields
# in "expect", the "body" keys listed (an empty "body" means an empty body), "body_keys" (the
# exact key set) and "frames_shape" (the frames buffer's shape) must match; "same_as" names an
# earlier step whose reply must be byte-identical. JSON numbers reach GDScript as floats, so whole
# numbers are sent as msgpack ints, as the suite means them.
# It prints "CWB_RESULT {json}": per exchange its name, the steps run and the failures, then
# "N passed, N failed" (exchanges), and exits 0 when every exchange passed, 1 otherwise.
extends SceneTree

const Msgpack = preload("msgpack.gd")
const Zmtp = preload("zmtp.gd")

const TIMEOUT_MS = 10000


func _init() -> void:
	var suite = _read_json(OS.get_environment("CWB_SUITE"))
	var control := OS.get_environment("CWB_CONTROL")
	if typeof(suite) != TYPE_DICTIONARY or control == "":
		print("CWB_FAILED set CWB_SUITE (the suite's JSON file) and CWB_CONTROL (tcp://HOST:PORT)")
		quit(2)
		return
	var results := []
	var failed := 0
	for exchange in suite["exchanges"]:
		var out := _exchange(exchange, control)
		if out["failures"].size() > 0:
			failed += 1
		results.append(out)
	print("CWB_RESULT " + to_json({"client": "godot", "exchanges": results}))
	print("%d passed, %d failed" % [results.size() - failed, failed])
	quit(0 if failed == 0 else 1)


func _exchange(exchange: Dictionary, control: String) -> Dictionary:
	var failures := []
	var replies := []
	var session = null
	var sock = Zmtp.new("DEALER")
	var steps: Array = exchange["steps"]
	if sock.open(control) != OK:
		return {"name": exchange["name"], "steps": 0, "failures": ["connect: " + sock.error]}
	for i in range(steps.size()):
		var step: Dictionary = steps[i]
		var frames := [PoolByteArray()]
		if step.has("raw"):
			for h in step["raw"]:
				frames.append(_unhex(h))
		else:
			frames.append("cwb/2".to_ascii())
			frames.append(Msgpack.encode(_ints(_fill(step["send"], session))))
		sock.send_multipart(frames)
		var reply = _recv(sock)
		if reply == null:
			failures.append("step %d: no reply in %d ms (%s)" % [i, TIMEOUT_MS, sock.error])
			break
		replies.append(reply)
		if step.has("same_as"):
			if not _same_frames(reply, replies[int(step["same_as"])]):
				failures.append("step %d: reply is not byte-identical to step %d's" % [i, step["same_as"]])
			continue
		var why := _check(step, reply)
		if why != "":
			failures.append("step %d: %s" % [i, why])
		var header = Msgpack.decode(reply[1])["value"]
		if typeof(header) == TYPE_DICTIONARY and header.get("type") == "hello":
			session = header["body"]["session"]
	sock.close()
	return {"name": exchange["name"], "steps": replies.size(), "failures": failures}


# "" when `reply` (frames after the empty delimiter) is what `step` expects, else why not.
func _check(step: Dictionary, reply: Array) -> String:
	if reply.size() < 2 or reply[0].get_string_from_ascii() != "cwb/2":
		return "reply is not [\"cwb/2\", header, ...]"
	var decoded: Dictionary = Msgpack.decode(reply[1])
	if decoded["error"] != "" or typeof(decoded["value"]) != TYPE_DICTIONARY:
		return "reply header is not a msgpack map (%s)" % decoded["error"]
	var header: Dictionary = decoded["value"]
	var body = header.get("body", {})
	for key in step.get("expect", {}):
		if not _same(header.get(key), step["expect"][key]):
			return "header %s is %s, expected %s" % [key, to_json(header.get(key)), to_json(step["expect"][key])]
	if step.has("body"):
		var want: Dictionary = step["body"]
		if want.empty() and not body.empty():
			return "body is %s, expected {}" % to_json(body)
		for key in want:
			if not body.has(key) or not _same(body[key], want[key]):
				return "body %s is %s, expected %s" % [key, to_json(body.get(key)), to_json(want[key])]
	if step.has("body_keys"):
		var got: Array = body.keys()
		var want: Array = step["body_keys"].duplicate()
		got.sort()
		want.sort()
		if not _same(got, want):
			return "body keys are %s, expected %s" % [to_json(got), to_json(want)]
	if step.has("frames_shape"):
		var shape = null
		for desc in header.get("bufs", []):
			if desc.get("name") == "frames":
				shape = desc.get("shape")
		if not _same(shape, step["frames_shape"]):
			return "frames shape is %s, expected %s" % [to_json(shape), to_json(step["frames_shape"])]
	return ""


func _recv(sock):
	var until := OS.get_ticks_msec() + TIMEOUT_MS
	while OS.get_ticks_msec() < until and sock.state != Zmtp.ERROR:
		sock.poll()
		var msg = sock.recv_multipart()
		if msg != null:
			return msg.slice(1, msg.size() - 1) if msg.size() > 0 and msg[0].size() == 0 else msg
		OS.delay_msec(1)
	return null


# Deep equality of decoded msgpack and JSON values: numbers compare by value (JSON's 1.0 is 1).
static func _same(a, b) -> bool:
	var numbers := [TYPE_INT, TYPE_REAL]
	if typeof(a) in numbers and typeof(b) in numbers:
		return float(a) == float(b)
	if typeof(a) != typeof(b):
		return false
	if typeof(a) == TYPE_ARRAY:
		if a.size() != b.size():
			return false
		for i in range(a.size()):
			if not _same(a[i], b[i]):
				return false
		return true
	if typeof(a) == TYPE_DICTIONARY:
		if a.size() != b.size():
			return false
		for key in a:
			if not b.has(key) or not _same(a[key], b[key]):
				return false
		return true
	return a == b


static func _same_frames(a: Array, b: Array) -> bool:
	if a.size() != b.size():
		return false
	for i in range(a.size()):
		if a[i].hex_encode() != b[i].hex_encode():
			return false
	return true


# "$session" -> the token; everything else as it is.
static func _fill(value, session):
	if typeof(value) == TYPE_STRING and value == "$session":
		return session
	if typeof(value) == TYPE_DICTIONARY:
		var out := {}
		for key in value:
			out[key] = _fill(value[key], session)
		return out
	return value


# JSON's whole numbers (floats in GDScript) as ints, the type the suite means.
static func _ints(value):
	match typeof(value):
		TYPE_REAL:
			return int(value) if value == floor(value) and abs(value) < 9.0e15 else value
		TYPE_ARRAY:
			var items := []
			for item in value:
				items.append(_ints(item))
			return items
		TYPE_DICTIONARY:
			var out := {}
			for key in value:
				out[key] = _ints(value[key])
			return out
	return value


static func _unhex(text: String) -> PoolByteArray:
	var out := PoolByteArray()
	for i in range(0, text.length(), 2):
		out.append(("0x" + text.substr(i, 2)).hex_to_int())
	return out


static func _read_json(path: String):
	var file := File.new()
	if path == "" or file.open(path, File.READ) != OK:
		return null
	var value = parse_json(file.get_as_text())
	file.close()
	return value
