"""``npc-runtime eval``: offline evaluation of a role-model bundle on the corpus's held-out splits, on CPU.

For each held-out split (``test_seen``: seen personas, held-out templates and scenes; ``test_heldout``: personas
the model never saw) it generates greedy replies through the runtime's own scheduler and ONNX graphs, under the
model's real conditions and its controls (reference lines, no persona, the wrong persona, and for scene questions
no scene and image only), scores them (:mod:`export.eval_scoring`), checks the issue's targets and writes a JSON
report and the results section of ``docs/eval.md`` (:mod:`export.eval_report`). Extra bundles trained with other
fusion modes (``--ablation``) fill the fusion ablation table. ``docs/eval.md`` explains every metric.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from npc_runtime.bundle import Bundle, default_bundle_dir, load_bundle
from npc_runtime.engine import RoleModelEngine
from npc_runtime.errors import ConfigError, NpcRuntimeError
from npc_runtime.ort_backend import DEVICES, RuntimeOptions
from npc_runtime.personas import PersonaCard
from npc_runtime.sampling import DEFAULT_NO_REPEAT_NGRAM
from npc_runtime.facts import DEFAULT_FACT_BIAS
from npc_runtime.grounding import DEFAULT_SCENE_BIAS
from npc_runtime.voice import DEFAULT_CATCHPHRASE_RATE, DEFAULT_VOICE_BIAS
from npc_runtime.scheduler import STEERING_LIMITS, GenOptions, steering_errors

from .corpus_intents import OFFER_ANSWERS
from .eval_attribution import FeatureConfig, PersonaClassifier
from .eval_generate import Generation, Prompt, generate, png_image
from .eval_handwritten import known_words, run_probe
from .eval_metrics import voice_markers
from .eval_probe import voice_probe
from .voice_swap import swap_voice
from .eval_report import check_targets, headline, render_markdown, summary_lines, write_markdown
from .eval_scoring import Answer, score_answers
from .intent_reader import hint_label

__all__ = [
    "EVAL_SPLITS",
    "CONDITIONS",
    "SCENE_CONTROLS",
    "EvalConfig",
    "select_examples",
    "reference_lines",
    "wrong_card",
    "NOVEL_VOICE",
    "NO_OFFER",
    "RIGHT_HINT",
    "NOVEL_CATCHPHRASES",
    "NOVEL_ADDRESSES",
    "novel_voice_card",
    "build_prompts",
    "training_corpus",
    "corpus_overrides",
    "run_command",
    "evaluate",
    "build_parser",
    "main",
]

log = logging.getLogger(__name__)

EVAL_SPLITS: tuple[str, ...] = ("test_seen", "test_heldout")
#: Generated conditions of every example: the real one and the two persona controls.
CONDITIONS: tuple[str, ...] = ("model", "no_persona", "wrong_persona")
#: Extra controls for scene questions only: no context text and no screenshot; the screenshot alone.
SCENE_CONTROLS: tuple[str, ...] = ("no_scene", "image_only")
#: Held-out cards rewritten with a catchphrase and a form of address that no corpus card uses: does the model copy
#: a voice it cannot have memorised? Only held-out turns whose card has a marker (``novel_voice_card``).
NOVEL_VOICE = "novel_voice"
#: Turns that accept or decline a quest, asked with the NPC's offer left out of the history (the corpus always has
#: it as the turn before): a game whose history window has lost the offer, or a new session, sends them so.
NO_OFFER = "no_offer"
#: The turns whose player line the bundle's intent reader misread, asked again with the hint of the turn's own
#: intent; the other turns keep the model's replies. What a reader that read every line right would give, which
#: splits a miss between the reader and the model. Only for bundles with a reader.
RIGHT_HINT = "right_hint"
NOVEL_CATCHPHRASES: tuple[str, ...] = ("Salt and oars!", "Bless my boots!", "Thunder and turnips!",
                                       "Keep the kettle singing.", "Feathers and flint!", "Up with the larks.")  # fmt: skip
NOVEL_ADDRESSES: tuple[str, ...] = ("sprout", "duckling", "sunbeam", "dewdrop", "tadpole", "buttercup")
#: The attribution classifier's features: word unigrams, plus MiniLM at a fifth of the weight (see docs/eval.md).
DEFAULT_FEATURES = FeatureConfig(max_n=1, ngram_weight=1.0, embedding_weight=0.2)
REPORT_FORMAT = "npc-eval"
REPORT_VERSION = 1


@dataclass(frozen=True)
class EvalConfig:
    """What one evaluation run does; checked on construction (``ValueError`` on a bad value)."""

    limit: int | None = None  # examples per split; None: all
    seed: int = 0  # example selection and the wrong-persona draw
    max_new_tokens: int | None = None  # None: the bundle's limit
    repetition_penalty: float = 1.1  # the server's default, so the figures are what a game gets
    no_repeat_ngram: int = DEFAULT_NO_REPEAT_NGRAM  # the server's n-gram ban (0: off)
    spelling: bool = True  # the bundle's spelling constraint, as the server applies it
    voice_bias: float = DEFAULT_VOICE_BIAS  # the server's address steering (npc_runtime.voice; 0: off)
    catchphrase_rate: float = DEFAULT_CATCHPHRASE_RATE  # the server's share of replies ending with it (0: off)
    fact_bias: float = DEFAULT_FACT_BIAS  # the server's fact steering (npc_runtime.facts; 0: off)
    scene_bias: float = DEFAULT_SCENE_BIAS  # the server's scene steering (npc_runtime.grounding; 0: off)
    #: 0: greedy (the default, so a run is reproducible); above 0: sampled with the server's top-p and top-k and
    #: a fixed seed per reply, as a game gets its lines.
    temperature: float = 0.0
    max_in_flight: int = 32
    controls: bool = True
    reference_per_persona: int = 400
    features: FeatureConfig = DEFAULT_FEATURES
    folds: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.no_repeat_ngram < 0:
            raise ValueError(f"no_repeat_ngram must be >= 0, got {self.no_repeat_ngram}")
        for error in steering_errors({name: getattr(self, name) for name in STEERING_LIMITS}):
            raise ValueError(error)
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.reference_per_persona < 2:
            raise ValueError(f"reference_per_persona must be >= 2, got {self.reference_per_persona}")
        if self.folds < 1:
            raise ValueError(f"folds must be >= 1, got {self.folds}")


# --------------------------------------------------------------------------------------------- data


def select_examples(examples: Sequence[Any], limit: int | None, seed: int) -> list[Any]:
    """All examples, or ``limit`` of them drawn round-robin over intents (so a quick run still covers scene,
    task and out-of-world turns), in their corpus order; deterministic for ``seed``."""
    if limit is None or limit >= len(examples):
        return list(examples)
    rng = random.Random(f"eval-select:{seed}")
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.intent, []).append(i)
    queues = [groups[intent] for intent in sorted(groups)]
    for queue in queues:
        rng.shuffle(queue)
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop())
    return [examples[i] for i in sorted(chosen)]


def reference_lines(corpus: Any, per_persona: int) -> list[tuple[str, str]]:
    """The classifier's training data, from the corpus only: ``(persona_id, line)`` pairs.

    Bundled personas: ``Corpus.reference_lines()`` (card example lines, then training replies). Held-out personas
    have no training replies, so theirs are their card's example lines and the reference replies of all their
    ``test_heldout`` examples; cross-fitting keeps each reply's own reference line out of the centroids that score
    it (see :class:`~export.eval_attribution.PersonaClassifier`).
    """
    lines = [(pid, text) for pid, texts in corpus.reference_lines(per_persona).items() for text in texts]
    heldout: dict[str, list[str]] = {}
    for ex in corpus.splits["test_heldout"]:
        texts = heldout.setdefault(ex.persona_id, list(ex.card.example_lines))
        if ex.reply not in texts and len(texts) < per_persona:
            texts.append(ex.reply)
    lines += [(pid, text) for pid, texts in sorted(heldout.items()) for text in texts]
    return lines


def wrong_card(ex: Any, index: int, bundled: Mapping[str, PersonaCard], seed: int) -> PersonaCard:
    """Another bundled persona's card for the wrong-persona control, drawn deterministically per example."""
    others = sorted(pid for pid in bundled if pid != ex.persona_id)
    if not others:
        raise ValueError("the wrong-persona control needs at least two bundled personas")
    return bundled[random.Random(f"eval-wrong:{seed}:{index}").choice(others)]


