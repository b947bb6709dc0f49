"""The command line: serving as a subprocess (one provider line, clean SIGTERM), say, persona import, --help."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npc_runtime.cli import main


def test_serving_never_imports_torch() -> None:
    code = (
        "import sys, npc_runtime, npc_runtime.server, npc_runtime.client, npc_runtime.cli, npc_runtime.engine,"
        " npc_runtime.bench, npc_runtime.batch, npc_runtime.causal_engine, npc_runtime.trees, npc_runtime.trees.cli;"
        "npc_runtime.cli.build_parser();"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("argv", [[], ["serve"], ["say"], ["persona"], ["persona", "import"]])
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("kv_cache", ["auto", "device"])  # device: the IOBinding cache, here in host memory
def test_serve_subprocess_logs_provider_once_and_stops_on_sigterm(tiny_bundle: Path, tmp_path: Path,
                                                                  kv_cache: str) -> None:
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "npc_runtime", "serve", "--model", str(tiny_bundle), "--bind", "tcp://127.0.0.1:0",
         "--data", str(tmp_path / "data"), "--ready-file", str(ready), "--kv-cache", kv_cache],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        endpoint = ready.read_text().strip()
        out = subprocess.run(
            [sys.executable, "-m", "npc_runtime", "say", "--endpoint", endpoint, "--persona", "healer",
             "--max-tokens", "5", "--json", "My head hurts."],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["type"] == "reply"
        bad = subprocess.run(
            [sys.executable, "-m", "npc_runtime", "say", "--endpoint", endpoint, "--persona", "nobody", "hi"],
            capture_output=True, text=True, timeout=60,
        )
        assert bad.returncode == 1 and "unknown_persona" in bad.stderr
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert log.count("execution provider:") == 1
    assert "[E:onnxruntime" not in log, "ONNX Runtime's own error log leaked"
    assert "server stopped" in log


def test_missing_bundle_is_a_clear_startup_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)]) == 1
    assert "model bundle directory not found" in capsys.readouterr().err


def test_a_bad_kv_cache_choice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--kv-cache", "gpu", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)])
    assert "--kv-cache" in capsys.readouterr().err


def test_a_bad_voice_bias_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--voice-bias must be in 0..20"):
        main(["serve", "--voice-bias", "-1", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="--fact-bias must be in 0..50"):
        main(["serve", "--fact-bias", "60", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="--scene-bias must be in 0..50"):
        main(["serve", "--scene-bias", "-2", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--catchphrase-rate must be in 0..1 \(0: off\), got 1.5"):
        main(["serve", "--catchphrase-rate", "1.5", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)])


def test_corrupt_bundle_file_is_named(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    with open(broken / "decoder.onnx", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\xff\xff")
    assert main(["serve", "--model", str(broken), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "corrupt" in err and "decoder.onnx" in err
    (broken / "tokenizer.json").unlink()
    assert main(["serve", "--model", str(broken), "--data", str(tmp_path)]) == 1
    assert "tokenizer.json" in capsys.readouterr().err


def test_persona_import_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.json"
    card.write_text(json.dumps({
        "spec": "chara_card_v2", "spec_version": "2.0",
        "data": {"name": "Odo the Miller", "description": "A miller by the river.",
                 "personality": "cheerful, chatty", "scenario": "", "first_mes": "Flour, friend?",
                 "mes_example": "<START>\n{{char}}: The wheel turns, and so do I.\n{{char}}: Mind the sacks.",
                 "tags": ["miller"]},
    }))
    assert main(["persona", "import", str(card), "--out", str(tmp_path / "pack")]) == 0
    assert "odo" in capsys.readouterr().out
    assert main(["persona", "list", "--personas", str(tmp_path / "pack")]) == 0
    assert "Odo the Miller" in capsys.readouterr().out
