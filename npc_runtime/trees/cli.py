"""The ``npc-runtime tree`` command: generate dialogue trees offline and write Ink, Yarn, Twee, Godot or JSON.

One tree: ``--persona ID --out FILE`` (the format from ``--format`` or the file's suffix). Many: ``--spec FILE``
(TOML or JSON, see ``docs/trees.md``) writes ``ID.tree.json`` plus one file per format for every tree into a
folder; a rerun skips trees whose JSON is already there for the same settings and model (resumable).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NpcRuntimeError
from ..protocol import ImageInput
from .formats import FORMATS, export_tree, format_for_path
from .generate import TreeJob, TreeSettings, count_lines, generate_trees, model_key
from .model import DialogueTree, TreeError
from .spec import TreeEntry, load_spec

__all__ = ["main", "build_parser"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="npc-runtime tree",
        description="Generate NPC dialogue trees offline (batched) and export them to Ink, Yarn Spinner, "
        "Twee 3 (Twine/Harlowe), Godot Dialogue Manager or JSON.",
    )
    p.add_argument("--spec", help="TOML or JSON spec of many trees (writes a folder; resumable)")
    p.add_argument("--persona", help="persona id (one tree)")
    p.add_argument("--id", help="tree id (default: the persona id)")
    p.add_argument("--opening", help="the player's first line (default: a greeting from the corpus)")
    p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="a scene fact; repeatable")
    p.add_argument("--image", help="PNG or JPEG screenshot of what the NPC sees")
    p.add_argument("--depth", type=int, default=3, help="player choices along the longest path (default: 3)")
    p.add_argument("--branches", type=int, default=3, help="player options per node (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed: the same seed gives the same tree (default: 0)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default: 0.8)")
    p.add_argument("--max-tokens", type=int, default=40, help="longest NPC line in tokens (default: 40)")
    p.add_argument("--format", choices=tuple(FORMATS), help="output format (default: from --out's suffix)")
    p.add_argument("--out", help="output file (one tree) or folder (with --spec; overrides the spec's 'out')")
    p.add_argument("--restart", action="store_true", help="with --spec: regenerate trees that are already done")
    p.add_argument("--model", help="model bundle directory (default: the bundled default model)")
    p.add_argument("--personas", help="persona pack folder (default: the bundled village pack)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="execution provider")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its choice)")
    p.add_argument("--max-in-flight", type=int, default=64, help="replies batched at once (default: 64)")
    p.add_argument("--trees-at-once", type=int, default=8, help="with --spec: trees generated together (default: 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _context(pairs: Sequence[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--context takes key=value, got {pair!r}")
        context[key.strip()] = value.strip()
    return context


def _load_image(path: Path) -> ImageInput:
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
        with Image.open(path) as im:
            fmt = {"PNG": "png", "JPEG": "jpeg"}.get(im.format or "")
            size = im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise ConfigError(f"{path}: cannot read image: {exc}") from exc
    if fmt is None:
        raise ConfigError(f"{path}: only PNG and JPEG screenshots are supported")
    return ImageInput(format=fmt, data=data, width=size[0], height=size[1])


def _write(path: Path, text: str) -> None:
    """Write through a temporary file, so an interrupted run never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _Runtime:
    """The personas, the bundle and (loaded on first use) the engine."""

    def __init__(self, args: argparse.Namespace) -> None:
        from ..bundle import default_bundle_dir, load_bundle
        from ..personas import PersonaPack, default_pack_dir

        self.args = args
        self.pack = PersonaPack.load(args.personas or default_pack_dir())
        self.bundle = load_bundle(Path(args.model) if args.model else default_bundle_dir())
        self.model = model_key(self.bundle)
        self._engine: Any = None

    def job(self, entry: TreeEntry) -> TreeJob:
        if entry.persona not in self.pack:
            raise ConfigError(f"unknown persona {entry.persona!r}; the pack has {', '.join(self.pack.ids)}")
        image = _load_image(entry.image) if entry.image is not None else None
        try:
            return TreeJob(entry.tree_id, self.pack.get(entry.persona), entry.settings, entry.opening,
                           entry.context, image)  # fmt: skip
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def generate(
        self, jobs: list[TreeJob], group: int, on_group: Callable[[list[DialogueTree]], None] | None = None
    ) -> list[DialogueTree]:
        """Trees for ``jobs``, ``group`` at a time through the batching; ``on_group`` gets each group's trees."""
        from tqdm import tqdm

        from ..engine import load_engine
        from ..ort_backend import RuntimeOptions

        if self._engine is None:
            options = RuntimeOptions(device=self.args.device, intra_op_threads=self.args.threads)
            self._engine = load_engine(self.bundle, options)
        total = count_lines(jobs)
        started = time.perf_counter()
        trees: list[DialogueTree] = []
        with tqdm(total=total, unit="line", desc="tree", disable=self.args.no_progress, file=sys.stderr) as bar:
            for start in range(0, len(jobs), group):
                batch = jobs[start : start + group]
                made = generate_trees(self._engine, batch, self.args.max_in_flight, progress=bar.update)
                trees.extend(made)
                if on_group is not None:
                    on_group(made)
        seconds = time.perf_counter() - started
        log.info(
            "generated %d NPC lines for %d tree(s) in %.1f s (%.1f lines/s) with %s",
            total, len(jobs), seconds, total / max(seconds, 1e-9), self.model,
        )  # fmt: skip
        return trees


