"""The onnxruntime-genai peer of ``npc-runtime bench-hf``: its model builder, then generation of the same prompts.

onnxruntime-genai needs the CPU ``onnxruntime`` package, which cannot share a venv with the runtime's
``onnxruntime-gpu``, so this script runs in its own venv (``make venv-genai``) and imports only
``onnxruntime_genai``, numpy and the standard library. ``bench-hf`` writes the prompts as token ids to a JSON file
(the very ids our server feeds its decoder); this script prints its timings and generated ids as JSON:

- one request at a time: a fresh ``Generator`` per request (batch 1), as a game calling genai directly would;
- N requests at once, both ways genai offers on a CPU: one batched ``Generator`` of N right-padded prompts, and its
  ``Engine`` with static batching (N requests submitted together). Its continuous batching (``dynamic_batching``)
  needs a PagedAttention model, which its builder makes for CUDA and WebGPU only.

``--levels`` runs either part alone, so each can use the build that suits it (``bench-hf`` gives the one-at-a-time
part a build with ``prune_lm_head=true``, which is wrong for right-padded batches).

Greedy decoding, every reply exactly ``max_new_tokens`` long (``min_length`` masks the end tokens).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_model", "run_peer", "main"]

CONFIG_FILE = "genai_config.json"


def build_model(checkpoint: Path, out_dir: Path, cache_dir: Path, options: Sequence[str] = ()) -> float:
    """Run genai's model builder (fp32, CPU execution provider) on a Hugging Face checkpoint; returns seconds.

    ``options`` are the builder's ``--extra_options KEY=VALUE`` (e.g. ``prune_lm_head=true``).
    """
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint), "-o", str(out_dir),
        "-p", "fp32", "-e", "cpu", "-c", str(cache_dir),
    ]  # fmt: skip
    if options:
        cmd += ["--extra_options", *options]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not (out_dir / CONFIG_FILE).is_file():
        raise RuntimeError(f"onnxruntime-genai model builder failed ({done.returncode}): {done.stderr[-3000:]}")
    return time.perf_counter() - start


def _summary(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if not arr.size:
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p95": round(float(np.percentile(arr, 95)), 3),
            "n": len(values)}  # fmt: skip


def _memory_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024.0, 1)
    return out


def _level(mode: str, concurrency: int, requests: int, new_tokens: int, wall_s: float, ttft: list[float],
           total: list[float]) -> dict:  # fmt: skip
    tokens = requests * new_tokens
    steps = [(t - f) / (new_tokens - 1) for f, t in zip(ttft, total)] if new_tokens > 1 else []
    return {
        "mode": mode,
        "concurrency": concurrency,
        "requests": requests,
        "tokens": tokens,
        "wall_s": round(wall_s, 4),
        "tokens_per_s": round(tokens / wall_s, 2),
        "ttft_ms": _summary(ttft),
        "total_ms": _summary(total),
        "step_ms": _summary(steps),  # per token after the first
    }


class GenaiPeer:
    """A genai model loaded once with the given thread count and KV buffers sized to the benchmark's prompts."""

    def __init__(self, model_dir: Path, threads: int, max_length: int, max_batch: int) -> None:
        import onnxruntime_genai as og

        self.og = og
        config = og.Config(str(model_dir))
        config.clear_providers()  # the CPU execution provider
        session = {"intra_op_num_threads": threads, "inter_op_num_threads": 1} if threads else {}
        overlay = {
            "model": {"decoder": {"session_options": session}},
            # KV buffers are allocated for max_length; the checkpoint's context (32k for Qwen2.5) would not fit 32 rows.
            "search": {"max_length": max_length},
            "engine": {"static_batching": {"max_batch_size": max_batch}},
        }
        config.overlay(json.dumps(overlay))
        start = time.perf_counter()
        self.model = og.Model(config)
        self.load_s = time.perf_counter() - start
        self.pad_id = int(json.loads((model_dir / CONFIG_FILE).read_text())["model"]["pad_token_id"])

    def batched(self, prompts: Sequence[Sequence[int]], new_tokens: int) -> tuple[list[list[int]], float, float]:
        """One Generator over ``prompts`` right-padded (genai's batch layout); ``(tokens, first_token_s, total_s)``."""
        og = self.og
        start = time.perf_counter()
        width = max(len(p) for p in prompts)
        ids = np.full((len(prompts), width), self.pad_id, dtype=np.int32)  # (B, T)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = prompt
        params = og.GeneratorParams(self.model)
        params.set_search_options(
            max_length=width + new_tokens, min_length=width + new_tokens, do_sample=False, batch_size=len(prompts)
        )
        generator = og.Generator(self.model, params)
        generator.append_tokens(ids)
        out: list[list[int]] = [[] for _ in prompts]
        first = None
        while not generator.is_done():
            generator.generate_next_token()
            step = generator.get_next_tokens()
            if first is None:
                first = time.perf_counter()
            for row in range(len(prompts)):
                out[row].append(int(step[row]))
        return out, (first or time.perf_counter()) - start, time.perf_counter() - start

    def engine(self, prompts: Sequence[Sequence[int]], new_tokens: int) -> tuple[list[list[int]], list[float], float]:
        """genai's Engine (static batching), all requests submitted at once: ``(tokens, first_token_s each, total_s)``.

        Requests are matched to events by the identity of the request object genai hands back."""
        og = self.og
        start = time.perf_counter()
        engine = og.Engine(self.model)
        requests = []
        for prompt in prompts:
            request = engine.create_request()
            turn = og.TurnOptions(request)
            turn.set_temperature(0.0)
            turn.set_max_generated_tokens(new_tokens)
            turn.set_min_generated_tokens(new_tokens)
            request.begin_turn(np.asarray(prompt, dtype=np.int32), turn)
            requests.append(request)
        index = {id(r): i for i, r in enumerate(requests)}
        out: list[list[int]] = [[] for _ in prompts]
        first: list[float | None] = [None] * len(prompts)
        buffer = engine.create_event_buffer(4 * len(prompts) + 16)
        while engine.has_pending_requests():
            engine.run(buffer)
            now = time.perf_counter()
            for i in range(len(buffer)):
                event = buffer[i]
                if int(event.error_code) != 0:
                    raise RuntimeError(f"genai engine error {event.error_code}")
                if int(event.flags) & int(og.EngineEventFlags.TOKEN):
                    row = index[id(event.request)]
                    out[row].append(int(event.token))
                    if first[row] is None:
                        first[row] = now
        total = time.perf_counter() - start
        for request in requests:
            request.close()
        return out, [(f or start + total) - start for f in first], total


