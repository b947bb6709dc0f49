"""``npc-runtime bench-hf``: a Hugging Face causal LM served by our runtime, against transformers and onnxruntime-genai.

For each checkpoint, one after another and never at the same time, with the same thread count:

1. **ours**: ``import-hf`` (fp32; ``--int8`` adds an int8 row) unless the bundle exists, then ``npc-runtime serve``
   in a subprocess on a loopback port, driven over ZeroMQ with one request at a time and with N at once;
2. **transformers** ``generate`` in a subprocess: greedy, the same prompt ids, batch 1 one after another and one
   left-padded batch of N;
3. **onnxruntime-genai** in its own venv (``make venv-genai``; ``export/genai_peer.py``): its model builder on the
   same checkpoint (fp32, CPU), then the same prompt ids one at a time and N at once.

Everyone gets the same token ids: the chat-rendered persona prompts our server builds (checked against the prompt
length the server reports), fixed-length greedy replies (``--ignore-eos`` for the server, a minimum length for the
peers), each request from a different one-off NPC so no prompt shares a reusable prefix with another. Our server is
then also measured with the village personas seen before, where it reuses a persona's prompt KV (not like for
like: the peers have no such reuse). Our decoder graph is also timed and profiled alone, to tell the graph's time
from the server's. Results are tokens/s, first-token latency and peak memory, with ratios from this one run,
written as JSON and Markdown. Timings are measurements, never test assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npc_runtime.bench import CONTEXTS, LINES, ServerProcess, machine_info, memory_bandwidth_gbs, proc_memory_mb
from npc_runtime.bench import summary as _summary

__all__ = [
    "BenchHfConfig",
    "PromptCase",
    "PromptSets",
    "build_prompts",
    "one_off_cards",
    "village_cards",
    "prompt_sets",
    "write_pack",
    "run_server",
    "profile_engine",
    "op_breakdown",
    "run_transformers_peer",
    "run_bench_hf",
    "render_markdown",
    "build_parser",
    "main",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GENAI_PYTHON = REPO_ROOT / ".venv-genai" / "bin" / "python"
GENAI_SCRIPT = Path(__file__).with_name("genai_peer.py")
#: ``--random FAMILY:SIZE`` checkpoints (``export.hf_random``) are written under the work directory.
RANDOM_PREFIX = "random-"
RANDOM_BPE_VOCAB = 4096


@dataclass(frozen=True)
class BenchHfConfig:
    """One checkpoint's benchmark: where its bundles and genai models go, the load, the threads and the peers."""

    checkpoint: Path
    work_dir: Path
    new_tokens: int = 16
    one_requests: int = 8
    concurrency: int = 32
    threads: int = 2
    int8: bool = False
    peers: tuple[str, ...] = ("transformers", "genai")
    genai_python: Path = DEFAULT_GENAI_PYTHON
    genai_modes: tuple[str, ...] = ("generator", "engine")
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.new_tokens < 1 or self.one_requests < 1 or self.concurrency < 1:
            raise ValueError("--new-tokens, --one-requests and --concurrency must be >= 1")
        if self.threads < 0:
            raise ValueError("--threads must be >= 0")
        unknown = set(self.peers) - {"transformers", "genai"}
        if unknown:
            raise ValueError(f"unknown peers {sorted(unknown)}: choose from transformers, genai")
        if 1 + self.one_requests + self.concurrency > len(NPC_NAMES):
            raise ValueError(f"--one-requests + --concurrency must stay below {len(NPC_NAMES)} (one-off NPC names)")


@dataclass(frozen=True)
class PromptCase:
    """One request: what the server is sent, and the prompt ids it will feed its decoder (and the peers get)."""

    persona: str
    text: str
    context: dict[str, str]
    ids: list[int] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ prompts


#: Names of the benchmark's one-off NPCs: each gets a village card under a new name, so no two of their prompts
#: share more than the chat template's first few tokens (nothing for the server's persona KV reuse to find).
NPC_NAMES = (
    "Aldric", "Bryn", "Cato", "Dagny", "Edda", "Fenwick", "Greta", "Hale", "Ilse", "Joram", "Kestrel", "Lorna",
    "Mabry", "Nessa", "Orrin", "Pell", "Quill", "Rosalind", "Sten", "Tamsin", "Ulric", "Vesna", "Wendel", "Xanthe",
    "Yorick", "Zelda", "Ansel", "Birgit", "Corwin", "Delphine", "Ewan", "Freya", "Gideon", "Hester", "Ivo", "Jessa",
    "Kian", "Liesl", "Magnus", "Nell", "Osric", "Petra", "Rowan", "Sable", "Tobin", "Una", "Viggo", "Wren",
)  # fmt: skip


def village_cards() -> list[Any]:
    """The bundled village pack's persona cards."""
    from npc_runtime.personas import PersonaPack, default_pack_dir

    return list(PersonaPack.load(default_pack_dir()))


def one_off_cards(count: int) -> list[Any]:
    """``count`` distinct NPCs: the village cards in turn, each under a name of its own (ids ``npc0``, ``npc1``...)."""
    import dataclasses

    cards = village_cards()
    if count > len(NPC_NAMES):
        raise ValueError(f"at most {len(NPC_NAMES)} one-off NPCs, asked for {count}")
    return [dataclasses.replace(cards[i % len(cards)], id=f"npc{i}", name=NPC_NAMES[i], source=None)
            for i in range(count)]  # fmt: skip


