extends SceneTree
## Headless tests of the NPC Dialogue addon, run by tests/engine_bridge/test_godot_addon.py:
##   godot --headless --path PROJECT --script res://tests/npc_addon_tests.gd \
##     -- --data DIR [--endpoint E]
## DIR holds fixtures/, suite_typed.json and zmtp_vectors.json. With --endpoint it also talks to the
## real server. Prints "ok - NAME" or "FAIL - NAME: why" per check, then "N passed, M failed".

const WAIT_MS := 60000

var _passed := 0
var _failed := 0
var _data_dir := ""
var _endpoint := ""


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	for i in args.size() - 1:
		if args[i] == "--data":
			_data_dir = args[i + 1]
		elif args[i] == "--endpoint":
			_endpoint = args[i + 1]
	_run.call_deferred()


func _run() -> void:
	_check("msgpack fixtures decode to their twin and re-encode byte for byte", _test_fixtures())
	_check("msgpack-test-suite cases", _test_suite())
	_check("msgpack refuses bad input", _test_msgpack_errors())
	_check("ZMTP bytes match the Python reference", _test_zmtp_vectors())
	_check("ZMTP reader takes frames from any split", _test_frame_reader())
	if not _endpoint.is_empty():
		await _integration()
	print("%d passed, %d failed" % [_passed, _failed])
	quit(0 if _failed == 0 else 1)


func _check(test_name: String, problem: String) -> void:
	if problem.is_empty():
		_passed += 1
		print("ok - " + test_name)
	else:
		_failed += 1
		print("FAIL - %s: %s" % [test_name, problem])


# ------------------------------------------------------------------------------------------ codecs


func _test_fixtures() -> String:
	var dir := _data_dir.path_join("fixtures")
	var index_text := FileAccess.get_file_as_string(dir.path_join("index.json"))
	var index: Dictionary = JSON.parse_string(index_text)
	var count := 0
	for entry: Dictionary in index.fixtures:
		var fixture_name: String = entry.name
		var bytes := FileAccess.get_file_as_bytes(dir.path_join(fixture_name + ".msgpack"))
		var decoded := NpcMsgpack.decode(bytes)
		if decoded.error != "":
			return "%s: %s" % [fixture_name, decoded.error]
		var twin_text := FileAccess.get_file_as_string(dir.path_join(fixture_name + ".json"))
		var twin: Variant = _from_twin(JSON.parse_string(twin_text))
		var difference := _difference(twin, decoded.value, fixture_name)
		if difference != "":
			return difference
		var encoded := NpcMsgpack.encode(decoded.value)
		if encoded.bytes != bytes:
			return "%s: re-encoded bytes differ" % fixture_name
		count += 1
	return "" if count > 10 else "too few fixtures (%d)" % count


func _test_suite() -> String:
	var cases: Array = JSON.parse_string(
		FileAccess.get_file_as_string(_data_dir.path_join("suite_typed.json"))
	)
	for entry: Dictionary in cases:
		var expected: Variant = _typed(entry.value)
		for hex: String in entry.encodings:
			var decoded := NpcMsgpack.decode(_hex(hex))
			if decoded.error != "":
				return "%s %s: %s" % [entry.name, hex, decoded.error]
			var difference := _difference(expected, decoded.value, entry.name)
			if difference != "":
				return "%s (from %s)" % [difference, hex]
		var encoded := NpcMsgpack.encode(expected)
		var got: String = encoded.bytes.hex_encode()
		if got != entry.canonical:
			return "%s: encoded %s, expected %s" % [entry.name, got, entry.canonical]
	return "" if cases.size() > 40 else "too few suite cases (%d)" % cases.size()


