"""Scores one set of answers (the model's, a control's, or the reference lines) on held-out examples.

:func:`score_answers` turns examples (corpus ``Example`` objects or anything with the same fields) and one answer
per example into the report's metric sections: role consistency, emotion, scene grounding, task completion,
fluency and breaking character, each with the breakdowns and failure samples that explain a missed target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from npc_runtime.facts import is_remedy
from sample_game.world import CREATURES, LOCATIONS, PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS

from . import eval_metrics as m
from .corpus_emotion import likeliest_emotion
from .corpus_personas import Speaker
from .corpus_replies import ware_name
from .eval_attribution import PersonaClassifier, chance_level, hits_at_1
from .intent_reader import hint_label

__all__ = ["Answer", "ExampleLike", "score_answers", "element_kind", "history_npc_lines", "task_options",
           "FAILURE_SAMPLES"]

#: Failure examples kept per metric in the JSON report.
FAILURE_SAMPLES = 5


class ExampleLike(Protocol):
    """The fields of ``export.corpus.Example`` that scoring reads."""

    persona_id: str
    card: Any  # PersonaCard
    scene: Any  # SceneFacts
    history: Any  # earlier (player, npc) exchanges
    player: str
    intent: str
    reply: str
    emotion: str
    intensity: float
    required_facts: tuple[str, ...]
    scene_element: str | None
    out_of_world: bool


@dataclass(frozen=True)
class Answer:
    """One reply to score. ``emotion`` is None for reference lines (no emotion head ran) and empty for a failed
    generation; ``given_persona`` is whose card the model was given (None: no card)."""

    text: str
    emotion: str | None = None
    intensity: float | None = None
    truncated: bool = False
    error: str | None = None
    given_persona: str | None = None
    #: The intent reader's hint the model read after the player's line (None: no reader, or a reference line).
    hint: str | None = None


def element_kind(element: str) -> str:
    """Which kind of scene fact ``element`` is: weather, time, creature, item, place or other."""
    for kind, vocabulary in (
        ("weather", WEATHERS),
        ("time", TIMES_OF_DAY),
        ("creature", CREATURES),
        ("item", PLAYER_ITEMS),
        ("place", LOCATIONS),
    ):
        if element in vocabulary:
            return kind
    return "other"


def history_npc_lines(history: Any) -> list[str]:
    """The NPC's earlier lines of a conversation given as ``(player, npc)`` pairs or ``{"player", "npc"}`` maps."""
    lines = []
    for turn in history or ():
        if isinstance(turn, Mapping):
            npc = turn.get("npc")
        elif isinstance(turn, Sequence) and len(turn) == 2:
            npc = turn[1]
        else:
            npc = None
        if isinstance(npc, str):
            lines.append(npc)
    return lines


def _sample(ex: ExampleLike, answer: Answer, **extra: Any) -> dict[str, Any]:
    return {"persona": ex.persona_id, "intent": ex.intent, "player": ex.player, "reply": answer.text, **extra}


def _misreads(failing: Sequence[tuple[ExampleLike, Answer]]) -> dict[str, Any]:
    """How many failing turns the intent reader misread (its hint named another intent than the turn's), and
    the most frequent misread lines (case aside, as the reader's uncased encoder reads them); empty when no
    answer carries a hint."""
    read = [(ex, a) for ex, a in failing if a.hint is not None]
    if not read:
        return {}
    wrong = [(ex.player, a.hint) for ex, a in read if a.hint != hint_label(ex.intent)]
    shown = {}  # the first spelling of each line
    for line, _ in wrong:
        shown.setdefault(line.casefold(), line)
    counts = Counter((line.casefold(), hint) for line, hint in wrong)
    return {"failures_misread": len(wrong), "failures_read": len(read),
            "misread_lines": [[shown[key], hint, n] for (key, hint), n in counts.most_common(FAILURE_SAMPLES)]}  # fmt: skip


