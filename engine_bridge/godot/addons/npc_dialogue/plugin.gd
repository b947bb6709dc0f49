@tool
extends EditorPlugin
## Editor side of the NPC Dialogue addon: registers the NpcDialogue autoload while the plugin is
## enabled and shows a dock to try a persona against a running server.

const AUTOLOAD_NAME := "NpcDialogue"
const AUTOLOAD_PATH := "res://addons/npc_dialogue/npc_dialogue.gd"
const NpcDock := preload("res://addons/npc_dialogue/dock/npc_dock.gd")

var _dock: Control


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD_NAME, AUTOLOAD_PATH)


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD_NAME)


func _enter_tree() -> void:
	_dock = NpcDock.new()
	_dock.name = "NPC Dialogue"
	add_control_to_dock(DOCK_SLOT_RIGHT_UL, _dock)


func _exit_tree() -> void:
	if _dock != null:
		remove_control_from_docks(_dock)
		_dock.queue_free()
		_dock = null
