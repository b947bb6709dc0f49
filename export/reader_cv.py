"""``npc-runtime reader-cv``: choose a version of the reader phrasings and its fit by template cross-validation.

The served intent reader (``npc_runtime.intent_hint``) must read phrasings no template of the corpus has, so it is
judged the way a new phrasing meets it: the training split's paraphrase templates are split into folds, and each
fold's lines are read by a reader fitted on the other folds' lines plus the reader phrasings
(``export.intent_reader.cross_fitted_hints``). Only training templates take part: the evaluation's held-out
templates stay unseen by whoever picks a version or a fit (docs/model.md, "Reader phrasings").

Lines are embedded with the bundle's own text encoder graph, as the server embeds a player's line, so the command
needs no torch. It prints one row per (version, fit) and can write them as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from npc_runtime.bundle import default_bundle_dir, load_bundle
from npc_runtime.errors import ConfigError

from .intent_reader import (READER_FITS, READER_HIDDEN, READER_HIDDEN_FIT, READER_PHRASINGS_VERSION, cross_fitted_hints,
                            reader_lines)

__all__ = ["parse_fit", "template_cv", "build_parser", "main"]

log = logging.getLogger(__name__)


def parse_fit(text: str) -> dict[str, float | int]:
    """``"1e-5:3000"`` -> ``{"l2": 1e-5, "steps": 3000}``; ``"1e-4:400:256"`` adds ``"hidden": 256`` (a hidden
    layer of that width; ``fit_reader``'s options)."""
    try:
        l2, steps, *hidden = text.split(":")
        if len(hidden) > 1:
            raise ValueError(text)
        fit = {"l2": float(l2), "steps": int(steps), **({"hidden": int(hidden[0])} if hidden else {})}
    except ValueError:
        raise ConfigError(f"a fit is L2:STEPS or L2:STEPS:HIDDEN, such as 1e-5:3000 or 1e-4:400:256; got "
                          f"{text!r}") from None
    if not fit["l2"] >= 0 or fit["steps"] < 1 or fit.get("hidden", 1) < 1:
        raise ConfigError(f"a fit needs L2 >= 0, STEPS >= 1 and HIDDEN >= 1; got {text!r}")
    return fit


def template_cv(
    embed: Any,
    lines: Sequence[tuple[str, str, str]],
    versions: Sequence[int],
    fits: Sequence[dict[str, float | int]] | None,
    folds: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Cross-validate each version of the phrasings with each fit (None: the linear fit ``READER_FITS`` gives that
    version, and the hidden-layer reader's, ``READER_HIDDEN_FIT`` at ``READER_HIDDEN``) on ``lines``, (player
    line, intent, template) triples; ``embed`` maps texts to an (N, E) array."""
    texts = [text for text, _, _ in lines]
    x = embed(texts)
    intents = [intent for _, intent, _ in lines]
    groups = [template for _, _, template in lines]
    rows = []
    with_hidden = {**READER_HIDDEN_FIT, "hidden": READER_HIDDEN}
    jobs = [(version, fit) for version in versions for fit in (fits or [READER_FITS[version], with_hidden])]
    for version, fit in tqdm(jobs, desc="reader cv", unit="fit", disable=not progress):
        extra_lines = reader_lines(version, seed)
        extra = (embed([text for text, _ in extra_lines]), [intent for _, intent in extra_lines]) if extra_lines else None
        started = time.monotonic()
        _, accuracy = cross_fitted_hints(x, intents, groups, folds=folds, seed=seed, extra=extra, **fit)
        rows.append({"phrasings": version, "extra_lines": len(extra_lines), "hidden": 0, **fit, "folds": folds,
                     "lines": len(lines), "accuracy": round(accuracy, 4),
                     "seconds": round(time.monotonic() - started, 1)})  # fmt: skip
        log.info("phrasings %d, hidden %d, l2 %g, %d steps: %.3f of the left-out templates' lines read right",
                 version, fit.get("hidden", 0), fit["l2"], fit["steps"], accuracy)  # fmt: skip
    return rows


def training_lines(corpus: Any) -> list[tuple[str, str, str]]:
    """The distinct player lines of the corpus's training split, each with its intent and template."""
    first: dict[str, tuple[str, str]] = {}
    for ex in corpus.splits["train"]:
        first.setdefault(ex.player, (ex.intent, ex.template_id))
    return [(text, intent, template) for text, (intent, template) in first.items()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npc-runtime reader-cv",
        description="Cross-validate the intent reader over the training split's paraphrase templates (each fold "
        "read by a reader fitted on the others and the reader phrasings), to choose a version of the phrasings "
        "and its fit without looking at the evaluation's templates.",
    )
    parser.add_argument("--model", type=Path, default=None,
                        help="bundle whose text encoder embeds the lines and whose training corpus gives them "
                        "(default: the bundled default)")  # fmt: skip
    parser.add_argument("--corpus", nargs="*", default=[], metavar="KEY=VALUE",
                        help="CorpusConfig fields on top of those the bundle records for its training corpus")
    parser.add_argument("--phrasings", type=int, nargs="+", default=list(range(READER_PHRASINGS_VERSION + 1)),
                        metavar="VERSION", help="versions of the reader phrasings to compare (default: all)")
    parser.add_argument("--fit", nargs="+", default=None, metavar="L2:STEPS[:HIDDEN]",
                        help="fits of the reader to try with each version; HIDDEN, the width of a hidden layer "
                        "(Adam steps then; default: each version's linear fit, and the hidden layer's)")  # fmt: skip
    parser.add_argument("--folds", type=int, default=5, help="template folds (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="fold split and slot fills (%(default)s)")
    parser.add_argument("--out-json", type=Path, default=None, help="write the rows here as JSON")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .evaluate import run_command

    return run_command(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from npc_runtime.engine import RoleModelEngine
    from npc_runtime.ort_backend import RuntimeOptions

    from .corpus import CorpusConfig, build_corpus
    from .evaluate import corpus_overrides, training_corpus

    fits = [parse_fit(text) for text in args.fit] if args.fit else None
    for version in args.phrasings:
        if not 0 <= version <= READER_PHRASINGS_VERSION:
            raise ConfigError(f"--phrasings: versions run from 0 to {READER_PHRASINGS_VERSION}, got {version}")
    if args.folds < 2:
        raise ConfigError(f"--folds must be >= 2, got {args.folds}")
    bundle = load_bundle(args.model or default_bundle_dir())
    engine = RoleModelEngine(bundle, RuntimeOptions(device="cpu", intra_op_threads=args.threads), spelling=False)
    try:
        corpus = build_corpus(CorpusConfig(**{**training_corpus(bundle), **corpus_overrides(args.corpus)}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build the bundle's training corpus: {exc}") from exc

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.concatenate([engine.encode_texts(texts[i : i + 64]) for i in range(0, len(texts), 64)])

    lines = training_lines(corpus)
    rows = template_cv(embed, lines, args.phrasings, fits, args.folds, args.seed, progress=not args.no_progress)
    print(f"{len(lines)} training lines, {args.folds} template folds ({bundle.name}):")
    print("| phrasings | extra lines | hidden | l2 | steps | read right |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['phrasings']} | {row['extra_lines']} | {row['hidden'] or '-'} | {row['l2']:g} | {row['steps']} "
              f"| {row['accuracy']:.3f} |")
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
