@tool
class_name NpcZmtpDealer
extends RefCounted
## A ZMTP 3.1 DEALER over [StreamPeerTCP], non-blocking: call [method poll] every frame.
##
## Connects, sends the whole 64-byte greeting at once, exchanges READY (NULL mechanism), then sends
## and receives single-frame messages. Answers PING with PONG, sends its own PING when the line is
## quiet, and drops the connection when the server stays silent too long. Nothing here blocks.

## The ZMTP handshake finished; messages can flow.
signal connected
## The connection ended (or never came up); [param reason] says why.
signal disconnected(reason: String)
## A whole message arrived; [param parts] holds its frames (one for our server).
signal message_received(parts: Array)

enum State { IDLE, CONNECTING, GREETING, HANDSHAKE, CONNECTED }

## Milliseconds allowed from connect_to_host to the server's READY.
var connect_timeout_ms := 2000
## Send a PING after this long without bytes from the server (0: never).
var heartbeat_interval_ms := 2000
## Drop the connection after this long without bytes from the server.
var heartbeat_timeout_ms := 6000
## Largest frame accepted from the server.
var max_frame_bytes := 16 * 1024 * 1024

var _tcp := StreamPeerTCP.new()
var _state := State.IDLE
var _identity := PackedByteArray()
var _reader: NpcZmtp
var _peer_greeting := PackedByteArray()
var _outbox := PackedByteArray()
var _parts: Array[PackedByteArray] = []
var _started_ms := 0
var _last_received_ms := 0
var _last_ping_ms := 0


## Starts connecting; progress happens in [method poll]. Returns the error of connect_to_host.
func connect_to(host: String, port: int, identity: PackedByteArray) -> Error:
	close("reconnecting")
	_identity = identity
	_reader = NpcZmtp.new(max_frame_bytes)
	_peer_greeting = PackedByteArray()
	_outbox = PackedByteArray()
	_parts.clear()
	_tcp = StreamPeerTCP.new()
	var err := _tcp.connect_to_host(host, port)
	if err != OK:
		return err
	_tcp.set_no_delay(true)
	_state = State.CONNECTING
	_started_ms = Time.get_ticks_msec()
	_last_received_ms = _started_ms
	_last_ping_ms = _started_ms
	return OK


## True once the handshake is done and until the connection drops.
func is_ready() -> bool:
	return _state == State.CONNECTED


## True while connecting or connected.
func is_active() -> bool:
	return _state != State.IDLE


## Queues one single-frame message; false when not connected.
func send(payload: PackedByteArray) -> bool:
	if _state != State.CONNECTED:
		return false
	_outbox.append_array(NpcZmtp.message(payload))
	_flush()
	return true


## Drives the connection: call once per frame.
func poll() -> void:
	if _state == State.IDLE:
		return
	_tcp.poll()
	var status := _tcp.get_status()
	var now := Time.get_ticks_msec()
	if status == StreamPeerTCP.STATUS_ERROR or status == StreamPeerTCP.STATUS_NONE:
		close("connection refused or lost")
		return
	if status == StreamPeerTCP.STATUS_CONNECTING or _state == State.CONNECTING:
		if status == StreamPeerTCP.STATUS_CONNECTED:
			# libzmq waits for the whole greeting: put_data writes all 64 bytes in one go.
			_tcp.put_data(NpcZmtp.greeting())
			_state = State.GREETING
		elif now - _started_ms > connect_timeout_ms:
			close("no connection within %d ms" % connect_timeout_ms)
		return
	if _state != State.CONNECTED and now - _started_ms > connect_timeout_ms:
		close("no ZMTP handshake within %d ms" % connect_timeout_ms)
		return
	_receive(now)
	if _state == State.CONNECTED:
		_heartbeat(now)
		_flush()


## Closes the connection at once; emits [signal disconnected] when one was active.
func close(reason: String) -> void:
	if _state == State.IDLE:
		return
	_state = State.IDLE
	_tcp.disconnect_from_host()
	disconnected.emit(reason)


func _receive(now: int) -> void:
	var available := _tcp.get_available_bytes()
	if available <= 0:
		return
	var got: Array = _tcp.get_partial_data(available)
	if got[0] != OK:
		close("receive failed (error %d)" % got[0])
		return
	var bytes: PackedByteArray = got[1]
	_last_received_ms = now
	if _state == State.GREETING:
		var need := NpcZmtp.GREETING_BYTES - _peer_greeting.size()
		_peer_greeting.append_array(bytes.slice(0, need))
		bytes = bytes.slice(need)
		if _peer_greeting.size() < NpcZmtp.GREETING_BYTES:
			return
		var problem := NpcZmtp.check_greeting(_peer_greeting)
		if problem != "":
			close(problem)
			return
		_tcp.put_data(NpcZmtp.ready_command("DEALER", _identity))
		_state = State.HANDSHAKE
	_reader.feed(bytes)
	_take_frames()


func _take_frames() -> void:
	while _state != State.IDLE:
		var frame := _reader.next_frame()
		if frame.is_empty():
			if _reader.error != "":
				close(_reader.error)
			return
		var flags: int = frame.flags
		var body: PackedByteArray = frame.body
		if flags & NpcZmtp.FLAG_COMMAND:
			_on_command(body)
		elif _state == State.CONNECTED:
			_parts.append(body)
			if (flags & NpcZmtp.FLAG_MORE) == 0:
				var parts := _parts.duplicate()
				_parts.clear()
				message_received.emit(parts)
		else:
			close("server sent a message before READY")


func _on_command(body: PackedByteArray) -> void:
	var command_name := NpcZmtp.command_name_of(body)
	var data := NpcZmtp.command_data_of(body)
	match command_name:
		"READY":
			if _state == State.HANDSHAKE:
				_state = State.CONNECTED
				connected.emit()
		"PING":
			_outbox.append_array(NpcZmtp.pong(data.slice(2)))
		"ERROR":
			var reason := data.slice(1).get_string_from_utf8() if data.size() > 1 else "no reason"
			close("server sent ERROR: " + reason)
		_:
			pass  # PONG and other commands only show that the line is alive.


func _heartbeat(now: int) -> void:
	if heartbeat_interval_ms <= 0:
		return
	var quiet_ms := now - _last_received_ms
	if quiet_ms > heartbeat_timeout_ms:
		close("no bytes from the server for %d ms" % quiet_ms)
	elif quiet_ms >= heartbeat_interval_ms and now - _last_ping_ms >= heartbeat_interval_ms:
		_last_ping_ms = now
		# TTL 0: with a TTL, libzmq drops a client that sends nothing for that long while it streams.
		_outbox.append_array(NpcZmtp.ping(0, PackedByteArray()))


func _flush() -> void:
	if _outbox.is_empty() or _state != State.CONNECTED:
		return
	var result: Array = _tcp.put_partial_data(_outbox)
	if result[0] != OK:
		close("send failed (error %d)" % result[0])
		return
	var sent: int = result[1]
	_outbox = _outbox.slice(sent)