def novel_voice_card(card: PersonaCard, index: int) -> PersonaCard | None:
    """``card`` with its catchphrase and form of address (``voice_markers``) replaced, in its speaking style and
    example lines, by ones no corpus card uses (picked by ``index``); None when the card has neither marker."""
    markers = voice_markers(card)
    if not markers:
        return None
    new = {"catchphrase": NOVEL_CATCHPHRASES[index % len(NOVEL_CATCHPHRASES)],
           "address": NOVEL_ADDRESSES[index % len(NOVEL_ADDRESSES)]}  # fmt: skip
    return swap_voice(card, markers, new)[0]


def build_prompts(
    examples: Sequence[Any],
    condition: str,
    bundled: Mapping[str, PersonaCard],
    image_of: Callable[[Any], Any],
    seed: int,
    tag: str,
    knowledge_of: Callable[[PersonaCard], str] = PersonaCard.knowledge_text,
) -> tuple[list[int], list[Prompt], list[str | None]]:
    """Prompts of one condition: the example indices they answer, the prompts, and whose card each was given.

    ``knowledge_of`` gives a card's ``<know>`` line in the evaluated bundle's layout (``engine.knowledge_of``).
    """
    rows, prompts, given = [], [], []
    for i, ex in enumerate(examples):
        if condition in SCENE_CONTROLS and not ex.scene_element:
            continue
        history = tuple(tuple(turn) for turn in ex.history)
        if condition == NO_OFFER:
            if ex.intent not in OFFER_ANSWERS or not history:
                continue
            history = history[:-1]
        card: PersonaCard | None = ex.card
        if condition == NOVEL_VOICE:
            card = novel_voice_card(ex.card, i) if ex.split == "test_heldout" else None
            if card is None:
                continue
        if condition == "no_persona":
            card = None
        elif condition == "wrong_persona":
            card = wrong_card(ex, i, bundled, seed)
        context = {} if condition in SCENE_CONTROLS else ex.scene.to_context()
        image = None if condition == "no_scene" else image_of(ex)
        prompts.append(
            Prompt(
                key=f"{tag}:{condition}:{i}",
                fingerprint=card.fingerprint() if card else "none",
                card_text=card.card_text() if card else "",
                knowledge=knowledge_of(card) if card else "",
                player=ex.player,
                context=context,
                history=history,
                image=image,
            )
        )
        rows.append(i)
        given.append(card.id if card else None)
    return rows, prompts, given


