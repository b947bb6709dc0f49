"""The role model's training corpus, built by code from the sample game's world; deterministic for a seed.

Personas (the bundled Emberfall pack plus hundreds of generated cards) meet players in scenes the sample game can
render (a pool of exact facts with render seeds) and answer paraphrased player lines in their own voice, with an
emotion label. Splits hold out, for evaluation, whole personas (``test_heldout``) and paraphrase templates plus
scenes (``test_seen``). Images are not made here: the training script renders each example's scene lazily with
:func:`render_example_scene`, the same drawing code the game uses. See the "Corpus datasheet" in ``docs/model.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from npc_runtime.emotion import EMOTIONS
from npc_runtime.personas import PersonaCard, PersonaPack, default_pack_dir
from npc_runtime.prompt import build_decoder_text
from sample_game.scene import SceneFacts, render_scene
from sample_game.world import CREATURES, LOCATIONS, NOTHING, NPC_LOCATIONS, PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS

from .corpus_emotion import EMOTION_LABELS
from .corpus_intents import INTENT_WEIGHTS, INTENTS, OFFER_ANSWERS, PLAYER_TEMPLATES, SURROUNDINGS_INTENTS
from .corpus_personas import Speaker, make_procedural_personas
from .corpus_replies import BANNED_OUT_OF_WORLD_WORDS, Turn, example_lines_for, make_turn

__all__ = [
    "SPLITS",
    "Example",
    "CorpusConfig",
    "Corpus",
    "build_corpus",
    "render_example_scene",
    "BANNED_OUT_OF_WORLD_WORDS",
    "main",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test_seen", "test_heldout")


def render_example_scene(facts: SceneFacts, size: tuple[int, int] | None = None, seed: int = 0) -> np.ndarray:
    """The NPC's view of ``facts``: exactly :func:`sample_game.scene.render_scene`, (H, W, 3) uint8."""
    if size is None:
        return render_scene(facts, seed=seed)
    return render_scene(facts, size=size, seed=seed)


