"""Fixtures for the engine bridge tests: paths, external tools (Mono, NUnit, Godot, npm data) and the real server.

A missing tool skips its tests with the reason, unless ``NPC_REQUIRE_TOOLCHAINS=1`` (CI) makes it a failure;
``engine_bridge/tools/install_toolchains.sh`` installs them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "engine_bridge"
UNITY = BRIDGE / "unity"
GODOT_ADDON = BRIDGE / "godot" / "addons" / "npc_dialogue"
SUITE_JSON = BRIDGE / ".toolchain" / "node_modules" / "msgpack-test-suite" / "dist" / "msgpack-test-suite.json"
INSTALL_HINT = "run engine_bridge/tools/install_toolchains.sh"
SERVER_START_TIMEOUT_S = 120.0


def toolchains_required() -> bool:
    return os.environ.get("NPC_REQUIRE_TOOLCHAINS", "") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip (or, with NPC_REQUIRE_TOOLCHAINS=1, fail) the calling test when ``condition`` is false."""
    if condition:
        return
    if toolchains_required():
        pytest.fail(f"{reason} (NPC_REQUIRE_TOOLCHAINS=1)")
    pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"'{name}' is not on PATH; {INSTALL_HINT}")
    return str(path)


@dataclass(frozen=True)
class Bridge:
    """Paths and tool look-ups for the tests (conftest helpers cannot be imported under importlib mode)."""

    repo: Path = REPO
    root: Path = BRIDGE
    unity: Path = UNITY
    godot_addon: Path = GODOT_ADDON
    suite_json: Path = SUITE_JSON

    @staticmethod
    def need(condition: bool, reason: str) -> None:
        need(condition, reason)

    @staticmethod
    def need_tool(name: str) -> str:
        return need_tool(name)


@pytest.fixture(scope="session")
def bridge() -> Bridge:
    return Bridge()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = BRIDGE / "fixtures"
    if not (path / "index.json").is_file():
        pytest.fail(f"protocol fixtures are missing: {path / 'index.json'}")
    return path


@pytest.fixture(scope="session")
def msgpack_suite() -> Path:
    need(SUITE_JSON.is_file(), f"msgpack-test-suite is not installed at {SUITE_JSON}; {INSTALL_HINT}")
    return SUITE_JSON


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """The real `npc_runtime serve` on loopback; restartable on the same port."""

    bundle_dir: Path
    data_dir: Path
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "npc_runtime",
                    "serve",
                    "--bind",
                    self.endpoint,
                    "--model",
                    str(self.bundle_dir),
                    "--data",
                    str(self.data_dir),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Poll with `hello` from a pyzmq DEALER until `welcome` comes back; fail (never hang) otherwise."""
        import msgpack
        import zmq

        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        ctx = zmq.Context()
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                try:
                    sock.connect(self.endpoint)
                    sock.send(msgpack.packb({"v": 1, "id": "probe", "type": "hello"}))
                    if sock.poll(500, zmq.POLLIN):
                        reply = msgpack.unpackb(sock.recv(), raw=False)
                        if reply.get("type") == "welcome":
                            return
                finally:
                    sock.close(linger=0)
            raise RuntimeError(f"server did not answer hello in {SERVER_START_TIMEOUT_S} s:\n{self.log_tail()}")
        finally:
            ctx.term()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    try:
        from export.tiny import build_tiny_bundle
    except ImportError as exc:  # the tiny bundle builder belongs to another part of the project
        pytest.fail(f"export.tiny.build_tiny_bundle is not available: {exc}")
    out = tmp_path_factory.mktemp("tiny_bundle")
    result = build_tiny_bundle(out)
    return Path(result) if result is not None else out


@pytest.fixture(scope="session")
def npc_server(tiny_bundle, tmp_path_factory) -> Iterator[ServerProcess]:
    """One real server for the session's integration tests; tests may restart it on the same port."""
    work = tmp_path_factory.mktemp("npc_server")
    data_dir = work / "data"
    data_dir.mkdir()
    server = ServerProcess(tiny_bundle, data_dir, free_port(), work / "server.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
