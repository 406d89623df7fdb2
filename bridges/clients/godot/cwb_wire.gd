# cwb_wire.gd: the cwb/2 message codec (bridges/PROTOCOL.md, section 2) on top of msgpack.gd.
#
# A message is frames [tag "cwb/2", msgpack header map, raw buffer per header["bufs"] entry].
# The header keys go in the protocol's order: type, id, re, session, seq, time, body, bufs.
# Buffers stay raw PoolByteArrays: a chunk's "frames" buffer is uint8 (F, H, W, 3), C order,
# which is exactly Image.FORMAT_RGB8 rows, one frame after the other (see frame_image()).
#
# Use:
#   const Wire = preload("cwb_wire.gd")
#   var frames = Wire.encode("step", 3, "a1b2", 3, OS.get_system_time_msecs() / 1000.0,
#                            {"action": 3})
#   var msg = Wire.decode(frames)   # {"type", "id", "re", "session", "seq", "time", "body",
#                                   #  "arrays": {name: {"dtype", "shape", "data"}}, "error"}
extends Reference

const Msgpack = preload("msgpack.gd")

const TAG = "cwb/2"
const ITEMSIZE = {"uint8": 1, "int32": 4, "int64": 8, "float32": 4}


# The frames of one request: [tag, header] (no buffers: the Godot client sends none).
static func encode(type: String, id: int, session, seq: int, time: float, body: Dictionary) -> Array:
	var header := {
		"type": type, "id": id, "re": null, "session": session, "seq": seq, "time": float(time),
		"body": body,
	}
	return [TAG.to_ascii(), Msgpack.encode(header)]


# Decode [tag, header, *buffers] (a reply, or a published chunk without its topic frame).
# On failure the result has a non-empty "error" ("BAD_MESSAGE: ..." or "BAD_BUFFER: ...").
static func decode(frames: Array) -> Dictionary:
	if frames.size() < 2:
		return _bad("BAD_MESSAGE: got %d frame(s); need [tag, header, *buffers]" % frames.size())
	if frames[0].get_string_from_ascii() != TAG:
		return _bad("BAD_MESSAGE: first frame is not the tag %s" % TAG)
	var out: Dictionary = Msgpack.decode(frames[1])
	if out["error"] != "":
		return _bad("BAD_MESSAGE: header is not msgpack: " + out["error"])
	var header = out["value"]
	if typeof(header) != TYPE_DICTIONARY:
		return _bad("BAD_MESSAGE: header is not a map")
	if typeof(header.get("type")) != TYPE_STRING or typeof(header.get("id")) != TYPE_INT:
		return _bad("BAD_MESSAGE: header needs a str 'type' and an int 'id'")
	var msg := {
		"type": header["type"],
		"id": header["id"],
		"re": header.get("re"),
		"session": header.get("session"),
		"seq": header.get("seq", 0) if header.get("seq") != null else 0,
		"time": float(header.get("time")) if header.get("time") != null else 0.0,
		"body": header.get("body") if typeof(header.get("body")) == TYPE_DICTIONARY else {},
		"arrays": {},
		"error": "",
	}
	var descs = header.get("bufs")
	if descs == null:
		descs = []
	if typeof(descs) != TYPE_ARRAY or descs.size() != frames.size() - 2:
		return _bad("BAD_MESSAGE: 'bufs' does not match the %d buffer frame(s)" % (frames.size() - 2))
	for i in range(descs.size()):
		var desc = descs[i]
		if typeof(desc) != TYPE_DICTIONARY or typeof(desc.get("name")) != TYPE_STRING:
			return _bad("BAD_BUFFER: bufs[%d] is not {name, dtype, shape, encoding}" % i)
		if not ITEMSIZE.has(desc.get("dtype")) or desc.get("encoding", "raw") != "raw":
			return _bad("BAD_BUFFER: buffer %s: want a raw %s" % [desc["name"], ITEMSIZE.keys()])
		var shape = desc.get("shape")
		if typeof(shape) != TYPE_ARRAY:
			return _bad("BAD_BUFFER: buffer %s has no shape" % desc["name"])
		var nbytes: int = ITEMSIZE[desc["dtype"]]
		for n in shape:
			nbytes *= int(n)
		if frames[2 + i].size() != nbytes:
			return _bad("BAD_BUFFER: buffer %s has %d bytes, %s x %s needs %d"
					% [desc["name"], frames[2 + i].size(), desc["dtype"], str(shape), nbytes])
		msg["arrays"][desc["name"]] = {"dtype": desc["dtype"], "shape": shape, "data": frames[2 + i]}
	return msg


static func _bad(why: String) -> Dictionary:
	return {"type": "", "id": 0, "re": null, "session": null, "seq": 0, "time": 0.0, "body": {},
			"arrays": {}, "error": why}


# Frame `index` of a uint8 (F, H, W, 3) buffer as an RGB8 Image (W x H).
static func frame_image(array: Dictionary, index: int) -> Image:
	var shape: Array = array["shape"]
	assert(array["dtype"] == "uint8" and shape.size() == 4 and shape[3] == 3)
	var height: int = shape[1]
	var width: int = shape[2]
	var size := height * width * 3
	var image := Image.new()
	image.create_from_data(width, height, false, Image.FORMAT_RGB8,
			array["data"].subarray(index * size, (index + 1) * size - 1))
	return image
