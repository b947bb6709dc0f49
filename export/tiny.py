"""A tiny, randomly initialised role-model bundle for tests: real graphs and manifest, seconds to build.

``build_tiny_bundle(out_dir)`` trains a small tokenizer on text generated here, builds a two-layer width-32
model and a tiny random text encoder, and writes a parity-checked bundle. ``python -m export.tiny OUT_DIR``
does the same from the command line.
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from export.bundle_writer import BundleLimits, write_bundle
from export.role_model import RoleModel, RoleModelConfig
from export.text_encoder import export_text_encoder, tiny_random_encoder
from export.tokenizer import train_tokenizer
from npc_runtime.prompt import build_decoder_text

__all__ = ["TINY_VOCAB_SIZE", "tiny_config", "tiny_corpus", "build_tiny_bundle", "main"]

log = logging.getLogger(__name__)

TINY_VOCAB_SIZE = 400
TINY_TEXT_DIM = 32

_NAMES = ("Brenna", "Old Tom", "Ash", "Mira", "Jörg", "Sæunn")
_PLACES = ("forge", "mill", "tavern", "market", "river bank", "chapel")
_TIMES = ("morning", "noon", "evening", "night")
_WEATHER = ("clear", "rain", "fog", "snow")
_LINES = (
    "Do you sell swords?",
    "Where is the healer?",
    "Hello there!",
    "Seen my ram anywhere?",
    "How much for the dagger?",
    "Any news from the capital?",
    "Grüß dich, Schmied.",
    "¿Dónde está el río?",
)
_REPLIES = (
    "Aye, forged this very morning. Mind the edge.",
    "Down the road, past the chapel.",
    "Evening, traveller.",
    "No rams here, friend.",
    "Twelve silver, and cheap at that.",
    "The king is ill, they say.",
    "Ja, ja. What do you need?",
    "Al otro lado del puente.",
)


def tiny_corpus(n_lines: int = 300, seed: int = 0) -> list[str]:
    """Decoder texts laid out like real turns, with cased and non-ASCII words, for the tiny tokenizer."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        name = rng.choice(_NAMES)
        knowledge = f"name: {name} | wares: longsword {rng.randint(10, 90)}, dagger {rng.randint(2, 20)}"
        context = {"time_of_day": rng.choice(_TIMES), "weather": rng.choice(_WEATHER), "location": rng.choice(_PLACES)}
        history = [(rng.choice(_LINES), rng.choice(_REPLIES)) for _ in range(rng.randint(0, 2))]
        lines.append(build_decoder_text(knowledge, context, history, rng.choice(_LINES), reply=rng.choice(_REPLIES)))
    return lines


#: The induction bonus of tiny bundles built with ``copy_induction`` (a score, like the copy logits it adds to).
TINY_INDUCTION_BONUS = 4.0


def tiny_config(vocab_size: int, fusion: str = "concat", copy_head: bool = False,
                copy_induction: bool = False) -> RoleModelConfig:
    """Two layers, width 32, two heads, 16-pixel images, a handful of prefix tokens; with ``copy_head`` the
    pointer head (``RoleModelConfig.copy_head``), with ``copy_induction`` also its induction bonus."""
    return RoleModelConfig(
        vocab_size=vocab_size,
        d_model=32,
        n_layers=2,
        n_heads=2,
        d_ff=64,
        max_positions=256,
        text_embed_dim=TINY_TEXT_DIM,
        n_persona_tokens=2,
        n_visual_tokens=4,
        image_size=16,
        vision_channels=(8, 16),
        fusion=fusion,
        copy_head=copy_head or copy_induction,
        copy_induction=copy_induction,
        dropout=0.0,
    )


def build_tiny_bundle(out_dir: str | Path, seed: int = 0, fusion: str = "concat", quantize: str | None = None,
                      copy_head: bool = False, copy_induction: bool = False) -> Path:
    """Write a complete tiny role-model bundle to ``out_dir`` and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny-bundle-") as work_str:
        work = Path(work_str)
        tokenizer_path = work / "tokenizer.json"
        tokenizer = train_tokenizer(tiny_corpus(seed=seed), TINY_VOCAB_SIZE, tokenizer_path)
        encoder = tiny_random_encoder(dim=TINY_TEXT_DIM, seed=seed)
        text_onnx = work / "text_encoder.onnx"
        export_text_encoder(encoder, text_onnx)
        text_tokenizer = encoder.save_tokenizer(work / "text_encoder_tokenizer.json")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = RoleModel(tiny_config(tokenizer.get_vocab_size(), fusion, copy_head, copy_induction)).eval()
        if copy_induction:
            with torch.no_grad():  # a random init leaves the bonus near zero; make it count, so tests exercise it
                model.copy.induction.bias.fill_(TINY_INDUCTION_BONUS)
        return write_bundle(
            model,
            tokenizer_path,
            text_onnx,
            text_tokenizer,
            out,
            name=f"tiny-{fusion}",
            description="Tiny random role model for tests; its replies are noise.",
            quantize=quantize,
            limits=BundleLimits(max_prompt_tokens=192, max_new_tokens=32),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.tiny", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fusion", default="concat", choices=("concat", "weighted_sum", "cross_attention"))
    parser.add_argument("--int8", action="store_true", help="quantise decoder, prefix and text encoder MatMuls")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = build_tiny_bundle(args.out_dir, seed=args.seed, fusion=args.fusion, quantize="int8" if args.int8 else None)
    log.info("tiny bundle written to %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
