"""``npc-runtime bench``: latency and throughput of the real server, PyTorch eager beside it, and a roofline.

Starts ``npc-runtime serve`` as a subprocess with fixed-length replies, drives 1, 8, 32 and 64 concurrent NPC
conversations over ZeroMQ from one asyncio process, and writes medians, p95s and ratios to JSON and Markdown.
The PyTorch peer (the ``export/`` model with its own KV cache) runs only when a checkpoint and torch are there,
in a subprocess (``export.torch_peer``): this module never imports torch. Timings are measurements, never test
assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.asyncio

from . import __version__
from .bundle import default_bundle_dir, load_bundle
from .engine import Prepared
from .errors import ConfigError, NpcRuntimeError
from .ort_backend import CUDA, KV_CACHES
from .prompt import layout_ids
from .protocol import decode, encode

__all__ = [
    "BenchConfig", "ServerProcess", "run_bench", "main", "percentile", "summary", "proc_memory_mb", "machine_info",
    "memory_bandwidth_gbs",
]  # fmt: skip

log = logging.getLogger(__name__)

LINES = (
    "Good evening. What do you sell here?",
    "How much for your finest wares?",
    "Where can I find the inn?",
    "Heard any rumours lately?",
    "Is there any work for me?",
    "What is that noise outside?",
)
CONTEXTS = (
    {"time_of_day": "night", "weather": "rain", "location": "forge", "nearby": "wolf", "player_item": "torch"},
    {"time_of_day": "morning", "weather": "clear", "location": "market", "nearby": "chicken", "player_item": "apple"},
    {"time_of_day": "evening", "weather": "fog", "location": "inn", "nearby": "", "player_item": "lute"},
)


@dataclass(frozen=True)
class BenchConfig:
    model: Path = field(default_factory=default_bundle_dir)
    concurrency: tuple[int, ...] = (1, 8, 32, 64)
    rounds: int = 3
    max_tokens: int = 24
    threads: int = 0
    device: str = "auto"
    kv_cache: str = "auto"
    checkpoint: Path | None = None
    with_images: bool = True
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError("concurrency levels must be >= 1")
        if self.rounds < 1 or self.max_tokens < 1:
            raise ValueError("rounds and max_tokens must be >= 1")
        if self.kv_cache not in KV_CACHES:
            raise ValueError(f"kv_cache must be one of {KV_CACHES}, got {self.kv_cache!r}")


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and count of a list of timings (NaN percentiles when empty)."""
    return {"p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3), "n": len(values)}


def proc_memory_mb(pid: int | str = "self") -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process in MB, read from /proc; empty where /proc is not there."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024.0, 1)
    except OSError:
        pass
    return out


def machine_info() -> dict[str, Any]:
    """CPU model, core count, Python and ONNX Runtime versions, for a report's header."""
    import onnxruntime

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__}  # fmt: skip
    try:  # the GPU's name and driver where NVIDIA's tool is there (no CUDA import needed)
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)  # fmt: skip
        if done.returncode == 0 and done.stdout.strip():
            info["gpu"] = done.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


# ------------------------------------------------------------------------------------------------ server process