def _answers(gens: Sequence[Generation], given: Sequence[str | None], hints: Sequence[str | None]) -> list[Answer]:
    return [
        Answer(g.text, g.emotion, g.intensity, g.truncated, g.error, given_persona=who, hint=hint)
        for g, who, hint in zip(gens, given, hints)
    ]


def _line_hints(engine: RoleModelEngine, lines: Sequence[str]) -> dict[str, str]:
    """The intent reader's hint of each distinct player line, as the engine gives it to the model (a line's hint
    depends on the line alone); empty without a reader."""
    if engine.intent_reader is None:
        return {}
    distinct = list(dict.fromkeys(lines))
    embeddings = np.concatenate([engine.encode_texts(distinct[i : i + 64]) for i in range(0, len(distinct), 64)])
    return dict(zip(distinct, engine.intent_hints(embeddings)))


# --------------------------------------------------------------------------------------------- running


class _ImageCache:
    """Each example's screenshot, rendered once and PNG-encoded as a game would send it."""

    def __init__(self) -> None:
        self._images: dict[tuple, Any] = {}

    def __call__(self, ex: Any) -> Any:
        key = (ex.scene, ex.scene_seed)
        if key not in self._images:
            self._images[key] = png_image(ex.render())
        return self._images[key]


def _make_encoder(kind: str, engine: RoleModelEngine) -> Callable[[Sequence[str]], np.ndarray] | None:
    if kind == "none":
        return None
    if kind == "bundle":
        return engine.encode_texts
    if kind == "minilm":
        from .text_encoder import load_minilm  # PyTorch, only when asked for

        encoder = load_minilm()
        return lambda texts: encoder.encode_texts(list(texts)).numpy()
    raise ConfigError(f"unknown encoder {kind!r}; expected bundle, minilm or none")


