"""Fixtures for the sample game: pygame on SDL's dummy drivers, a fake network worker, a spawned real server."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sample_game.cast import load_cast
from sample_game.game import Game, GameConfig
from sample_game.net import SayJob

ROOT = Path(__file__).resolve().parents[2]


class FakeNet:
    """Stands in for :class:`sample_game.net.NetWorker`: records jobs, hands out queued events."""

    def __init__(self) -> None:
        self.jobs: list[SayJob] = []
        self.events: list = []

    def submit(self, job: SayJob) -> None:
        self.jobs.append(job)

    def poll(self) -> list:
        events, self.events = self.events, []
        return events


@pytest.fixture
def fake_net() -> FakeNet:
    return FakeNet()


@pytest.fixture
def game(fake_net: FakeNet) -> Game:
    return Game(GameConfig(seed=1, time_of_day="noon", creatures=0), load_cast(), fake_net)  # type: ignore[arg-type]


@pytest.fixture
def pygame_headless(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """pygame started on the dummy video/audio drivers, shut down afterwards."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    import pygame

    from sample_game.app import init_pygame

    init_pygame(headless=True)
    yield pygame
    pygame.quit()


@pytest.fixture
def free_endpoint() -> str:
    """A loopback endpoint nobody listens on (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def game_env() -> dict[str, str]:
    """Environment for ``python -m sample_game`` child processes: the checkout importable, no display."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
    return env


@pytest.fixture(scope="module")
def real_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """``python -m npc_runtime serve`` in a child process: the default bundle when it is built, else the tiny one
    (``tiny_bundle`` from the top-level conftest)."""
    from npc_runtime.bundle import default_bundle_dir
    from sample_game.spawn import ServerProcess

    model_dir = None
    if not (default_bundle_dir() / "bundle.json").exists():
        model_dir = request.getfixturevalue("tiny_bundle")
    with ServerProcess(model_dir, startup_timeout_s=180, extra_args=("--threads", "1")) as server:
        if server.endpoint is None:
            raise RuntimeError("server did not report an endpoint")
        yield server.endpoint