class ServerProcess:
    """``npc-runtime serve`` in a subprocess on a free loopback port, with fixed-length replies (``--ignore-eos``).

    Its log goes to ``data_dir/server.log`` (a pipe nobody reads during a run could fill and stall the server).
    """

    def __init__(self, model: Path, data_dir: Path, *, device: str = "auto", threads: int = 0, max_batch: int = 64,
                 personas: Path | None = None, start_timeout_s: float = 300.0, kv_cache: str = "auto") -> None:  # fmt: skip
        ready = data_dir / "ready"
        cmd = [
            sys.executable, "-m", "npc_runtime", "--log-level", "WARNING", "serve",
            "--model", str(model), "--bind", "tcp://127.0.0.1:0", "--data", str(data_dir),
            "--ready-file", str(ready), "--ignore-eos", "--device", device,
            "--threads", str(threads), "--max-batch", str(max_batch), "--max-queue", str(4 * max_batch),
            "--kv-cache", kv_cache,
        ]  # fmt: skip
        if personas is not None:
            cmd += ["--personas", str(personas)]
        self.log = (data_dir / "server.log").open("w+", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + start_timeout_s
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(data_dir / "server.log", encoding="utf-8") as log_file:
                    raise NpcRuntimeError(f"benchmark server did not start: {log_file.read()[-3000:]}")
            time.sleep(0.05)
        self.endpoint = ready.read_text(encoding="utf-8").strip()

    def memory_mb(self) -> dict[str, float]:
        return proc_memory_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------------------------------------ load generator


def _png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


async def _conversation(
    ctx: zmq.asyncio.Context, endpoint: str, npc: int, personas: Sequence[str], config: BenchConfig, out: list[dict]
) -> None:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    image = None
    if config.with_images:
        image = {"format": "png", "data": _png(npc), "width": 160, "height": 120}
    try:
        for turn in range(config.rounds):
            rid = f"n{npc}-t{turn}"
            message = {
                "v": 1, "id": rid, "type": "say", "persona": personas[npc % len(personas)],
                "session": f"bench:{npc}", "text": LINES[(npc + turn) % len(LINES)],
                "context": CONTEXTS[(npc + turn) % len(CONTEXTS)],
                "options": {"max_tokens": config.max_tokens, "stream": True, "temperature": 0.7, "seed": npc},
            }  # fmt: skip
            if image is not None:
                message["image"] = image
            start = time.perf_counter()
            await sock.send(encode(message))
            first = None
            while True:
                if not await sock.poll(int(config.timeout_s * 1000)):
                    raise NpcRuntimeError(f"no reply for {rid} within {config.timeout_s} s")
                reply = decode(await sock.recv())
                now = time.perf_counter()
                if reply["type"] == "chunk" and first is None:
                    first = now
                if reply["type"] == "error":
                    raise NpcRuntimeError(f"{rid}: {reply['code']}: {reply['message']}")
                if reply["type"] == "reply":
                    out.append({
                        "ttft_ms": ((first or now) - start) * 1000.0,
                        "total_ms": (now - start) * 1000.0,
                        "tokens": reply["usage"]["completion_tokens"],
                        "server": reply["timing_ms"],
                    })  # fmt: skip
                    break
    finally:
        sock.close(0)


async def _level(endpoint: str, concurrency: int, personas: Sequence[str], config: BenchConfig) -> dict[str, Any]:
    ctx = zmq.asyncio.Context()
    results: list[dict] = []
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(_conversation(ctx, endpoint, npc, personas, config, results) for npc in range(concurrency))
        )
        wall = time.perf_counter() - start
    finally:
        ctx.term()
    tokens = sum(r["tokens"] for r in results)
    return {
        "concurrency": concurrency,
        "replies": len(results),
        "ttft_ms": summary([r["ttft_ms"] for r in results]),
        "total_ms": summary([r["total_ms"] for r in results]),
        "server_queue_ms": summary([r["server"]["queue"] for r in results]),
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 1),
    }


def _hello_rtt(endpoint: str, n: int = 300) -> dict[str, float]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    times = []
    try:
        for i in range(n + 20):
            start = time.perf_counter()
            sock.send(encode({"v": 1, "id": i, "type": "hello"}))
            if not sock.poll(10_000):
                raise NpcRuntimeError("hello timed out")
            decode(sock.recv())
            if i >= 20:  # warm-up excluded
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        sock.close(0)
        ctx.term()
    return summary(times)


# ------------------------------------------------------------------------------------------------ in-process parts