def build_prompts(bundle_dir: Path, cards: Sequence[Any], indices: Sequence[int]) -> list[PromptCase]:
    """Request ``i`` of ``indices``: card ``i`` (cycled), line ``i`` and scene ``i``, rendered as the causal-lm
    engine renders a first turn (no history).

    Mirrors ``CausalLMEngine.render_prompt`` without loading the decoder graph; the benchmark checks each id count
    against the ``prompt_tokens`` the server reports, and a test checks the ids against the engine's.
    """
    from tokenizers import Tokenizer

    from npc_runtime.bundle import load_bundle
    from npc_runtime.causal_engine import CHAT_TEMPLATE_ASSET, ChatTemplate, system_prompt

    bundle = load_bundle(bundle_dir, verify=False)
    tokenizer = Tokenizer.from_file(str(bundle.file("decoder")))
    special = bundle.special_tokens
    names = {f"{k}_token": str(special[k]["token"]) for k in ("bos", "eos", "pad") if k in special}
    chat = ChatTemplate(bundle.file(CHAT_TEMPLATE_ASSET).read_text(encoding="utf-8"), names)
    cases = []
    for i in indices:
        card = cards[i % len(cards)]
        line, context = LINES[i % len(LINES)], dict(CONTEXTS[i % len(CONTEXTS)])
        messages = [
            {"role": "system", "content": system_prompt(card.card_text(), card.knowledge_text(), context)},
            {"role": "user", "content": line},
        ]
        ids = tokenizer.encode(chat.render(messages), add_special_tokens=False).ids
        cases.append(PromptCase(card.id, line, context, ids))
    return cases


@dataclass(frozen=True)
class PromptSets:
    """Every request of one benchmark run.

    ``warmup``, ``one`` and ``batch`` go to every runtime: one-off NPCs, each prompt new to the server. ``prime``,
    ``again`` and ``recurring`` go to our server only, after them: the village personas, each seen before, as in a
    game where the same NPCs keep talking; the server reuses the KV of a persona's previous prompt there.
    """

    warmup: PromptCase
    one: list[PromptCase]
    batch: list[PromptCase]
    prime: list[PromptCase]
    again: list[PromptCase]
    recurring: list[PromptCase]
    cards: list[Any]  # the one-off NPCs' cards (the server's pack adds them to the village's)


def prompt_sets(bundle_dir: Path, one_requests: int, concurrency: int) -> PromptSets:
    cards = one_off_cards(1 + one_requests + concurrency)
    fresh = build_prompts(bundle_dir, cards, range(len(cards)))
    village = village_cards()
    n = len(village)
    recurring = build_prompts(bundle_dir, village, range(n + one_requests + concurrency))
    return PromptSets(
        warmup=fresh[0], one=fresh[1 : 1 + one_requests], batch=fresh[1 + one_requests :],
        prime=recurring[:n], again=recurring[n : n + one_requests], recurring=recurring[n + one_requests :],
        cards=cards,
    )  # fmt: skip


def _peer_spec(config: BenchHfConfig, pad_id: int, warmup: PromptCase, one: list[PromptCase], batch: list[PromptCase]):
    return {
        "max_new_tokens": config.new_tokens,
        "pad_id": pad_id,
        "warmup": warmup.ids,
        "one": [c.ids for c in one],
        "batch": [c.ids for c in batch],
    }


# ------------------------------------------------------------------------------------------------ our server


async def _say(ctx: Any, endpoint: str, rid: str, case: PromptCase, new_tokens: int, timeout_s: float) -> dict:
    import zmq

    from npc_runtime.errors import NpcRuntimeError
    from npc_runtime.protocol import decode, encode

    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    message = {
        "v": 1, "id": rid, "type": "say", "persona": case.persona, "session": f"bench-hf:{rid}",
        "text": case.text, "context": case.context,
        "options": {"max_tokens": new_tokens, "stream": True, "temperature": 0.0, "repetition_penalty": 1.0,
                    "timeout_ms": int(min(timeout_s, 600.0) * 1000)},  # the server's default 30 s is too short
    }  # fmt: skip
    try:
        start = time.perf_counter()
        await sock.send(encode(message))
        first_text = None
        while True:
            if not await sock.poll(int(timeout_s * 1000)):
                raise NpcRuntimeError(f"bench-hf: no reply for {rid} within {timeout_s} s")
            reply = decode(await sock.recv())
            now = time.perf_counter()
            if reply["type"] == "error":
                raise NpcRuntimeError(f"bench-hf: {rid}: {reply['code']}: {reply['message']}")
            if reply["type"] == "chunk" and first_text is None:
                first_text = now
            if reply["type"] == "reply":
                total_ms = (now - start) * 1000.0
                server = reply["timing_ms"]
                # The server times the first token from the say's arrival; the rest of the client's wall time
                # (ZeroMQ, msgpack, the event loop) is added so it is the client's view, like the peers' figures.
                transport_ms = max(0.0, total_ms - float(server["total"]))
                return {
                    "ttft_ms": float(server["first_token"]) + transport_ms,
                    "first_text_ms": None if first_text is None else (first_text - start) * 1000.0,
                    "total_ms": total_ms,
                    "tokens": int(reply["usage"]["completion_tokens"]),
                    "prompt_tokens": int(reply["usage"]["prompt_tokens"]),
                    "text": reply["text"],
                }
    finally:
        sock.close(0)


async def _server_level(endpoint: str, cases: list[PromptCase], concurrent: bool, config: BenchHfConfig, tag: str):
    import zmq.asyncio

    ctx = zmq.asyncio.Context()
    try:
        start = time.perf_counter()
        if concurrent:
            results = await asyncio.gather(
                *(_say(ctx, endpoint, f"{tag}{i}", c, config.new_tokens, config.timeout_s) for i, c in enumerate(cases))
            )
        else:
            results = [await _say(ctx, endpoint, f"{tag}{i}", c, config.new_tokens, config.timeout_s)
                       for i, c in enumerate(cases)]  # fmt: skip
        wall = time.perf_counter() - start
    finally:
        ctx.destroy(linger=0)  # closes the sockets of requests still open when one failed
    tokens = sum(r["tokens"] for r in results)
    first_text = [r["first_text_ms"] for r in results if r["first_text_ms"] is not None]
    seen = tag in ("again", "recurring")
    level = {
        "mode": ("continuous batching" if concurrent else "one at a time") + (", personas seen before" if seen else ""),
        "concurrency": len(cases) if concurrent else 1,
        "requests": len(cases),
        "tokens": tokens,
        "wall_s": round(wall, 4),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_ms": _summary([r["ttft_ms"] for r in results]),
        "first_text_ms": _summary(first_text),
        "total_ms": _summary([r["total_ms"] for r in results]),
        "step_ms": _summary([(r["total_ms"] - r["ttft_ms"]) / (r["tokens"] - 1) for r in results if r["tokens"] > 1]),
        "short_replies": sum(1 for r in results if r["tokens"] != config.new_tokens),
    }
    return level, results