#: The suffix of a hand-written-card probe run without the server's decoding constraints.
MODEL_ALONE = ", model alone"


def _handwritten_probes(engine: RoleModelEngine, runtime: RuntimeOptions, config: EvalConfig,
                        vocabulary: frozenset[str]) -> dict[str, Any]:
    """The hand-written-card probe of one bundle as the server decodes, and, where the server's decoding
    constraints (spelling, n-gram ban, voice, fact and scene steering) are on, again without them: the model alone, so that the constraints'
    share of its fluency stays visible (with spelling on, non-words are near zero by construction)."""
    name = engine.bundle.name
    out = {name: run_probe(engine, _gen_options(engine, config), vocabulary, config.max_in_flight)}
    if engine.lexicon is not None or config.no_repeat_ngram or config.voice_bias or config.catchphrase_rate \
            or config.fact_bias or config.scene_bias:
        loose = engine if engine.lexicon is None else RoleModelEngine(engine.bundle, runtime, spelling=False)
        options = dataclasses.replace(_gen_options(loose, config), no_repeat_ngram=0, voice_bias=0.0,
                                      catchphrase_rate=0.0, fact_bias=0.0, scene_bias=0.0)
        out[name + MODEL_ALONE] = run_probe(loose, options, vocabulary, config.max_in_flight)
    return out


def _bundle_info(bundle: Bundle) -> dict[str, Any]:
    """What the report says about a bundle; ``steps`` is the training budget its manifest records (None if not),
    ``prompt_voice`` whether its model reads the card's voice on the ``<know>`` line, ``copy_head`` whether its
    decoder has the pointer head, ``copy_induction`` whether that head has the induction bonus, ``lexicon`` whether
    it has the spelling constraint's word list, ``intent_hint`` whether its model reads an intent reader's hint."""
    training = bundle.manifest.get("training")
    steps = training.get("steps") if isinstance(training, Mapping) else None
    return {
        "name": bundle.name,
        "directory": bundle.root.name,
        "fusion": bundle.model.get("fusion"),
        "prompt_voice": bool(bundle.model.get("prompt_voice", False)),
        "copy_head": bool(bundle.model.get("copy_head", False)),
        "copy_induction": bool(bundle.model.get("copy_induction", False)),
        "lexicon": "lexicon" in bundle.manifest.get("assets", {}),
        "intent_hint": "intent_reader" in bundle.manifest.get("assets", {}),
        "precision": bundle.manifest.get("precision"),
        "steps": steps if isinstance(steps, int) and not isinstance(steps, bool) else None,
    }


def _corpus_provenance(bundle: Bundle, corpus: Any) -> dict[str, Any]:
    """The corpus digest and whether it is the one the bundle was trained on (None: the bundle does not say)."""
    digest = corpus.digest()
    trained_on = bundle.manifest.get("training", {}).get("corpus_digest")
    matches = None if not trained_on else digest == trained_on
    if matches is False:
        log.warning(
            "this corpus (digest %s) is not the one %s was trained on (%s): held-out examples may have been seen "
            "in training; pass the training run's corpus settings with --seed/--corpus",
            digest[:12], bundle.name, str(trained_on)[:12],
        )  # fmt: skip
    return {"digest": digest, "matches_training": matches}


def training_corpus(bundle: Bundle) -> dict[str, Any]:
    """CorpusConfig fields the bundle records for its training corpus, if it records them."""
    recorded = bundle.manifest.get("training", {}).get("corpus_config")
    return dict(recorded) if isinstance(recorded, dict) else {}


