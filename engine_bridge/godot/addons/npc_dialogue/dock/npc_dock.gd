@tool
extends VBoxContainer
## The editor dock: connect to a server, pick a persona, say something, read the streamed answer
## with its emotion. It runs its own NpcDialogueClient (the autoload only runs in the game).

var _client: NpcDialogueClient
var _endpoint_edit := LineEdit.new()
var _connect_button := Button.new()
var _persona_menu := OptionButton.new()
var _session_edit := LineEdit.new()
var _text_edit := LineEdit.new()
var _say_button := Button.new()
var _cancel_button := Button.new()
var _status_label := Label.new()
var _line_label := RichTextLabel.new()
var _current_id := ""


func _ready() -> void:
	_client = NpcDialogueClient.new()
	_client.run_in_editor = true
	_client.auto_connect = false
	_client.request_timeout_ms = 60000
	add_child(_client)
	_client.connected.connect(_on_connected)
	_client.disconnected.connect(func(reason: String) -> void: _set_status("offline: " + reason))
	_client.line_chunk.connect(_on_line_chunk)
	_build()


func _build() -> void:
	_endpoint_edit.text = _client.endpoint
	_connect_button.text = "Connect"
	_connect_button.pressed.connect(_on_connect_pressed)
	_add_row("Server", _endpoint_edit, _connect_button)
	_persona_menu.add_item("(connect to list personas)")
	_add_row("Persona", _persona_menu)
	_session_edit.text = "editor:try"
	_add_row("Session", _session_edit)
	_text_edit.placeholder_text = "What the player says"
	_text_edit.text_submitted.connect(func(_text: String) -> void: _on_say_pressed())
	_add_row("Player", _text_edit)
	_say_button.text = "Say"
	_say_button.pressed.connect(_on_say_pressed)
	_cancel_button.text = "Cancel"
	_cancel_button.pressed.connect(func() -> void: _client.cancel(_current_id))
	_add_row("", _say_button, _cancel_button)
	_status_label.text = "Start the server (npc-runtime serve), then Connect."
	_status_label.autowrap_mode = TextServer.AUTOWRAP_WORD_SMART
	add_child(_status_label)
	_line_label.fit_content = true
	_line_label.custom_minimum_size = Vector2(0, 120)
	add_child(_line_label)


func _add_row(title: String, control: Control, extra: Control = null) -> void:
	var row := HBoxContainer.new()
	var label := Label.new()
	label.text = title
	label.custom_minimum_size = Vector2(64, 0)
	row.add_child(label)
	control.size_flags_horizontal = Control.SIZE_EXPAND_FILL
	row.add_child(control)
	if extra != null:
		row.add_child(extra)
	add_child(row)


func _set_status(text: String) -> void:
	_status_label.text = text


func _on_connect_pressed() -> void:
	_set_status("connecting...")
	_client.connect_to_server(_endpoint_edit.text.strip_edges())


func _on_connected() -> void:
	var result := await _client.hello()
	if not result.ok:
		_set_status("hello failed: %s %s" % [result.error_code, result.error_message])
		return
	_persona_menu.clear()
	for persona: Variant in result.message.get("personas", []):
		_persona_menu.add_item(str(persona))
	var provider := str(result.message.get("provider", ""))
	_set_status("connected: %d personas, %s" % [_persona_menu.item_count, provider])


func _on_say_pressed() -> void:
	var text := _text_edit.text.strip_edges()
	if text.is_empty() or not _client.is_online() or _persona_menu.selected < 0:
		_set_status("connect and type something first")
		return
	var persona := _persona_menu.get_item_text(_persona_menu.selected)
	_line_label.text = ""
	var req := _client.start_say(persona, _session_edit.text.strip_edges(), text)
	_current_id = req.id
	var result: NpcResult = req.result
	if not req.done:
		result = await req.finished
	if result.ok:
		_line_label.text = result.text
		_set_status("emotion: %s (%.2f)" % [result.emotion, result.intensity])
	else:
		_set_status("%s: %s" % [result.error_code, result.error_message])


func _on_line_chunk(request_id: String, text: String) -> void:
	if request_id == _current_id:
		_line_label.text += text
