"""The benchmark's PyTorch eager peer: the ``export/`` model generating the same prompts with its own KV cache.

``npc-runtime bench`` (which never imports torch) writes the prompts exactly as the server feeds them (token ids,
prefix masks, persona and utterance embeddings) to a JSON file and runs ``python -m export.torch_peer`` on it;
this module decodes each concurrency level as one static batch and prints its timings as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_peer", "main"]


def run_peer(checkpoint: Path, spec: dict[str, Any], threads: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Median wall time and tokens/s per concurrency level of ``spec`` (see the module docstring).

    ``device`` "cuda" runs the model on the GPU; each timed batch then ends with a device synchronise.
    """
    import torch

    from export.role_model import load_checkpoint
    from export.tokenizer import IGNORE_INDEX, EncodedTurn
    from export.torch_generate import GenerationConfig, collate_turns, generate

    if threads:
        torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but this torch sees no CUDA device")
    dev = torch.device(device)
    model, _ = load_checkpoint(checkpoint, map_location=dev)
    model.to(dev)
    max_tokens, rounds = int(spec["max_tokens"]), int(spec["rounds"])
    gen = GenerationConfig(max_new_tokens=max_tokens, stop_at_eos=False)
    levels = []
    for level in spec["levels"]:
        turns = [EncodedTurn(t["ids"], t["prefix_mask"], [IGNORE_INDEX] * len(t["ids"]), len(t["ids"]))
                 for t in level["turns"]]  # fmt: skip
        batch = {k: v.to(dev) for k, v in collate_turns(turns, int(spec["pad_id"]), padding_side="left").items()}
        persona = torch.tensor(np.array([t["persona"] for t in level["turns"]], dtype=np.float32), device=dev)
        utterance = torch.tensor(np.array([t["utterance"] for t in level["turns"]], dtype=np.float32), device=dev)
        present = torch.zeros(len(turns), device=dev)
        if dev.type == "cuda":  # one untimed batch: CUDA context, kernels and allocator warm-up
            generate(model, batch, persona, utterance, None, present, int(spec["eos_id"]), gen)
            torch.cuda.synchronize()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            generate(model, batch, persona, utterance, None, present, int(spec["eos_id"]), gen)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        wall = float(np.median(times))
        levels.append({
            "concurrency": len(turns),
            "batch_wall_ms": round(wall * 1000.0, 3),
            "tokens_per_s": round(len(turns) * max_tokens / wall, 1),
        })  # fmt: skip
    return {"levels": levels, "device": device}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.torch_peer", description="PyTorch eager peer of npc-runtime bench (prints JSON)."
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint written by npc-runtime train")
    parser.add_argument("--prompts", type=Path, required=True, help="prompt file written by npc-runtime bench")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's choice)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    args = parser.parse_args(argv)
    spec = json.loads(args.prompts.read_text(encoding="utf-8"))
    json.dump(run_peer(args.checkpoint, spec, args.threads, args.device), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
