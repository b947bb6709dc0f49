"""bench-hf: prompts equal to the server's, the transformers peer, the server run, ratios and the Markdown report.

The onnxruntime-genai peer needs its own venv and is not run here; everything else runs on a tiny random Qwen2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from export.bench_hf import (
    DEFAULT_GENAI_PYTHON,
    GENAI_SCRIPT,
    BenchHfConfig,
    _ratios,
    build_parser,
    build_prompts,
    main,
    one_off_cards,
    prompt_sets,
    render_markdown,
    run_bench_hf,
    run_transformers_peer,
)
from export.hf_import import import_checkpoint, random_checkpoint
from npc_runtime import cli
from npc_runtime.bundle import load_bundle
from npc_runtime.causal_engine import CausalLMEngine
from npc_runtime.errors import ConfigError
from npc_runtime.ort_backend import RuntimeOptions
from npc_runtime.personas import PersonaPack, default_pack_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random Qwen2 checkpoint and its fp32 bundle (no emotion classifier: replies are tagged neutral)."""
    root = tmp_path_factory.mktemp("bench-hf")
    checkpoint = random_checkpoint("qwen2", root / "checkpoint", seed=3)
    bundle = import_checkpoint(checkpoint, root / "bundle-fp32", emotion="shared", max_context=1024)
    return checkpoint, bundle


def test_prompts_are_the_ids_the_engine_builds(tiny: tuple[Path, Path]) -> None:
    _, bundle_dir = tiny
    village = list(PersonaPack.load(default_pack_dir()))
    one_off = one_off_cards(5)
    engine = CausalLMEngine(load_bundle(bundle_dir), RuntimeOptions(device="cpu", intra_op_threads=1))
    for cards, indices in ((village, range(1, 5)), (one_off, range(5))):
        cases = build_prompts(bundle_dir, cards, indices)
        by_id = {card.id: card for card in cards}
        assert len({case.persona for case in cases}) == len(indices)
        for case in cases:
            card = by_id[case.persona]
            expected = engine.prompt_ids(card.card_text(), card.knowledge_text(), case.context, [], case.text)
            assert case.ids == expected


def test_one_off_npcs_share_no_reusable_prefix(tiny: tuple[Path, Path]) -> None:
    _, bundle_dir = tiny
    sets = prompt_sets(bundle_dir, one_requests=3, concurrency=4)
    assert (len(sets.one), len(sets.batch), len(sets.again), len(sets.recurring)) == (3, 4, 3, 4)
    fresh = [sets.warmup, *sets.one, *sets.batch]
    assert len({case.persona for case in fresh}) == len(fresh)

    def shared(a: list[int], b: list[int]) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    longest = max(shared(a.ids, b.ids) for i, a in enumerate(fresh) for b in fresh[i + 1 :])
    assert longest < 16  # below the engine's minimum reuse: every one-off prompt is prefilled in full
    seen = {case.persona for case in sets.prime}
    assert all(case.persona in seen for case in sets.again + sets.recurring)


def test_transformers_peer_generates_fixed_length_greedy_replies(tiny: tuple[Path, Path]) -> None:
    checkpoint, _ = tiny
    spec = {"max_new_tokens": 2, "pad_id": 0, "warmup": [5, 6], "one": [[5, 6, 7], [8, 9]],
            "batch": [[5, 6, 7], [8, 9], [10, 11, 12, 13]]}  # fmt: skip
    result = run_transformers_peer(checkpoint, spec, threads=1)
    one, batch = result["outputs"]["one"], result["outputs"]["batch"]
    assert [len(ids) for ids in one] == [2, 2] and [len(ids) for ids in batch] == [2, 2, 2]
    assert batch[:2] == one  # the left-padded batch decodes like batch 1
    levels = {lv["concurrency"]: lv for lv in result["levels"]}
    assert levels[1]["requests"] == 2 and levels[1]["tokens"] == 4
    assert levels[3]["tokens"] == 6 and levels[3]["tokens_per_s"] > 0
    assert result["memory_mb"]["VmHWM"] >= result["memory_mb"]["VmRSS"] > 0