def memory_bandwidth_gbs(mib: int = 128) -> float:
    """Best of a few ``mib``-MiB copies: bytes read + written per second (the roofline's bandwidth)."""
    a = np.ones(mib * 1024 * 1024 // 4, dtype=np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - start)
    return 2 * a.nbytes / best / 1e9


def _engine_parts(config: BenchConfig) -> dict[str, Any]:
    from .engine import RoleModelEngine
    from .ort_backend import RuntimeOptions
    from .personas import PersonaPack, default_pack_dir
    from .protocol import ImageInput

    bundle = load_bundle(config.model)
    engine = RoleModelEngine(bundle, RuntimeOptions(device=config.device, intra_op_threads=config.threads,
                                                    kv_cache=config.kv_cache))
    cards = list(PersonaPack.load(default_pack_dir()))
    persona_first, persona_cached = [], []
    for card in cards:
        start = time.perf_counter()
        engine.persona_embedding(card.fingerprint(), card.card_text())
        persona_first.append((time.perf_counter() - start) * 1000.0)
        start = time.perf_counter()
        engine.persona_embedding(card.fingerprint(), card.card_text())
        persona_cached.append((time.perf_counter() - start) * 1000.0)
    shots = []
    for seed in range(20):
        data = _png(1000 + seed)
        start = time.perf_counter()
        engine.visual_features(ImageInput("png", data, 160, 120))
        shots.append((time.perf_counter() - start) * 1000.0)

    card = cards[0]
    prep = engine.prepare(
        card.fingerprint(), card.card_text(), engine.knowledge_of(card), CONTEXTS[0], [], LINES[0], None
    )
    pre = engine.prefill([prep])  # untimed: a first call of new shapes is slow on CUDA (36 ms against 5 warm)
    prefills = []
    for _ in range(5):
        start = time.perf_counter()
        pre = engine.prefill([prep])
        prefills.append((time.perf_counter() - start) * 1000.0)
    prefill_ms = percentile(prefills, 50)
    first = int(np.argmax(pre.logits[0]))
    steps_by_batch: dict[str, float] = {}
    for batch in (1, 8, 32, 64):  # the decoder alone over the in-place cache, every row the same prompt
        cache = engine.new_cache()
        for _ in range(batch):
            cache.append(pre.kv, pre.mask)
        last = np.full(batch, first, dtype=np.int64)
        position = np.full(batch, len(prep.ids), dtype=np.int64)
        steps = []
        for _ in range(config.max_tokens):
            start = time.perf_counter()
            logits = engine.decode_step(last, position, cache)
            steps.append((time.perf_counter() - start) * 1000.0)
            last = np.argmax(logits, axis=1).astype(np.int64)
            position += 1
        steps_by_batch[str(batch)] = round(percentile(steps, 50), 4)
        if batch == 1:
            step_summary = summary(steps)
            step_ms = percentile(steps, 50)
    decoder_bytes = bundle.graphs["decoder"].path.stat().st_size  # weights dominate the file
    bytes_per_position = len(engine.past_names) * engine.n_heads * engine.head_dim * 4
    kv_bytes = bytes_per_position * (len(prep.ids) + config.max_tokens // 2)  # the mean cache read per step
    bandwidth = memory_bandwidth_gbs()
    bound_ms = (decoder_bytes + kv_bytes) / (bandwidth * 1e9) * 1000.0
    return {
        "provider": engine.provider,
        "kv_cache": engine.kv_cache,
        "prompt_tokens": len(prep.ids),
        "persona_first_use_ms": summary(persona_first),
        "persona_cached_ms": summary(persona_cached),
        "screenshot_ms": summary(shots),
        "prefill_ms": round(prefill_ms, 3),
        "step_ms_batch1": step_summary,
        "step_ms_by_batch": steps_by_batch,
        "sampling_ms_by_batch": _sampling_cost(engine, pre, prep, card, config.max_tokens),
        "roofline": {
            "decoder_weight_bytes": decoder_bytes,
            "kv_bytes_per_step": kv_bytes,
            "memory_bandwidth_gbs": round(bandwidth, 2),
            "bound_ms": round(bound_ms, 4),
            "measured_ms": round(step_ms, 4),
            "ratio": round(step_ms / bound_ms, 2) if bound_ms else None,
        },
        "engine": engine,
        "cards": cards,
    }


def _sampling_cost(engine: Any, pre: Any, prep: Any, card: Any, tokens: int) -> dict[str, dict[str, float]]:
    """p50 ms of choosing one token per row, by batch: greedy with the repetition penalty only, with the n-gram ban,
    and with the ban and the spelling constraint (where the bundle has a lexicon), and the voice, fact and scene
    steerings' own shares (``voice_steering``, ``fact_steering``, ``scene_steering`` where the bundle lists scene
    words: the nudges of every row, added to a copy of the logits, as the scheduler does; the fact rows are asked
    the price of the card's first ware, the scene rows are in the first benchmark scene). The
    decoder follows the fully constrained choices, as the server's rows do; the other variants are timed on the
    same logits."""
    from .sampling import DEFAULT_NO_REPEAT_NGRAM, sample_tokens
    from .scheduler import GenOptions
    from .facts import DEFAULT_FACT_BIAS
    from .grounding import DEFAULT_SCENE_BIAS
    from .voice import DEFAULT_VOICE_BIAS, steer

    plain = GenOptions(temperature=0.0, no_repeat_ngram=0)
    banned = GenOptions(temperature=0.0, no_repeat_ngram=DEFAULT_NO_REPEAT_NGRAM)
    out: dict[str, dict[str, float]] = {}
    for batch in (1, 64):
        cache = engine.new_cache()
        for _ in range(batch):
            cache.append(pre.kv, pre.mask)
        rows = [engine.spelling(engine.knowledge_of(card), CONTEXTS[0], []) for _ in range(batch)]
        wares = card.knowledge.wares
        question = f"How much is the {wares[0].item}?" if wares else LINES[0]
        voices = [engine.voice.row(card.card_text(), [], DEFAULT_VOICE_BIAS, question, catchphrase_rate=1.0)
                  for _ in range(batch)]  # both markers live in every row: the most work a row can bring
        facts = [engine.facts.row(engine.knowledge_of(card), question, DEFAULT_FACT_BIAS) for _ in range(batch)]
        scenes = [engine.scene.row(CONTEXTS[0], card.card_text(), engine.knowledge_of(card), question,
                                   DEFAULT_SCENE_BIAS) if engine.scene is not None else None for _ in range(batch)]
        rngs = [np.random.default_rng(i) for i in range(batch)]
        generated: list[list[int]] = [[] for _ in range(batch)]
        logits = pre.logits[[0] * batch]
        position = np.full(batch, len(prep.ids), dtype=np.int64)
        times: dict[str, list[float]] = {"plain": [], "no_repeat_ngram": [], "no_repeat_ngram_and_spelling": [],
                                         "voice_steering": [], "fact_steering": []}
        if engine.scene is not None:
            times["scene_steering"] = []
        for _ in range(tokens):
            start = time.perf_counter()
            steer(logits, voices)
            times["voice_steering"].append((time.perf_counter() - start) * 1000.0)
            start = time.perf_counter()
            steer(logits, facts)
            times["fact_steering"].append((time.perf_counter() - start) * 1000.0)
            if engine.scene is not None:
                start = time.perf_counter()
                steer(logits, scenes)
                times["scene_steering"].append((time.perf_counter() - start) * 1000.0)
            for name, options, allowed in (("plain", plain, None), ("no_repeat_ngram", banned, None),
                                           ("no_repeat_ngram_and_spelling", banned,
                                            [r.allows if r is not None else None for r in rows])):  # fmt: skip
                start = time.perf_counter()
                picks = sample_tokens(logits, generated, [options] * batch, rngs, engine.banned_ids, allowed)
                times[name].append((time.perf_counter() - start) * 1000.0)
            for row, token, spelling, voice, fact, scene in zip(generated, picks, rows, voices, facts, scenes):
                row.append(int(token))
                for steering in (spelling, voice, fact, scene):
                    if steering is not None:
                        steering.advance(int(token))
            logits = engine.decode_step(picks.astype(np.int64), position, cache)
            position += 1
        out[str(batch)] = {name: round(percentile(values, 50), 4) for name, values in times.items()}
        out[str(batch)]["lexicon"] = rows[0] is not None
    return out


def _peer_spec(config: BenchConfig, engine: Any, cards: Sequence[Any]) -> dict[str, Any]:
    """The static-batch workload both peers run: per level, each NPC's prompt ids and text embeddings."""
    k = engine.prefix_tokens
    levels = []
    for concurrency in config.concurrency:
        turns = []
        for npc in range(concurrency):
            card = cards[npc % len(cards)]
            line = LINES[npc % len(LINES)]
            # The same prompt ids the server feeds (trimmed to the bundle's prompt budget, with the intent hint
            # where the bundle has a reader).
            utterance = engine.encode_texts([line])
            text_ids = engine.prompt_ids(engine.knowledge_of(card), CONTEXTS[npc % len(CONTEXTS)], [], line,
                                         engine.intent_hints(utterance)[0])  # fmt: skip
            ids, mask = layout_ids(text_ids, k, engine.token_id["prefix"], engine.token_id["bos"])
            turns.append({
                "ids": ids,
                "prefix_mask": mask,
                "persona": engine.persona_embedding(card.fingerprint(), card.card_text()).tolist(),
                "utterance": utterance[0].tolist(),
            })  # fmt: skip
        levels.append({"turns": turns})
    return {
        "pad_id": engine.token_id["pad"],
        "eos_id": engine.eos_id,
        "max_tokens": config.max_tokens,
        "rounds": config.rounds,
        "levels": levels,
    }


def _engine_static(engine: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Our engine (ONNX Runtime) on exactly the PyTorch peer's work: the same prompts and embeddings, no screenshot,
    one left-padded prefill of the whole batch, then greedy steps; no server, no streaming, no admission."""
    max_tokens = int(spec["max_tokens"])
    levels = []
    for level in spec["levels"]:
        turns = level["turns"]
        visual, present = engine.visual_features(None)
        prefix = engine.graphs["prefix_encoder"].run({
            "persona_embedding": np.array([t["persona"] for t in turns], dtype=np.float32),
            "utterance_embedding": np.array([t["utterance"] for t in turns], dtype=np.float32),
            "visual_features": np.repeat(visual[None], len(turns), axis=0),
            "image_present": np.full(len(turns), present, dtype=np.float32),
        })["prefix_embeds"]  # fmt: skip
        times = []
        for _ in range(int(spec["rounds"])):
            start = time.perf_counter()
            prepared = [Prepared(t["ids"], np.asarray(t["prefix_mask"], dtype=np.float32), prefix[i])
                        for i, t in enumerate(turns)]  # fmt: skip
            result = engine.prefill(prepared)
            cache = engine.new_cache()
            cache.append(result.kv, result.mask)
            last = np.argmax(result.logits, axis=1).astype(np.int64)
            positions = np.array([len(t["ids"]) for t in turns], dtype=np.int64)
            for _ in range(max_tokens - 1):
                last = np.argmax(engine.decode_step(last, positions, cache), axis=1).astype(np.int64)
                positions += 1
            times.append(time.perf_counter() - start)
        wall = float(np.median(times))
        levels.append({"concurrency": len(turns), "batch_wall_ms": round(wall * 1000.0, 3),
                       "tokens_per_s": round(len(turns) * max_tokens / wall, 1)})  # fmt: skip
    return {"levels": levels}


def _torch_peer(config: BenchConfig, spec: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """PyTorch eager generation of the same prompts, a static batch per concurrency level, on ``device``
    (the GPU where the engine runs on CUDA, so the peers share the hardware).

    Runs ``export.torch_peer`` in a subprocess, so this module (and serving) never imports torch.
    """
    if config.checkpoint is None or not Path(config.checkpoint).is_file():
        return {"skipped": f"no PyTorch checkpoint at {config.checkpoint}"}
    missing = [name for name in ("torch", "export.torch_peer") if importlib.util.find_spec(name) is None]
    if missing:
        return {"skipped": f"PyTorch peer needs the export extra (missing {', '.join(missing)})"}
    levels = spec["levels"]
    with tempfile.TemporaryDirectory(prefix="npc-bench-peer-") as tmp:
        prompts = Path(tmp) / "prompts.json"
        prompts.write_text(json.dumps(spec), encoding="utf-8")
        cmd = [sys.executable, "-m", "export.torch_peer", "--checkpoint", str(config.checkpoint),
               "--prompts", str(prompts), "--threads", str(config.threads), "--device", device]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=config.timeout_s * len(levels))
    if done.returncode != 0:
        raise NpcRuntimeError(f"PyTorch peer failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


# ------------------------------------------------------------------------------------------------ report


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the working directory when inside it (no machine's layout)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    bundle = load_bundle(config.model)
    report: dict[str, Any] = {
        "version": __version__,
        "model": {"name": bundle.name, "precision": bundle.manifest.get("precision"), "path": _shown(config.model)},
        "machine": machine_info(),
        "config": {k: (_shown(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    parts = _engine_parts(config)
    engine, cards = parts.pop("engine"), parts.pop("cards")
    report["engine"] = parts
    personas = [c.id for c in cards]
    with tempfile.TemporaryDirectory(prefix="npc-bench-") as tmp:
        server = ServerProcess(config.model, Path(tmp), device=config.device, threads=config.threads,
                               max_batch=max(config.concurrency), kv_cache=config.kv_cache)
        try:
            asyncio.run(_level(server.endpoint, 2, personas, BenchConfig(**{**asdict(config), "rounds": 1})))
            report["hello_rtt_ms"] = _hello_rtt(server.endpoint)
            levels = []
            for concurrency in config.concurrency:
                log.info("benchmark: %d concurrent NPCs", concurrency)
                levels.append(asyncio.run(_level(server.endpoint, concurrency, personas, config)))
            report["server"] = {"levels": levels, "memory_mb": server.memory_mb()}
        finally:
            server.stop()
    spec = _peer_spec(config, engine, cards)
    report["engine_static"] = _engine_static(engine, spec)
    report["torch_eager"] = _torch_peer(config, spec, "cuda" if report["engine"]["provider"] == CUDA else "cpu")
    _ratios(report)
    return report


def _ratios(report: dict[str, Any]) -> None:
    levels = {lv["concurrency"]: lv for lv in report["server"]["levels"]}
    ratios: dict[str, Any] = {}
    if 1 in levels:
        one = levels[1]["tokens_per_s"]
        ratios["throughput_vs_one_npc"] = {str(c): round(lv["tokens_per_s"] / one, 2) for c, lv in levels.items()}
    ratios["p95_over_p50_total"] = {
        str(c): round(lv["total_ms"]["p95"] / lv["total_ms"]["p50"], 2) for c, lv in levels.items()
    }
    torch_levels = {lv["concurrency"]: lv for lv in report["torch_eager"].get("levels", [])}
    static = {lv["concurrency"]: lv for lv in report.get("engine_static", {}).get("levels", [])}
    if torch_levels:
        ratios["server_vs_torch_eager_tokens_per_s"] = {
            str(c): round(levels[c]["tokens_per_s"] / torch_levels[c]["tokens_per_s"], 2)
            for c in levels
            if c in torch_levels
        }
        ratios["engine_static_vs_torch_eager_tokens_per_s"] = {
            str(c): round(static[c]["tokens_per_s"] / torch_levels[c]["tokens_per_s"], 2)
            for c in static
            if c in torch_levels
        }
    report["ratios"] = ratios


def _sampling_lines(cost: dict[str, dict[str, Any]]) -> list[str]:
    if not cost:
        return []
    parts = [f"batch {b}: {c['plain']:.3f} ms plain, {c['no_repeat_ngram']:.3f} ms with the n-gram ban, "
             f"{c['no_repeat_ngram_and_spelling']:.3f} ms with the ban and "
             + ("the spelling constraint" if c.get("lexicon") else "no lexicon in this bundle")
             + (f", {c['voice_steering']:.3f} ms more for voice steering" if "voice_steering" in c else "")
             + (f", {c['fact_steering']:.3f} ms more for fact steering" if "fact_steering" in c else "")
             + (f", {c['scene_steering']:.3f} ms more for scene steering" if "scene_steering" in c else "")
             for b, c in cost.items()]  # fmt: skip
    return [f"- Choosing the next token per step (greedy, decoding constraints; `sampling_ms_by_batch`): "
            + "; ".join(parts) + "."]


def render_markdown(report: dict[str, Any]) -> str:
    eng = report["engine"]
    roof = eng["roofline"]
    lines = [
        "## Runtime benchmark (`npc-runtime bench`)",
        "",
        f"Model `{report['model']['name']}` ({report['model']['precision']}), provider `{eng['provider']}` "
        f"(KV cache: {eng.get('kv_cache', 'host')}), "
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores"
        + (f", GPU {report['machine']['gpu']}" if report["machine"].get("gpu") else "")
        + f", onnxruntime "
        f"{report['machine']['onnxruntime']}. Replies are fixed at {report['config']['max_tokens']} tokens; "
        f"{report['config']['rounds']} turns per NPC; the load generator shares the machine with the server.",
        "",
        "| concurrent NPCs | first token p50 / p95 (ms) | whole reply p50 / p95 (ms) | aggregate tokens/s |",
        "|---|---|---|---|",
    ]
    for lv in report["server"]["levels"]:
        lines.append(
            f"| {lv['concurrency']} | {lv['ttft_ms']['p50']:.1f} / {lv['ttft_ms']['p95']:.1f} | "
            f"{lv['total_ms']['p50']:.1f} / {lv['total_ms']['p95']:.1f} | {lv['tokens_per_s']:.0f} |"
        )
    mem = report["server"].get("memory_mb", {})
    lines += [
        "",
        f"- ZeroMQ + msgpack round trip (`hello`): p50 {report['hello_rtt_ms']['p50']:.3f} ms, "
        f"p95 {report['hello_rtt_ms']['p95']:.3f} ms.",
        f"- Persona prefix: first use p50 {eng['persona_first_use_ms']['p50']:.2f} ms, cached "
        f"{eng['persona_cached_ms']['p50']:.4f} ms. Screenshot features (160×120 PNG): p50 "
        f"{eng['screenshot_ms']['p50']:.2f} ms.",
        f"- Prefill of a {eng['prompt_tokens']}-token prompt (p50 of 5 after a warm-up): {eng['prefill_ms']:.1f} ms; "
        f"decoder step at batch 1: "
        f"p50 {eng['step_ms_batch1']['p50']:.3f} ms. Decoder step alone (in-process, in-place cache) by batch: "
        + ", ".join(f"{b}: {ms:.2f} ms" for b, ms in eng.get("step_ms_by_batch", {}).items())
        + ".",
        f"- Roofline at batch 1: {roof['decoder_weight_bytes'] / 1e6:.1f} MB of weights + "
        f"{roof['kv_bytes_per_step'] / 1e6:.2f} MB of KV per step over {roof['memory_bandwidth_gbs']:.1f} GB/s "
        f"measured copy bandwidth = {roof['bound_ms']:.3f} ms lower bound; measured {roof['measured_ms']:.3f} ms "
        f"({roof['ratio']}× the bound)"
        + (" (host memory's bandwidth: not the GPU's bound)." if eng["provider"] == CUDA else "."),
        *_sampling_lines(eng.get("sampling_ms_by_batch", {})),
        f"- Server memory: RSS {mem.get('VmRSS', 'n/a')} MB, peak {mem.get('VmHWM', 'n/a')} MB.",
    ]
    ratios = report["ratios"]
    if "throughput_vs_one_npc" in ratios:
        lines.append(f"- Aggregate throughput relative to one NPC: {ratios['throughput_vs_one_npc']}.")
    lines.append(f"- Whole-reply p95 / p50 per level: {ratios['p95_over_p50_total']}.")
    torch_report = report["torch_eager"]
    if "levels" in torch_report:
        lines.append(
            f"- PyTorch eager on {torch_report.get('device', 'cpu')} (same weights in fp32, static batch, its own KV cache)"
            " tokens/s: "
            + ", ".join(f"{lv['concurrency']} NPCs {lv['tokens_per_s']:.0f}" for lv in torch_report["levels"])
            + f"; server ÷ eager: {ratios.get('server_vs_torch_eager_tokens_per_s')}."
        )
    else:
        lines.append(f"- PyTorch eager peer: skipped ({torch_report.get('skipped')}).")
    static = report.get("engine_static", {}).get("levels", [])
    if static:
        lines.append(
            "- Our engine on the eager peer's exact work (same prompts and embeddings, static batch, greedy, no "
            "server) tokens/s: " + ", ".join(f"{lv['concurrency']} NPCs {lv['tokens_per_s']:.0f}" for lv in static)
            + (f"; engine ÷ eager: {ratios['engine_static_vs_torch_eager_tokens_per_s']}."
               if "engine_static_vs_torch_eager_tokens_per_s" in ratios else ".")
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="npc-runtime bench",
        description="Benchmark the real server (1..64 concurrent NPCs) beside PyTorch eager; write JSON + Markdown.",
    )
    parser.add_argument("--model", type=Path, default=default_bundle_dir(), help="bundle (default: the shipped one)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="NPC counts")
    parser.add_argument("--rounds", type=int, default=3, help="turns per NPC and level (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=24, help="tokens per reply (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime / torch intra-op threads (0: auto)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--kv-cache", choices=KV_CACHES, default="auto",
                        help="where the KV cache lives (auto: the GPU's memory with CUDA, else host memory)")
    parser.add_argument("--checkpoint", type=Path, help="PyTorch checkpoint of the same model for the eager peer")
    parser.add_argument("--no-images", action="store_true", help="send says without screenshots")
    parser.add_argument("--out-json", type=Path, default=Path("docs/benchmarks.json"))
    parser.add_argument("--out-md", type=Path, help="also write the Markdown section to this file")
    args = parser.parse_args(argv)
    try:
        config = BenchConfig(
            model=args.model, concurrency=tuple(args.concurrency), rounds=args.rounds, max_tokens=args.max_tokens,
            threads=args.threads, device=args.device, kv_cache=args.kv_cache, checkpoint=args.checkpoint,
            with_images=not args.no_images,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    report = run_bench(config)
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    if args.out_md:
        args.out_md.write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0
