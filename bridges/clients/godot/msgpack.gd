# msgpack.gd: a minimal msgpack encoder/decoder for the chunkworld bridge (cwb/2).
#
# Covers the types the protocol uses: nil, bool, int, float, str, bin, array, map.
# Extension types (timestamps included) are refused, as the server refuses them.
# The encoder picks the smallest encoding, like Python's msgpack.packb(use_bin_type=True), so
# a header encoded here is byte for byte the header the Python client sends:
#
#   null -> c0    false/true -> c2/c3    float -> cb + 8 bytes (always float64)
#   int  -> fixint / cc cd ce cf (unsigned) / d0 d1 d2 d3 (negative)
#   String -> fixstr / d9 da db (UTF-8)    PoolByteArray -> c4 c5 c6 (bin)
#   Array -> fixarray / dc dd              Dictionary -> fixmap / de df (insertion order)
#
# Use:
#   const Msgpack = preload("msgpack.gd")
#   var bytes = Msgpack.encode({"type": "ping", "id": 1})   # empty PoolByteArray on failure
#   var out = Msgpack.decode(bytes)   # {"value": ..., "error": ""}; error non-empty on failure
extends Reference

const MAX_DEPTH = 32  # deeper nesting is refused when decoding (the server allows 16)
# Type bytes followed by a fixed-width number (the value, or the length of what follows).
const WIDTHS = {
	0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xca: 4, 0xcb: 8,
	0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4, 0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4,
}


# ---------------------------------------------------------------- encode

# The msgpack bytes of `value`; an empty array (and a pushed error) for a type msgpack cannot
# carry here (Object, Vector2, ...). Valid msgpack is never empty.
static func encode(value) -> PoolByteArray:
	var buf := StreamPeerBuffer.new()
	buf.big_endian = true
	var error = _write_value(buf, value, 0)
	if error != "":
		push_error("msgpack encode: " + error)
		return PoolByteArray()
	return buf.data_array


static func _write_value(buf: StreamPeerBuffer, value, depth: int) -> String:
	if depth > MAX_DEPTH:
		return "nesting deeper than %d" % MAX_DEPTH
	match typeof(value):
		TYPE_NIL:
			buf.put_u8(0xc0)
		TYPE_BOOL:
			buf.put_u8(0xc3 if value else 0xc2)
		TYPE_INT:
			_put_int(buf, value)
		TYPE_REAL:
			buf.put_u8(0xcb)
			buf.put_double(value)
		TYPE_STRING:
			var utf8: PoolByteArray = value.to_utf8()
			_put_length(buf, utf8.size(), 0xa0, 32, 0xd9, 0xda, 0xdb)
			buf.put_data(utf8)
		TYPE_RAW_ARRAY:
			_put_length(buf, value.size(), 0, 0, 0xc4, 0xc5, 0xc6)
			buf.put_data(value)
		TYPE_ARRAY, TYPE_INT_ARRAY, TYPE_REAL_ARRAY, TYPE_STRING_ARRAY:
			_put_length(buf, value.size(), 0x90, 16, -1, 0xdc, 0xdd)
			for item in value:
				var error = _write_value(buf, item, depth + 1)
				if error != "":
					return error
		TYPE_DICTIONARY:
			_put_length(buf, value.size(), 0x80, 16, -1, 0xde, 0xdf)
			for key in value:  # Godot dictionaries keep insertion order
				var error = _write_value(buf, key, depth + 1)
				if error == "":
					error = _write_value(buf, value[key], depth + 1)
				if error != "":
					return error
		_:
			return "cannot encode a value of Godot type %d (%s)" % [typeof(value), str(value)]
	return ""


# The smallest length header: fixed (n < fix_limit, OR-ed into fix), then 8-, 16- or 32-bit.
# A code of -1 (or a fix_limit of 0) means the format has no such width: str has all four,
# bin no fixed form, array and map no 8-bit form.
static func _put_length(buf: StreamPeerBuffer, n: int, fix: int, fix_limit: int, c8: int, c16: int, c32: int) -> void:
	if n < fix_limit:
		buf.put_u8(fix | n)
	elif n < 0x100 and c8 >= 0:
		buf.put_u8(c8)
		buf.put_u8(n)
	elif n < 0x10000:
		buf.put_u8(c16)
		buf.put_u16(n)
	else:
		buf.put_u8(c32)
		buf.put_u32(n)


static func _put_int(buf: StreamPeerBuffer, n: int) -> void:
	if n >= 0:
		if n < 0x80:
			buf.put_u8(n)  # positive fixint
		elif n < 0x100:
			buf.put_u8(0xcc)
			buf.put_u8(n)
		elif n < 0x10000:
			buf.put_u8(0xcd)
			buf.put_u16(n)
		elif n <= 0xffffffff:
			buf.put_u8(0xce)
			buf.put_u32(n)
		else:
			buf.put_u8(0xcf)
			buf.put_u64(n)
	elif n >= -32:
		buf.put_u8(n & 0xff)  # negative fixint 0xe0..0xff
	elif n >= -0x80:
		buf.put_u8(0xd0)
		buf.put_8(n)
	elif n >= -0x8000:
		buf.put_u8(0xd1)
		buf.put_16(n)
	elif n >= -0x80000000:
		buf.put_u8(0xd2)
		buf.put_32(n)
	else:
		buf.put_u8(0xd3)
		buf.put_64(n)