func _test_msgpack_errors() -> String:
	var bad := [
		"", "a36162", "a3616263ff", "810102", "d6ff00000000", "c1", "dfffffffff", "82a16101a16102"
	]
	for hex: String in bad:
		if NpcMsgpack.decode(_hex(hex)).error == "":
			return "accepted " + hex
	if NpcMsgpack.encode({1: "int key"}).error == "":
		return "encoded a map with an int key"
	if NpcMsgpack.encode(0.5).bytes.hex_encode() != "cb3fe0000000000000":
		return "0.5 is not written as float 64"
	return ""


func _test_zmtp_vectors() -> String:
	var root: Dictionary = JSON.parse_string(
		FileAccess.get_file_as_string(_data_dir.path_join("zmtp_vectors.json"))
	)
	for vector: Dictionary in root.vectors:
		var vector_name: String = vector.name
		var ours := PackedByteArray()
		if vector_name == "greeting":
			ours = NpcZmtp.greeting()
		elif vector_name.begins_with("ready_dealer"):
			ours = NpcZmtp.ready_command("DEALER", _hex(vector.identity))
		elif vector_name.begins_with("message_"):
			ours = NpcZmtp.message(_hex(vector.payload))
		elif vector_name == "ping":
			ours = NpcZmtp.ping(int(vector.ttl_deciseconds), _hex(vector.context))
		elif vector_name == "pong":
			ours = NpcZmtp.pong(_hex(vector.context))
		else:
			return "unknown vector " + vector_name
		if ours.hex_encode() != vector.bytes:
			return "%s: %s != %s" % [vector_name, ours.hex_encode(), vector.bytes]
	return ""


func _test_frame_reader() -> String:
	var stream := NpcZmtp.message(PackedByteArray(range(200)) + PackedByteArray(range(100)), true)
	stream.append_array(NpcZmtp.ping(5, "c".to_ascii_buffer()))
	stream.append_array(NpcZmtp.message(PackedByteArray()))
	var reader := NpcZmtp.new()
	var frames: Array[Dictionary] = []
	for i in stream.size():
		reader.feed(stream.slice(i, i + 1))
		var frame := reader.next_frame()
		while not frame.is_empty():
			frames.append(frame)
			frame = reader.next_frame()
	if frames.size() != 3:
		return "got %d frames" % frames.size()
	if frames[0].body.size() != 300 or frames[0].flags != 0x03:
		return "long frame is wrong"
	if NpcZmtp.command_name_of(frames[1].body) != "PING":
		return "ping frame is wrong"
	var bad := NpcZmtp.new()
	bad.feed(PackedByteArray([0x80, 0]))
	if not bad.next_frame().is_empty() or bad.error == "":
		return "reserved flags were accepted"
	return ""


# ------------------------------------------------------------------------------------------ server


func _integration() -> void:
	var client := NpcDialogueClient.new()
	client.endpoint = _endpoint
	client.request_timeout_ms = WAIT_MS
	client.reconnect_min_ms = 50
	root.add_child(client)
	var deadline := Time.get_ticks_msec() + WAIT_MS
	while not client.is_online() and Time.get_ticks_msec() < deadline:
		await process_frame
	_check("connects to the server", "" if client.is_online() else "not connected in time")
	var welcome := await client.hello()
	var persona := "blacksmith"
	if welcome.ok and not welcome.message.get("personas", []).is_empty():
		persona = welcome.message.personas[0]
	_check("hello", "" if welcome.ok else welcome.error_code + " " + welcome.error_message)
	_check("streamed say", await _say_streams(client, persona))
	_check("cancel", await _cancel_works(client, persona))
	var wrong := await client.say("no-such-persona", "godot:test", "Hello?")
	_check("error reply", "" if wrong.error_code == "unknown_persona" else "got " + wrong.error_code)
	_check("session save and restore", await _session_round_trip(client, persona))
	client.queue_free()