def _breakdown(groups: Sequence[str], flags: Sequence[bool]) -> dict[str, dict[str, float]]:
    totals: Counter[str] = Counter(groups)
    hits: Counter[str] = Counter(g for g, f in zip(groups, flags) if f)
    return {g: {"share": hits[g] / totals[g], "n": totals[g]} for g in sorted(totals)}


# --------------------------------------------------------------------------------------------- sections


def _role_consistency(
    examples: Sequence[ExampleLike],
    answers: Sequence[Answer],
    classifier: PersonaClassifier,
    pool: Sequence[str],
) -> dict[str, Any]:
    true_ids = [ex.persona_id for ex in examples]
    scores = classifier.scores([a.text for a in answers], [ex.reply for ex in examples])  # (N, C)
    candidates = classifier.candidate_mask(true_ids, pool)  # (N, C)
    true_index = [classifier.index(pid) for pid in true_ids]
    masked = np.where(candidates, scores, -np.inf)
    predicted = [classifier.labels[i] for i in masked.argmax(axis=1)]
    confusions = Counter((t, p) for t, p in zip(true_ids, predicted) if t != p)
    section: dict[str, Any] = {
        "hits_at_1": hits_at_1(scores, true_index, candidates),
        "n": len(examples),
        "chance": chance_level(candidates),
        "candidates": len(pool) + (0 if all(pid in pool for pid in true_ids) else 1),
        "confusions": [[t, p, c] for (t, p), c in confusions.most_common(FAILURE_SAMPLES)],
    }
    given = [a.given_persona for a in answers]
    if any(g is not None and g != t for g, t in zip(given, true_ids)) and all(g in classifier.labels for g in given):
        # A control that swapped the card: does the reply follow the card it was given?
        section["follows_given"] = float(np.mean([p == g for p, g in zip(predicted, given)]))
    return section


def _emotion(examples: Sequence[ExampleLike], answers: Sequence[Answer], labels: str = "sampled") -> dict[str, Any]:
    gold = [ex.emotion for ex in examples]
    if all(a.emotion is None for a in answers):
        # Reference lines have no predicted emotion; report what trivial predictors reach instead.
        majority = Counter(gold).most_common(1)[0][0]
        defaults = [getattr(ex.card, "default_emotion", "neutral") for ex in examples]
        speakers: dict[str, Speaker] = {}
        likeliest = [
            likeliest_emotion(speakers.setdefault(ex.persona_id, Speaker.from_card(ex.card)), ex.intent, ex.scene,
                              labels=labels)
            for ex in examples
        ]
        return {
            "macro_f1": None,
            "n": len(gold),
            "majority_label": majority,
            "majority_baseline": m.macro_f1(gold, [majority] * len(gold)),
            "default_emotion_baseline": m.macro_f1(gold, defaults),
            # Sampled labels are draws from a distribution over intent, persona and scene: always naming the
            # likeliest label is the best any predictor of the turn's inputs can do (the ceiling of the metric).
            # Rule labels are that label, so their ceiling is 1.
            "likeliest_label_ceiling": m.macro_f1(gold, likeliest),
            "gold_distribution": dict(Counter(gold).most_common()),
        }
    pred = [a.emotion or "(none)" for a in answers]  # a failed generation has no label: always wrong
    labels = sorted(set(gold) | set(pred))
    confusions = Counter((g, p) for g, p in zip(gold, pred) if g != p)
    section: dict[str, Any] = {
        "macro_f1": m.macro_f1(gold, pred),
        "n": len(gold),
        "accuracy": float(np.mean([g == p for g, p in zip(gold, pred)])),
        "per_label_f1": m.f1_per_label(gold, pred, labels),
        "confusions": [[g, p, c] for (g, p), c in confusions.most_common(FAILURE_SAMPLES)],
    }
    intensities = [
        (a.intensity, ex.intensity) for a, ex in zip(answers, examples) if a.intensity is not None and not a.error
    ]
    if intensities:
        section["intensity_mae"] = float(np.mean([abs(p - g) for p, g in intensities]))
    return section


