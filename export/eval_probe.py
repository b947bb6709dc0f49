"""The voice likelihood probe: where a reply has a catchphrase, does the model prefer the card's own?

Greedy decoding never says an optional flourish, so the voice metric (``docs/eval.md``, "Voice") cannot tell a
model that could copy a catchphrase from the card but does not choose to, from one that cannot. The probe asks
the first question directly. For a held-out turn whose reference reply carries the card's catchphrase, it scores
two versions of that reply under the same prompt (teacher forcing, ``RoleModelEngine.continuation_logprobs``):
the reply as written and the reply with the catchphrase replaced by a foil. The model passes the turn when it
gives the card's version the higher log-probability.

Three conditions:

- ``card``: the real card; the foil is another corpus persona's catchphrase. Knowing the persona by heart is
  enough here.
- ``rewritten``: the card's catchphrase and address rewritten to ones no corpus card uses (as the eval's
  rewritten-card control does), so the reply's is new to the model; the foil is another such new catchphrase.
  Only copying from the card text can prefer the right one.
- ``rewritten, no card``: the same pairs with no card at all. Each new catchphrase is the target for some turns
  and the foil for others, so this is the chance level the ``rewritten`` figure must beat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from npc_runtime.personas import PersonaCard

from .eval_metrics import contains_phrase, voice_markers
from .voice_swap import replace_phrase, swap_voice

__all__ = ["PROBE_CONDITIONS", "voice_probe"]

PROBE_CONDITIONS = ("card", "rewritten", "rewritten_no_card")


def _pairs(
    examples: Sequence[Any], novel: Sequence[str], corpus_phrases: Sequence[str], novel_card: Callable[[Any, int], Any]
) -> list[tuple[int, str, dict[str, tuple[Any, str, str]]]]:
    """Per eligible example: its index, and per condition the card given and the (target, foil) replies."""
    out = []
    for i, ex in enumerate(examples):
        own = voice_markers(ex.card).get("catchphrase")
        if not own or not contains_phrase(ex.reply, own):
            continue
        others = [p for p in corpus_phrases if p != own]
        foil = others[i % len(others)]
        rewritten = novel_card(ex.card, i)
        new = voice_markers(rewritten)["catchphrase"]
        target = swap_voice(ex.card, voice_markers(ex.card), voice_markers(rewritten), [ex.reply])[1][0]
        novel_foil = novel[(novel.index(new) + 1) % len(novel)]
        novel_pair = (target, replace_phrase(target, new, novel_foil))
        out.append((i, own, {
            "card": (ex.card, ex.reply, replace_phrase(ex.reply, own, foil)),
            "rewritten": (rewritten, *novel_pair),
            "rewritten_no_card": (None, *novel_pair),
        }))  # fmt: skip
    return out


def voice_probe(
    engine: Any,
    examples: Sequence[Any],
    image_of: Callable[[Any], Any],
    novel_phrases: Sequence[str],
    corpus_phrases: Sequence[str],
    novel_card: Callable[[PersonaCard, int], PersonaCard | None],
    limit: int | None = None,
) -> dict[str, Any]:
    """Run the probe on ``examples`` (held-out turns); returns per condition the share of turns where the card's
    catchphrase scores higher, the number of turns and the mean log-probability margin (nats)."""
    pairs = _pairs(examples, list(novel_phrases), sorted(corpus_phrases), novel_card)[:limit]
    results: dict[str, Any] = {}
    for condition in PROBE_CONDITIONS:
        margins = []
        for i, _, by_condition in pairs:
            card, target, foil = by_condition[condition]
            ex = examples[i]
            prepared = engine.prepare(
                card.fingerprint() if card else "none",
                card.card_text() if card else "",
                engine.knowledge_of(card) if card else "",
                ex.scene.to_context(),
                tuple(tuple(turn) for turn in ex.history),
                ex.player,
                image_of(ex),
            )
            lines = [engine.reply_ids(target), engine.reply_ids(foil)]
            if len(prepared.ids) + max(map(len, lines)) > engine.max_positions:
                continue  # a reply that would not fit after its prompt is left out rather than cut
            good, bad = engine.continuation_logprobs(prepared, lines)
            margins.append(good - bad)
        results[condition] = {
            "prefers_card": float(np.mean([m > 0 for m in margins])) if margins else None,
            "n": len(margins),
            "mean_margin": float(np.mean(margins)) if margins else None,
        }
    return results

