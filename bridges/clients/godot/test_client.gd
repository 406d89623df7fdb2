# test_client.gd: the headless check of the Godot client, run by tests/test_godot_client.py.
#
#   CWB_INPUT=input.json [CWB_CONTROL=tcp://127.0.0.1:PORT] \
#       godot3-server --path bridges/clients/godot -s test_client.gd
#
# input.json: {"vectors": tests/vectors/cwb2.json, "values_hex": msgpack of a list of values,
# "bad_hex": [invalid msgpack inputs]}. With CWB_CONTROL set it also drives a fake session:
# hello -> reset -> 3 steps -> chunks on SUB -> errors -> snapshot/restore -> close.
# It prints one line "CWB_RESULT {json}" and exits 0; the pytest side checks the values.
extends SceneTree

const Msgpack = preload("msgpack.gd")
const Wire = preload("cwb_wire.gd")
const Client = preload("chunkworld_client.gd")

const T = 1700000000.25  # the vectors' fixed time


func _init() -> void:
	var result = _run()
	if typeof(result) != TYPE_DICTIONARY:  # a script error aborted _run()
		print("CWB_FAILED the test script stopped early; see the errors above")
		quit(1)
		return
	print("CWB_RESULT " + to_json(result))
	quit(0)


func _run():
	var file := File.new()
	if file.open(OS.get_environment("CWB_INPUT"), File.READ) != OK:
		print("CWB_FAILED cannot read CWB_INPUT=%s" % OS.get_environment("CWB_INPUT"))
		return null
	var input = parse_json(file.get_as_text())
	file.close()
	var result := {"codec": _codec(input)}
	var control := OS.get_environment("CWB_CONTROL")
	if control != "":
		result["session"] = _session(control)
	return result


# ---------------------------------------------------------------- msgpack and cwb/2

func _codec(input: Dictionary) -> Dictionary:
	var vectors := []
	for vector in input["vectors"]:
		var frames := []
		for h in vector["frames"]:
			frames.append(_unhex(h))
		var out: Dictionary = Msgpack.decode(frames[1])
		var msg: Dictionary = Wire.decode(frames)
		var arrays := {}
		for name in msg["arrays"]:
			var a: Dictionary = msg["arrays"][name]
			arrays[name] = {"dtype": a["dtype"], "shape": a["shape"], "hex": a["data"].hex_encode()}
		vectors.append({
			"name": vector["name"], "error": out["error"], "header": out["value"],
			"reencoded": Msgpack.encode(out["value"]).hex_encode(),
			"wire": {"type": msg["type"], "id": msg["id"], "re": msg["re"],
					"session": msg["session"], "seq": msg["seq"], "time": msg["time"],
					"body": msg["body"], "arrays": arrays, "error": msg["error"]},
		})
	# The requests as the client builds them, from Godot values.
	var built := {
		"ping": Wire.encode("ping", 1, null, 1, T, {}),
		"hello": Wire.encode("hello", 2, null, 2, T, {"versions": [2], "options": {}}),
		"step": Wire.encode("step", 3, "a1b2", 3, T, {"action": 3}),
	}
	for name in built:
		built[name] = [built[name][0].hex_encode(), built[name][1].hex_encode()]
	var values: Dictionary = Msgpack.decode(_unhex(input["values_hex"]))
	var bad := []
	for h in input["bad_hex"]:
		bad.append(Msgpack.decode(_unhex(h))["error"])
	return {
		"vectors": vectors, "built": built, "values_error": values["error"],
		"values": _jsonable(values["value"]),
		"values_reencoded": Msgpack.encode(values["value"]).hex_encode(), "bad": bad,
	}


static func _unhex(text: String) -> PoolByteArray:
	var out := PoolByteArray()
	for i in range(0, text.length(), 2):
		out.append(("0x" + text.substr(i, 2)).hex_to_int())
	return out


# Binary values as {"bin": hex} so the result can go through JSON.
static func _jsonable(value):
	match typeof(value):
		TYPE_RAW_ARRAY:
			return {"bin": value.hex_encode()}
		TYPE_ARRAY:
			var items := []
			for item in value:
				items.append(_jsonable(item))
			return items
		TYPE_DICTIONARY:
			var map := {}
			for key in value:
				map[key] = _jsonable(value[key])
			return map
	return value


# ---------------------------------------------------------------- a session on the fake

