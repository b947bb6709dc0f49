"""The network worker: answers arrive as events, the server's absence becomes an offline status, and the
worker reconnects on its own. Uses fake clients; every wait has a deadline so a failure never hangs."""

from __future__ import annotations

import threading
import time

import pytest

from npc_runtime.errors import RequestFailed, ServerOffline
from sample_game.net import Chunk, Failed, NetConfig, NetWorker, Replied, SayJob, Status


class FakeServer:
    """Shared by every fake client the worker makes; ``up`` switches the 'server' on and off."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.says: list[dict] = []
        self.closed = 0
        self.lock = threading.Lock()


class FakeClient:
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def hello(self) -> dict:
        if not self.server.up:
            raise ServerOffline("fake server is down")
        return {"type": "welcome", "server": {"name": "fake", "version": "1"}, "provider": "CPU"}

    def stream(self, persona, session, text, image=None, context=None):
        if not self.server.up:
            raise ServerOffline("fake server is down")
        with self.server.lock:
            self.server.says.append({"persona": persona, "session": session, "text": text, "image": image,
                                     "context": context})
        if text == "forbidden":
            raise RequestFailed("unknown_persona", "no such persona")
        yield {"type": "chunk", "text": "Aye, ", "seq": 0}
        yield {"type": "chunk", "text": "lad.", "seq": 1}
        yield {"type": "reply", "text": "Aye, lad.", "emotion": {"label": "joy", "intensity": 0.7, "scores": {}},
               "timing_ms": {"queue": 0.1, "first_token": 3.0, "total": 9.0}}

    def close(self) -> None:
        with self.server.lock:
            self.server.closed += 1


def collect(worker: NetWorker, until, timeout_s: float = 10.0) -> list:
    """Events until ``until(events)`` holds; fails (never hangs) after ``timeout_s``."""
    events: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events += worker.poll()
        if until(events):
            return events
        time.sleep(0.01)
    pytest.fail(f"condition not reached; events so far: {events}")


@pytest.fixture
def make_worker():
    workers: list[NetWorker] = []

    def make(server: FakeServer, ping_every_s: float = 0.05) -> NetWorker:
        worker = NetWorker(NetConfig("tcp://fake:1", ping_every_s=ping_every_s), lambda ep, ms: FakeClient(server))
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


def test_a_line_streams_chunks_then_the_reply(make_worker):
    server = FakeServer()
    worker = make_worker(server)
    worker.submit(SayJob(7, "blacksmith", "s:blacksmith", "Swords?", {"format": "png", "data": b"x", "width": 1,
                                                                      "height": 1}, {"time_of_day": "night"}))
    events = collect(worker, lambda ev: any(isinstance(e, Replied) for e in ev))
    assert events[0] == Status(True, "fake 1 via CPU")
    chunks = [e.text for e in events if isinstance(e, Chunk)]
    assert chunks == ["Aye, ", "lad."]
    reply = next(e for e in events if isinstance(e, Replied))
    assert (reply.line_id, reply.text, reply.emotion, reply.intensity) == (7, "Aye, lad.", "joy", 0.7)
    assert 0 <= reply.first_token_ms <= reply.total_ms
    assert reply.server_timing_ms["total"] == 9.0
    assert server.says[0]["context"] == {"time_of_day": "night"}
    assert server.says[0]["image"]["format"] == "png"


def test_an_error_reply_fails_the_line_but_stays_online(make_worker):
    worker = make_worker(FakeServer())
    worker.submit(SayJob(1, "nobody", "s", "forbidden"))
    events = collect(worker, lambda ev: any(isinstance(e, Failed) for e in ev))
    failed = next(e for e in events if isinstance(e, Failed))
    assert failed.offline is False and "unknown_persona" in failed.reason
    assert not any(isinstance(e, Status) and not e.online for e in events)


def test_offline_then_reconnects_by_itself(make_worker):
    server = FakeServer(up=False)
    worker = make_worker(server)
    events = collect(worker, lambda ev: Status(False, "fake server is down") in ev)
    worker.submit(SayJob(1, "guard", "s", "Hello?"))
    events = collect(worker, lambda ev: any(isinstance(e, Failed) for e in ev))
    assert next(e for e in events if isinstance(e, Failed)).offline is True
    server.up = True  # the server comes back; the worker's idle pings find it
    collect(worker, lambda ev: any(isinstance(e, Status) and e.online for e in ev))
    worker.submit(SayJob(2, "guard", "s", "Hello again"))
    events = collect(worker, lambda ev: any(isinstance(e, Replied) for e in ev))
    assert next(e for e in events if isinstance(e, Replied)).line_id == 2


def test_poll_and_submit_never_wait_and_stop_closes_the_clients():
    server = FakeServer()
    worker = NetWorker(NetConfig("tcp://fake:1", ping_every_s=0.05), lambda ep, ms: FakeClient(server))
    assert worker.poll() == []  # before start: nothing, and no waiting
    worker.start()
    worker.submit(SayJob(1, "guard", "s", "Hi"))
    collect(worker, lambda ev: any(isinstance(e, Replied) for e in ev))
    worker.stop()
    assert server.closed == 2  # the ping client and the talk client


def test_config_is_checked():
    with pytest.raises(ValueError):
        NetConfig("")
    with pytest.raises(ValueError):
        NetConfig(ping_timeout_ms=0)
    with pytest.raises(ValueError):
        NetConfig(ping_every_s=0)