def _gen_options(engine: RoleModelEngine, config: EvalConfig) -> GenOptions:
    """The decoding options of every evaluated reply: greedy (or sampled with ``--temperature``), fixed seed."""
    server = GenOptions()
    return GenOptions(
        max_tokens=config.max_new_tokens or int(engine.limits.get("max_new_tokens", 48)),
        temperature=config.temperature,
        top_p=server.top_p if config.temperature > 0 else 1.0,
        top_k=server.top_k if config.temperature > 0 else 0,
        seed=config.seed,
        repetition_penalty=config.repetition_penalty,
        no_repeat_ngram=config.no_repeat_ngram,
        voice_bias=config.voice_bias,
        catchphrase_rate=config.catchphrase_rate,
        fact_bias=config.fact_bias,
        scene_bias=config.scene_bias,
        timeout_ms=3_600_000,
    )


def _run_bundle(
    engine: RoleModelEngine,
    selected: Mapping[str, Sequence[Any]],
    conditions: Sequence[str],
    config: EvalConfig,
    bundled: Mapping[str, PersonaCard],
    images: _ImageCache,
) -> dict[str, dict[str, tuple[list[int], list[Answer]]]]:
    """Generate every (split, condition); returns ``{split: {condition: (example rows, answers)}}``."""
    options = _gen_options(engine, config)
    jobs = []
    for split, examples in selected.items():
        for condition in (c for c in conditions if c != RIGHT_HINT):  # built from the model's prompts below
            jobs.append((split, condition, *build_prompts(examples, condition, bundled, images, config.seed, split,
                                                          engine.knowledge_of)))  # fmt: skip
    hint_of = _line_hints(engine, [prompt.player for job in jobs for prompt in job[3]])
    right_hint = RIGHT_HINT in conditions and engine.intent_reader is not None
    if right_hint:
        jobs += [_misread_job(selected[split], rows, prompts, given, hint_of, split)
                 for split, condition, rows, prompts, given in list(jobs) if condition == "model"]  # fmt: skip
    total = sum(len(job[3]) for job in jobs)
    out: dict[str, dict[str, tuple[list[int], list[Answer]]]] = {split: {} for split in selected}
    with tqdm(total=total, desc=engine.bundle.name, unit="reply", disable=not config.progress) as bar:
        for split, condition, rows, prompts, given in jobs:
            if not prompts:
                continue
            gens = generate(engine, prompts, options, config.max_in_flight, progress=bar.update)
            out[split][condition] = (rows, _answers(gens, given, [p.hint or hint_of.get(p.player) for p in prompts]))
            failed = sum(1 for g in gens if g.error)
            if failed:
                log.warning("%s %s: %d of %d generations failed", split, condition, failed, len(gens))
    if right_hint:
        for by_condition in out.values():
            if "model" in by_condition:
                by_condition[RIGHT_HINT] = with_right_hints(by_condition["model"], by_condition.get(RIGHT_HINT))
    return out


def _misread_job(
    examples: Sequence[Any], rows: Sequence[int], prompts: Sequence[Prompt], given: Sequence[str | None],
    hint_of: Mapping[str, str], split: str,
) -> tuple[str, str, list[int], list[Prompt], list[str | None]]:
    """The ``right_hint`` job of a split: the model condition's prompts whose line the reader misread, each given
    the hint of its turn's own intent."""
    pick = [j for j, (row, p) in enumerate(zip(rows, prompts)) if hint_of[p.player] != hint_label(examples[row].intent)]
    fixed = [replace(prompts[j], key=f"{split}:{RIGHT_HINT}:{rows[j]}", hint=hint_label(examples[rows[j]].intent))
             for j in pick]  # fmt: skip
    return split, RIGHT_HINT, [rows[j] for j in pick], fixed, [given[j] for j in pick]


def with_right_hints(model: tuple[list[int], list[Answer]],
                     misread: tuple[list[int], list[Answer]] | None) -> tuple[list[int], list[Answer]]:  # fmt: skip
    """The ``right_hint`` condition: the model's answers, with those of the turns asked again with the right hint
    (``misread``: their example rows and answers; None when the reader misread none) in their place."""
    again = dict(zip(*misread)) if misread else {}
    rows, answers = model
    return list(rows), [again.get(row, answer) for row, answer in zip(rows, answers)]


