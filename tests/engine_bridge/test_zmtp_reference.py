"""The Python ZMTP reference against libzmq (pyzmq): the bytes it pins are the bytes libzmq accepts and sends."""

from __future__ import annotations

import json
import socket

import pytest
import zmq

from engine_bridge import zmtp_reference as ref
from npc_runtime.errors import TransportError

TIMEOUT_MS = 5000


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def router(zctx):
    sock = zctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    sock.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, port
    sock.close(linger=0)


def test_greeting_layout() -> None:
    g = ref.greeting()
    assert len(g) == 64
    assert g[0] == 0xFF and g[9] == 0x7F
    assert g[10:12] == b"\x03\x01"
    assert g[12:32] == b"NULL" + b"\x00" * 16
    assert g[32:] == b"\x00" * 32
    assert ref.parse_greeting(g) == (3, 1, "NULL")


def test_parse_greeting_rejects_other_mechanisms_and_garbage() -> None:
    curve = ref.greeting()[:12] + b"CURVE".ljust(20, b"\x00") + b"\x00" * 32
    with pytest.raises(TransportError, match="CURVE"):
        ref.parse_greeting(curve)
    with pytest.raises(TransportError, match="signature"):
        ref.parse_greeting(b"GET / HTTP/1.1\r\n".ljust(64, b" "))
    with pytest.raises(TransportError, match="ZMTP 2"):
        ref.parse_greeting(ref.greeting()[:10] + b"\x02\x00" + ref.greeting()[12:])


def test_frames_short_and_long() -> None:
    assert ref.message_frame(b"abc") == b"\x00\x03abc"
    assert ref.message_frame(b"abc", more=True) == b"\x01\x03abc"
    assert ref.message_frame(b"x" * 255)[:2] == b"\x00\xff"
    long = ref.message_frame(b"x" * 256)
    assert long[:9] == b"\x02" + (256).to_bytes(8, "big") and len(long) == 265
    assert ref.ping_command(0, b"ab") == b"\x04\x09\x04PING\x00\x00ab"
    assert ref.pong_command(b"ab") == b"\x04\x07\x04PONGab"


def test_frame_reader_takes_any_split() -> None:
    stream = ref.message_frame(b"a" * 300) + ref.ping_command(5, b"c") + ref.message_frame(b"", more=False)
    reader = ref.FrameReader()
    frames: list[ref.Frame] = []
    for i in range(len(stream)):  # one byte at a time: the worst split a TCP stream can give
        reader.feed(stream[i : i + 1])
        frames.extend(reader.frames())
    assert [(f.flags, len(f.body)) for f in frames] == [(0x02, 300), (0x04, 8), (0x00, 0)]
    assert frames[1].is_command and not frames[0].is_command


def test_frame_reader_rejects_reserved_flags_and_huge_frames() -> None:
    reader = ref.FrameReader(max_frame_bytes=10)
    reader.feed(b"\x80\x00")
    with pytest.raises(TransportError, match="reserved"):
        list(reader.frames())
    reader = ref.FrameReader(max_frame_bytes=10)
    reader.feed(b"\x02" + (11).to_bytes(8, "big"))
    with pytest.raises(TransportError, match="limit"):
        list(reader.frames())


def test_identity_rules() -> None:
    with pytest.raises(ValueError):
        ref.ready_command("DEALER", b"\x00abc")
    props = ref.parse_ready(ref.ready_command("DEALER", b"npc-7")[2:])
    assert props == {"Socket-Type": b"DEALER", "Identity": b"npc-7"}


def test_vectors_file_is_current() -> None:
    on_disk = json.loads(ref.VECTORS_PATH.read_text(encoding="utf-8"))
    assert on_disk == ref.vectors(), "run: python -m engine_bridge.zmtp_reference --write"


