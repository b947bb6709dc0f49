"""The spawned server: it answers once started, and a server that cannot start is a clear error, not a hang."""

from __future__ import annotations

import pytest

from npc_runtime.client import NpcClient
from npc_runtime.errors import TransportError
from sample_game.spawn import ServerProcess


@pytest.mark.slow
def test_real_server_fixture_answers_hello(real_server):
    with NpcClient(real_server, timeout_ms=5000, retries=0) as client:
        welcome = client.hello()
    assert welcome["type"] == "welcome"
    assert {"blacksmith", "guard", "child"} <= {p["id"] if isinstance(p, dict) else p for p in welcome["personas"]}


@pytest.mark.slow
def test_a_server_that_cannot_start_raises_with_its_output(tmp_path):
    server = ServerProcess(tmp_path / "no-such-bundle", startup_timeout_s=60)
    with pytest.raises(TransportError, match="exited with code"):
        server.start()
    assert server.endpoint is None
    server.stop()  # stopping twice is harmless


def test_startup_timeout_must_be_positive():
    with pytest.raises(ValueError):
        ServerProcess(startup_timeout_s=0)
