"""The real server on a random loopback port with the tiny bundle: every request type and every error code."""

from __future__ import annotations

import io

import msgpack
import pytest
from PIL import Image

from npc_runtime.emotion import EMOTIONS
from npc_runtime.scheduler import GenOptions, SchedulerConfig
from npc_runtime.server import ServerConfig


def _say(rid: object, text: str = "Do you sell swords?", **extra: object) -> dict:
    message = {"v": 1, "id": rid, "type": "say", "persona": "blacksmith", "session": "t:1", "text": text}
    message.update(extra)
    return message


def _png(width: int = 32, height: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def _alive(dealer) -> None:
    dealer.send({"v": 1, "id": "ping", "type": "hello"})
    assert dealer.recv_until("ping", ("welcome",))[-1]["type"] == "welcome"


def test_hello_answers_welcome(server, dealer) -> None:
    dealer.send({"v": 1, "id": 1, "type": "hello"})
    welcome = dealer.recv()
    assert welcome["type"] == "welcome" and welcome["id"] == 1
    assert welcome["protocol"] == [1]
    assert welcome["provider"] == "CPUExecutionProvider"
    assert welcome["model"]["kind"] == "role-model"
    assert "blacksmith" in welcome["personas"] and len(welcome["personas"]) >= 8
    assert welcome["emotions"] == list(EMOTIONS)
    assert welcome["limits"]["max_text_chars"] == 2000
    assert welcome["server"]["name"] == "npc-runtime"


def test_say_without_stream_gives_one_reply(server, dealer) -> None:
    dealer.send(_say("a", options={"max_tokens": 8, "seed": 1}))
    messages = dealer.recv_until("a")
    assert [m["type"] for m in messages] == ["reply"]
    reply = messages[0]
    assert isinstance(reply["text"], str)
    assert reply["persona"] == "blacksmith" and reply["session"] == "t:1"
    assert reply["emotion"]["label"] in EMOTIONS
    assert 0.0 <= reply["emotion"]["intensity"] <= 1.0
    assert set(reply["emotion"]["scores"]) == set(EMOTIONS)
    assert abs(sum(reply["emotion"]["scores"].values()) - 1.0) < 1e-6
    assert 0 < reply["usage"]["completion_tokens"] <= 8
    assert reply["usage"]["prompt_tokens"] > 0
    timing = reply["timing_ms"]
    assert 0 <= timing["queue"] <= timing["first_token"] <= timing["total"]


def test_streamed_chunks_concatenate_to_the_reply(server_factory, tmp_path, dealer_factory) -> None:
    running = server_factory(tmp_path, ServerConfig(poll_timeout_ms=50, defaults=GenOptions(ignore_eos=True)))
    d = dealer_factory(running.endpoint)
    d.send(_say("s", options={"max_tokens": 20, "stream": True, "seed": 3}))
    messages = d.recv_until("s")
    chunks = [m for m in messages if m["type"] == "chunk"]
    assert messages[-1]["type"] == "reply"
    assert chunks, "a streamed say sends chunks"
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert "".join(c["text"] for c in chunks) == messages[-1]["text"]
    assert messages[-1]["usage"]["completion_tokens"] == 20


def test_same_seed_same_reply_and_history_is_used(server, dealer) -> None:
    dealer.send({"v": 1, "id": "r0", "type": "reset", "session": "t:1"})
    dealer.recv_until("r0", ("reset.ok",))
    opts = {"max_tokens": 12, "seed": 42, "temperature": 0.9}
    dealer.send(_say("x1", options=opts, session="seed-a"))
    dealer.send(_say("x2", options=opts, session="seed-b"))
    first = dealer.recv_until("x1")[-1]
    second = dealer.recv_until("x2")[-1]
    assert first["text"] == second["text"]
    dealer.send({"v": 1, "id": "g", "type": "state.get", "session": "seed-a"})
    state = dealer.recv_until("g", ("state.get.ok",))[-1]["state"]
    assert state["turns"][-1]["player"] == "Do you sell swords?"
    assert state["turns"][-1]["npc"] == first["text"]


def test_req_envelope_gets_exactly_one_message_per_request(server, dealer_factory) -> None:
    req = dealer_factory(server.endpoint, req=True)
    req.send({"v": 1, "id": "h", "type": "hello"})
    assert req.recv()["type"] == "welcome"
    req.send(_say("q", options={"stream": True, "max_tokens": 6}))
    assert req.recv()["type"] == "reply"  # REQ would fail to receive a second message if chunks were sent
    req.send({"v": 2, "id": "bad", "type": "hello"})
    assert req.recv()["code"] == "unsupported_version"


def test_cancel_ends_the_target_and_others_continue(server_factory, tmp_path, dealer_factory) -> None:
    running = server_factory(tmp_path, ServerConfig(poll_timeout_ms=50, defaults=GenOptions(ignore_eos=True)))
    d = dealer_factory(running.endpoint)
    d.send(_say("long", options={"max_tokens": 128, "stream": True, "seed": 1}))
    d.send(_say("other", options={"max_tokens": 16, "seed": 2}, session="t:2"))
    first = d.recv()  # wait until generation has started
    assert first["id"] in ("long", "other")
    d.send({"v": 1, "id": "c", "type": "cancel", "target": "long"})
    seen: dict[str, list[dict]] = {"long": [], "other": [], "c": []}
    seen[first["id"]].append(first)
    while not (seen["c"] and seen["long"] and seen["long"][-1]["type"] in ("reply", "error") and seen["other"]
               and seen["other"][-1]["type"] in ("reply", "error")):
        message = d.recv()
        seen[message["id"]].append(message)
    assert seen["c"][-1]["type"] == "cancel.ok" and seen["c"][-1]["found"] is True  # 128 tokens outlast the cancel
    assert seen["long"][-1]["type"] == "error" and seen["long"][-1]["code"] == "cancelled"
    assert seen["other"][-1]["type"] == "reply"
    d.send({"v": 1, "id": "c2", "type": "cancel", "target": "nothing-running"})
    assert d.recv_until("c2", ("cancel.ok",))[-1]["found"] is False


def test_reset_forgets_history(server, dealer) -> None:
    dealer.send(_say("a", options={"max_tokens": 4}))
    dealer.recv_until("a")
    dealer.send({"v": 1, "id": "r", "type": "reset", "session": "t:1"})
    assert dealer.recv_until("r", ("reset.ok",))[-1]["existed"] is True
    dealer.send({"v": 1, "id": "g", "type": "state.get", "session": "t:1"})
    assert dealer.recv_until("g", ("state.get.ok",))[-1]["state"]["turns"] == []


def test_state_round_trips_and_survives_a_restart(server_factory, tmp_path, dealer_factory) -> None:
    first = server_factory(tmp_path)
    d = dealer_factory(first.endpoint)
    d.send(_say("a", options={"max_tokens": 5}, session="save1:blacksmith"))
    d.recv_until("a")
    d.send({"v": 1, "id": "g1", "type": "state.get", "session": "save1:blacksmith"})
    state = d.recv_until("g1", ("state.get.ok",))[-1]["state"]
    assert len(state["turns"]) == 1
    state["memory"] = {"quest": "accepted", "ünï": "cødé"}
    d.send({"v": 1, "id": "s1", "type": "state.set", "session": "save1:blacksmith", "state": state})
    assert d.recv_until("s1", ("state.set.ok",))[-1]["type"] == "state.set.ok"
    first.stop()

    second = server_factory(tmp_path)
    d2 = dealer_factory(second.endpoint)
    d2.send({"v": 1, "id": "g2", "type": "state.get", "session": "save1:blacksmith"})
    assert d2.recv_until("g2", ("state.get.ok",))[-1]["state"] == state
    d2.send({"v": 1, "id": "s2", "type": "state.set", "session": "x", "state": {"format": "nope"}})
    error = d2.recv_until("s2", ("state.set.ok",))[-1]
    assert error["type"] == "error" and error["code"] == "invalid_field" and error["field"].startswith("state")


def test_personas_lists_public_fields(server, dealer) -> None:
    dealer.send({"v": 1, "id": "p", "type": "personas"})
    cards = dealer.recv_until("p", ("personas.ok",))[-1]["personas"]
    ids = {c["id"] for c in cards}
    assert {"blacksmith", "merchant", "guard", "innkeeper", "healer"} <= ids
    assert all(c["name"] and c["speaking_style"] for c in cards)


def test_image_is_accepted_and_bad_image_is_named(server, dealer) -> None:
    dealer.send(_say("img", image={"format": "png", "data": _png(), "width": 32, "height": 24},
                     options={"max_tokens": 4}, context={"weather": "rain", "nearby": ["wolf"]}))
    assert dealer.recv_until("img")[-1]["type"] == "reply"
    dealer.send(_say("bad", image={"format": "png", "data": b"\x89PNG but not really"}))
    error = dealer.recv_until("bad")[-1]
    assert error["type"] == "error" and error["code"] == "invalid_field" and error["field"] == "image.data"
    dealer.send(_say("lie", image={"format": "jpeg", "data": _png()}))
    error = dealer.recv_until("lie")[-1]
    assert error["code"] == "invalid_field" and "PNG" in error["message"]
    _alive(dealer)


@pytest.mark.parametrize(
    ("payload", "code", "has_id"),
    [
        (b"\xde\xad\xbe\xef garbage", "bad_message", False),
        (msgpack.packb(["a", "list"]), "bad_message", False),
        (msgpack.packb({"v": 2, "id": "e1", "type": "hello"}), "unsupported_version", True),
        (msgpack.packb({"v": 1, "id": "e2", "type": "dance"}), "unknown_type", True),
        (msgpack.packb(_say("e3", text=12)), "invalid_field", True),
        (msgpack.packb({**_say("e4"), "persona": "dragon"}), "unknown_persona", True),
        (msgpack.packb(_say("e5", text="x" * 2001)), "too_large", True),
        (msgpack.packb(_say("e6", options={"top_p": 7})), "invalid_field", True),
    ],
)
def test_bad_input_gets_an_error_and_the_server_keeps_serving(server, dealer, payload, code, has_id) -> None:
    dealer.send_raw(payload)
    error = dealer.recv()
    assert error["type"] == "error" and error["code"] == code
    assert ("id" in error) == has_id
    assert error["message"]
    _alive(dealer)


def test_nine_megabyte_message_is_too_large(server, dealer) -> None:
    blob = msgpack.packb({"v": 1, "id": "big", "type": "say", "pad": b"\0" * (9 * 1024 * 1024)})
    dealer.send_raw(blob)
    error = dealer.recv()
    assert error["code"] == "too_large"
    _alive(dealer)


def test_multi_frame_envelope_is_bad_message(server, dealer) -> None:
    dealer.sock.send_multipart([b"one", b"two", b"three"])
    assert dealer.recv()["code"] == "bad_message"
    _alive(dealer)


def test_overloaded_when_the_queue_is_full(server_factory, tmp_path, dealer_factory) -> None:
    config = ServerConfig(
        poll_timeout_ms=50,
        scheduler=SchedulerConfig(max_batch=1, max_queue=1, max_admit_per_tick=1),
        defaults=GenOptions(ignore_eos=True),
    )
    running = server_factory(tmp_path, config)
    d = dealer_factory(running.endpoint)
    for i in range(12):
        d.send(_say(f"o{i}", options={"max_tokens": 64}, session=f"o{i}"))
    finals = {}
    while len(finals) < 12:
        message = d.recv()
        if message["type"] in ("reply", "error"):
            finals[message["id"]] = message
    codes = [m.get("code") for m in finals.values() if m["type"] == "error"]
    assert "overloaded" in codes
    assert set(codes) <= {"overloaded"}
    assert any(m["type"] == "reply" for m in finals.values())


def test_deadline_answers_timeout(server_factory, tmp_path, dealer_factory) -> None:
    config = ServerConfig(
        poll_timeout_ms=50,
        scheduler=SchedulerConfig(max_batch=1, max_queue=8),
        defaults=GenOptions(ignore_eos=True),
    )
    running = server_factory(tmp_path, config)
    d = dealer_factory(running.endpoint)
    d.send(_say("slow", options={"max_tokens": 128}, session="a"))
    d.send(_say("late", options={"max_tokens": 8, "timeout_ms": 1}, session="b"))
    assert d.recv_until("late")[-1]["code"] == "timeout"
    assert d.recv_until("slow")[-1]["type"] == "reply"


def test_model_failure_answers_internal_and_the_server_keeps_serving(server, dealer, monkeypatch) -> None:
    from npc_runtime.errors import InferenceError

    def broken(*args, **kwargs):
        raise InferenceError("decoder.onnx failed: simulated")

    monkeypatch.setattr(server.server.engine, "prefill", broken)
    dealer.send(_say("boom", options={"max_tokens": 4}))
    error = dealer.recv_until("boom")[-1]
    assert error["type"] == "error" and error["code"] == "internal" and "simulated" in error["message"]
    monkeypatch.undo()
    dealer.send(_say("fine", options={"max_tokens": 4}))
    assert dealer.recv_until("fine")[-1]["type"] == "reply"
