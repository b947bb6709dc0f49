@tool
class_name NpcDialogueClient
extends Node
## Talks to the NPC runtime server (protocol v1) from Godot; the plugin adds it as the
## [code]NpcDialogue[/code] autoload.
##
## Connects on ready (see [member auto_connect]), reconnects with backoff, and matches replies to
## requests by id. Every request method is awaitable and returns an [NpcResult]:
## [codeblock]
## var result := await NpcDialogue.say("blacksmith", "save1:blacksmith", "Do you sell swords?")
## if result.ok:
##     print(result.text, " ", result.emotion, " ", result.intensity)
## [/codeblock]
## Use the [code]start_*[/code] variants to get the [NpcRequest] (and its id, for [method cancel])
## before the answer arrives. Everything runs on the main thread from [method _process].

## A connection to the server is up.
signal connected
## The connection dropped (or the server went away); the client reconnects by itself.
signal disconnected(reason: String)
## A streamed piece of an NPC line.
signal line_chunk(request_id: String, text: String)
## An NPC line is finished.
signal line_finished(text: String, emotion: String, intensity: float)
## A request failed (server error, timeout, lost connection). Cancelled says are not reported here.
signal request_failed(code: String, message: String)

const PROTOCOL_VERSION := 1
const FINAL_TYPES := {
	"hello": "welcome",
	"say": "reply",
	"cancel": "cancel.ok",
	"reset": "reset.ok",
	"personas": "personas.ok",
	"state.get": "state.get.ok",
	"state.set": "state.set.ok",
}

## The server's endpoint, tcp://host:port.
@export var endpoint := "tcp://127.0.0.1:5555"
## Routing identity; keep it fixed so replies follow a reconnect. Empty: a random one per run.
@export var identity := ""
## Connect as soon as the node is ready.
@export var auto_connect := true
## Milliseconds one connection attempt (TCP and ZMTP handshake) may take.
@export var connect_timeout_ms := 2000
## Milliseconds a request may wait for its answer, queued time included.
@export var request_timeout_ms := 30000
## First wait before reconnecting, in milliseconds; doubles after each failed attempt.
@export var reconnect_min_ms := 250
## Longest wait between reconnect attempts, in milliseconds.
@export var reconnect_max_ms := 5000
## Send a ZMTP PING after this many quiet milliseconds (0: never).
@export var heartbeat_interval_ms := 2000
## Drop the connection after this many milliseconds without bytes from the server.
@export var heartbeat_timeout_ms := 6000

## Set before adding the node to let it run inside the editor (the dock does); autoloads of tool
## scripts are instanced in the editor too, and must not connect there.
var run_in_editor := false

var _dealer := NpcZmtpDealer.new()
var _host := ""
var _port := 0
var _wants_connection := false
var _online := false
var _ever_connected := false
var _backoff_ms := 0
var _next_attempt_ms := 0
var _next_id := 0
var _pending := {}
var _queue: Array[NpcRequest] = []


func _ready() -> void:
	if Engine.is_editor_hint() and not run_in_editor:
		set_process(false)
		return
	if identity.is_empty():
		identity = "npc-gd-" + Crypto.new().generate_random_bytes(8).hex_encode()
	_dealer.connected.connect(_on_dealer_connected)
	_dealer.disconnected.connect(_on_dealer_disconnected)
	_dealer.message_received.connect(_on_message)
	if auto_connect:
		connect_to_server()


func _process(_delta: float) -> void:
	var now := Time.get_ticks_msec()
	if _dealer.is_active():
		_dealer.poll()
	elif _wants_connection and now >= _next_attempt_ms:
		_start_connect()
	if _dealer.is_ready():
		_flush_queue()
	_expire(now)


func _exit_tree() -> void:
	disconnect_from_server()


## Connects (or reconnects) to [param new_endpoint], or to [member endpoint] when empty.
func connect_to_server(new_endpoint: String = "") -> void:
	if not new_endpoint.is_empty():
		endpoint = new_endpoint
	var parsed := _parse_endpoint(endpoint)
	if parsed.is_empty():
		push_error("NpcDialogue: endpoint must look like tcp://host:port, got '%s'" % endpoint)
		return
	_host = parsed.host
	_port = parsed.port
	_wants_connection = true
	_dealer.close("connecting to " + endpoint)
	_backoff_ms = 0
	_next_attempt_ms = 0


## Closes the connection; requests still waiting fail with "disconnected".
func disconnect_from_server() -> void:
	_wants_connection = false
	_dealer.close("disconnected by the game")
	_fail_all("disconnected", "the client disconnected", true)


## True while connected to the server.
func is_online() -> bool:
	return _online


