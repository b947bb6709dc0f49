"""Emotion labels (Ekman's six and neutral) and how a reply's emotion is summarised for engines."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["EMOTIONS", "NEUTRAL", "summarise"]

#: The fixed label order of every emotion head and every ``scores`` map.
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
NEUTRAL = "neutral"


def summarise(logits: Sequence[float], intensity: float, labels: Sequence[str] = EMOTIONS) -> dict:
    """The protocol's ``emotion`` map from raw head outputs: softmax scores, arg-max label, clamped intensity."""
    if len(logits) != len(labels):
        raise ValueError(f"expected {len(labels)} emotion logits, got {len(logits)}")
    top = max(logits)
    exps = [math.exp(float(x) - top) for x in logits]
    total = sum(exps)
    scores = {label: e / total for label, e in zip(labels, exps)}
    label = max(scores, key=scores.__getitem__)
    value = float(intensity)
    if not math.isfinite(value):
        value = 0.0
    value = min(1.0, max(0.0, value))
    return {"label": label, "intensity": value, "scores": scores}
