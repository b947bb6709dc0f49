"""The torchrun path of training: two CPU processes with the gloo backend, DistributedDataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from export.role_model import load_checkpoint
from export.train import CHECKPOINT_NAME


@pytest.mark.slow
def test_two_process_gloo_run_checkpoints_once(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on CPU even where a GPU exists
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "export.train", "--preset", "tiny", "--out", str(out), "--steps", "2", "--threads", "1",
           "--no-progress"]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert extra["step"] == 2 and extra["world_size"] == 2
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["world_size"] == 2 and summary["steps"] == 2