## Sends a say and returns its [NpcRequest] at once. [param image] is a map from
## [method NpcScreenshot.capture]; [param context] holds scene facts (time_of_day, weather, ...);
## [param options] holds max_tokens, temperature, top_p, top_k, seed, stream (default true).
func start_say(
	persona: String,
	session: String,
	text: String,
	options: Dictionary = {},
	context: Dictionary = {},
	image: Dictionary = {}
) -> NpcRequest:
	var fields := {"persona": persona, "session": session, "text": text}
	if not image.is_empty():
		fields["image"] = image
	if not context.is_empty():
		fields["context"] = context
	var say_options := options.duplicate()
	if not say_options.has("stream"):
		say_options["stream"] = true
	fields["options"] = say_options
	return start_request("say", fields)


## Sends a say and waits for the whole line (await it).
func say(
	persona: String,
	session: String,
	text: String,
	options: Dictionary = {},
	context: Dictionary = {},
	image: Dictionary = {}
) -> NpcResult:
	return await _wait(start_say(persona, session, text, options, context, image))


## Captures [param viewport] as the NPC's view, then says (await it).
func say_about_view(
	persona: String,
	session: String,
	text: String,
	viewport: Viewport,
	options: Dictionary = {},
	context: Dictionary = {}
) -> NpcResult:
	var image := NpcScreenshot.capture(viewport, "jpeg")
	return await _wait(start_say(persona, session, text, options, context, image))


## Cancels the say with [param request_id], or every say still waiting when it is empty.
## The cancelled say ends with an [NpcResult] whose error_code is "cancelled".
func cancel(request_id: String = "") -> void:
	var targets: Array[NpcRequest] = []
	for req: NpcRequest in _pending.values():
		if req.type == "say" and (request_id.is_empty() or req.id == request_id):
			targets.append(req)
	for req in targets:
		req.cancel_requested = true
		if req.sent:
			start_request("cancel", {"target": req.id})
		else:
			_pending.erase(req.id)
			_queue.erase(req)
			var result := NpcResult.failure(req.id, "cancelled", "cancelled before sending")
			_finish.call_deferred(req, result)


## The server's description: personas, emotions, limits, provider (await it).
func hello() -> NpcResult:
	return await request("hello")


## The persona cards the server has, in result.message.personas (await it).
func personas() -> NpcResult:
	return await request("personas")


## Forgets a session's history on the server (await it).
func reset_session(session: String) -> NpcResult:
	return await request("reset", {"session": session})


## A session's state in result.message.state, to keep in a save game (await it).
func save_session(session: String) -> NpcResult:
	return await request("state.get", {"session": session})


## Gives back a state from [method save_session] (await it).
func restore_session(session: String, state: Dictionary) -> NpcResult:
	return await request("state.set", {"session": session, "state": state})


## Writes a session's state to [param path] (e.g. user://save1_blacksmith.npc) as msgpack bytes.
func save_session_to_file(session: String, path: String) -> NpcResult:
	var result := await save_session(session)
	if not result.ok:
		return result
	var encoded := NpcMsgpack.encode(result.message.get("state", {}))
	var file := FileAccess.open(path, FileAccess.WRITE)
	if file == null:
		return NpcResult.failure(result.request_id, "io", "cannot write " + path)
	file.store_buffer(encoded.bytes)
	file.close()
	return result


## Restores a session from a file written by [method save_session_to_file] (await it).
func restore_session_from_file(session: String, path: String) -> NpcResult:
	if not FileAccess.file_exists(path):
		return NpcResult.failure("", "io", "no saved session at " + path)
	var decoded := NpcMsgpack.decode(FileAccess.get_file_as_bytes(path))
	if decoded.error != "" or typeof(decoded.value) != TYPE_DICTIONARY:
		return NpcResult.failure("", "io", "saved session at %s is unreadable" % path)
	return await restore_session(session, decoded.value)


## Sends any request type with extra [param fields]; returns its [NpcRequest] at once.
func start_request(type: String, fields: Dictionary = {}) -> NpcRequest:
	_next_id += 1
	var req := NpcRequest.new()
	req.id = "%s-%d" % [type, _next_id]
	req.type = type
	req.final_type = FINAL_TYPES.get(type, type + ".ok")
	req.deadline_ms = Time.get_ticks_msec() + request_timeout_ms
	req.saw_connection = _online
	var message := {"v": PROTOCOL_VERSION, "id": req.id, "type": type}
	message.merge(fields)
	var encoded := NpcMsgpack.encode(message)
	if encoded.error != "":
		_finish.call_deferred(req, NpcResult.failure(req.id, "invalid_field", encoded.error))
		return req
	req.payload = encoded.bytes
	_pending[req.id] = req
	_queue.append(req)
	if _dealer.is_ready():
		_flush_queue()
	return req


