@tool
class_name NpcResult
extends RefCounted
## How one request ended: [member ok] with the server's final [member message], or an error.
##
## For a [code]say[/code], [member text], [member emotion] and [member intensity] hold the line.
## Error codes are the server's (protocol v1) plus three of the client's own: "disconnected" (the
## connection dropped while waiting), "offline" (the server was never reachable before the
## timeout) and "bad_reply" (an answer of the wrong type).

## True when the request succeeded.
var ok := false
## The request id.
var request_id := ""
## The final reply message as decoded (welcome, reply, cancel.ok, ...); {} on error.
var message := {}
## The error code when not ok ("cancelled", "unknown_persona", "timeout", ...).
var error_code := ""
## What went wrong, in words.
var error_message := ""


## The NPC's line (say only).
var text: String:
	get:
		return str(message.get("text", ""))

## The emotion label of the line (say only): anger, disgust, fear, joy, sadness, surprise, neutral.
var emotion: String:
	get:
		return str(message.get("emotion", {}).get("label", "neutral"))

## How strong the emotion is, 0..1 (say only).
var intensity: float:
	get:
		return float(message.get("emotion", {}).get("intensity", 0.0))


static func success(id: String, reply: Dictionary) -> NpcResult:
	var result := NpcResult.new()
	result.ok = true
	result.request_id = id
	result.message = reply
	return result


static func failure(id: String, code: String, why: String) -> NpcResult:
	var result := NpcResult.new()
	result.request_id = id
	result.error_code = code
	result.error_message = why
	return result
