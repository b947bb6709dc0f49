"""The Unity package's C# core: built with mcs, unit tests under nunit-console, integration against the real server.

Everything is compiled into a temporary folder here; nothing built is kept in the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "engine_bridge"
UNITY = BRIDGE / "unity"
SUITE_JSON = BRIDGE / ".toolchain" / "node_modules" / "msgpack-test-suite" / "dist" / "msgpack-test-suite.json"
CORE_SOURCES = sorted((UNITY / "Runtime" / "Core").glob("*.cs"))
TEST_SOURCES = sorted((UNITY / "Tests" / "Core").glob("*.cs"))
INTEGRATION_SOURCES = sorted((UNITY / "Tests" / "Integration~").glob("*.cs"))
MCS_FLAGS = ["-langversion:7.2", "-nologo", "-warnaserror+", "-debug-"]
NUNIT_TIMEOUT_S = 240
INTEGRATION_TIMEOUT_S = 300


def nunit_framework(bridge) -> Path:
    candidates = sorted(Path("/usr/lib/cli").glob("nunit.framework-2.6*/nunit.framework.dll"))
    bridge.need(bool(candidates), "NUnit 2.6 framework (libnunit-cil-dev) is not installed")
    return candidates[-1]


def mcs(bridge, out: Path, sources: list[Path], target: str, refs: list[Path] = ()) -> Path:
    cmd = [bridge.need_tool("mcs"), *MCS_FLAGS, f"-target:{target}", f"-out:{out}"]
    cmd += [f"-r:{r}" for r in refs]
    cmd += [str(s) for s in sources]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"mcs failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def core_dll(bridge, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cs_core")
    return mcs(bridge, out / "NpcDialogue.Core.dll", CORE_SOURCES, "library")


def test_core_has_no_unity_reference(core_dll) -> None:
    """The core builds without Unity assemblies (core_dll) and names no Unity namespace."""
    for path in CORE_SOURCES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"using\s+Unity(Engine|Editor)|Unity(Engine|Editor)\.\w", text), path.name


def test_core_sources_stay_within_csharp_7_2() -> None:
    """Features mcs would accept with another -langversion but Unity's older profiles would not."""
    forbidden = {
        r"\busing\s+var\b": "using declarations (C# 8)",
        r"\bswitch\s*\{": "switch expressions (C# 8)",
        r"\[\^?\d*\.\.\^?\d*\]": "ranges (C# 8)",
        r"#nullable": "nullable reference types (C# 8)",
    }
    for path in CORE_SOURCES + TEST_SOURCES + INTEGRATION_SOURCES:
        text = path.read_text(encoding="utf-8")
        for pattern, what in forbidden.items():
            assert not re.search(pattern, text), f"{path.name} uses {what}"


def test_nunit_core_tests(bridge, core_dll, tmp_path, fixtures_dir) -> None:
    console = bridge.need_tool("nunit-console")
    bridge.need_tool("mono")
    bridge.need(SUITE_JSON.is_file(), f"msgpack-test-suite is not installed at {SUITE_JSON}")
    tests_dll = mcs(
        bridge,
        core_dll.parent / "NpcDialogue.Core.Tests.dll",
        TEST_SOURCES,
        "library",
        refs=[core_dll, nunit_framework(bridge)],
    )
    env = dict(os.environ)
    env.update(
        NPC_FIXTURES_DIR=str(fixtures_dir),
        NPC_MSGPACK_SUITE=str(SUITE_JSON),
        NPC_ZMTP_VECTORS=str(BRIDGE / "zmtp_vectors.json"),
    )
    result = subprocess.run(
        [console, "-nologo", f"-result={tmp_path / 'nunit.xml'}", str(tests_dll)],
        capture_output=True,
        text=True,
        timeout=NUNIT_TIMEOUT_S,
        env=env,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    summary = re.search(r"Tests run: (\d+), Errors: (\d+), Failures: (\d+)", output)
    assert summary, f"no NUnit summary:\n{output[-4000:]}"
    run, errors, failures = (int(g) for g in summary.groups())
    ignored = re.search(r"Ignored: (\d+)", output)
    assert result.returncode == 0 and errors == 0 and failures == 0, output[-6000:]
    assert ignored and int(ignored.group(1)) == 0, f"tests were ignored (test data missing?):\n{output[-3000:]}"
    assert run >= 30, f"only {run} NUnit tests ran"


def test_integration_against_the_real_server(bridge, core_dll, npc_server) -> None:
    mono = bridge.need_tool("mono")
    refs = [core_dll, Path("System.Core.dll")]
    exe = mcs(bridge, core_dll.parent / "NpcIntegration.exe", INTEGRATION_SOURCES, "exe", refs=refs)
    proc = subprocess.Popen(
        [mono, str(exe), npc_server.endpoint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=exe.parent,
    )
    stderr_lines: list[str] = []
    drain = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
    drain.start()
    # The whole exchange runs under a watchdog so a stuck client fails the test instead of hanging it.
    watchdog = threading.Timer(INTEGRATION_TIMEOUT_S, proc.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line == "RESTART":
                npc_server.restart()
                proc.stdin.write("RESTARTED\n")
                proc.stdin.flush()
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        drain.join(timeout=10)
        proc.stderr.close()
    report = "\n".join(lines) + "\n--- client log ---\n" + "".join(stderr_lines[-60:])
    report += "\n--- server log ---\n" + npc_server.log_tail()
    assert lines and re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), report
    assert proc.returncode == 0, report
    passed = [line for line in lines if line.startswith("ok - ")]
    assert len(passed) == 6, report