def run_peer(
    model_dir: Path,
    spec: dict[str, Any],
    threads: int = 0,
    modes: Sequence[str] = ("generator", "engine"),
    levels_wanted: Sequence[str] = ("one", "batch"),
) -> dict[str, Any]:
    """Timings and generated ids for ``spec`` (``max_new_tokens``, ``warmup``, ``one`` and ``batch`` prompt lists);
    ``levels_wanted`` picks the one-at-a-time level, the concurrent one, or both."""
    new_tokens = int(spec["max_new_tokens"])
    all_prompts = [spec["warmup"], *spec["one"], *spec["batch"]]
    max_length = max(len(p) for p in all_prompts) + new_tokens
    peer = GenaiPeer(model_dir, threads, max_length, max(1, len(spec["batch"])))
    peer.batched([spec["warmup"]], 2)  # warm-up: first-run allocations and kernel choices are not measured
    levels, outputs = [], {}

    if "one" in levels_wanted:
        ttft, total, tokens_one = [], [], []
        start = time.perf_counter()
        for prompt in spec["one"]:
            out, first_s, total_s = peer.batched([prompt], new_tokens)
            tokens_one.append(out[0])
            ttft.append(first_s * 1000.0)
            total.append(total_s * 1000.0)
        levels.append(_level("a Generator per request", 1, len(spec["one"]), new_tokens, time.perf_counter() - start,
                             ttft, total))  # fmt: skip
        outputs["one"] = tokens_one

    batch = spec["batch"] if "batch" in levels_wanted else []
    if batch and "generator" in modes:
        out, first_s, total_s = peer.batched(batch, new_tokens)
        levels.append(_level("batched Generator", len(batch), len(batch), new_tokens, total_s,
                             [first_s * 1000.0] * len(batch), [total_s * 1000.0] * len(batch)))  # fmt: skip
        outputs["batch_generator"] = out
    if batch and "engine" in modes:
        out, firsts, total_s = peer.engine(batch, new_tokens)
        levels.append(_level("Engine, static batching", len(batch), len(batch), new_tokens, total_s,
                             [f * 1000.0 for f in firsts], [total_s * 1000.0] * len(batch)))  # fmt: skip
        outputs["batch_engine"] = out
    import onnxruntime_genai as og

    return {
        "version": og.__version__,
        "load_s": round(peer.load_s, 3),
        "levels": levels,
        "outputs": outputs,
        "memory_mb": _memory_mb(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="genai_peer.py",
        description="onnxruntime-genai peer of npc-runtime bench-hf: build the model, generate the prompts, print "
        "JSON. Runs in the genai venv (make venv-genai).",
    )
    parser.add_argument("--model", type=Path, required=True, help="genai model folder (built here with --build)")
    parser.add_argument("--build", type=Path, help="Hugging Face checkpoint to build --model from when it is missing")
    parser.add_argument("--cache-dir", type=Path, help="builder's scratch folder (default: beside --model)")
    parser.add_argument("--prompts", type=Path, help="prompt file written by bench-hf (omit to only build)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's choice)")
    parser.add_argument("--builder-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an --extra_options entry for the model builder (repeatable)")  # fmt: skip
    parser.add_argument("--modes", nargs="+", choices=("generator", "engine"), default=["generator", "engine"],
                        help="how to run the concurrent requests (default: both)")  # fmt: skip
    parser.add_argument("--levels", nargs="+", choices=("one", "batch"), default=["one", "batch"],
                        help="one request at a time, all at once, or both (default: both)")  # fmt: skip
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    if args.build is not None and not (args.model / CONFIG_FILE).is_file():
        cache = args.cache_dir or args.model.with_name(args.model.name + ".cache")
        report["build_s"] = round(build_model(args.build, args.model, cache, args.builder_option), 2)
    if args.prompts is not None:
        spec = json.loads(args.prompts.read_text(encoding="utf-8"))
        report.update(run_peer(args.model, spec, args.threads, args.modes, args.levels))
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