def write_pack(cards: Sequence[Any], folder: Path) -> Path:
    """A persona pack folder holding ``cards`` (TOML, one file each)."""
    from npc_runtime.personas import card_to_toml

    folder.mkdir(parents=True, exist_ok=True)
    for card in cards:
        (folder / f"{card.id}.toml").write_text(card_to_toml(card), encoding="utf-8")
    return folder


def run_server(bundle_dir: Path, config: BenchHfConfig, sets: PromptSets) -> dict[str, Any]:
    """Serve ``bundle_dir`` and measure, in order: one-off NPCs one at a time, then all at once; then village
    personas seen before, one at a time, then all at once (after one unmeasured request each)."""
    with tempfile.TemporaryDirectory(prefix="npc-bench-hf-") as tmp:
        pack = write_pack([*village_cards(), *sets.cards], Path(tmp) / "personas")
        start = time.perf_counter()
        server = ServerProcess(bundle_dir, Path(tmp), device="cpu", threads=config.threads,
                               max_batch=max(len(sets.batch), len(sets.recurring), 1), personas=pack)
        load_s = time.perf_counter() - start
        levels, results = [], {}
        try:
            endpoint = server.endpoint
            asyncio.run(_server_level(endpoint, [sets.warmup], False, config, "w"))
            for key, cases, concurrent in (("one", sets.one, False), ("batch", sets.batch, True),
                                           ("prime", sets.prime, False), ("again", sets.again, False),
                                           ("recurring", sets.recurring, True)):  # fmt: skip
                if not cases:
                    continue
                level, results[key] = asyncio.run(_server_level(endpoint, cases, concurrent, config, key))
                if key == "prime":
                    continue  # only fills the server's persona KV
                level["personas_seen_before"] = key in ("again", "recurring")
                levels.append(level)
            memory = server.memory_mb()
        finally:
            server.stop()
    all_cases = [*sets.one, *sets.batch, *sets.prime, *sets.again, *sets.recurring]
    keys = ("one", "batch", "prime", "again", "recurring")
    reported = [r["prompt_tokens"] for key in keys for r in results.get(key, [])]
    return {
        "load_s": round(load_s, 2),
        "levels": levels,
        "memory_mb": memory,
        "prompt_ids_match_server": len(all_cases) == len(reported)
        and all(len(c.ids) == n for c, n in zip(all_cases, reported)),
        "texts": {key: [r["text"] for r in results.get(key, [])] for key in ("one", "batch")},
        "tokens": {key: [r["tokens"] for r in results.get(key, [])] for key in ("one", "batch")},
    }


# ------------------------------------------------------------------------------------------------ our decoder alone


def op_breakdown(bundle_dir: Path, threads: int, prompt_len: int, batch: int, repeats: int = 2) -> dict[str, Any]:
    """ONNX Runtime's own profile of our decoder graph (session options as the engine sets them): kernel time per
    operator type for a prefill of ``prompt_len`` tokens, and for a step at batch 1 and at ``batch`` with that
    much past. Values of the inputs do not change the work, so zeros stand in for them."""
    import onnxruntime as ort

    from npc_runtime.bundle import load_bundle

    bundle = load_bundle(bundle_dir, verify=False)
    model = bundle.model
    heads, head_dim, n_layers = int(model["n_kv_heads"]), int(model["head_dim"]), int(model["n_layers"])
    kv_dtype = np.dtype(str(model.get("kv_dtype", "float32")))

    def feeds(rows: int, new: int, past: int) -> dict[str, np.ndarray]:
        out = {
            "input_ids": np.ones((rows, new), np.int64),
            "attention_mask": np.ones((rows, past + new), np.int64),
            "position_ids": np.tile(np.arange(past, past + new, dtype=np.int64), (rows, 1)),
        }
        for i in range(n_layers):
            for kind in ("key", "value"):
                out[f"past_key_values.{i}.{kind}"] = np.zeros((rows, heads, past, head_dim), kv_dtype)
        return out

    workloads = {
        f"prefill of {prompt_len} tokens": feeds(1, prompt_len, 0),
        "step at batch 1": feeds(1, 1, prompt_len),
        f"step at batch {batch}": feeds(batch, 1, prompt_len),
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="npc-ort-profile-") as tmp:
        options.profile_file_prefix = str(Path(tmp) / "decoder")
        session = ort.InferenceSession(str(bundle.graphs["decoder"].path), options, providers=["CPUExecutionProvider"])
        order = []
        for name, feed in workloads.items():
            for _ in range(1 + repeats):  # the first call of each shape is a warm-up
                session.run(None, feed)
                order.append(name)
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    runs = [e for e in events if e.get("name") == "model_run"]
    nodes = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    result: dict[str, Any] = {}
    for name in workloads:
        spans = [r for r, n in zip(runs, order) if n == name][1:]  # warm-up dropped
        by_op: dict[str, float] = {}
        for node in nodes:
            if any(r["ts"] <= node["ts"] <= r["ts"] + r["dur"] for r in spans):
                op = node["args"]["op_name"]
                by_op[op] = by_op.get(op, 0.0) + node["dur"] / 1000.0 / len(spans)
        total = sum(by_op.values())
        top = dict(sorted(by_op.items(), key=lambda kv: -kv[1])[:5])
        result[name] = {
            "run_ms": round(float(np.mean([r["dur"] for r in spans])) / 1000.0, 2),
            "kernel_ms": round(total, 2),
            "top_ops_ms": {k: round(v, 2) for k, v in top.items()},
            "other_ms": round(total - sum(top.values()), 2),
        }
    return result