def _grounding(examples: Sequence[ExampleLike], answers: Sequence[Answer]) -> dict[str, Any]:
    rows = [(ex, a) for ex, a in zip(examples, answers) if ex.scene_element]
    flags = [m.names_element(a.text, str(ex.scene_element)) for ex, a in rows]
    kinds = [element_kind(str(ex.scene_element)) for ex, _ in rows]
    failures = [_sample(ex, a, expected=ex.scene_element) for (ex, a), ok in zip(rows, flags) if not ok]
    return {
        "share": m.share(flags),
        "n": len(rows),
        "by_kind": _breakdown(kinds, flags),
        **_misreads([row for row, ok in zip(rows, flags) if not ok]),
        "failures": failures[:FAILURE_SAMPLES],
    }


def task_options(ex: ExampleLike) -> list[tuple[str, ...]]:
    """The sets of facts any one of which completes ``ex``'s task: its required facts, and where the player asked
    about an ailment, each remedy on the card with its price. The corpus's reply recommends one of the card's
    remedies at random (``export.corpus_replies``), so its required facts name that one, and a reply that
    recommends another remedy at its price does the task as well."""
    options = [tuple(ex.required_facts)]
    if ex.intent == "ask_health" and ex.required_facts:
        options += [(ware_name(w.item), str(w.price)) for w in ex.card.knowledge.wares if is_remedy(w.item)]
    return options


def _task(examples: Sequence[ExampleLike], answers: Sequence[Answer]) -> dict[str, Any]:
    rows = [(ex, a) for ex, a in zip(examples, answers) if ex.required_facts]
    # The fewest facts missing among the options; the required facts first, so a failure lists those.
    missing = [min((m.missing_facts(a.text, option) for option in task_options(ex)), key=len) for ex, a in rows]
    flags = [not miss for miss in missing]
    failures = [
        _sample(ex, a, required=list(ex.required_facts), missing=miss, truncated=a.truncated)
        for (ex, a), miss in zip(rows, missing)
        if miss
    ]
    missed_kinds = Counter("number" if f.strip().isdigit() else "words" for miss in missing for f in miss)
    return {
        "share": m.share(flags),
        "n": len(rows),
        "by_intent": _breakdown([ex.intent for ex, _ in rows], flags),
        "missing_fact_kinds": dict(missed_kinds),
        "failures_truncated": sum(1 for f in failures if f["truncated"]),
        **_misreads([row for row, ok in zip(rows, flags) if not ok]),
        "failures": failures[:FAILURE_SAMPLES],
    }


def _fluency(examples: Sequence[ExampleLike], answers: Sequence[Answer]) -> dict[str, Any]:
    texts = [a.text for a in answers]
    within = [m.repeats_within(t) for t in texts]
    earlier = [history_npc_lines(ex.history) for ex in examples]
    across = [bool(lines) and m.repeats_history(t, lines) for t, lines in zip(texts, earlier)]
    clean = [m.ends_cleanly(a.text, a.truncated) for a in answers]
    repeated = [w or x for w, x in zip(within, across)]
    failures = [_sample(ex, a, within=w, across=x) for ex, a, w, x in zip(examples, answers, within, across) if w or x]
    return {
        "distinct_1": m.distinct_n(texts, 1),
        "distinct_2": m.distinct_n(texts, 2),
        "repetition": m.share(repeated),
        "repetition_within": m.share(within),
        "repetition_across": m.share(x for x, lines in zip(across, earlier) if lines),
        "n_with_history": sum(1 for lines in earlier if lines),
        "clean_ending": m.share(clean),
        "truncated": m.share(a.truncated for a in answers),
        "mean_words": float(np.mean([len(m.words(t)) for t in texts])) if texts else 0.0,
        "n": len(texts),
        "failures": failures[:FAILURE_SAMPLES],
        "unclean": [_sample(ex, a) for ex, a, ok in zip(examples, answers, clean) if not ok][:FAILURE_SAMPLES],
    }