func _session(control: String) -> Dictionary:
	var out := {}
	var cw = Client.new()
	cw.timeout_ms = 5000
	out["open"] = cw.open(control)
	if not out["open"]:
		out["open_error"] = cw.error
		return out
	out["ping"] = cw.ping()["ok"]
	out["bad_hello"] = _code(cw.request("hello", {"versions": [2], "options": {"bogus": 1}}))
	var hello: Dictionary = cw.hello({"height": 24, "width": 32, "chunk_frames": 2})
	out["hello_ok"] = hello["ok"]
	out["session"] = cw.session_id
	out["observer"] = cw.observer_token
	out["facts"] = cw.facts
	out["limit_keys"] = cw.limits.keys()
	out["frames_endpoint"] = cw.frames_endpoint
	out["step_before_reset"] = _code(cw.step(1))
	out["observe"] = cw.observe()
	_pump(cw, 300)  # let the subscription reach the PUB socket before the first chunk

	var chunks := [cw.reset(7)]
	for action in ["left", 3, ["jump", 0]]:
		chunks.append(cw.step(action))
	out["replies"] = []
	for chunk in chunks:
		out["replies"].append(_describe(chunk))
	out["bad_actions"] = [_code(cw.step(99)), _code(cw.step("fly")), _code(cw.step(["left"]))]
	out["published"] = _published(cw, chunks.size())

	var first: Dictionary = chunks[0]
	var image: Image = Client.frame_image(first, 0)
	var last: Image = Client.frame_image(first, Client.frame_count(first) - 1)
	out["image"] = {"width": image.get_width(), "height": image.get_height(),
			"format_rgb8": image.get_format() == Image.FORMAT_RGB8,
			"frame0_x1_y0": _rgb(image, 1, 0), "last_x31_y23": _rgb(last, 31, 23),
			"texture_size": [Client.frame_texture(first, 0).get_width(),
					Client.frame_texture(first, 0).get_height()]}

	var snap: Dictionary = cw.snapshot()
	var after = _sha256(cw.step(2)["frames"]["data"])
	out["restore_ok"] = cw.restore(snap["body"]["snapshot"])["ok"]
	out["same_after_restore"] = _sha256(cw.step(2)["frames"]["data"]) == after

	_pump(cw, 4500)  # past the server's heartbeat (1 s) + timeout (3 s): PONGs keep both links
	out["ping_after_idle"] = cw.ping()["ok"]
	out["heartbeats_answered"] = cw.heartbeats_answered()
	var tick = cw.step(0)
	out["tick_after_idle"] = tick.get("tick")
	var late := _published(cw, 3)  # the two steps around restore, then the one after idling
	out["published_after_idle"] = late[-1]["tick"] if late.size() == 3 else null

	out["close"] = cw.close_session()["ok"]
	out["step_after_close"] = _code(cw.request("step", {"action": 1}))
	cw.close()
	cw.close()  # safe twice
	return out


func _pump(cw, ms: int) -> void:
	var until := OS.get_ticks_msec() + ms
	while OS.get_ticks_msec() < until:
		cw.poll()
		OS.delay_msec(5)


func _published(cw, count: int) -> Array:
	var seen := []
	var until := OS.get_ticks_msec() + 5000
	while seen.size() < count and OS.get_ticks_msec() < until:
		cw.poll()
		var chunk = cw.next_chunk()
		while chunk != null:
			seen.append(_describe(chunk))
			chunk = cw.next_chunk()
		OS.delay_msec(2)
	return seen


static func _code(reply: Dictionary):
	return null if reply["ok"] else reply["code"]


static func _describe(chunk: Dictionary) -> Dictionary:
	if not chunk["ok"]:
		return {"ok": false, "code": chunk["code"], "message": chunk["message"]}
	return {"ok": true, "tick": chunk["tick"], "action_tick": chunk["action_tick"],
			"seq": chunk["seq"], "session": chunk["session"], "cause": chunk["cause"],
			"shape": chunk["frames"]["shape"], "sha256": _sha256(chunk["frames"]["data"])}


static func _sha256(data: PoolByteArray) -> String:
	var ctx := HashingContext.new()
	ctx.start(HashingContext.HASH_SHA256)
	ctx.update(data)
	return ctx.finish().hex_encode()


static func _rgb(image: Image, x: int, y: int) -> Array:
	image.lock()
	var c := image.get_pixel(x, y)
	image.unlock()
	return [c.r8, c.g8, c.b8]
