"""The CUDA path: run only where this onnxruntime offers a usable CUDA provider (CI has no GPU: skipped there).

These are correctness checks; CUDA speed is measured by ``npc-runtime bench --device cuda`` (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from npc_runtime.bundle import default_bundle_dir, load_bundle
from npc_runtime.engine import RoleModelEngine
from npc_runtime.ort_backend import CPU, CUDA, RuntimeOptions, resolve_providers
from npc_runtime.personas import PersonaPack, default_pack_dir


def _cuda_reason() -> str:
    providers, reason = resolve_providers("auto")
    return "" if CUDA in providers else reason


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(bool(_cuda_reason()), reason=f"no CUDA: {_cuda_reason()}")]


def _logits_along(engine: RoleModelEngine, prepared, tokens: list[int]) -> list[np.ndarray]:
    """The logits before each of ``tokens`` when they are fed one by one (teacher forcing: both providers see the
    same sequence, so a near-tie cannot make them diverge)."""
    first = engine.prefill([prepared])
    out, kv, attn = [first.logits[0]], first.kv, first.mask
    for token in tokens[:-1]:
        logits, kv, attn = engine.step(np.array([token]), np.array([attn.shape[1]]), kv, attn)
        out.append(logits[0])
    return out


@pytest.mark.skipif(not (default_bundle_dir() / "bundle.json").exists(), reason="no shipped bundle")
def test_cuda_engine_matches_cpu_engine_step_by_step() -> None:
    """The shipped bundle gives the same greedy reply on CUDA as on the CPU, step by step.

    Its int8 graphs quantise activations on the fly, and CUDA's fp32 MatMuls may round differently (TF32), so a
    logit can move by a quantisation step: at each step the CUDA argmax must be the CPU's, or within ``near`` of
    the CPU's best logit (a near tie).
    """
    near = 0.25
    cpu = RoleModelEngine(load_bundle(default_bundle_dir()), RuntimeOptions(device="cpu", intra_op_threads=1))
    gpu = RoleModelEngine(load_bundle(default_bundle_dir()), RuntimeOptions(device="cuda"))
    assert (cpu.provider, gpu.provider) == (CPU, CUDA)
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    args = (card.fingerprint(), card.card_text(), card.knowledge_text(), {"weather": "rain"}, [], "What do you sell?")
    on_cpu, on_gpu = cpu.prepare(*args, None), gpu.prepare(*args, None)
    assert on_cpu.ids == on_gpu.ids
    a, b = on_cpu.prefix_embeds, on_gpu.prefix_embeds
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-9)
    assert cosine.min() > 0.999 and float(np.abs(a - b).max()) < 0.25, (cosine.min(), np.abs(a - b).max())
    tokens = [int(np.argmax(cpu.prefill([on_cpu]).logits[0]))]
    for _ in range(11):
        tokens.append(int(np.argmax(_logits_along(cpu, on_cpu, tokens + [0])[-1])))
    ref, got = _logits_along(cpu, on_cpu, tokens), _logits_along(gpu, on_gpu, tokens)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
    print(f"CUDA vs CPU: worst logit difference {worst:.4f} over {len(tokens)} steps")
    for step, (a, b) in enumerate(zip(ref, got)):
        pick = int(np.argmax(b))
        assert pick == tokens[step] or a[tokens[step]] - a[pick] <= near, (step, worst)
    assert worst < 1.0, f"CUDA logits differ from CPU by {worst}"


@pytest.mark.skipif(not (default_bundle_dir() / "bundle.json").exists(), reason="no shipped bundle")
def test_gpu_kv_cache_gives_the_host_caches_tokens(ragged_greedy) -> None:
    """On CUDA the cache in GPU memory (IOBinding, in-place write graph) gives the same greedy tokens and logits
    as the numpy cache copied to the GPU every step, while rows join and leave; and it holds what the numpy
    cache holds."""
    from npc_runtime.device_kv import DeviceKVCache

    host = RoleModelEngine(load_bundle(default_bundle_dir()), RuntimeOptions(device="cuda", kv_cache="host"))
    gpu = RoleModelEngine(load_bundle(default_bundle_dir()), RuntimeOptions(device="cuda"))
    assert gpu.kv_cache == "device" and host.kv_cache == "host"
    want_tokens, want_logits = ragged_greedy(host, steps=16)
    got_tokens, got_logits = ragged_greedy(gpu, steps=16)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(want_logits, got_logits, strict=True))
    print(f"GPU-resident vs host KV cache on CUDA: worst logit difference {worst:.6f}")
    assert got_tokens == want_tokens
    assert worst < 1e-3
    card = PersonaPack.load(default_pack_dir()).get("healer")
    prepared = gpu.prepare(card.fingerprint(), card.card_text(), card.knowledge_text(), {}, [], "Hello.", None)
    first = gpu.prefill([prepared, prepared])
    caches = [gpu.new_cache(), host.new_cache()]
    for cache in caches:
        cache.append(first.kv, first.mask)
        cache.remove([0])
    assert isinstance(caches[0], DeviceKVCache)
    for got, want in zip(caches[0].to_host(), caches[1].past(), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not (default_bundle_dir() / "bundle.json").exists(), reason="no shipped bundle")
def test_shipped_bundle_serves_a_say_on_cuda() -> None:
    from sample_game.spawn import ServerProcess

    with ServerProcess(startup_timeout_s=180, extra_args=("--device", "cuda")) as server:
        out = subprocess.run(
            [sys.executable, "-m", "npc_runtime", "say", "--endpoint", str(server.endpoint), "--persona",
             "blacksmith", "--json", "What does a sword cost?"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        log = server.log_tail(max_chars=1_000_000)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert reply["type"] == "reply" and reply["text"].strip() and reply["emotion"]
    assert log.count("execution provider: CUDAExecutionProvider") == 1, log
    assert "KV cache in GPU memory" in log, log