def _settings(args: argparse.Namespace) -> TreeSettings:
    try:
        return TreeSettings(args.depth, args.branches, args.seed, args.temperature, args.max_tokens)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _run_one(args: argparse.Namespace) -> int:
    if not args.persona or not args.out:
        raise ConfigError("give --persona ID and --out FILE (or --spec FILE)")
    out = Path(args.out)
    fmt = args.format or format_for_path(out)
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {out.name}; add --format ({', '.join(FORMATS)})")
    runtime = _Runtime(args)
    entry = TreeEntry(
        tree_id=args.id or args.persona,
        persona=args.persona,
        settings=_settings(args),
        opening=args.opening,
        context=_context(args.context),
        image=Path(args.image) if args.image else None,
    )
    job = runtime.job(entry)
    (tree,) = runtime.generate([job], group=1)
    _write(out, export_tree(tree, fmt))
    print(f"wrote {out} ({fmt}: {len(tree.nodes)} NPC lines, {sum(1 for _ in tree.paths())} paths)")
    return 0


def _run_spec(args: argparse.Namespace) -> int:
    for name in ("persona", "opening", "image", "id", "format"):
        if getattr(args, name):
            raise ConfigError(f"--{name} applies to one tree; with --spec put it in the spec file")
    if args.trees_at_once < 1:
        raise ConfigError("--trees-at-once must be >= 1")
    spec = load_spec(args.spec)
    out_dir = Path(args.out) if args.out else spec.out_dir
    runtime = _Runtime(args)
    jobs = [runtime.job(entry) for entry in spec.entries]
    todo: list[TreeJob] = []
    done: list[DialogueTree] = []
    for job in jobs:
        state = out_dir / f"{job.tree_id}.tree.json"
        if not args.restart and state.is_file():
            try:
                tree = DialogueTree.loads(state.read_text(encoding="utf-8"))
            except (OSError, TreeError) as exc:
                log.warning("%s: unreadable, generating it again (%s)", state, exc)
            else:
                if tree.meta.get("job_key") == job.key(runtime.model):
                    done.append(tree)
                    continue
                log.info("%s: made with other settings or another model, generating it again", state)
        todo.append(job)
    log.info("%d tree(s) already done, %d to generate, into %s", len(done), len(todo), out_dir)

    def save(trees: list[DialogueTree]) -> None:
        for tree in trees:
            _write(out_dir / f"{tree.id}.tree.json", tree.dumps())
            for fmt in spec.formats:
                if fmt != "json":
                    _write(out_dir / f"{tree.id}{FORMATS[fmt][0]}", export_tree(tree, fmt))

    save(done)  # cheap, and brings exports up to date with this version of the exporters
    if todo:
        runtime.generate(todo, group=args.trees_at_once, on_group=save)  # each group saved as soon as done
    print(f"{len(jobs)} tree(s) in {out_dir}: {len(todo)} generated, {len(done)} already done")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_in_flight < 1:
        raise ConfigError("--max-in-flight must be >= 1")
    return _run_spec(args) if args.spec else _run_one(args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        raise SystemExit(main())
    except NpcRuntimeError as exc:
        print(f"npc-runtime tree: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