# ---------------------------------------------------------------- decode

# Decode exactly one msgpack value. Returns {"value": v, "error": ""}, or {"value": null,
# "error": why} for truncated input, trailing bytes, extension types, bad UTF-8, non-string map
# keys, uint64 past Godot's int range or nesting past MAX_DEPTH.
static func decode(bytes: PoolByteArray) -> Dictionary:
	var buf := StreamPeerBuffer.new()
	buf.big_endian = true
	buf.data_array = bytes
	var out = _read_value(buf, 0)
	if out[1] == "" and buf.get_available_bytes() > 0:
		out = [null, "%d trailing bytes after the value" % buf.get_available_bytes()]
	return {"value": out[0] if out[1] == "" else null, "error": out[1]}


static func _need(buf: StreamPeerBuffer, n: int) -> bool:
	return buf.get_available_bytes() >= n


# Returns [value, error]; error is "" on success.
static func _read_value(buf: StreamPeerBuffer, depth: int) -> Array:
	if depth > MAX_DEPTH:
		return [null, "nesting deeper than %d" % MAX_DEPTH]
	if not _need(buf, 1):
		return [null, "truncated: expected a value"]
	var b := buf.get_u8()
	if b < 0x80:
		return [b, ""]
	if b >= 0xe0:
		return [b - 0x100, ""]
	if b >= 0xa0 and b <= 0xbf:
		return _get_str(buf, b & 0x1f)
	if b >= 0x90 and b <= 0x9f:
		return _get_array(buf, b & 0x0f, depth)
	if b >= 0x80 and b <= 0x8f:
		return _get_map(buf, b & 0x0f, depth)
	match b:
		0xc0:
			return [null, ""]
		0xc2:
			return [false, ""]
		0xc3:
			return [true, ""]
	if not WIDTHS.has(b):
		if b == 0xc1:
			return [null, "byte 0xc1 is never used in msgpack"]
		return [null, "msgpack extension type (0x%x) is not allowed" % b]
	if not _need(buf, WIDTHS[b]):
		return [null, "truncated after type byte 0x%x" % b]
	match b:
		0xcc:
			return [buf.get_u8(), ""]
		0xcd:
			return [buf.get_u16(), ""]
		0xce:
			return [buf.get_u32(), ""]
		0xcf:
			var n := buf.get_u64()  # read as signed 64-bit
			if n < 0:
				return [null, "uint64 value past 2^63-1 does not fit a Godot int"]
			return [n, ""]
		0xd0:
			return [buf.get_8(), ""]
		0xd1:
			return [buf.get_16(), ""]
		0xd2:
			return [buf.get_32(), ""]
		0xd3:
			return [buf.get_64(), ""]
		0xca:
			return [buf.get_float(), ""]
		0xcb:
			return [buf.get_double(), ""]
		0xd9:
			return _get_str(buf, buf.get_u8())
		0xda:
			return _get_str(buf, buf.get_u16())
		0xdb:
			return _get_str(buf, buf.get_u32())
		0xc4:
			return _get_bin(buf, buf.get_u8())
		0xc5:
			return _get_bin(buf, buf.get_u16())
		0xc6:
			return _get_bin(buf, buf.get_u32())
		0xdc:
			return _get_array(buf, buf.get_u16(), depth)
		0xdd:
			return _get_array(buf, buf.get_u32(), depth)
		0xde:
			return _get_map(buf, buf.get_u16(), depth)
		_:  # 0xdf
			return _get_map(buf, buf.get_u32(), depth)


static func _get_bin(buf: StreamPeerBuffer, n: int) -> Array:
	if not _need(buf, n):
		return [null, "truncated: %d bytes declared, %d left" % [n, buf.get_available_bytes()]]
	if n == 0:
		return [PoolByteArray(), ""]
	return [buf.get_data(n)[1], ""]


static func _get_str(buf: StreamPeerBuffer, n: int) -> Array:
	var raw = _get_bin(buf, n)
	if raw[1] != "":
		return raw
	var text: String = raw[0].get_string_from_utf8()
	if text.to_utf8() != raw[0]:  # Godot decodes bad UTF-8 leniently; a round trip shows it
		return [null, "string is not valid UTF-8"]
	return [text, ""]


static func _get_array(buf: StreamPeerBuffer, n: int, depth: int) -> Array:
	if not _need(buf, n):  # every item takes at least one byte
		return [null, "truncated: array of %d items" % n]
	var items := []
	for _i in range(n):
		var item = _read_value(buf, depth + 1)
		if item[1] != "":
			return item
		items.append(item[0])
	return [items, ""]


static func _get_map(buf: StreamPeerBuffer, n: int, depth: int) -> Array:
	if not _need(buf, 2 * n):
		return [null, "truncated: map of %d entries" % n]
	var map := {}
	for _i in range(n):
		var key = _read_value(buf, depth + 1)
		if key[1] != "":
			return key
		if typeof(key[0]) != TYPE_STRING:
			return [null, "map keys must be strings, got %s" % str(key[0])]
		var value = _read_value(buf, depth + 1)
		if value[1] != "":
			return value
		map[key[0]] = value[0]
	return [map, ""]
