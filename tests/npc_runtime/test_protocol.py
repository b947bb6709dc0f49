"""Protocol v1 rules: fixtures decode and re-encode, and every field rule raises the documented code."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest

from engine_bridge.fixtures.generate import FIXTURE_DIR, from_json
from npc_runtime.protocol import (
    ERROR_CODES,
    REPLY_TYPES,
    REQUEST_TYPES,
    Limits,
    ProtocolError,
    Say,
    decode,
    encode,
    error_message,
    parse_request,
)

INDEX = json.loads((FIXTURE_DIR / "index.json").read_text())
NAMES = [f["name"] for f in INDEX["fixtures"]]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_decodes_to_its_json_twin_and_reencodes_byte_for_byte(name: str) -> None:
    raw = (FIXTURE_DIR / f"{name}.msgpack").read_bytes()
    twin = from_json(json.loads((FIXTURE_DIR / f"{name}.json").read_text()))
    message = decode(raw)
    assert message == twin
    assert list(message) == list(twin)  # same key order
    assert encode(message) == raw


@pytest.mark.parametrize("entry", INDEX["fixtures"], ids=NAMES)
def test_request_fixtures_parse_and_reply_fixtures_have_known_types(entry: dict) -> None:
    message = decode((FIXTURE_DIR / f"{entry['name']}.msgpack").read_bytes())
    if entry["direction"] == "request":
        request = parse_request(message)
        assert request.id == message["id"]
        assert message["type"] in REQUEST_TYPES
    else:
        assert message["type"] in REPLY_TYPES
        if message["type"] == "error":
            assert message["code"] in ERROR_CODES


def test_every_error_code_has_a_fixture() -> None:
    codes = {decode((FIXTURE_DIR / f"{n}.msgpack").read_bytes()).get("code") for n in NAMES}
    assert set(ERROR_CODES) <= codes


def test_floats_are_float64_on_the_wire() -> None:
    raw = encode({"v": 1, "id": 1, "type": "chunk", "x": 0.5})
    assert b"\xcb" in raw and b"\xca" not in raw


def test_say_with_everything_parses_typed() -> None:
    raw = (FIXTURE_DIR / "say_full.msgpack").read_bytes()
    say = parse_request(decode(raw))
    assert isinstance(say, Say)
    assert say.image is not None and say.image.format == "png" and say.image.width == 2
    assert say.context["weather"] == "rain"
    assert say.options.stream is True and say.options.top_k == 40 and say.options.temperature == 0.7


def _say(**over: object) -> dict:
    message: dict = {"v": 1, "id": "a", "type": "say", "persona": "p", "session": "s", "text": "hi"}
    message.update(over)
    return {k: v for k, v in message.items() if v is not ...}


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xc1", "bad_message"),
        (b"not msgpack at all \xff", "bad_message"),
        (msgpack.packb([1, 2, 3]), "bad_message"),
        (msgpack.packb({1: 2}), "bad_message"),
        (msgpack.packb({"v": 1}) + b"\x01", "bad_message"),
        (b"\x00" * (Limits().max_message_bytes + 1), "too_large"),
    ],
)
def test_decode_rejects_bad_payloads(payload: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(payload)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        (_say(v=2), "unsupported_version", "v"),
        (_say(v=...), "unsupported_version", "v"),
        (_say(v=True), "unsupported_version", "v"),
        (_say(type="dance"), "unknown_type", "type"),
        (_say(id=...), "invalid_field", "id"),
        (_say(id=1.5), "invalid_field", "id"),
        (_say(id=True), "invalid_field", "id"),
        (_say(id="x" * 129), "invalid_field", "id"),
        (_say(text=5), "invalid_field", "text"),
        (_say(text="   "), "invalid_field", "text"),
        (_say(text="x" * 2001), "too_large", "text"),
        (_say(persona=...), "invalid_field", "persona"),
        (_say(session=["a"]), "invalid_field", "session"),
        (_say(image="abc"), "invalid_field", "image"),
        (_say(image={"format": "gif", "data": b"x"}), "invalid_field", "image.format"),
        (_say(image={"format": "png", "data": "text"}), "invalid_field", "image.data"),
        (_say(image={"format": "rgb8", "data": b"abc"}), "invalid_field", "image.width"),
        (_say(image={"format": "rgb8", "data": b"abcd", "width": 1, "height": 1}), "invalid_field", "image.data"),
        (_say(image={"format": "png", "data": b"x", "width": 4000, "height": 10}), "too_large", "image.width"),
        (_say(image={"format": "png", "data": b"x" * (4 * 1024 * 1024 + 1)}), "too_large", "image.data"),
        (_say(context=[1]), "invalid_field", "context"),
        (_say(context={"a": 1}), "invalid_field", "context.a"),
        (_say(context={str(i): "x" for i in range(65)}), "too_large", "context"),
        (_say(options={"max_tokens": 0}), "invalid_field", "options.max_tokens"),
        (_say(options={"max_tokens": "5"}), "invalid_field", "options.max_tokens"),
        (_say(options={"temperature": -1}), "invalid_field", "options.temperature"),
        (_say(options={"top_p": 0}), "invalid_field", "options.top_p"),
        (_say(options={"stream": 1}), "invalid_field", "options.stream"),
        (_say(options={"stop": "x"}), "invalid_field", "options.stop"),
        (_say(options=[]), "invalid_field", "options"),
        ({"v": 1, "id": 1, "type": "cancel"}, "invalid_field", "target"),
        ({"v": 1, "id": 1, "type": "state.set", "session": "s", "state": []}, "invalid_field", "state"),
        ({"v": 1, "id": 1, "type": "reset"}, "invalid_field", "session"),
    ],
)
def test_field_rules(message: dict, code: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(message)
    assert info.value.code == code
    assert info.value.field == field
    assert field.split(".")[0] in info.value.message or field in ("v", "type", "id")


def test_error_reply_keeps_readable_id_and_names_field() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(_say(text=5))
    assert info.value.request_id == "a"
    reply = error_message(info.value.code, info.value.message, info.value.request_id, info.value.field)
    assert reply == {
        "v": 1,
        "id": "a",
        "type": "error",
        "code": "invalid_field",
        "message": "field 'text' must be a string, got int",
        "field": "text",
    }


def test_unknown_fields_are_ignored_and_lists_of_strings_are_joined() -> None:
    say = parse_request(_say(extra={"anything": 1}, context={"nearby": ["wolf", "guard"]}))
    assert isinstance(say, Say) and say.context["nearby"] == "wolf, guard"


def test_limits_validate_and_are_configurable() -> None:
    with pytest.raises(ValueError):
        Limits(max_text_chars=0)
    small = Limits(max_text_chars=3)
    with pytest.raises(ProtocolError) as info:
        parse_request(_say(text="four"), small)
    assert info.value.code == "too_large"


def test_fixture_files_are_current(tmp_path: Path) -> None:
    from engine_bridge.fixtures.generate import render

    for name, data in render().items():
        assert (FIXTURE_DIR / name).read_bytes() == data, f"{name} is stale: run python -m engine_bridge.fixtures.generate"