@dataclass(frozen=True)
class Example:
    """One training or evaluation turn, with every label the metrics need.

    ``required_facts`` are strings a correct reply must contain (compared case-insensitively): a price, a ware,
    a place and its key direction word, a quest title and reward; empty for turns that need no card facts.
    ``scene_element`` is the scene word a surroundings answer must name ("wolf", "rain", "night"), else None.
    """

    persona_id: str
    card: PersonaCard
    scene: SceneFacts
    scene_seed: int
    history: tuple[tuple[str, str], ...]
    player: str
    intent: str
    template_id: str
    reply: str
    emotion: str
    intensity: float
    required_facts: tuple[str, ...]
    scene_element: str | None
    out_of_world: bool
    split: str

    @property
    def is_task(self) -> bool:
        return bool(self.required_facts)

    def decoder_text(self, voice: bool = False, spaced_quotes: bool = False) -> str:
        """The training sequence: knowledge (with the card's voice if ``voice``), scene facts, history, player
        line, reply and ``<eos>``."""
        knowledge = self.card.knowledge_text(voice=voice, spaced_quotes=spaced_quotes)
        return build_decoder_text(knowledge, self.scene.to_context(), self.history, self.player, self.reply)

    def render(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """This example's screenshot, (H, W, 3) uint8."""
        return render_example_scene(self.scene, size, self.scene_seed)

    def key(self) -> tuple:
        """Everything that defines the example, as plain values (for hashing and de-duplication)."""
        s = self.scene
        scene = (s.location, s.time_of_day, s.weather, s.nearby, s.player_item, s.npc)
        return (self.persona_id, scene, self.scene_seed, self.history, self.player, self.intent, self.template_id,
                self.reply, self.emotion, self.intensity, self.required_facts, self.scene_element, self.out_of_world,
                self.split)  # fmt: skip


@dataclass(frozen=True)
class CorpusConfig:
    """How big the corpus is and what is held out. The defaults give ~40k training examples."""

    seed: int = 0
    n_procedural_personas: int = 240
    examples_per_persona: int = 170
    examples_per_bundled_persona: int = 700
    val_fraction: float = 0.05
    test_seen_per_persona: int = 8
    test_seen_per_bundled_persona: int = 40
    test_heldout_per_persona: int = 40
    heldout_persona_fraction: float = 0.1
    heldout_template_fraction: float = 0.2
    n_scenes: int = 4000
    heldout_scene_fraction: float = 0.1
    max_history_turns: int = 3
    pack_dir: str | None = None
    #: How a turn's emotion label is set (``corpus_emotion.EMOTION_LABELS``): ``sampled``, one seeded draw from
    #: the situation's weights (the shipped model's corpus); ``rule``, the label the persona, intent and scene make
    #: likeliest, always the same for the same situation (``npc-runtime train --emotion-labels rule``).
    emotion_labels: str = "sampled"

    def __post_init__(self) -> None:
        ints = ("n_procedural_personas", "examples_per_persona", "examples_per_bundled_persona",
                "test_seen_per_persona", "test_seen_per_bundled_persona", "test_heldout_per_persona",
                "max_history_turns")  # fmt: skip
        for name in ("seed", *ints, "n_scenes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        for name in ints:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_scenes < 20:
            raise ValueError(f"n_scenes must be >= 20, got {self.n_scenes}")
        for name in ("val_fraction", "heldout_persona_fraction", "heldout_template_fraction", "heldout_scene_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        if self.heldout_template_fraction <= 0 or self.heldout_scene_fraction <= 0:
            raise ValueError("heldout_template_fraction and heldout_scene_fraction must be > 0 (test_seen needs them)")
        if self.emotion_labels not in EMOTION_LABELS:
            raise ValueError(f"emotion_labels must be one of {EMOTION_LABELS}, got {self.emotion_labels!r}")
        if self.pack_dir is not None and not isinstance(self.pack_dir, str):
            raise ValueError(f"pack_dir must be a path string or None, got {self.pack_dir!r}")


@dataclass
class Corpus:
    """The built corpus: ``splits`` maps each of :data:`SPLITS` to its examples."""

    config: CorpusConfig
    splits: dict[str, list[Example]]
    cards: dict[str, PersonaCard]
    bundled_ids: tuple[str, ...]
    heldout_persona_ids: tuple[str, ...]
    heldout_templates: frozenset[str]
    heldout_scene_keys: frozenset[tuple]

    def examples(self) -> Iterator[Example]:
        for split in SPLITS:
            yield from self.splits[split]

    def digest(self) -> str:
        """SHA-256 over every example's :meth:`Example.key`: equal digests mean identical corpora."""
        h = hashlib.sha256()
        for ex in self.examples():
            h.update(repr(ex.key()).encode("utf-8"))
        return h.hexdigest()

    def reference_lines(self, max_per_persona: int = 400) -> dict[str, list[str]]:
        """Per bundled persona, reference reply lines (its card's example lines, then distinct training replies)
        for the role-consistency classifier."""
        out: dict[str, list[str]] = {pid: list(self.cards[pid].example_lines) for pid in self.bundled_ids}
        seen = {pid: set(lines) for pid, lines in out.items()}
        for ex in self.splits["train"]:
            lines = out.get(ex.persona_id)
            if lines is not None and len(lines) < max_per_persona and ex.reply not in seen[ex.persona_id]:
                lines.append(ex.reply)
                seen[ex.persona_id].add(ex.reply)
        return out

    def stats(self) -> dict:
        """Counts for the datasheet: per split, intent, emotion; label balance; reply lengths; hold-outs."""
        out: dict = {"config": {k: v for k, v in vars(self.config).items()}, "splits": {}}
        for split in SPLITS:
            examples = self.splits[split]
            emotions = Counter(ex.emotion for ex in examples)
            words = [len(ex.reply.split()) for ex in examples]
            replies = Counter(ex.reply for ex in examples)
            out["splits"][split] = {
                "examples": len(examples),
                "personas": len({ex.persona_id for ex in examples}),
                "bundled_personas": len({ex.persona_id for ex in examples if ex.persona_id in self.bundled_ids}),
                "scenes": len({_scene_key(ex.scene) for ex in examples}),
                "templates": len({ex.template_id for ex in examples}),
                "intents": dict(sorted(Counter(ex.intent for ex in examples).items())),
                "emotions": {label: emotions.get(label, 0) for label in EMOTIONS},
                "emotion_share": {
                    label: round(emotions.get(label, 0) / max(1, len(examples)), 3) for label in EMOTIONS
                },
                "mean_intensity": round(sum(ex.intensity for ex in examples) / max(1, len(examples)), 3),
                "task": sum(ex.is_task for ex in examples),
                "surroundings": sum(ex.intent in SURROUNDINGS_INTENTS for ex in examples),
                "out_of_world": sum(ex.out_of_world for ex in examples),
                "with_history": sum(bool(ex.history) for ex in examples),
                "reply_words": {
                    "mean": round(sum(words) / max(1, len(words)), 1),
                    "min": min(words, default=0),
                    "max": max(words, default=0),
                },
                "distinct_replies": len(replies),
            }
        out["personas"] = {
            "bundled": len(self.bundled_ids),
            "procedural": len(self.cards) - len(self.bundled_ids),
            "heldout": len(self.heldout_persona_ids),
        }
        out["templates"] = {
            "total": sum(len(t) for t in PLAYER_TEMPLATES.values()),
            "heldout": len(self.heldout_templates),
            "intents": len(INTENTS),
        }
        out["scenes"] = {"pool": self.config.n_scenes, "heldout": len(self.heldout_scene_keys)}
        return out


# --------------------------------------------------------------------------------------------------- scenes


def _scene_key(facts: SceneFacts) -> tuple:
    """What makes two scenes the same for hold-out purposes (the NPC drawn and the layout seed do not)."""
    return (facts.location, facts.time_of_day, facts.weather, tuple(sorted(facts.nearby)), facts.player_item)


@dataclass(frozen=True)
class _ScenePool:
    """Distinct scene facts with render seeds, by location; one pool for training, one held out."""

    by_location: dict[str, list[tuple[SceneFacts, int]]]

    def pick(self, rng: random.Random, location: str, need_item: bool) -> tuple[SceneFacts, int]:
        candidates = self.by_location[location]
        for _ in range(30):
            facts, seed = rng.choice(candidates)
            if not need_item or facts.player_item != NOTHING:
                return facts, seed
        with_item = [c for loc in LOCATIONS for c in self.by_location[loc] if c[0].player_item != NOTHING]
        return rng.choice(with_item)


def _build_scene_pools(config: CorpusConfig) -> tuple[_ScenePool, _ScenePool, frozenset[tuple]]:
    rng = random.Random(f"scenes:{config.seed}")
    seen: set[tuple] = set()
    scenes: list[tuple[SceneFacts, int]] = []
    per_location = -(-config.n_scenes // len(LOCATIONS))
    for location in LOCATIONS:
        made = 0
        while made < per_location:
            count = rng.choices((0, 1, 2, 3), weights=(0.35, 0.4, 0.18, 0.07))[0]
            item = NOTHING if rng.random() < 0.4 else rng.choice([i for i in PLAYER_ITEMS if i != NOTHING])
            facts = SceneFacts(
                location=location,
                time_of_day=rng.choice(TIMES_OF_DAY),
                weather=rng.choice(WEATHERS),
                nearby=tuple(rng.sample(CREATURES, k=count)),
                player_item=item,
            )
            key = _scene_key(facts)
            if key in seen:
                continue
            seen.add(key)
            scenes.append((facts, rng.randrange(2**31)))
            made += 1
    keys = sorted(_scene_key(f) for f, _ in scenes)
    rng.shuffle(keys)
    heldout = frozenset(keys[: max(len(LOCATIONS), round(len(keys) * config.heldout_scene_fraction))])
    train: dict[str, list] = {loc: [] for loc in LOCATIONS}
    test: dict[str, list] = {loc: [] for loc in LOCATIONS}
    for facts, seed in scenes:
        (test if _scene_key(facts) in heldout else train)[facts.location].append((facts, seed))
    for pools in (train, test):  # every location needs scenes on both sides
        for loc in LOCATIONS:
            if not pools[loc]:
                raise ValueError(f"n_scenes={config.n_scenes} is too small: no scenes left at {loc}")
    return _ScenePool(train), _ScenePool(test), heldout


# --------------------------------------------------------------------------------------------------- building


def _split_templates(config: CorpusConfig) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    rng = random.Random(f"templates:{config.seed}")
    train, heldout = {}, {}
    for intent in INTENTS:
        indices = list(range(len(PLAYER_TEMPLATES[intent])))
        rng.shuffle(indices)
        n_out = max(2, round(len(indices) * config.heldout_template_fraction))
        heldout[intent] = sorted(indices[:n_out])
        train[intent] = sorted(indices[n_out:])
    return train, heldout


@dataclass
class _Builder:
    """Makes one persona's examples; holds the shared pools and the de-duplication set."""

    config: CorpusConfig
    pools: dict[str, _ScenePool]
    templates: dict[str, dict[str, list[int]]]
    seen: set[tuple] = field(default_factory=set)

    def intent_weights(self, sp: Speaker) -> dict[str, float]:
        weights = dict(INTENT_WEIGHTS)
        if sp.quest is None:
            weights["quest_accept"] = weights["quest_decline"] = 0.0
            weights["quest_ask"] *= 0.4
        if not sp.wares:
            for intent in ("ask_trade", "buy", "complaint"):
                weights[intent] *= 0.3
        return weights

    def turn(self, sp: Speaker, intent: str, side: str, facts: SceneFacts, rng: random.Random) -> Turn:
        index = rng.choice(self.templates[side][intent])
        return make_turn(sp, intent, index, facts, rng, self.config.emotion_labels)

    def example(self, sp: Speaker, side: str, split: str, rng: random.Random) -> Example:
        weights = self.intent_weights(sp)
        intents = sorted(weights)
        intent = rng.choices(intents, weights=[weights[i] for i in intents])[0]
        homes = NPC_LOCATIONS.get(sp.card.id, (sp.home,))
        location = rng.choice(homes) if rng.random() < 0.5 else rng.choice(LOCATIONS)
        facts, seed = self.pools[side].pick(rng, location, need_item=intent == "sell")
        if sp.card.id in NPC_LOCATIONS:
            facts = replace(facts, npc=sp.card.id)

        n_history = rng.choices((0, 1, 2, 3), weights=(0.55, 0.2, 0.15, 0.1))[0]
        if intent in OFFER_ANSWERS:
            n_history = max(1, n_history)
        n_history = min(n_history, self.config.max_history_turns)
        history: list[tuple[str, str]] = []
        for i in range(n_history):
            if i == n_history - 1 and intent in OFFER_ANSWERS:
                past = "quest_ask"
            elif i == 0 and rng.random() < 0.4:
                past = "greeting"
            else:
                pool = [k for k in intents if weights[k] > 0 and k not in (*OFFER_ANSWERS, "farewell")]
                if facts.player_item == NOTHING:
                    pool.remove("sell")
                past = rng.choices(pool, weights=[weights[k] for k in pool])[0]
            turn = self.turn(sp, past, side, facts, rng)
            history.append((turn.player, turn.reply))

        turn = self.turn(sp, intent, side, facts, rng)
        return Example(
            persona_id=sp.card.id,
            card=sp.card,
            scene=facts,
            scene_seed=seed,
            history=tuple(history),
            player=turn.player,
            intent=turn.intent,
            template_id=turn.template_id,
            reply=turn.reply,
            emotion=turn.emotion,
            intensity=turn.intensity,
            required_facts=turn.required_facts,
            scene_element=turn.scene_element,
            out_of_world=turn.out_of_world,
            split=split,
        )

    def unique_example(self, sp: Speaker, side: str, split: str, rng: random.Random) -> Example:
        for _ in range(8):
            ex = self.example(sp, side, split, rng)
            key = (ex.persona_id, _scene_key(ex.scene), ex.history, ex.player, ex.reply)
            if key not in self.seen:
                self.seen.add(key)
                return ex
        return ex  # a persona with very few distinct turns; a duplicate is better than a gap


def _canonical_directions(cards: Sequence[PersonaCard]) -> dict[str, str]:
    """Location -> the directions the bundled cards agree on first (by card order)."""
    out: dict[str, str] = {}
    for card in cards:
        for place in card.knowledge.places:
            name = place.name.lower().removeprefix("the ").strip()
            if name in LOCATIONS and name not in out:
                out[name] = place.directions
    return out


def build_corpus(config: CorpusConfig | None = None) -> Corpus:
    """Build every split; the same config gives identical examples, in the same order."""
    config = config or CorpusConfig()
    pack = PersonaPack.load(config.pack_dir or default_pack_dir())
    bundled = list(pack.cards)
    procedural = make_procedural_personas(
        config.n_procedural_personas, config.seed, example_lines_for, _canonical_directions(bundled)
    )
    rng = random.Random(f"corpus:{config.seed}")
    proc_ids = [card.id for card in procedural]
    rng.shuffle(proc_ids)
    n_heldout = round(len(proc_ids) * config.heldout_persona_fraction)
    heldout_ids = tuple(sorted(proc_ids[:n_heldout]))

    train_pool, test_pool, heldout_scenes = _build_scene_pools(config)
    train_templates, heldout_templates = _split_templates(config)
    builder = _Builder(
        config=config,
        pools={"train": train_pool, "heldout": test_pool},
        templates={"train": train_templates, "heldout": heldout_templates},
    )
    splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
    bundled_ids = tuple(card.id for card in bundled)
    for card in [*bundled, *procedural]:
        sp = Speaker.from_card(card)
        prng = random.Random(f"examples:{config.seed}:{card.id}")
        if card.id in heldout_ids:
            for _ in range(config.test_heldout_per_persona):
                splits["test_heldout"].append(builder.unique_example(sp, "train", "test_heldout", prng))
            continue
        is_bundled = card.id in bundled_ids
        n_train = config.examples_per_bundled_persona if is_bundled else config.examples_per_persona
        n_test = config.test_seen_per_bundled_persona if is_bundled else config.test_seen_per_persona
        for _ in range(n_train):
            split = "val" if prng.random() < config.val_fraction else "train"
            splits[split].append(builder.unique_example(sp, "train", split, prng))
        for _ in range(n_test):
            splits["test_seen"].append(builder.unique_example(sp, "heldout", "test_seen", prng))
    heldout_template_ids = frozenset(
        f"{intent}/{index:02d}" for intent, indices in heldout_templates.items() for index in indices
    )
    corpus = Corpus(
        config=config,
        splits=splits,
        cards={card.id: card for card in [*bundled, *procedural]},
        bundled_ids=bundled_ids,
        heldout_persona_ids=heldout_ids,
        heldout_templates=heldout_template_ids,
        heldout_scene_keys=heldout_scenes,
    )
    log.info("built corpus: %s", {split: len(examples) for split, examples in splits.items()})
    return corpus


# --------------------------------------------------------------------------------------------------- CLI


def _print_examples(corpus: Corpus, split: str, count: int, seed: int) -> None:
    examples = corpus.splits[split]
    for ex in random.Random(seed).sample(examples, k=min(count, len(examples))):
        print(f"[{ex.persona_id} | {ex.intent} | {ex.emotion} {ex.intensity}] {ex.scene.to_context()}")
        for player, npc in ex.history:
            print(f"    (player) {player}\n    (npc)    {npc}")
        print(f"    player: {ex.player}\n    reply:  {ex.reply}")
        if ex.required_facts or ex.scene_element:
            print(f"    needs:  {list(ex.required_facts)} scene={ex.scene_element}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stats", action="store_true", help="print the corpus statistics (datasheet numbers)")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")
    parser.add_argument("--show", type=int, default=0, metavar="N", help="print N random examples of --split")
    parser.add_argument("--split", choices=SPLITS, default="train", help="split for --show (default: train)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")
    parser.add_argument("--pack", type=Path, default=None, help="persona pack directory (default: the bundled one)")
    args = parser.parse_args(argv)
    if not (args.stats or args.json or args.show):
        parser.print_help()
        return 0
    corpus = build_corpus(CorpusConfig(seed=args.seed, pack_dir=str(args.pack) if args.pack else None))
    if args.stats or args.json:
        stats = corpus.stats()
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            for split, s in stats["splits"].items():
                print(
                    f"{split}: {s['examples']} examples, {s['personas']} personas, {s['scenes']} scenes, "
                    f"{s['templates']} templates, reply words {s['reply_words']}, distinct {s['distinct_replies']}"
                )
                print("  emotions: " + ", ".join(f"{k} {v:.1%}" for k, v in s["emotion_share"].items()))
            print(f"personas: {stats['personas']}  templates: {stats['templates']}  scenes: {stats['scenes']}")
    if args.show:
        _print_examples(corpus, args.split, args.show, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