def profile_engine(
    bundle_dir: Path, config: BenchHfConfig, cases: Sequence[PromptCase], batch: int, embedding_bytes: int = 0
) -> dict[str, Any]:
    """Our decoder graph without the server, to tell where the server's time goes: prefill of ``cases[0]`` alone
    and of as many ``cases`` together as the scheduler admits in one tick, steps at batch 1 and ``batch``, the
    emotion classifier, and the memory-bandwidth bound of a step (every weight but the token embedding table, of
    which a step reads one row per sequence, plus the KV)."""
    from npc_runtime.scheduler import SchedulerConfig
    from npc_runtime.bundle import load_bundle
    from npc_runtime.causal_engine import CausalLMEngine
    from npc_runtime.engine import Prepared
    from npc_runtime.ort_backend import RuntimeOptions

    engine = CausalLMEngine(load_bundle(bundle_dir, verify=False), RuntimeOptions(device="cpu",
                            intra_op_threads=config.threads))  # fmt: skip
    case = cases[0]
    preps = [Prepared(ids=c.ids, prefix_mask=np.zeros(len(c.ids), np.float32),
                      prefix_embeds=np.zeros((0, 0), np.float32)) for c in cases]  # fmt: skip
    prep = preps[0]
    engine.prefill([prep])  # warm-up
    start = time.perf_counter()
    result = engine.prefill([prep])
    prefill_ms = (time.perf_counter() - start) * 1000.0
    group = preps[: SchedulerConfig().max_admit_per_tick]
    start = time.perf_counter()
    engine.prefill(group)  # one-off NPCs: nothing of theirs is in the persona KV cache
    group_ms = (time.perf_counter() - start) * 1000.0
    group_tokens = sum(len(p.ids) for p in group)
    kv, mask = result.kv, result.mask
    last = np.array([int(np.argmax(result.logits[0]))], dtype=np.int64)
    position = np.array([len(case.ids)], dtype=np.int64)
    steps = []
    for _ in range(max(1, config.new_tokens - 1)):
        start = time.perf_counter()
        logits, kv, mask = engine.step(last, position, kv, mask)
        steps.append((time.perf_counter() - start) * 1000.0)
        last, position = np.array([int(np.argmax(logits[0]))], dtype=np.int64), position + 1
    # A step of ``batch`` rows at the same past length; the values of the past do not change the work.
    past = len(case.ids)
    kv_many = [np.zeros((batch, engine.n_kv_heads, past, engine.head_dim), engine.kv_dtype) for _ in kv]
    mask_many = np.ones((batch, past), dtype=np.int64)
    ids_many, pos_many = np.ones(batch, dtype=np.int64), np.full(batch, past, dtype=np.int64)
    many = []
    for _ in range(4):
        start = time.perf_counter()
        engine.step(ids_many, pos_many, kv_many, mask_many)
        many.append((time.perf_counter() - start) * 1000.0)
    emotion = []
    if engine.emotion_classifier is not None:
        for _ in range(11):
            start = time.perf_counter()
            engine.reply_emotion("Aye, forged this very morning. Mind the edge, traveller.", {})
            emotion.append((time.perf_counter() - start) * 1000.0)
    graph = engine.bundle.graphs["decoder"].path
    weight_bytes = sum(p.stat().st_size for p in graph.parent.glob(graph.name + "*"))  # .onnx (+ .onnx.data)
    kv_bytes = sum(a.nbytes for a in kv)
    bandwidth = memory_bandwidth_gbs(256)
    bound_ms = (weight_bytes - embedding_bytes + kv_bytes) / (bandwidth * 1e9) * 1000.0
    return {
        "prompt_tokens": len(case.ids),
        "prefill_ms": round(prefill_ms, 2),
        "prefill_tokens_per_s": round(len(case.ids) / prefill_ms * 1000.0, 1),
        "group_prefill": {"prompts": len(group), "tokens": group_tokens, "ms": round(group_ms, 1),
                          "tokens_per_s": round(group_tokens / group_ms * 1000.0, 1)},  # fmt: skip
        "step_ms_batch1": _summary(steps),
        f"step_ms_batch{batch}": _summary(many[1:]),
        "emotion_ms": _summary(emotion[1:]),
        "roofline_batch1": {
            "weight_bytes": weight_bytes,
            "embedding_bytes": embedding_bytes,
            "kv_bytes": kv_bytes,
            "copy_bandwidth_gbs": round(bandwidth, 2),
            "bound_ms": round(bound_ms, 3),
        },
    }


# ------------------------------------------------------------------------------------------------ transformers


