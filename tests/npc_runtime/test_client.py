"""The Python clients against the real server: blocking, streaming, asyncio, errors, offline and reconnect."""

from __future__ import annotations

import asyncio
import socket

import pytest

from npc_runtime.client import AsyncNpcClient, NpcClient
from npc_runtime.errors import RequestFailed, ServerOffline
from npc_runtime.scheduler import GenOptions
from npc_runtime.server import ServerConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_blocking_client_covers_every_request(server) -> None:
    with NpcClient(server.endpoint, timeout_ms=10_000) as client:
        welcome = client.hello()
        assert welcome["type"] == "welcome"
        assert {p["id"] for p in client.personas()} == set(welcome["personas"])
        reply = client.say("guard", "c:1", "Halt! Who goes there?", max_tokens=6, seed=5)
        assert reply["type"] == "reply" and reply["persona"] == "guard"
        state = client.get_state("c:1")
        assert len(state["turns"]) == 1
        assert client.reset("c:1") is True
        client.set_state("c:1", state)
        assert client.get_state("c:1") == state
        assert client.cancel("not-running") is False


def test_stream_yields_chunks_then_reply(server_factory, tmp_path) -> None:
    running = server_factory(tmp_path, ServerConfig(poll_timeout_ms=50, defaults=GenOptions(ignore_eos=True)))
    with NpcClient(running.endpoint) as client:
        messages = list(client.stream("merchant", "c:2", "What do you sell?", max_tokens=12, seed=1))
    assert messages[-1]["type"] == "reply"
    assert all(m["type"] == "chunk" for m in messages[:-1]) and len(messages) > 1
    assert "".join(m["text"] for m in messages[:-1]) == messages[-1]["text"]


def test_cancel_while_streaming(server_factory, tmp_path) -> None:
    running = server_factory(tmp_path, ServerConfig(poll_timeout_ms=50, defaults=GenOptions(ignore_eos=True)))
    with NpcClient(running.endpoint) as client:
        stream = client.stream("bard", "c:3", "Sing!", max_tokens=128, request_id="song")
        first = next(stream)
        assert first["type"] == "chunk"
        assert client.cancel("song") is True
        with pytest.raises(RequestFailed) as info:
            for _ in stream:
                pass
        assert info.value.code == "cancelled"


def test_error_reply_raises_request_failed(server) -> None:
    with NpcClient(server.endpoint) as client:
        with pytest.raises(RequestFailed) as info:
            client.say("dragon", "c", "hi")
        assert info.value.code == "unknown_persona"
        assert client.hello()["type"] == "welcome"  # still serving


def test_offline_server_raises_after_retries() -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    with NpcClient(endpoint, timeout_ms=150, retries=2) as client:
        with pytest.raises(ServerOffline) as info:
            client.hello()
    assert "3 attempts" in str(info.value) and endpoint in str(info.value)


def test_client_reconnects_after_server_restart(tiny_engine, tmp_path) -> None:
    from npc_runtime.personas import PersonaPack, default_pack_dir
    from npc_runtime.server import NpcServer
    from npc_runtime.sessions import SessionStore
    import threading

    endpoint = f"tcp://127.0.0.1:{_free_port()}"

    def start() -> tuple[NpcServer, SessionStore, threading.Thread]:
        store = SessionStore(tmp_path / "s.sqlite3")
        srv = NpcServer(tiny_engine, PersonaPack.load(default_pack_dir()), store, ServerConfig(poll_timeout_ms=50))
        srv.bind(endpoint)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        return srv, store, thread

    def stop(parts: tuple[NpcServer, SessionStore, threading.Thread]) -> None:
        parts[0].stop()
        parts[2].join(10)
        parts[0].close()
        parts[1].close()

    first = start()
    with NpcClient(endpoint, timeout_ms=3000, retries=2) as client:
        assert client.hello()["type"] == "welcome"
        stop(first)
        second = start()
        try:
            assert client.hello()["type"] == "welcome"
        finally:
            stop(second)


def test_async_client(server) -> None:
    async def talk() -> tuple[dict, list[dict]]:
        async with AsyncNpcClient(server.endpoint) as client:
            welcome = await client.hello()
            chunks = [m async for m in client.stream("child", "a:1", "Wanna play?", max_tokens=6)]
            assert {p["id"] for p in await client.personas()} == set(welcome["personas"])
            state = await client.get_state("a:1")
            assert len(state["turns"]) == 1
            assert await client.reset("a:1") is True
            await client.set_state("a:1", state)
            assert await client.get_state("a:1") == state
            return welcome, chunks

    welcome, messages = asyncio.run(talk())
    assert welcome["type"] == "welcome"
    assert messages[-1]["type"] == "reply"
