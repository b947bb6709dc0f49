"""`npc-runtime bench` runs end to end on the tiny bundle and reports every figure (values are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from npc_runtime.bench import BenchConfig, main, percentile, render_markdown, run_bench


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([], 50) != percentile([], 50)  # nan for no data


def test_bench_writes_json_and_markdown(tiny_bundle: Path, tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    assert main(["--model", str(tiny_bundle), "--concurrency", "1", "3", "--rounds", "1", "--max-tokens", "6",
                 "--threads", "1", "--out-json", str(out_json), "--out-md", str(out_md)]) == 0
    report = json.loads(out_json.read_text())
    levels = report["server"]["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 3]
    assert [lv["replies"] for lv in levels] == [1, 3]
    assert all(lv["tokens"] == lv["replies"] * 6 for lv in levels)  # fixed-length replies
    assert report["engine"]["roofline"]["bound_ms"] > 0
    cost = report["engine"]["sampling_ms_by_batch"]
    assert set(cost) == {"1", "64"} and cost["64"]["lexicon"] is False  # the tiny bundle has no lexicon
    kinds = ("plain", "no_repeat_ngram", "no_repeat_ngram_and_spelling", "voice_steering", "fact_steering")
    assert all(c[k] > 0 for c in cost.values() for k in kinds)
    assert "Choosing the next token" in out_md.read_text()
    assert "throughput_vs_one_npc" in report["ratios"]
    assert "| 3 |" in out_md.read_text()


def test_torch_peer_runs_with_a_checkpoint(tiny_bundle: Path, tmp_path: Path) -> None:
    from export.role_model import RoleModel, save_checkpoint
    from npc_runtime.bundle import load_bundle

    model_info = load_bundle(tiny_bundle).model
    # A fresh model of the bundle's shape stands in for its checkpoint: the peer's speed, not its words, is measured.
    import export.tiny as tiny

    cfg = tiny.tiny_config(int(model_info["vocab_size"]))
    ckpt = save_checkpoint(RoleModel(cfg), tmp_path / "tiny.pt")
    report = run_bench(BenchConfig(model=tiny_bundle, concurrency=(1, 2), rounds=1, max_tokens=4, threads=1,
                                   checkpoint=ckpt))
    assert [lv["concurrency"] for lv in report["torch_eager"]["levels"]] == [1, 2]
    assert "server_vs_torch_eager_tokens_per_s" in report["ratios"]
    assert [lv["concurrency"] for lv in report["engine_static"]["levels"]] == [1, 2]
    assert set(report["ratios"]["engine_static_vs_torch_eager_tokens_per_s"]) == {"1", "2"}
    assert "PyTorch eager" in render_markdown(report) and "engine ÷ eager" in render_markdown(report)
