@tool
class_name NpcRequest
extends RefCounted
## One request in flight: its id and a [signal finished] signal to await.
##
## [code]var result: NpcResult = await request.finished[/code] (or check [member done] first).

## Emitted once, when the request ends; never during the call that created the request.
signal finished(result: NpcResult)
## Emitted for each streamed piece of a say.
signal chunk_received(text: String, seq: int)

## The request id, echoed by every reply.
var id := ""
## The request type ("say", "hello", ...).
var type := ""
## True once [signal finished] was emitted.
var done := false
## The outcome, set when [member done].
var result: NpcResult

var payload := PackedByteArray()
var final_type := ""
var deadline_ms := 0
var sent := false
var saw_connection := false
var cancel_requested := false


func finish(outcome: NpcResult) -> void:
	if done:
		return
	done = true
	result = outcome
	finished.emit(outcome)