def _score_all(
    selected: Mapping[str, Sequence[Any]],
    generated: Mapping[str, Mapping[str, tuple[list[int], list[Answer]]]],
    classifier: PersonaClassifier,
    pool: Sequence[str],
    with_reference: bool,
    emotion_labels: str = "sampled",
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for split, examples in selected.items():
        results[split] = {}
        if with_reference:
            answers = [Answer(ex.reply) for ex in examples]
            results[split]["reference"] = _score(examples, answers, classifier, pool, emotion_labels)
        for condition, (rows, answers) in generated[split].items():
            if not rows:
                continue
            answered = [examples[i] for i in rows]
            if condition == NOVEL_VOICE:  # scored against the rewritten card the model was given
                answered = [replace(ex, card=novel_voice_card(ex.card, i)) for ex, i in zip(answered, rows)]
            results[split][condition] = _score(answered, answers, classifier, pool)
    return results


def _score(
    examples: Sequence[Any], answers: Sequence[Answer], classifier: PersonaClassifier, pool: Sequence[str],
    emotion_labels: str = "sampled",
) -> dict[str, Any]:
    # Seen personas are attributed among the bundled ones only: the classifier has reference lines for those
    # and for the held-out personas, not for the hundreds of procedural training personas.
    attribute = [ex.persona_id in pool or ex.split == "test_heldout" for ex in examples]
    return score_answers(examples, answers, classifier, pool, attribute, emotion_labels)


def evaluate(
    bundle: Bundle,
    corpus: Any,
    config: EvalConfig,
    ablation: Sequence[Bundle] = (),
    runtime: RuntimeOptions | None = None,
    encoder: str = "bundle",
) -> dict[str, Any]:
    """The whole evaluation of ``bundle`` (and the ablation bundles) on ``corpus``; returns the report."""
    started = time.monotonic()
    runtime = runtime or RuntimeOptions(device="cpu")
    engine = RoleModelEngine(bundle, runtime, spelling=config.spelling)
    bundled = {pid: corpus.cards[pid] for pid in corpus.bundled_ids}
    pool = tuple(corpus.bundled_ids)
    selected = {split: select_examples(corpus.splits[split], config.limit, config.seed) for split in EVAL_SPLITS}
    selected = {split: examples for split, examples in selected.items() if examples}
    if not selected:
        raise ConfigError("the corpus has no held-out examples to evaluate")
    log.info("evaluating %s on %s", bundle.name, {split: len(v) for split, v in selected.items()})

    lines = reference_lines(corpus, config.reference_per_persona)
    classifier = PersonaClassifier(_make_encoder(encoder, engine), config.features, config.folds).fit(lines)

    images = _ImageCache()
    conditions = (*CONDITIONS, *SCENE_CONTROLS, NOVEL_VOICE, NO_OFFER, RIGHT_HINT) if config.controls else ("model",)
    generated = _run_bundle(engine, selected, conditions, config, bundled, images)
    results = _score_all(selected, generated, classifier, pool, with_reference=True,
                         emotion_labels=corpus.config.emotion_labels)

    # Cards written by hand after training, asked by every bundle; a word is a word if the corpus has used it.
    train = corpus.splits["train"]
    vocabulary = known_words([*(ex.reply for ex in train), *(ex.player for ex in train)])
    handwritten = _handwritten_probes(engine, runtime, config, vocabulary)
    ablation_rows = [{**_bundle_info(bundle), "results": {s: headline(r["model"]) for s, r in results.items()}}]
    for other in ablation:
        provenance = _corpus_provenance(other, corpus)  # warns when this bundle was trained on another corpus
        other_engine = RoleModelEngine(other, runtime, spelling=config.spelling)
        other_generated = _run_bundle(other_engine, selected, ("model",), config, bundled, images)
        scored = _score_all(selected, other_generated, classifier, pool, with_reference=False)
        ablation_rows.append({**_bundle_info(other), "corpus_matches_training": provenance["matches_training"],
                              "results": {s: headline(r["model"]) for s, r in scored.items()}})  # fmt: skip
        if other.name not in handwritten:  # a report keys bundles by name: one probe per name
            handwritten.update(_handwritten_probes(other_engine, runtime, config, vocabulary))

    probe = None
    if config.controls and "test_heldout" in selected:
        phrases = {voice_markers(card).get("catchphrase") for card in corpus.cards.values()} - {None}
        probe = voice_probe(engine, selected["test_heldout"], images, NOVEL_CATCHPHRASES, sorted(phrases),
                            novel_voice_card)  # fmt: skip

    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "bundle": _bundle_info(bundle),
        "provider": engine.provider,
        "settings": {
            **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("features", "progress")},
            "max_new_tokens": config.max_new_tokens or int(engine.limits.get("max_new_tokens", 48)),
        },
        "corpus": {
            "config": dict(vars(corpus.config)),
            **_corpus_provenance(bundle, corpus),
            "examples": {split: len(examples) for split, examples in selected.items()},
            "available": {split: len(corpus.splits[split]) for split in EVAL_SPLITS},
            "bundled_personas": list(pool),
            "heldout_personas": len(corpus.heldout_persona_ids),
        },
        "classifier": {
            "kind": "nearest centroid (cosine), cross-fitted",
            "encoder": encoder if config.features.embedding_weight > 0 else "none",
            "features": dataclasses.asdict(config.features),
            "reference_lines": len(lines),
            "personas": len(classifier.labels),
            "folds": config.folds,
        },
        "results": results,
        "ablation": ablation_rows,
        "handwritten": handwritten,
    }
    if probe is not None:
        report["voice_probe"] = probe
    if engine.intent_reader is not None:
        report["intent_reader"] = _reader_accuracy(engine, selected)
    report["targets"] = check_targets(report)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    return report


