@tool
class_name NpcMsgpack
extends RefCounted
## The msgpack codec of the NPC dialogue protocol, in GDScript.
##
## Covers what the protocol uses: nil, bool, int, float (always written as float 64),
## String (str), PackedByteArray (bin), Array and Dictionary with String keys. Every value gets
## its smallest encoding, so a decoded message re-encodes to the same bytes. GDScript has no
## exceptions: both calls return a Dictionary with "error" (empty on success) and "bytes" or
## "value".

const MAX_DEPTH := 64
const INT64_MAX := 9223372036854775807


## Encodes [param value]; returns {"bytes": PackedByteArray, "error": String}.
static func encode(value: Variant) -> Dictionary:
	var out := StreamPeerBuffer.new()
	out.big_endian = true
	var error := _write(out, value, 0)
	if error != "":
		return {"bytes": PackedByteArray(), "error": error}
	return {"bytes": out.data_array, "error": ""}


## Decodes exactly one value that fills [param bytes]; returns {"value": Variant, "error": String}.
static func decode(bytes: PackedByteArray) -> Dictionary:
	var reader := StreamPeerBuffer.new()
	reader.big_endian = true
	reader.data_array = bytes
	var state := {"error": ""}
	var value: Variant = _read(reader, state, 0)
	if state.error == "" and reader.get_position() != bytes.size():
		state.error = "%d bytes left after the value" % (bytes.size() - reader.get_position())
	if state.error != "":
		return {"value": null, "error": state.error}
	return {"value": value, "error": ""}


# ------------------------------------------------------------------------------------------ writing


static func _write(out: StreamPeerBuffer, value: Variant, depth: int) -> String:
	if depth > MAX_DEPTH:
		return "value is nested deeper than %d" % MAX_DEPTH
	var error := ""
	match typeof(value):
		TYPE_NIL:
			out.put_u8(0xc0)
		TYPE_BOOL:
			out.put_u8(0xc3 if value else 0xc2)
		TYPE_INT:
			_write_int(out, value)
		TYPE_FLOAT:
			out.put_u8(0xcb)
			out.put_double(value)
		TYPE_STRING, TYPE_STRING_NAME:
			_write_string(out, str(value))
		TYPE_PACKED_BYTE_ARRAY:
			_write_binary(out, value)
		TYPE_DICTIONARY:
			error = _write_map(out, value, depth)
		TYPE_ARRAY, TYPE_PACKED_STRING_ARRAY, TYPE_PACKED_INT32_ARRAY, TYPE_PACKED_INT64_ARRAY, \
		TYPE_PACKED_FLOAT32_ARRAY, TYPE_PACKED_FLOAT64_ARRAY:
			_write_header(out, value.size(), 0x90, 15, 0xdc, 0xdd)
			for item: Variant in value:
				error = _write(out, item, depth + 1)
				if error != "":
					break
		_:
			error = "cannot encode a %s" % type_string(typeof(value))
	return error


static func _write_map(out: StreamPeerBuffer, map: Dictionary, depth: int) -> String:
	_write_header(out, map.size(), 0x80, 15, 0xde, 0xdf)
	for key: Variant in map:
		if typeof(key) != TYPE_STRING and typeof(key) != TYPE_STRING_NAME:
			return "map keys must be strings, got %s" % type_string(typeof(key))
		_write_string(out, str(key))
		var error := _write(out, map[key], depth + 1)
		if error != "":
			return error
	return ""


static func _write_header(
	out: StreamPeerBuffer, count: int, fix_base: int, fix_max: int, code16: int, code32: int
) -> void:
	if count <= fix_max:
		out.put_u8(fix_base | count)
	elif count <= 0xffff:
		out.put_u8(code16)
		out.put_u16(count)
	else:
		out.put_u8(code32)
		out.put_u32(count)


static func _write_string(out: StreamPeerBuffer, text: String) -> void:
	var bytes := text.to_utf8_buffer()
	var n := bytes.size()
	if n <= 31:
		out.put_u8(0xa0 | n)
	elif n <= 0xff:
		out.put_u8(0xd9)
		out.put_u8(n)
	elif n <= 0xffff:
		out.put_u8(0xda)
		out.put_u16(n)
	else:
		out.put_u8(0xdb)
		out.put_u32(n)
	out.put_data(bytes)


static func _write_binary(out: StreamPeerBuffer, bytes: PackedByteArray) -> void:
	var n := bytes.size()
	if n <= 0xff:
		out.put_u8(0xc4)
		out.put_u8(n)
	elif n <= 0xffff:
		out.put_u8(0xc5)
		out.put_u16(n)
	else:
		out.put_u8(0xc6)
		out.put_u32(n)
	out.put_data(bytes)


static func _write_int(out: StreamPeerBuffer, n: int) -> void:
	if n >= 0:
		if n <= 0x7f:
			out.put_u8(n)
		elif n <= 0xff:
			out.put_u8(0xcc)
			out.put_u8(n)
		elif n <= 0xffff:
			out.put_u8(0xcd)
			out.put_u16(n)
		elif n <= 0xffffffff:
			out.put_u8(0xce)
			out.put_u32(n)
		else:
			out.put_u8(0xcf)
			out.put_u64(n)
	elif n >= -32:
		out.put_8(n)
	elif n >= -128:
		out.put_u8(0xd0)
		out.put_8(n)
	elif n >= -32768:
		out.put_u8(0xd1)
		out.put_16(n)
	elif n >= -2147483648:
		out.put_u8(0xd2)
		out.put_32(n)
	else:
		out.put_u8(0xd3)
		out.put_64(n)


