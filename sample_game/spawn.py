"""Starts ``python -m npc_runtime serve`` as a child process on a free loopback port with a throw-away data
folder, waits until it answers ``hello``, and stops it again (``--spawn-server``, ``make demo``, tests)."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from npc_runtime.errors import NpcRuntimeError, TransportError

__all__ = ["ServerProcess"]

log = logging.getLogger(__name__)


def _source_root() -> str:
    """The folder holding the ``npc_runtime`` package, so the child imports the same code we do."""
    spec = importlib.util.find_spec("npc_runtime")
    if spec is None or spec.origin is None:
        raise TransportError("npc_runtime is not importable; cannot start the server")
    return str(Path(spec.origin).resolve().parent.parent)


class ServerProcess:
    """A server child process; use as a context manager. :attr:`endpoint` is set once it answers."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        startup_timeout_s: float = 120.0,
        extra_args: tuple[str, ...] = (),
        python: str = sys.executable,
    ) -> None:
        if startup_timeout_s <= 0:
            raise ValueError("startup_timeout_s must be positive")
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = tuple(extra_args)
        self.python = python
        self.endpoint: str | None = None
        self._proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._log_file = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, max_chars: int = 3000) -> str:
        """The end of the child's output (for error messages)."""
        if self._tmp is None:
            return ""
        path = Path(self._tmp.name) / "server.log"
        try:
            return path.read_text(encoding="utf-8", errors="replace")[-max_chars:]
        except OSError:
            return ""

    def start(self) -> str:
        """Starts the child and returns its endpoint once ``hello`` is answered; raises TransportError if not."""
        if self._proc is not None:
            raise RuntimeError("server already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="emberfall-server-")
        work = Path(self._tmp.name)
        ready = work / "endpoint.txt"
        command = [
            self.python, "-m", "npc_runtime", "serve",
            "--bind", "tcp://127.0.0.1:*",
            "--data", str(work / "data"),
            "--ready-file", str(ready),
            *self.extra_args,
        ]  # fmt: skip
        if self.model_dir is not None:
            command += ["--model", str(self.model_dir)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_source_root(), env.get("PYTHONPATH", "")) if p)
        self._log_file = open(work / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        log.info("starting NPC server: %s", " ".join(command))
        self._proc = subprocess.Popen(command, stdout=self._log_file, stderr=subprocess.STDOUT, env=env)
        try:
            self.endpoint = self._wait_ready(ready)
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    def _wait_ready(self, ready: Path) -> str:
        from npc_runtime.client import NpcClient

        proc = self._proc
        if proc is None:
            raise RuntimeError("the server process is not started")
        deadline = time.monotonic() + self.startup_timeout_s
        endpoint = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise TransportError(
                    f"the NPC server exited with code {proc.returncode} while starting:\n{self.log_tail()}"
                )
            if not endpoint and ready.exists():
                endpoint = ready.read_text(encoding="utf-8").strip()
            if endpoint:
                with NpcClient(endpoint, timeout_ms=1000, retries=0) as client:
                    try:
                        client.hello()
                        log.info("NPC server ready on %s", endpoint)
                        return endpoint
                    except NpcRuntimeError:
                        pass
            time.sleep(0.1)
        raise TransportError(f"the NPC server did not answer within {self.startup_timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the child (SIGTERM, then SIGKILL after ``timeout_s``) and removes its temporary folder."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("NPC server ignored SIGTERM; killing it")
                    self._proc.kill()
                    self._proc.wait(timeout_s)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self.endpoint = None