def _reader_accuracy(engine: RoleModelEngine, selected: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """How often the bundle's intent reader names the intent each evaluated turn asks (its hint is what the
    model reads after the player's line)."""
    out = {}
    for split, examples in selected.items():
        hint_of = _line_hints(engine, [ex.player for ex in examples])
        right = sum(hint_of[ex.player] == hint_label(ex.intent) for ex in examples)
        out[split] = {"turns": len(examples), "accuracy": round(right / max(1, len(examples)), 4)}
    return out


# --------------------------------------------------------------------------------------------- CLI


def corpus_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``--corpus KEY=VALUE`` pairs as ``CorpusConfig`` fields, each cast to its field's type (``ConfigError`` on
    an unknown field or a bad value)."""
    from .corpus import CorpusConfig

    fields = {f.name: f for f in dataclasses.fields(CorpusConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"--corpus expects KEY=VALUE with KEY one of {sorted(fields)}, got {pair!r}")
        default = fields[key].default
        try:
            out[key] = raw if isinstance(default, str) or default is None else type(default)(raw)
        except ValueError as exc:
            raise ConfigError(f"--corpus {key}: {exc}") from exc
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npc-runtime eval",
        description="Evaluate a role-model bundle offline on the corpus's held-out splits (CPU); writes a JSON "
        "report and the results section of docs/eval.md.",
    )
    parser.add_argument("--model", type=Path, default=None, help="bundle directory (default: the bundled default)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="examples per split (default: all)")
    parser.add_argument(
        "--ablation", type=Path, nargs="+", default=[], metavar="DIR", help="bundles trained otherwise (other fusion modes, budgets, --no-voice)"
    )
    parser.add_argument("--out-json", type=Path, default=Path("docs/eval.json"), help="JSON report (%(default)s)")
    parser.add_argument("--out-md", type=Path, default=Path("docs/eval.md"), help="markdown report (%(default)s)")
    parser.add_argument(
        "--seed", type=int, default=None, help="corpus seed (must match training; default: the bundle's, else 0)"
    )
    parser.add_argument(
        "--corpus", nargs="*", default=[], metavar="KEY=VALUE", help="CorpusConfig fields the model was trained with"
    )
    parser.add_argument("--max-new-tokens", type=int, default=None, help="reply length limit (default: the bundle's)")
    parser.add_argument("--repetition-penalty", type=float, default=1.1, help="as the server uses (%(default)s)")
    parser.add_argument("--no-repeat-ngram", type=int, default=DEFAULT_NO_REPEAT_NGRAM, metavar="N",
                        help="the server's ban on saying the same N tokens twice; 0 turns it off (%(default)s)")
    parser.add_argument("--voice-bias", type=float, default=DEFAULT_VOICE_BIAS, metavar="NATS",
                        help="the server's voice steering towards the card's form of address; 0 turns it off "
                        "(%(default)s)")  # fmt: skip
    parser.add_argument("--catchphrase-rate", type=float, default=DEFAULT_CATCHPHRASE_RATE, metavar="SHARE",
                        help="the server's share of replies that end with the card's catchphrase; 0 turns it off "
                        "(%(default)s)")  # fmt: skip
    parser.add_argument("--fact-bias", type=float, default=DEFAULT_FACT_BIAS, metavar="NATS",
                        help="the server's fact steering towards the card's price or direction where a reply says "
                        "one; 0 turns it off (%(default)s)")  # fmt: skip
    parser.add_argument("--scene-bias", type=float, default=DEFAULT_SCENE_BIAS, metavar="NATS",
                        help="the server's scene steering towards the scene facts' weather, creature, held item or "
                        "time of day where a reply names one; 0 turns it off (%(default)s)")  # fmt: skip
    parser.add_argument("--no-spelling", action="store_true",
                        help="turn off the bundles' spelling constraint (the server applies it)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0: greedy (default, reproducible); above 0: sampled with the server's top-p/top-k and "
                        "a fixed seed, as a game gets its lines (the server's default is 0.7)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=32, help="generations in flight at once (%(default)s)")
    parser.add_argument("--no-controls", action="store_true", help="skip the no-persona, wrong-persona, scene runs")
    parser.add_argument(
        "--encoder",
        choices=("bundle", "minilm", "none"),
        default="bundle",
        help="sentence encoder of the attribution classifier: the bundle's text encoder graph, PyTorch MiniLM, or "
        "n-grams only (default: %(default)s)",
    )
    parser.add_argument("--reference-per-persona", type=int, default=400, help="classifier lines per persona")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="execution provider (%(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_command(
    parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None
) -> int:
    """Parse ``argv``, log as the CLI does when run directly, and ``run``; a project error (``NpcRuntimeError``)
    becomes one line on stderr, prefixed by the parser's program name, and exit status 1."""
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:  # run directly, not through npc-runtime's CLI
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except NpcRuntimeError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from .corpus import CorpusConfig, build_corpus

    try:
        features = replace(DEFAULT_FEATURES, embedding_weight=0.0) if args.encoder == "none" else DEFAULT_FEATURES
        config = EvalConfig(
            limit=args.limit,
            seed=0 if args.seed is None else args.seed,
            max_new_tokens=args.max_new_tokens,
            repetition_penalty=args.repetition_penalty,
            no_repeat_ngram=args.no_repeat_ngram,
            spelling=not args.no_spelling,
            voice_bias=args.voice_bias,
            catchphrase_rate=args.catchphrase_rate,
            fact_bias=args.fact_bias,
            scene_bias=args.scene_bias,
            temperature=args.temperature,
            max_in_flight=args.batch,
            controls=not args.no_controls,
            reference_per_persona=args.reference_per_persona,
            features=features,
            progress=not args.no_progress,
        )
        overrides = corpus_overrides(args.corpus)
        runtime = RuntimeOptions(device=args.device, intra_op_threads=args.threads)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    bundle = load_bundle(args.model or default_bundle_dir())
    ablation = [load_bundle(path) for path in args.ablation]
    try:
        # The corpus the bundle was trained on, where it says; then --seed and --corpus on top.
        recorded = training_corpus(bundle)
        seed = {} if args.seed is None else {"seed": args.seed}
        corpus_config = CorpusConfig(**{**recorded, **seed, **overrides})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad corpus settings: {exc}") from exc
    try:
        corpus = build_corpus(corpus_config)
    except ValueError as exc:  # a corpus setting the builder cannot honour
        raise ConfigError(f"cannot build the corpus: {exc}") from exc
    report = evaluate(bundle, corpus, config, ablation, runtime, args.encoder)

    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_markdown(args.out_md, render_markdown(report))
    for line in summary_lines(report):
        print(line)
    print(f"report: {args.out_json}, {args.out_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