def test_vectors_message_short_is_the_hello_fixture(fixtures_dir) -> None:
    by_name = {v["name"]: v for v in ref.vectors()["vectors"]}
    assert bytes.fromhex(by_name["message_short"]["payload"]) == (fixtures_dir / "hello.msgpack").read_bytes()


def test_dealer_talks_to_libzmq_router(router) -> None:
    sock, port = router
    with ref.ReferenceDealer("127.0.0.1", port, identity=b"npc-client-1", timeout_ms=TIMEOUT_MS) as dealer:
        dealer.handshake()
        assert dealer.peer_properties["Socket-Type"] == b"ROUTER"
        payload = b"\x81\xa1k\xa1v"
        dealer.send(payload)
        assert sock.recv_multipart() == [b"npc-client-1", payload]
        big = bytes(range(256)) * 40  # long frame both ways
        sock.send_multipart([b"npc-client-1", big])
        assert dealer.recv() == [big]
        dealer.send(big)
        assert sock.recv_multipart() == [b"npc-client-1", big]


def test_libzmq_answers_our_ping(router) -> None:
    _, port = router
    with ref.ReferenceDealer("127.0.0.1", port, timeout_ms=TIMEOUT_MS) as dealer:
        dealer.handshake()
        dealer.send_raw(ref.ping_command(10, b"npc1"))
        assert dealer.wait_pong() == b"npc1"


def test_reconnect_with_same_identity_is_handed_over(router) -> None:
    sock, port = router
    first = ref.ReferenceDealer("127.0.0.1", port, identity=b"npc-fixed", timeout_ms=TIMEOUT_MS)
    first.handshake()
    first.send(b"one")
    assert sock.recv_multipart() == [b"npc-fixed", b"one"]
    # The old connection is still open when the new one arrives: without ROUTER_HANDOVER libzmq would
    # silently drop the newcomer and keep routing replies to the stale one.
    with ref.ReferenceDealer("127.0.0.1", port, identity=b"npc-fixed", timeout_ms=TIMEOUT_MS) as second:
        second.handshake()
        second.send(b"two")
        assert sock.recv_multipart() == [b"npc-fixed", b"two"]
        sock.send_multipart([b"npc-fixed", b"back"])
        assert second.recv() == [b"back"]
    first.close()


def test_we_send_what_libzmq_sends_as_a_dealer(zctx) -> None:
    """A libzmq DEALER's own greeting tail, READY and message frame equal the reference's bytes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_MS / 1000)
    port = listener.getsockname()[1]
    dealer = zctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.ROUTING_ID, b"npc-client-1")
    try:
        dealer.connect(f"tcp://127.0.0.1:{port}")
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT_MS / 1000)
            # libzmq sends the first bytes of its greeting and then waits for ours before the rest.
            conn.sendall(ref.greeting())
            theirs = b""
            while len(theirs) < 64:
                chunk = conn.recv(64 - len(theirs))
                assert chunk, "libzmq closed during the greeting"
                theirs += chunk
            # Bytes 1..8 are padding libzmq fills for ZMTP 1.0 peers; from the version on they must match.
            assert theirs[0] == 0xFF and theirs[9] == 0x7F
            assert theirs[10:] == ref.greeting()[10:]
            conn.sendall(ref.ready_command("ROUTER"))
            dealer.send(b"\x81\xa1k\xa1v")
            reader = ref.FrameReader()
            frames: list[ref.Frame] = []
            while len(frames) < 2:
                data = conn.recv(4096)
                assert data, "libzmq closed during the handshake"
                reader.feed(data)
                frames.extend(reader.frames())
            ready = ref.ready_command("DEALER", b"npc-client-1")
            assert bytes((frames[0].flags, len(frames[0].body))) + frames[0].body == ready
            message = bytes((frames[1].flags, len(frames[1].body))) + frames[1].body
            assert message == ref.message_frame(b"\x81\xa1k\xa1v")
    finally:
        dealer.close(linger=0)
        listener.close()