def _voice(examples: Sequence[ExampleLike], answers: Sequence[Answer]) -> dict[str, Any]:
    """Replies that carry the card's catchphrase or form of address, over the turns whose card has one."""
    markers_of: dict[str, dict[str, str]] = {}
    flags: list[bool] = []
    kinds_found: Counter[str] = Counter()
    kinds_total: Counter[str] = Counter()
    failures = []
    for ex, a in zip(examples, answers):
        key = ex.card.fingerprint()
        if key not in markers_of:
            markers_of[key] = m.voice_markers(ex.card)
        markers = markers_of[key]
        if not markers:
            continue
        found = [kind for kind, marker in markers.items() if m.contains_phrase(a.text, marker)]
        kinds_total.update(markers.keys())
        kinds_found.update(found)
        flags.append(bool(found))
        if not found:
            failures.append(_sample(ex, a, markers=markers))
    return {
        "share": m.share(flags),
        "n": len(flags),
        "by_kind": {k: {"share": kinds_found[k] / kinds_total[k], "n": kinds_total[k]} for k in sorted(kinds_total)},
        "failures": failures[:FAILURE_SAMPLES],
    }


def _break_character(examples: Sequence[ExampleLike], answers: Sequence[Answer]) -> dict[str, Any]:
    reasons = [m.out_of_character(a.text) for a in answers]
    rows = [(ex, a, r) for ex, a, r in zip(examples, answers, reasons) if ex.out_of_world]
    flags = [r is not None for _, _, r in rows]
    return {
        "rate": m.share(flags),
        "n": len(rows),
        "rate_all_replies": m.share(r is not None for r in reasons),
        "reasons": dict(Counter(r for r in reasons if r is not None)),
        "by_intent": _breakdown([ex.intent for ex, _, _ in rows], flags),
        "failures": [_sample(ex, a, reason=r) for ex, a, r in zip(examples, answers, reasons) if r][:FAILURE_SAMPLES],
    }


def score_answers(
    examples: Sequence[ExampleLike],
    answers: Sequence[Answer],
    classifier: PersonaClassifier | None,
    pool: Sequence[str],
    attribute: Sequence[bool] | None = None,
    emotion_labels: str = "sampled",
) -> dict[str, Any]:
    """Every metric section for one condition.

    ``emotion_labels`` is how the corpus set its labels (``CorpusConfig.emotion_labels``), for the emotion
    ceiling reported with the reference lines.

    Role consistency attributes each reply among ``pool`` (the bundled persona ids) plus the example's own
    persona, for the examples where ``attribute`` is true (all when None); ``classifier`` None skips it.
    """
    if len(examples) != len(answers):
        raise ValueError(f"{len(examples)} examples but {len(answers)} answers")
    if not examples:
        raise ValueError("no examples to score")
    errors = [a.error for a in answers if a.error]
    out: dict[str, Any] = {"n": len(examples), "errors": len(errors)}
    if errors:
        out["error_samples"] = errors[:FAILURE_SAMPLES]
    if classifier is not None:
        keep = [True] * len(examples) if attribute is None else list(attribute)
        if len(keep) != len(examples):
            raise ValueError("attribute must have one flag per example")
        rows = [(ex, a) for ex, a, k in zip(examples, answers, keep) if k]
        if rows:
            out["role_consistency"] = _role_consistency([r[0] for r in rows], [r[1] for r in rows], classifier, pool)
    out["emotion"] = _emotion(examples, answers, emotion_labels)
    out["scene_grounding"] = _grounding(examples, answers)
    out["task_completion"] = _task(examples, answers)
    out["fluency"] = _fluency(examples, answers)
    out["break_character"] = _break_character(examples, answers)
    out["voice"] = _voice(examples, answers)
    return out