# ------------------------------------------------------------------------------------------ reading


static func _left(reader: StreamPeerBuffer) -> int:
	return reader.get_size() - reader.get_position()


static func _need(reader: StreamPeerBuffer, state: Dictionary, count: int) -> bool:
	if state.error != "":
		return false
	if count > _left(reader):
		state.error = "data ends in the middle of a value"
		return false
	return true


static func _read(reader: StreamPeerBuffer, state: Dictionary, depth: int) -> Variant:
	if depth > MAX_DEPTH:
		state.error = "value is nested deeper than %d" % MAX_DEPTH
		return null
	if not _need(reader, state, 1):
		return null
	var code := reader.get_u8()
	var value: Variant = null
	if code <= 0x7f:
		value = code
	elif code >= 0xe0:
		value = code - 0x100
	elif code >= 0xa0 and code <= 0xbf:
		value = _read_string(reader, state, code & 0x1f)
	elif code >= 0x90 and code <= 0x9f:
		value = _read_array(reader, state, code & 0x0f, depth)
	elif code >= 0x80 and code <= 0x8f:
		value = _read_map(reader, state, code & 0x0f, depth)
	else:
		value = _read_typed(reader, state, code, depth)
	return value


static func _read_typed(
	reader: StreamPeerBuffer, state: Dictionary, code: int, depth: int
) -> Variant:
	var sizes := {
		0xc4: 1, 0xc5: 2, 0xc6: 4, 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8,
		0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xd9: 1, 0xda: 2, 0xdb: 4, 0xdc: 2, 0xdd: 4,
		0xde: 2, 0xdf: 4,
	}
	var value: Variant = null
	if code == 0xc0:
		return null
	if code == 0xc2 or code == 0xc3:
		return code == 0xc3
	if not sizes.has(code):
		state.error = "msgpack type 0x%02x is not used by the protocol" % code
		return null
	if not _need(reader, state, sizes[code]):
		return null
	match code:
		0xca:
			value = reader.get_float()
		0xcb:
			value = reader.get_double()
		0xcc, 0xcd, 0xce, 0xd0, 0xd1, 0xd2, 0xd3:
			value = _read_plain_int(reader, code)
		0xcf:
			value = reader.get_u64()
			if value < 0:  # above INT64_MAX: GDScript ints are signed 64-bit
				state.error = "uint64 above %d cannot be held in a GDScript int" % INT64_MAX
		0xc4, 0xc5, 0xc6:
			value = _read_bytes(reader, state, _read_length(reader, sizes[code]))
		0xd9, 0xda, 0xdb:
			value = _read_string(reader, state, _read_length(reader, sizes[code]))
		0xdc, 0xdd:
			value = _read_array(reader, state, _read_length(reader, sizes[code]), depth)
		0xde, 0xdf:
			value = _read_map(reader, state, _read_length(reader, sizes[code]), depth)
	return value


static func _read_plain_int(reader: StreamPeerBuffer, code: int) -> int:
	var value := 0
	match code:
		0xcc:
			value = reader.get_u8()
		0xcd:
			value = reader.get_u16()
		0xce:
			value = reader.get_u32()
		0xd0:
			value = reader.get_8()
		0xd1:
			value = reader.get_16()
		0xd2:
			value = reader.get_32()
		0xd3:
			value = reader.get_64()
	return value


static func _read_length(reader: StreamPeerBuffer, size: int) -> int:
	var length := 0
	match size:
		1:
			length = reader.get_u8()
		2:
			length = reader.get_u16()
		4:
			length = reader.get_u32()
	return length


static func _read_bytes(
	reader: StreamPeerBuffer, state: Dictionary, count: int
) -> PackedByteArray:
	if count == 0 or not _need(reader, state, count):
		return PackedByteArray()
	var got: Array = reader.get_data(count)
	return got[1]


static func _read_string(reader: StreamPeerBuffer, state: Dictionary, count: int) -> String:
	return _read_bytes(reader, state, count).get_string_from_utf8()


static func _read_array(
	reader: StreamPeerBuffer, state: Dictionary, count: int, depth: int
) -> Array:
	var items := []
	if count > _left(reader):
		state.error = "array count runs past the end of the data"
		return items
	for i in count:
		items.append(_read(reader, state, depth + 1))
		if state.error != "":
			break
	return items


static func _read_map(
	reader: StreamPeerBuffer, state: Dictionary, count: int, depth: int
) -> Dictionary:
	var map := {}
	if count * 2 > _left(reader):
		state.error = "map count runs past the end of the data"
		return map
	for i in count:
		var key: Variant = _read(reader, state, depth + 1)
		if state.error != "":
			break
		if typeof(key) != TYPE_STRING:
			state.error = "map keys must be strings"
			break
		if map.has(key):
			state.error = "duplicate map key '%s'" % key
			break
		map[key] = _read(reader, state, depth + 1)
		if state.error != "":
			break
	return map
