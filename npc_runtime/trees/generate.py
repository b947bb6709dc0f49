"""Batched generation of dialogue trees: plan every tree's shape, then fill it level by level with the runtime.

A tree's shape (which player options each node offers) depends only on the persona, the scene and the seed, so
it is planned first. Then, level by level, the NPC reply of every node of that level, across all trees being
generated, goes through :func:`npc_runtime.batch.generate` together: one pass of continuous batching per level.
Each reply's sampling seed is derived from the tree seed and the node id, so the same seed gives the same tree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..batch import Prompt, generate
from ..errors import InferenceError
from ..personas import PersonaCard
from ..protocol import ImageInput
from ..scheduler import GenOptions
from .lines import load_player_lines
from .model import Choice, DialogueTree, Emotion, TreeNode, clean_text
from .options import Step, choose_options, opening_step, topics_for

__all__ = ["TreeSettings", "TreeJob", "PlannedNode", "plan_tree", "count_lines", "model_key", "generate_trees"]

log = logging.getLogger(__name__)

#: A reply the model left empty (or all control characters) is written as this, so every line shows something.
EMPTY_REPLY = "…"
ROOT_ID = "n"
#: Offline generation waits as long as it takes; a reply still queued after this is a stuck run.
_TIMEOUT_MS = 6 * 3600 * 1000


@dataclass(frozen=True)
class TreeSettings:
    """How big a tree is and how its replies are sampled."""

    depth: int = 3
    branches: int = 3
    seed: int = 0
    temperature: float = 0.8
    max_tokens: int = 40

    def __post_init__(self) -> None:
        for name, low, high in (("depth", 1, 8), ("branches", 1, 8), ("max_tokens", 1, 256)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in 0..2, got {self.temperature!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "branches": self.branches,
            "seed": self.seed,
            "temperature": float(self.temperature),
            "max_tokens": self.max_tokens,
        }


@dataclass(frozen=True)
class TreeJob:
    """One tree to make: a persona, an optional opening line, scene facts and screenshot, and settings."""

    tree_id: str
    card: PersonaCard
    settings: TreeSettings = field(default_factory=TreeSettings)
    opening: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    image: ImageInput | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", self.tree_id):
            raise ValueError(f"tree id must be 1-128 letters, digits, '_' or '-', got {self.tree_id!r}")
        object.__setattr__(self, "context", {str(k): str(v) for k, v in self.context.items()})

    def key(self, model: str) -> str:
        """A digest of everything that decides the tree's content; a resumed run skips a tree whose key matches."""
        image = hashlib.sha256(self.image.data).hexdigest() if self.image is not None else None
        data = {
            "tree": self.tree_id,
            "persona": self.card.fingerprint(),
            "speaker": self.card.name,
            "opening": self.opening,
            "context": dict(sorted(self.context.items())),
            "image": image,
            "settings": self.settings.as_dict(),
            "model": model,
            "generator": 1,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class PlannedNode:
    """A node before generation: where it is, the player lines leading to it, and the options it offers."""

    id: str
    level: int
    path: tuple[Step, ...]  # player lines from the opening to the one this node answers
    parent: str | None
    options: list[tuple[Step, str]] = field(default_factory=list)  # (player option, child node id)
    text: str = ""
    emotion: Emotion | None = None


def _derived_seed(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def plan_tree(job: TreeJob, lines: Mapping[str, Sequence[str]] | None = None) -> list[PlannedNode]:
    """Every node of the tree in breadth-first order, with its options; no text yet."""
    lines = lines if lines is not None else load_player_lines()
    settings = job.settings
    topics = topics_for(job.card, job.context)
    opening = opening_step(job.opening, lines, random.Random(_derived_seed(settings.seed, job.tree_id, "opening")))
    nodes = [PlannedNode(ROOT_ID, 0, (opening,), None)]
    for node in nodes:  # grows while iterating: breadth first
        if node.level >= settings.depth or node.path[-1].intent == "farewell":
            continue
        rng = random.Random(_derived_seed(settings.seed, job.tree_id, "options", node.id))
        steps = choose_options(node.path, topics, lines, settings.branches, rng, with_farewell=node.level >= 1)
        for index, step in enumerate(steps, start=1):
            child = PlannedNode(f"{node.id}_{index}", node.level + 1, node.path + (step,), node.id)
            node.options.append((step, child.id))
            nodes.append(child)
    return nodes


def count_lines(jobs: Sequence[TreeJob], lines: Mapping[str, Sequence[str]] | None = None) -> int:
    """How many NPC replies generating ``jobs`` takes (for a progress bar)."""
    lines = lines if lines is not None else load_player_lines()
    return sum(len(plan_tree(job, lines)) for job in jobs)


def model_key(bundle: Any) -> str:
    """The bundle's name and a digest of its manifest (which holds a checksum of every file)."""
    manifest = json.dumps(dict(bundle.manifest), sort_keys=True, default=str)
    return f"{bundle.name}@{hashlib.sha256(manifest.encode()).hexdigest()[:16]}"


def generate_trees(
    engine: Any,
    jobs: Sequence[TreeJob],
    max_in_flight: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[DialogueTree]:
    """The trees of ``jobs``, generated together level by level through the engine's batching.

    Raises :class:`InferenceError` when the runtime fails a reply (the tree would have a hole).
    """
    lines = load_player_lines()
    plans = [plan_tree(job, lines) for job in jobs]
    model = model_key(engine.bundle)
    depth = max((job.settings.depth for job in jobs), default=0)
    for level in range(depth + 1):
        todo = [(j, node) for j, plan in enumerate(plans) for node in plan if node.level == level]
        if not todo:
            break
        prompts = [_prompt(jobs[j], plans[j], node, j, engine.knowledge_of(jobs[j].card)) for j, node in todo]
        log.info("level %d: %d replies for %d tree(s)", level, len(prompts), len({j for j, _ in todo}))
        base = GenOptions(timeout_ms=_TIMEOUT_MS)
        results = generate(engine, prompts, base, max_in_flight=max_in_flight, progress=progress)
        for (j, node), result in zip(todo, results):
            if result.error is not None:
                raise InferenceError(f"tree {jobs[j].tree_id}, node {node.id}: the runtime failed: {result.error}")
            node.text = result.text if clean_text(result.text) else EMPTY_REPLY
            intensity = min(1.0, max(0.0, float(result.intensity)))
            node.emotion = Emotion(result.emotion or "neutral", round(intensity, 4))
    return [_build(job, plan, model) for job, plan in zip(jobs, plans)]


def _prompt(job: TreeJob, plan: list[PlannedNode], node: PlannedNode, job_index: int, knowledge: str) -> Prompt:
    by_id = {n.id: n for n in plan}
    ancestors: list[PlannedNode] = []
    parent = node.parent
    while parent is not None:
        ancestors.append(by_id[parent])
        parent = by_id[parent].parent
    ancestors.reverse()
    # (player line, NPC reply) of every earlier exchange on the path, oldest first
    history = tuple((a.path[-1].text, a.text) for a in ancestors)
    settings = job.settings
    options = GenOptions(
        max_tokens=settings.max_tokens,
        temperature=float(settings.temperature),
        seed=_derived_seed(settings.seed, job.tree_id, "reply", node.id),
        timeout_ms=_TIMEOUT_MS,
    )
    return Prompt(
        key=f"{job_index}/{node.id}",
        fingerprint=job.card.fingerprint(),
        card_text=job.card.card_text(),
        knowledge=knowledge,
        player=node.path[-1].text,
        context=job.context,
        history=history,
        image=job.image,
        options=options,
    )


def _build(job: TreeJob, plan: list[PlannedNode], model: str) -> DialogueTree:
    nodes = []
    for node in plan:
        if node.emotion is None:  # cannot happen: every level was generated
            raise InferenceError(f"tree {job.tree_id}: node {node.id} was never generated")
        choices = tuple(Choice(text=step.text, intent=step.intent, next=child) for step, child in node.options)
        nodes.append(TreeNode(node.id, node.level, node.text, node.emotion, choices))
    meta = {
        "generator": f"npc-runtime {__version__}",
        "model": model,
        "persona_fingerprint": job.card.fingerprint(),
        "settings": job.settings.as_dict(),
        "options_from": "corpus intent paraphrases",
        "job_key": job.key(model),
    }
    if job.image is not None:
        meta["image_sha256"] = hashlib.sha256(job.image.data).hexdigest()
    opening = plan[0].path[0].text
    return DialogueTree(job.tree_id, job.card.id, job.card.name, opening, tuple(nodes), job.context, meta)