def run_transformers_peer(checkpoint: Path, spec: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """transformers ``generate`` (greedy, fixed length) on ``spec``'s prompt ids: batch 1 in turn, then one batch.

    First-token time comes from a streamer (``generate`` hands it the first new token after prefill).
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    from transformers.generation.streamers import BaseStreamer

    transformers.logging.set_verbosity_error()
    if threads:
        torch.set_num_threads(threads)

    class FirstToken(BaseStreamer):
        def __init__(self) -> None:
            self.calls, self.at = 0, None

        def put(self, value: Any) -> None:  # first call: the prompt; second: the first new token
            self.calls += 1
            if self.calls == 2:
                self.at = time.perf_counter()

        def end(self) -> None:
            pass

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), local_files_only=True, dtype=torch.float32).eval()
    load_s = time.perf_counter() - start
    pad, new_tokens = int(spec["pad_id"]), int(spec["max_new_tokens"])

    def generate(prompts: Sequence[Sequence[int]], n_new: int) -> tuple[list[list[int]], float, float]:
        begin = time.perf_counter()
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)  # (B, T), left padded
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        streamer = FirstToken()
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                pad_token_id=pad, streamer=streamer,
            )  # fmt: skip
        end = time.perf_counter()
        return out[:, width:].tolist(), (streamer.at or end) - begin, end - begin

    generate([spec["warmup"]], 2)  # warm-up, not measured
    levels, outputs = [], {}
    ttft, total, tokens = [], [], []

    def steps(first_ms: Sequence[float], whole_ms: Sequence[float]) -> dict[str, float]:
        return _summary([(t - f) / (new_tokens - 1) for f, t in zip(first_ms, whole_ms)] if new_tokens > 1 else [])

    begin = time.perf_counter()
    for prompt in spec["one"]:
        out, first_s, total_s = generate([prompt], new_tokens)
        tokens.append(out[0])
        ttft.append(first_s * 1000.0)
        total.append(total_s * 1000.0)
    wall = time.perf_counter() - begin
    outputs["one"] = tokens
    levels.append({
        "mode": "generate, batch 1", "concurrency": 1, "requests": len(spec["one"]),
        "tokens": len(spec["one"]) * new_tokens, "wall_s": round(wall, 4),
        "tokens_per_s": round(len(spec["one"]) * new_tokens / wall, 2), "ttft_ms": _summary(ttft),
        "total_ms": _summary(total), "step_ms": steps(ttft, total),
    })  # fmt: skip
    if spec["batch"]:
        batch = spec["batch"]
        out, first_s, total_s = generate(batch, new_tokens)
        outputs["batch"] = out
        levels.append({
            "mode": "generate, left-padded batch", "concurrency": len(batch), "requests": len(batch),
            "tokens": len(batch) * new_tokens, "wall_s": round(total_s, 4),
            "tokens_per_s": round(len(batch) * new_tokens / total_s, 2),
            "ttft_ms": _summary([first_s * 1000.0] * len(batch)), "total_ms": _summary([total_s * 1000.0] * len(batch)),
            "step_ms": steps([first_s * 1000.0], [total_s * 1000.0]),
        })  # fmt: skip
    return {
        "version": transformers.__version__,
        "torch": torch.__version__,
        "attention": str(getattr(model.config, "_attn_implementation", "")),
        "load_s": round(load_s, 3),
        "levels": levels,
        "outputs": outputs,
        "memory_mb": proc_memory_mb(),
    }


def _run_json(cmd: list[str], what: str, timeout_s: float) -> dict[str, Any]:
    from npc_runtime.errors import NpcRuntimeError

    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired as exc:
        raise NpcRuntimeError(f"{what} did not finish within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise NpcRuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")
    return json.loads(done.stdout)


# ------------------------------------------------------------------------------------------------ the benchmark


def _ensure_bundle(checkpoint: Path, out: Path, quantize: str | None) -> tuple[Path, float | None]:
    """The bundle in ``out``, imported first unless it is there; ``(bundle, import seconds or None)``."""
    from npc_runtime.bundle import MANIFEST_NAME

    if (out / MANIFEST_NAME).is_file():
        return out, None
    from export.hf_import import import_checkpoint

    start = time.perf_counter()
    log.info("importing %s into %s (%s)", checkpoint, out, quantize or "fp32")
    import_checkpoint(checkpoint, out, quantize=quantize)
    return out, round(time.perf_counter() - start, 1)


def _agreement(reference: Sequence[Sequence[int]], other: Sequence[Sequence[int]]) -> dict[str, int]:
    same = sum(1 for a, b in zip(reference, other) if list(a) == list(b))
    return {"identical": same, "of": min(len(reference), len(other))}


def _text_agreement(bundle_dir: Path, reference: Sequence[Sequence[int]], texts: Sequence[str], lengths, n_new: int):
    """Server replies against transformers' greedy ids decoded the way the scheduler decodes (full-length replies)."""
    from tokenizers import Tokenizer

    from npc_runtime.bundle import load_bundle

    tokenizer = Tokenizer.from_file(str(load_bundle(bundle_dir, verify=False).file("decoder")))
    same = compared = 0
    for ids, text, length in zip(reference, texts, lengths):
        expected = tokenizer.decode(list(ids), skip_special_tokens=True).replace("\ufffd", "").strip()
        if length != n_new or not expected:
            continue  # cut by the reply guard, or nothing printable to compare (ids beyond the tokenizer)
        compared += 1
        same += int(expected == text.strip())
    return {"identical": same, "of": compared}


def _best(levels: Sequence[dict], concurrency: int) -> dict | None:
    found = [lv for lv in levels if lv["concurrency"] == concurrency]
    return max(found, key=lambda lv: lv["tokens_per_s"]) if found else None


def _ratios(report: dict[str, Any], config: BenchHfConfig) -> dict[str, Any]:
    """Ours (fp32) over each peer's faster mode, on the same prompts (one-off NPCs); ``..._seen_before`` keys use
    our levels with village personas seen before (the peers' figures stay those of the one-off prompts)."""
    levels = report["ours"]["fp32"]["levels"]
    ours = {
        "": [lv for lv in levels if not lv.get("personas_seen_before")],
        "_seen_before": [lv for lv in levels if lv.get("personas_seen_before")],
    }
    ratios: dict[str, Any] = {}
    for peer in ("genai", "transformers"):
        theirs_all = report.get(peer, {}).get("levels")
        if not theirs_all:
            continue
        for suffix, mine_all in ours.items():
            for n in (1, config.concurrency):
                mine, theirs = _best(mine_all, n), _best(theirs_all, n)
                if mine and theirs:
                    tps = round(mine["tokens_per_s"] / theirs["tokens_per_s"], 2)
                    ttft = round(theirs["ttft_ms"]["p50"] / mine["ttft_ms"]["p50"], 2)
                    ratios[f"tokens_per_s_vs_{peer}_at_{n}{suffix}"] = tps
                    ratios[f"ttft_p50_{peer}_over_ours_at_{n}{suffix}"] = ttft
    return ratios


def run_bench_hf(config: BenchHfConfig) -> dict[str, Any]:
    """Import, serve and measure ``config.checkpoint`` beside transformers and onnxruntime-genai; the report."""
    from npc_runtime.bundle import load_bundle

    work = config.work_dir
    work.mkdir(parents=True, exist_ok=True)
    ckpt_config = json.loads((config.checkpoint / "config.json").read_text(encoding="utf-8"))
    report: dict[str, Any] = {
        "checkpoint": {
            "path": str(config.checkpoint),
            "model_type": ckpt_config.get("model_type"),
            "layers": ckpt_config.get("num_hidden_layers", ckpt_config.get("n_layer")),
            "hidden": ckpt_config.get("hidden_size", ckpt_config.get("n_embd")),
            "vocab": ckpt_config.get("vocab_size"),
        },
        "machine": machine_info(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "ours": {},
    }
    bundles = {"fp32": _ensure_bundle(config.checkpoint, work / "bundle-fp32", None)}
    if config.int8:
        bundles["int8"] = _ensure_bundle(config.checkpoint, work / "bundle-int8", "int8")
    fp32_dir = bundles["fp32"][0]
    manifest = load_bundle(fp32_dir, verify=False).manifest
    report["checkpoint"]["parameters"] = manifest["model"].get("parameters")
    sets = prompt_sets(fp32_dir, config.one_requests, config.concurrency)
    report["prompt_tokens"] = _summary([len(c.ids) for c in sets.one + sets.batch])
    report["prompt_tokens_recurring"] = _summary([len(c.ids) for c in sets.again + sets.recurring])
    pad_id = int(manifest["special_tokens"]["pad"]["id"])
    spec = _peer_spec(config, pad_id, sets.warmup, sets.one, sets.batch)

    log.info("bench-hf: our decoder graph alone")
    hidden, vocab = report["checkpoint"]["hidden"], report["checkpoint"]["vocab"]
    embedding = 4 * int(hidden) * int(vocab) if hidden and vocab else 0  # fp32 table
    report["engine"] = profile_engine(fp32_dir, config, sets.batch, len(sets.batch), embedding)
    log.info("bench-hf: ONNX Runtime profile of our decoder graph")
    report["engine"]["op_profile"] = op_breakdown(fp32_dir, config.threads, len(sets.batch[0].ids), len(sets.batch))
    for precision, (bundle_dir, import_s) in bundles.items():
        log.info("bench-hf: our server on the %s bundle", precision)
        result = run_server(bundle_dir, config, sets)
        result["import_s"] = import_s
        report["ours"][precision] = result

    with tempfile.TemporaryDirectory(prefix="npc-bench-hf-") as tmp:
        spec_path = Path(tmp) / "prompts.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        if "transformers" in config.peers:
            log.info("bench-hf: transformers generate")
            cmd = [sys.executable, "-m", "export.bench_hf", "--transformers-peer", str(spec_path),
                   "--threads", str(config.threads), str(config.checkpoint)]  # fmt: skip
            report["transformers"] = _run_json(cmd, "transformers peer", config.timeout_s)
        if "genai" in config.peers:
            report["genai"] = _genai(config, spec_path, work)

    agreement: dict[str, Any] = {}
    hf = report.get("transformers", {}).get("outputs")
    if hf:
        ours = report["ours"]["fp32"]
        agreement["ours_text_vs_transformers"] = {
            "one": _text_agreement(fp32_dir, hf["one"], ours["texts"]["one"], ours["tokens"]["one"], config.new_tokens),
            "batch": _text_agreement(
                fp32_dir, hf.get("batch", []), ours["texts"]["batch"], ours["tokens"]["batch"], config.new_tokens
            ),
        }
        genai_out = report.get("genai", {}).get("outputs", {})
        for key, ids in genai_out.items():
            agreement[f"genai_{key}_vs_transformers"] = _agreement(hf["one" if key == "one" else "batch"], ids)
    report["greedy_agreement"] = agreement
    report["ratios"] = _ratios(report, config)
    return report


#: genai builds: the builder's defaults (logits at every prompt position) for the concurrent requests, and with the
#: LM head on the last position only (as our graph computes it) for one request at a time. The pruned build gives
#: wrong tokens for the shorter rows of a right-padded batch and its Engine fails, so it is not used there.
GENAI_BUILDS = {"batch": ("genai-fp32", ()), "one": ("genai-fp32-last-logits", ("prune_lm_head=true",))}
GENAI_LAST_LOGITS_NOTE = " (LM head on the last position)"


def _genai(config: BenchHfConfig, spec_path: Path, work: Path) -> dict[str, Any]:
    """Both genai builds (made once), then the one-at-a-time and the concurrent level, each in its own process."""
    from npc_runtime.errors import NpcRuntimeError

    if not config.genai_python.is_file():
        raise NpcRuntimeError(
            f"no onnxruntime-genai venv at {config.genai_python}: run `make venv-genai`, pass --genai-python, "
            "or leave genai out with --peers transformers"
        )
    merged: dict[str, Any] = {"levels": [], "outputs": {}, "builds": {}}
    for part in ("one", "batch"):
        folder, options = GENAI_BUILDS[part]
        model_dir = work / folder
        build_s = None
        if not (model_dir / "genai_config.json").is_file():
            log.info("bench-hf: onnxruntime-genai model builder (%s)", folder)
            cmd = [str(config.genai_python), str(GENAI_SCRIPT), "--model", str(model_dir), "--build",
                   str(config.checkpoint), "--cache-dir", str(work / "genai-cache")]  # fmt: skip
            cmd += [f"--builder-option={option}" for option in options]
            build_s = _run_json(cmd, "onnxruntime-genai model builder", config.timeout_s).get("build_s")
        merged["builds"][folder] = {"options": list(options), "build_s": build_s}
        log.info("bench-hf: onnxruntime-genai generation (%s)", part)
        cmd = [str(config.genai_python), str(GENAI_SCRIPT), "--model", str(model_dir), "--prompts", str(spec_path),
               "--threads", str(config.threads), "--levels", part, "--modes", *config.genai_modes]  # fmt: skip
        result = _run_json(cmd, "onnxruntime-genai peer", config.timeout_s)
        for level in result["levels"]:
            level["memory_mb"] = result["memory_mb"]  # each part ran in its own process
            level["load_s"] = result["load_s"]
            if options:
                level["mode"] += GENAI_LAST_LOGITS_NOTE
            merged["levels"].append(level)
        merged["outputs"].update(result["outputs"])
        merged["version"] = result["version"]
    return merged


# ------------------------------------------------------------------------------------------------ report


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:,.{digits}f}"


def _rows(report: dict[str, Any]) -> list[tuple[str, dict, dict]]:
    """``(who, level, memory)`` for every measured level, ours first."""
    rows = []
    for precision, result in report["ours"].items():
        for level in result["levels"]:
            rows.append((f"ours ({precision}), {level['mode']}", level, result.get("memory_mb", {})))
    for peer, label in (("genai", "onnxruntime-genai"), ("transformers", "transformers")):
        for level in report.get(peer, {}).get("levels", []):
            memory = level.get("memory_mb") or report[peer].get("memory_mb", {})
            rows.append((f"{label}, {level['mode']}", level, memory))
    return rows


def render_markdown(reports: Sequence[dict[str, Any]], command: str | None = None) -> str:
    """One Markdown section per checkpoint: the table, ratios and agreement, from the reports of this run."""
    lines: list[str] = []
    if command:
        lines += [f"`{command}`", ""]
    for report in reports:
        ck, cfg, machine = report["checkpoint"], report["config"], report["machine"]
        params = ck.get("parameters")
        size = f"{params / 1e6:,.1f} M parameters" if params else "parameters unknown"
        path = Path(ck["path"])
        name = path.parent.name if path.name == "checkpoint" else path.name
        lines += [
            f"### `{name}` ({ck['model_type']}, {ck['layers']} layers, width {ck['hidden']}, "
            f"vocabulary {ck['vocab']:,}, {size})",
            "",
            f"{machine['cpu']}, {machine['cores']} cores, {cfg['threads']} threads for everyone, one after another. "
            f"Greedy replies of exactly {cfg['new_tokens']} tokens. Every runtime: {cfg['one_requests']} requests "
            f"one at a time, then {cfg['concurrency']} at once, each from a different one-off NPC (prompts "
            f"{report['prompt_tokens']['p50']:.0f} tokens p50). Ours also: the village personas again, each seen "
            f"before (prompts {report['prompt_tokens_recurring']['p50']:.0f} tokens p50, the persona's system prompt "
            f"reusable).",
            "",
            "| runtime, mode | concurrent | tokens/s | first token p50 / p95 (ms) | then per token p50 (ms) "
            "| whole reply p50 (ms) | peak RSS (MB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for who, level, memory in _rows(report):
            lines.append(
                f"| {who} | {level['concurrency']} | {_fmt(level['tokens_per_s'])} | "
                f"{_fmt(level['ttft_ms']['p50'])} / {_fmt(level['ttft_ms']['p95'])} | "
                f"{_fmt(level.get('step_ms', {}).get('p50'))} | "
                f"{_fmt(level['total_ms']['p50'])} | {_fmt(memory.get('VmHWM'), 0)} |"
            )
        ratios = report.get("ratios", {})
        n = cfg["concurrency"]
        lines.append("")
        for peer, label in (("genai", "onnxruntime-genai"), ("transformers", "transformers `generate`")):
            one, many = ratios.get(f"tokens_per_s_vs_{peer}_at_1"), ratios.get(f"tokens_per_s_vs_{peer}_at_{n}")
            if one is not None:
                lines.append(
                    f"- Ours (fp32) ÷ {label}, tokens/s: {one}× at 1 request, {many}× at {n} (against its faster "
                    f"mode); its first token p50 ÷ ours: {ratios.get(f'ttft_p50_{peer}_over_ours_at_1')}× at 1, "
                    f"{ratios.get(f'ttft_p50_{peer}_over_ours_at_{n}')}× at {n}."
                )
            again = ratios.get(f"tokens_per_s_vs_{peer}_at_1_seen_before")
            if again is not None:
                lines.append(
                    f"  With personas seen before (ours only): {again}× at 1, "
                    f"{ratios.get(f'tokens_per_s_vs_{peer}_at_{n}_seen_before')}× at {n}; first token "
                    f"{ratios.get(f'ttft_p50_{peer}_over_ours_at_1_seen_before')}× and "
                    f"{ratios.get(f'ttft_p50_{peer}_over_ours_at_{n}_seen_before')}× faster."
                )
        ours = report["ours"]["fp32"]
        short = sum(lv["short_replies"] for lv in ours["levels"])
        lines.append(
            f"- Our server: load {ours['load_s']} s, RSS after the run {_fmt(ours['memory_mb'].get('VmRSS'), 0)} MB; "
            f"prompt ids equal to the server's: {ours['prompt_ids_match_server']}; replies cut short by the reply "
            f"guard: {short}."
        )
        for key, value in report.get("greedy_agreement", {}).items():
            if isinstance(value, dict) and "identical" in value:
                lines.append(f"- Greedy agreement, {key.replace('_', ' ')}: {value['identical']}/{value['of']}.")
            else:
                parts = ", ".join(f"{k} {v['identical']}/{v['of']}" for k, v in value.items())
                lines.append(f"- Greedy agreement, {key.replace('_', ' ')} (decoded text): {parts}.")
        eng = report.get("engine")
        if eng:
            roof = eng["roofline_batch1"]
            many = next(v for k, v in eng.items() if k.startswith("step_ms_batch") and k != "step_ms_batch1")
            lines.append(
                f"- Our decoder graph alone (no server): prefill of a {eng['prompt_tokens']}-token prompt "
                f"{_fmt(eng['prefill_ms'])} ms ({_fmt(eng['prefill_tokens_per_s'], 0)} tokens/s), of "
                f"{eng['group_prefill']['prompts']} prompts together {_fmt(eng['group_prefill']['ms'])} ms "
                f"({_fmt(eng['group_prefill']['tokens_per_s'], 0)} tokens/s); a step p50 "
                f"{_fmt(eng['step_ms_batch1']['p50'], 2)} ms at batch 1, {_fmt(many['p50'], 1)} ms at batch {n}; "
                f"bound at batch 1: {(roof['weight_bytes'] - roof.get('embedding_bytes', 0)) / 1e6:,.0f} MB of "
                f"weights (all but the token embedding table) + {roof['kv_bytes'] / 1e6:,.1f} MB of KV over "
                f"{roof['copy_bandwidth_gbs']} GB/s = {_fmt(roof['bound_ms'], 2)} ms; emotion classifier per reply "
                f"p50 {_fmt(eng['emotion_ms']['p50'], 2)} ms."
            )
        profile = (eng or {}).get("op_profile")
        if profile:
            parts = []
            for workload, prof in profile.items():
                share = ", ".join(f"{op} {100 * ms / prof['kernel_ms']:.0f}%" for op, ms in prof["top_ops_ms"].items())
                parts.append(f"{workload} {prof['kernel_ms']:,.1f} ms of kernels ({share})")
            lines.append("- Where our graph's time goes (ONNX Runtime profile, per call): " + "; ".join(parts) + ".")
        genai = report.get("genai")
        if genai:
            builds = "; ".join(
                f"`{folder}` ({', '.join(b['options']) or 'defaults'}) "
                + (f"built in {b['build_s']} s" if b["build_s"] is not None else "reused")
                for folder, b in genai["builds"].items()
            )
            loads = ", ".join(f"{lv['load_s']} s" for lv in genai["levels"][:1] + genai["levels"][-1:])
            lines.append(f"- onnxruntime-genai {genai['version']}: model builder {builds}; model load {loads}.")
        hf = report.get("transformers")
        if hf:
            lines.append(
                f"- transformers {hf['version']} (torch {hf['torch']}, attention `{hf['attention']}`): "
                f"model load {hf['load_s']} s."
            )
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ CLI


def _random_checkpoint(spec: str, work_root: Path) -> Path:
    """``FAMILY:SIZE`` → a random checkpoint under ``work_root`` (made once, then reused)."""
    from export.hf_random import FAMILIES, SIZES, random_checkpoint
    from npc_runtime.errors import ConfigError

    family, _, size = spec.partition(":")
    if family not in FAMILIES or size not in SIZES:
        raise ConfigError(f"--random takes FAMILY:SIZE with FAMILY in {FAMILIES} and SIZE in {SIZES}, got {spec!r}")
    out = work_root / f"{RANDOM_PREFIX}{family}-{size}" / "checkpoint"
    if not (out / "config.json").is_file():
        log.info("writing a random %s checkpoint of size %s to %s", family, size, out)
        # The large shape gets the largest BPE the small training text yields (about 2,000 tokens): fewer,
        # longer tokens per prompt than the tiny model's 1,024.
        random_checkpoint(family, out, seed=0, size=size, vocab_size=1024 if size == "tiny" else RANDOM_BPE_VOCAB)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="npc-runtime bench-hf",
        description="Benchmark a Hugging Face causal LM served by npc-runtime against transformers generate and "
        "onnxruntime-genai (tokens/s at 1 and N concurrent requests, first token, memory); writes JSON and Markdown.",
    )
    p.add_argument("checkpoints", nargs="*", type=Path, help="local Hugging Face checkpoint directories")
    p.add_argument(
        "--random", nargs="+", default=[], metavar="FAMILY:SIZE",
        help="also benchmark random-weight checkpoints made by export.hf_random, e.g. qwen2:tiny qwen2:qwen2.5-0.5b",
    )  # fmt: skip
    p.add_argument("--work-dir", type=Path, default=Path("runs/bench-hf"),
                   help="bundles, genai models and random checkpoints go here, one folder per checkpoint, reused "
                   "when present (default: %(default)s)")  # fmt: skip
    p.add_argument("--new-tokens", type=int, default=16, help="tokens per reply (default: %(default)s)")
    p.add_argument("--one-requests", type=int, default=8, help="requests sent one at a time (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=32, help="requests sent at once (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for everyone (default: %(default)s)")
    p.add_argument("--int8", action="store_true", help="also import and serve an int8 bundle (an extra row of ours)")
    p.add_argument("--peers", nargs="*", choices=("transformers", "genai"), default=["transformers", "genai"],
                   help="which peers to run (default: both)")  # fmt: skip
    p.add_argument("--genai-python", type=Path, default=DEFAULT_GENAI_PYTHON,
                   help="python of the onnxruntime-genai venv (default: the repository's .venv-genai)")  # fmt: skip
    p.add_argument("--genai-modes", nargs="+", choices=("generator", "engine"), default=["generator", "engine"],
                   help="genai's ways to run concurrent requests: one batched Generator, its Engine (default: both)")
    p.add_argument("--rebuild", action="store_true",
                   help="import the bundles and build the genai models again even when they exist")  # fmt: skip
    p.add_argument("--timeout-s", type=float, default=1800.0, help="limit per peer process (default: %(default)s)")
    p.add_argument("--out-json", type=Path, help="write the reports here (default: WORK_DIR/bench_hf.json)")
    p.add_argument("--out-md", type=Path, help="also write the Markdown here")
    p.add_argument("--transformers-peer", type=Path, help=argparse.SUPPRESS)  # internal: the peer's subprocess
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from npc_runtime.errors import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.transformers_peer is not None:
        if len(args.checkpoints) != 1:
            parser.error("--transformers-peer takes exactly one checkpoint")
        spec = json.loads(args.transformers_peer.read_text(encoding="utf-8"))
        json.dump(run_transformers_peer(args.checkpoints[0], spec, args.threads), sys.stdout)
        return 0
    checkpoints = list(args.checkpoints) + [_random_checkpoint(s, args.work_dir) for s in args.random]
    if not checkpoints:
        parser.error("name at least one checkpoint directory or --random FAMILY:SIZE")
    reports = []
    for checkpoint in checkpoints:
        if not (checkpoint / "config.json").is_file():
            raise ConfigError(f"{checkpoint} is not a Hugging Face checkpoint directory (no config.json)")
        name = checkpoint.parent.name if checkpoint.name == "checkpoint" else checkpoint.name
        if args.rebuild:
            for folder in ("bundle-fp32", "bundle-int8", *(f for f, _ in GENAI_BUILDS.values())):
                shutil.rmtree(args.work_dir / name / folder, ignore_errors=True)
        try:
            config = BenchHfConfig(
                checkpoint=checkpoint, work_dir=args.work_dir / name, new_tokens=args.new_tokens,
                one_requests=args.one_requests, concurrency=args.concurrency, threads=args.threads, int8=args.int8,
                peers=tuple(args.peers), genai_python=args.genai_python, genai_modes=tuple(args.genai_modes),
                timeout_s=args.timeout_s,
            )  # fmt: skip
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        reports.append(run_bench_hf(config))
    out_json = args.out_json or args.work_dir / "bench_hf.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    command = "npc-runtime bench-hf " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = render_markdown(reports, command)
    if args.out_md:
        args.out_md.write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    raise SystemExit(main())