## Sends any request type and waits for its final answer (await it).
func request(type: String, fields: Dictionary = {}) -> NpcResult:
	return await _wait(start_request(type, fields))


func _wait(req: NpcRequest) -> NpcResult:
	if req.done:
		return req.result
	return await req.finished


func _start_connect() -> void:
	_dealer.connect_timeout_ms = connect_timeout_ms
	_dealer.heartbeat_interval_ms = heartbeat_interval_ms
	_dealer.heartbeat_timeout_ms = heartbeat_timeout_ms
	var err := _dealer.connect_to(_host, _port, identity.to_utf8_buffer())
	if err != OK:
		_on_dealer_disconnected("cannot start connecting (error %d)" % err)


func _on_dealer_connected() -> void:
	_online = true
	_ever_connected = true
	_backoff_ms = 0
	for req: NpcRequest in _pending.values():
		req.saw_connection = true
	_flush_queue()
	connected.emit()


func _on_dealer_disconnected(reason: String) -> void:
	var was_online := _online
	_online = false
	if not _wants_connection:
		return
	if was_online:
		_backoff_ms = reconnect_min_ms
		_fail_all("disconnected", "connection lost before the reply: " + reason, false)
		disconnected.emit(reason)
	else:
		_backoff_ms = clampi(_backoff_ms * 2, reconnect_min_ms, reconnect_max_ms)
	_next_attempt_ms = Time.get_ticks_msec() + _backoff_ms


func _flush_queue() -> void:
	while not _queue.is_empty() and _dealer.is_ready():
		var req: NpcRequest = _queue.pop_front()
		if not _pending.has(req.id):
			continue  # cancelled or expired before it went out
		# Marked first: if the send drops the connection, the request fails as "disconnected".
		req.sent = true
		if not _dealer.send(req.payload):
			req.sent = false
			_queue.push_front(req)
			return


func _on_message(parts: Array) -> void:
	var decoded := NpcMsgpack.decode(parts[parts.size() - 1])
	if decoded.error != "" or typeof(decoded.value) != TYPE_DICTIONARY:
		push_warning("NpcDialogue: ignoring an unreadable reply: " + str(decoded.error))
		return
	var message: Dictionary = decoded.value
	var id := str(message.get("id", ""))
	var type := str(message.get("type", ""))
	if not _pending.has(id):
		if type == "error":
			request_failed.emit(str(message.get("code", "")), str(message.get("message", "")))
		return
	var req: NpcRequest = _pending[id]
	if type == "chunk":
		var text := str(message.get("text", ""))
		req.chunk_received.emit(text, int(message.get("seq", 0)))
		line_chunk.emit(id, text)
		return
	_pending.erase(id)
	if type == "error":
		var code := str(message.get("code", "internal"))
		_finish(req, NpcResult.failure(id, code, str(message.get("message", ""))))
	elif type == req.final_type:
		_finish(req, NpcResult.success(id, message))
	else:
		var why := "expected '%s', got '%s'" % [req.final_type, type]
		_finish(req, NpcResult.failure(id, "bad_reply", why))


func _finish(req: NpcRequest, result: NpcResult) -> void:
	if req.done:
		return
	if result.ok and req.type == "say":
		line_finished.emit(result.text, result.emotion, result.intensity)
	elif not result.ok and not (req.cancel_requested and result.error_code == "cancelled"):
		request_failed.emit(result.error_code, result.error_message)
	req.finish(result)


func _expire(now: int) -> void:
	var expired: Array[NpcRequest] = []
	for req: NpcRequest in _pending.values():
		if req.deadline_ms <= now:
			expired.append(req)
	for req in expired:
		_pending.erase(req.id)
		_queue.erase(req)
		var why := "no answer within %d ms" % request_timeout_ms
		var code := "timeout"
		if not req.saw_connection:
			code = "offline"
			why = "the server at %s was unreachable for %d ms" % [endpoint, request_timeout_ms]
		_finish(req, NpcResult.failure(req.id, code, why))


func _fail_all(code: String, why: String, include_unsent: bool) -> void:
	var failed: Array[NpcRequest] = []
	for req: NpcRequest in _pending.values():
		if req.sent or include_unsent:
			failed.append(req)
	for req in failed:
		_pending.erase(req.id)
		_queue.erase(req)
		_finish(req, NpcResult.failure(req.id, code, why))


static func _parse_endpoint(text: String) -> Dictionary:
	if not text.begins_with("tcp://"):
		return {}
	var rest := text.substr(6)
	var colon := rest.rfind(":")
	if colon <= 0 or not rest.substr(colon + 1).is_valid_int():
		return {}
	var port := rest.substr(colon + 1).to_int()
	if port < 1 or port > 65535:
		return {}
	return {"host": rest.substr(0, colon).trim_prefix("[").trim_suffix("]"), "port": port}
