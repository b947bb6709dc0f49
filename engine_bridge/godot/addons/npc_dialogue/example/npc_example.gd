extends Control
## Example: talk to one NPC. Type a line, press Say; the answer streams in with its emotion, and a
## screenshot of this viewport goes with every line as what the NPC sees.

@export var persona := "blacksmith"
@export var session := "example:blacksmith"
@export var attach_screenshot := true

var _npc: NpcDialogueClient
var _input := LineEdit.new()
var _say_button := Button.new()
var _line := Label.new()
var _status := Label.new()
var _current_id := ""


func _ready() -> void:
	# The plugin's autoload when enabled; otherwise a client of our own, so the scene runs either way.
	_npc = get_node_or_null("/root/NpcDialogue") as NpcDialogueClient
	if _npc == null:
		_npc = NpcDialogueClient.new()
		add_child(_npc)
	_npc.connected.connect(func() -> void: _status.text = "connected")
	_npc.disconnected.connect(func(reason: String) -> void: _status.text = "offline: " + reason)
	_npc.line_chunk.connect(_on_line_chunk)
	_npc.request_failed.connect(_on_request_failed)
	_build_ui()


func _build_ui() -> void:
	var box := VBoxContainer.new()
	box.set_anchors_and_offsets_preset(Control.PRESET_FULL_RECT, Control.PRESET_MODE_MINSIZE, 16)
	add_child(box)
	_status.text = "connecting to %s ..." % _npc.endpoint
	box.add_child(_status)
	_input.text = "Good evening! Do you sell swords?"
	_input.text_submitted.connect(func(_text: String) -> void: _on_say())
	box.add_child(_input)
	_say_button.text = "Say to %s" % persona
	_say_button.pressed.connect(_on_say)
	box.add_child(_say_button)
	_line.autowrap_mode = TextServer.AUTOWRAP_WORD_SMART
	box.add_child(_line)


func _on_say() -> void:
	var text := _input.text.strip_edges()
	if text.is_empty():
		return
	var image := NpcScreenshot.capture(get_viewport(), "jpeg") if attach_screenshot else {}
	var context := {"time_of_day": "evening", "location": "forge"}
	_line.text = ""
	var req := _npc.start_say(persona, session, text, {"max_tokens": 32}, context, image)
	_current_id = req.id
	var result: NpcResult = req.result
	if not req.done:
		result = await req.finished
	if result.ok:
		_line.text = "%s\n[%s %.2f]" % [result.text, result.emotion, result.intensity]


func _on_line_chunk(request_id: String, text: String) -> void:
	if request_id == _current_id:
		_line.text += text


func _on_request_failed(code: String, message: String) -> void:
	_status.text = "%s: %s" % [code, message]