func _say_streams(client: NpcDialogueClient, persona: String) -> String:
	var pieces: Array[String] = []
	var on_chunk := func(_id: String, text: String) -> void: pieces.append(text)
	client.line_chunk.connect(on_chunk)
	var result := await client.say(persona, "godot:" + persona, "Good evening!", {"max_tokens": 12})
	client.line_chunk.disconnect(on_chunk)
	var problem := ""
	if not result.ok:
		problem = result.error_code + " " + result.error_message
	elif pieces.is_empty() or "".join(PackedStringArray(pieces)) != result.text:
		problem = "chunks %s do not add up to %s" % [pieces, result.text]
	elif result.intensity < 0.0 or result.intensity > 1.0:
		problem = "intensity %f" % result.intensity
	return problem


func _cancel_works(client: NpcDialogueClient, persona: String) -> String:
	var req := client.start_say(persona, "godot:cancel", "Tell me about the war.", {"max_tokens": 128})
	client.cancel(req.id)
	var result: NpcResult = req.result
	if not req.done:
		result = await req.finished
	return "" if result.error_code == "cancelled" else "say ended with '%s'" % result.error_code


func _session_round_trip(client: NpcDialogueClient, persona: String) -> String:
	var session := "godot:" + persona
	var path := "user://npc_test_session.npc"
	var saved := await client.save_session_to_file(session, path)
	if not saved.ok:
		return "save: " + saved.error_code
	await client.reset_session(session)
	var restored := await client.restore_session_from_file(session, path)
	if not restored.ok:
		return "restore: " + restored.error_code
	var again := await client.save_session(session)
	var before := NpcMsgpack.encode(saved.message.state).bytes
	var after := NpcMsgpack.encode(again.message.state).bytes
	return "" if before == after else "state differs after restore"


# ------------------------------------------------------------------------------------------ helpers


func _hex(text: String) -> PackedByteArray:
	var out := PackedByteArray()
	for i in range(0, text.length(), 2):
		out.append(("0x" + text.substr(i, 2)).hex_to_int())
	return out


func _from_twin(value: Variant) -> Variant:
	if value is Dictionary:
		if value.size() == 1 and value.has("$bin"):
			return Marshalls.base64_to_raw(value["$bin"])
		var copy := {}
		for key: String in value:
			copy[key] = _from_twin(value[key])
		return copy
	if value is Array:
		return value.map(_from_twin)
	return value


func _typed(node: Dictionary) -> Variant:
	var value: Variant = null
	match node.t:
		"bool", "str":
			value = node.v
		"int":
			value = str(node.v).to_int()
		"float":
			value = str(node.v).to_float()
		"bin":
			value = _hex(node.v)
		"array":
			value = node.v.map(_typed)
		"map":
			var map := {}
			for pair: Array in node.v:
				map[pair[0]] = _typed(pair[1])
			value = map
	return value


## "" when equal; numbers compare by value (JSON has no int/float split; byte equality checks that).
func _difference(expected: Variant, actual: Variant, path: String) -> String:
	var problem := ""
	var numbers := [TYPE_INT, TYPE_FLOAT]
	if typeof(expected) in numbers and typeof(actual) in numbers:
		if expected != actual:  # an int and a float of the same value compare equal
			problem = "%s: %s != %s" % [path, expected, actual]
	elif typeof(expected) != typeof(actual):
		problem = "%s: %s != %s" % [path, type_string(typeof(expected)), type_string(typeof(actual))]
	elif expected is Dictionary:
		if expected.keys() != actual.keys():
			problem = "%s: keys %s != %s" % [path, expected.keys(), actual.keys()]
		else:
			for key: String in expected:
				problem = _difference(expected[key], actual[key], path + "." + key)
				if problem != "":
					break
	elif expected is Array:
		if expected.size() != actual.size():
			problem = "%s: %d items != %d" % [path, expected.size(), actual.size()]
		else:
			for i in expected.size():
				problem = _difference(expected[i], actual[i], "%s[%d]" % [path, i])
				if problem != "":
					break
	elif expected != actual:
		problem = "%s: %s != %s" % [path, expected, actual]
	return problem
