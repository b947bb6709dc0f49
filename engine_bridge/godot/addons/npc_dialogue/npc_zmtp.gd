@tool
class_name NpcZmtp
extends RefCounted
## ZMTP 3.1 (ZeroMQ's wire protocol, NULL mechanism) as bytes, and an incremental frame reader.
##
## The byte sequences match engine_bridge/zmtp_vectors.json, written by the project's Python
## reference. Use [method feed] and [method next_frame] on an instance to cut a TCP stream into
## frames.

const GREETING_BYTES := 64
const FLAG_MORE := 0x01
const FLAG_LONG := 0x02
const FLAG_COMMAND := 0x04
const SHORT_FRAME_MAX := 255

## Set when the stream breaks ZMTP (reserved flags, oversized frame): drop the connection.
var error := ""

var _buffer := PackedByteArray()
var _max_frame_bytes := 16 * 1024 * 1024


func _init(max_frame_bytes: int = 16 * 1024 * 1024) -> void:
	_max_frame_bytes = max_frame_bytes


## The 64-byte greeting: signature, version 3.1, mechanism NULL, as-server 0, zero filler.
## libzmq waits for all 64 bytes before it answers, so send them in one write.
static func greeting() -> PackedByteArray:
	var g := PackedByteArray()
	g.resize(GREETING_BYTES)
	g.fill(0)
	g[0] = 0xff
	g[9] = 0x7f
	g[10] = 3
	g[11] = 1
	var mechanism := "NULL".to_ascii_buffer()
	for i in mechanism.size():
		g[12 + i] = mechanism[i]
	return g


## Checks the peer's greeting; returns an error message, or "" when it is ZMTP 3.x with NULL.
static func check_greeting(g: PackedByteArray) -> String:
	var problem := ""
	if g.size() != GREETING_BYTES:
		problem = "greeting must be 64 bytes"
	elif g[0] != 0xff or g[9] != 0x7f:
		problem = "peer is not a ZeroMQ socket (bad greeting signature)"
	elif g[10] < 3:
		problem = "peer speaks ZMTP %d.%d; 3.0 or newer is needed" % [g[10], g[11]]
	else:
		var end := g.find(0, 12)
		var mechanism := g.slice(12, 32 if end == -1 or end > 32 else end).get_string_from_ascii()
		if mechanism != "NULL":
			problem = "peer wants security mechanism '%s'; only NULL is supported" % mechanism
	return problem


## A command frame: name length, name, data.
static func command(command_name: String, data: PackedByteArray) -> PackedByteArray:
	var raw_name := command_name.to_ascii_buffer()
	var body := PackedByteArray([raw_name.size()])
	body.append_array(raw_name)
	body.append_array(data)
	return _frame(FLAG_COMMAND, body)


## READY with Socket-Type and Identity (always sent; empty lets the server pick an identity).
static func ready_command(socket_type: String, identity: PackedByteArray) -> PackedByteArray:
	var metadata := _property("Socket-Type", socket_type.to_ascii_buffer())
	metadata.append_array(_property("Identity", identity))
	return command("READY", metadata)


## The properties of a READY command body, or {} when the body is not READY.
static func parse_ready(body: PackedByteArray) -> Dictionary:
	var props := {}
	if body.size() < 6 or body.slice(0, 6) != PackedByteArray([5]) + "READY".to_ascii_buffer():
		return props
	var pos := 6
	while pos < body.size():
		var name_length: int = body[pos]
		if pos + 1 + name_length + 4 > body.size():
			break
		var prop_name := body.slice(pos + 1, pos + 1 + name_length).get_string_from_ascii()
		pos += 1 + name_length
		var value_length := _u32(body, pos)
		pos += 4
		if pos + value_length > body.size():
			break
		props[prop_name] = body.slice(pos, pos + value_length)
		pos += value_length
	return props


## One message frame: short up to 255 bytes, long (8-byte size) above.
static func message(payload: PackedByteArray, more: bool = false) -> PackedByteArray:
	return _frame(FLAG_MORE if more else 0, payload)


## PING: 2-byte TTL in tenths of a second, then up to 16 bytes of context the peer echoes in PONG.
static func ping(ttl_deciseconds: int, context: PackedByteArray) -> PackedByteArray:
	var data := PackedByteArray([(ttl_deciseconds >> 8) & 0xff, ttl_deciseconds & 0xff])
	data.append_array(context)
	return command("PING", data)


## PONG echoing the context of the PING it answers.
static func pong(context: PackedByteArray) -> PackedByteArray:
	return command("PONG", context)


## The name of a command frame body ("READY", "PING", ...).
static func command_name_of(body: PackedByteArray) -> String:
	if body.is_empty() or body[0] + 1 > body.size():
		return ""
	return body.slice(1, 1 + body[0]).get_string_from_ascii()


## The data of a command frame body, after its name.
static func command_data_of(body: PackedByteArray) -> PackedByteArray:
	if body.is_empty() or body[0] + 1 > body.size():
		return PackedByteArray()
	return body.slice(1 + body[0])


## Appends bytes received from the stream.
func feed(bytes: PackedByteArray) -> void:
	_buffer.append_array(bytes)


## Takes out the next whole frame as {"flags": int, "body": PackedByteArray}, or {} when more bytes
## are needed or the stream is broken (then [member error] says why).
func next_frame() -> Dictionary:
	if error != "" or _buffer.size() < 2:
		return {}
	var flags: int = _buffer[0]
	if flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND):
		error = "reserved frame flag bits set: 0x%02x" % flags
		return {}
	var header := 2
	var size: int = _buffer[1]
	if flags & FLAG_LONG:
		if _buffer.size() < 9:
			return {}
		header = 9
		size = (_u32(_buffer, 1) << 32) | _u32(_buffer, 5)
	if size < 0 or size > _max_frame_bytes:
		error = "frame is over the %d-byte limit" % _max_frame_bytes
		return {}
	if _buffer.size() < header + size:
		return {}
	var body := _buffer.slice(header, header + size)
	_buffer = _buffer.slice(header + size)
	return {"flags": flags, "body": body}


static func _frame(flags: int, body: PackedByteArray) -> PackedByteArray:
	var out := PackedByteArray()
	if body.size() > SHORT_FRAME_MAX:
		out.append(flags | FLAG_LONG)
		var size := body.size()
		for shift in [56, 48, 40, 32, 24, 16, 8, 0]:
			out.append((size >> shift) & 0xff)
	else:
		out.append(flags)
		out.append(body.size())
	out.append_array(body)
	return out


static func _property(prop_name: String, value: PackedByteArray) -> PackedByteArray:
	var raw_name := prop_name.to_ascii_buffer()
	var out := PackedByteArray([raw_name.size()])
	out.append_array(raw_name)
	var n := value.size()
	out.append_array(PackedByteArray([(n >> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]))
	out.append_array(value)
	return out


static func _u32(bytes: PackedByteArray, at: int) -> int:
	return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]