def test_server_and_transformers_agree_token_for_token(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, bundle_dir = tiny
    work = tmp_path / "work"
    work.mkdir()
    (work / "bundle-fp32").symlink_to(bundle_dir)  # reused, not imported again
    config = BenchHfConfig(checkpoint, work, new_tokens=3, one_requests=2, concurrency=3, threads=1,
                           peers=("transformers",))  # fmt: skip
    report = run_bench_hf(config)
    ours = report["ours"]["fp32"]
    assert ours["import_s"] is None
    assert ours["prompt_ids_match_server"] is True
    assert [(lv["concurrency"], lv["personas_seen_before"]) for lv in ours["levels"]] == [
        (1, False), (3, False), (1, True), (3, True)
    ]  # fmt: skip
    assert all(lv["short_replies"] == 0 for lv in ours["levels"])  # --ignore-eos: fixed length
    assert ours["tokens"] == {"one": [3, 3], "batch": [3, 3, 3]}
    agreement = report["greedy_agreement"]["ours_text_vs_transformers"]
    assert agreement["one"]["identical"] == agreement["one"]["of"] > 0
    assert agreement["batch"]["identical"] == agreement["batch"]["of"] > 0
    assert set(report["ratios"]) == {
        f"{kind}_transformers_{at}{suffix}" for kind, at in (("tokens_per_s_vs", "at"), ("ttft_p50", "over_ours_at"))
        for suffix in ("_1", "_3", "_1_seen_before", "_3_seen_before")
    }  # fmt: skip
    engine = report["engine"]
    assert engine["step_ms_batch1"]["n"] == 2 and engine["step_ms_batch3"]["n"] == 3
    assert engine["group_prefill"]["prompts"] == 3 and engine["group_prefill"]["tokens_per_s"] > 0
    profile = engine["op_profile"]
    assert list(profile)[1:] == ["step at batch 1", "step at batch 3"]
    for workload in profile.values():
        assert "MatMul" in workload["top_ops_ms"] and workload["kernel_ms"] > 0
    assert engine["roofline_batch1"]["weight_bytes"] > 0
    markdown = render_markdown([report])
    assert "Our decoder graph alone" in markdown
    assert "| ours (fp32), continuous batching | 3 |" in markdown
    assert "| ours (fp32), continuous batching, personas seen before | 3 |" in markdown
    assert "transformers, generate, left-padded batch" in markdown


def _level(concurrency: int, tokens_per_s: float, ttft_ms: float, mode: str = "m") -> dict:
    summary = {"p50": ttft_ms, "p95": ttft_ms * 2, "n": concurrency}
    return {"mode": mode, "concurrency": concurrency, "requests": concurrency, "tokens_per_s": tokens_per_s,
            "ttft_ms": summary, "total_ms": summary, "short_replies": 0}  # fmt: skip


def test_ratios_take_each_peers_faster_mode() -> None:
    config = BenchHfConfig(Path("x"), Path("w"), concurrency=32)
    report = {
        "ours": {"fp32": {"levels": [_level(1, 100.0, 50.0), _level(32, 600.0, 400.0),
                                     {**_level(32, 900.0, 100.0), "personas_seen_before": True}]}},  # fmt: skip
        "genai": {"levels": [_level(1, 50.0, 100.0), _level(32, 200.0, 800.0, "generator"),
                             _level(32, 300.0, 600.0, "engine")]},  # fmt: skip
    }
    ratios = _ratios(report, config)
    assert ratios["tokens_per_s_vs_genai_at_1"] == 2.0
    assert ratios["tokens_per_s_vs_genai_at_32"] == 2.0  # against the engine's 300, not the generator's 200
    assert ratios["ttft_p50_genai_over_ours_at_1"] == 2.0
    assert ratios["ttft_p50_genai_over_ours_at_32"] == 1.5  # the seen-before level is kept apart
    assert ratios["tokens_per_s_vs_genai_at_32_seen_before"] == 3.0
    assert ratios["ttft_p50_genai_over_ours_at_32_seen_before"] == 6.0
    assert "tokens_per_s_vs_genai_at_1_seen_before" not in ratios
    assert not any("transformers" in key for key in ratios)


def test_options_are_checked() -> None:
    args = build_parser().parse_args(["ckpt", "--random", "qwen2:tiny", "--peers", "genai", "--new-tokens", "4"])
    assert args.checkpoints == [Path("ckpt")] and args.random == ["qwen2:tiny"] and args.peers == ["genai"]
    assert args.threads == 2 and args.concurrency == 32 and args.one_requests == 8
    with pytest.raises(ValueError, match="new-tokens"):
        BenchHfConfig(Path("x"), Path("w"), new_tokens=0)
    with pytest.raises(ValueError, match="unknown peers"):
        BenchHfConfig(Path("x"), Path("w"), peers=("vllm",))
    with pytest.raises(ValueError, match="one-off NPC"):
        BenchHfConfig(Path("x"), Path("w"), one_requests=8, concurrency=64)
    with pytest.raises(ConfigError, match="FAMILY:SIZE"):
        main(["--random", "qwen2:huge", "--work-dir", "unused"])
    with pytest.raises(SystemExit):
        main([])  # nothing to benchmark


def test_cli_delegates_bench_hf(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench-hf", "--help"])
    assert exc.value.code == 0
    assert "onnxruntime-genai" in capsys.readouterr().out


def test_a_failed_request_is_reported_not_hung(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    import asyncio

    from export.bench_hf import PromptCase, _server_level, write_pack
    from npc_runtime.bench import ServerProcess
    from npc_runtime.errors import NpcRuntimeError

    checkpoint, bundle_dir = tiny
    config = BenchHfConfig(checkpoint, tmp_path, new_tokens=2, threads=1, timeout_s=20.0)
    cards = one_off_cards(2)
    good = build_prompts(bundle_dir, cards, range(2))
    bad = PromptCase("nobody", "Hello?", {})  # unknown persona: the server answers an error
    server = ServerProcess(bundle_dir, tmp_path, device="cpu", threads=config.threads, max_batch=3,
                           personas=write_pack(cards, tmp_path / "pack"))
    try:
        with pytest.raises(NpcRuntimeError, match="unknown_persona"):
            asyncio.run(_server_level(server.endpoint, [good[0], bad, good[1]], True, config, "x"))
    finally:
        server.stop()


@pytest.mark.skipif(not DEFAULT_GENAI_PYTHON.is_file(), reason="no onnxruntime-genai venv (make venv-genai)")
def test_genai_peer_builds_and_agrees_with_transformers(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    import json
    import subprocess

    checkpoint, _ = tiny
    spec = {"max_new_tokens": 3, "pad_id": 0, "warmup": [5, 6], "one": [[5, 6, 7], [8, 9]],
            "batch": [[5, 6, 7], [8, 9], [10, 11, 12, 13]]}  # fmt: skip
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(spec), encoding="utf-8")
    cmd = [str(DEFAULT_GENAI_PYTHON), str(GENAI_SCRIPT), "--model", str(tmp_path / "genai"), "--build",
           str(checkpoint), "--prompts", str(prompts), "--threads", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    genai = json.loads(done.stdout)
    reference = run_transformers_peer(checkpoint, spec, threads=1)["outputs"]
    assert genai["outputs"]["one"] == reference["one"]
    assert genai["outputs"]["batch_generator"] == reference["batch"]
    assert genai["outputs"]["batch_engine"] == reference["batch"]
    assert [lv["concurrency"] for lv in genai["levels"]] == [1, 3, 3]
