"""Fitting the intent reader (``npc_runtime.intent_hint``) and the hints training turns read.

The reader is a class-balanced softmax regression on L2-normalised sentence embeddings of the training split's
player lines, fitted by full-batch gradient descent in numpy: deterministic, a few seconds for the default corpus.

Which hint a training turn reads (``DataConfig.intent_hint_folds``): by default the reader fitted on every training
line, as served, so the model learns to follow the hint (the shipped recipe); with ``folds >= 2``, a reader fitted
without the turn's paraphrase template (templates split into ``folds`` groups, each read by the reader of the
others, :func:`cross_fitted_hints`), so the hints are wrong as often as the served reader's are on a phrasing it
never saw and the model learns to weigh them against the words. Validation turns read the full reader, as served.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from npc_runtime.intent_hint import IntentReader

__all__ = ["hint_label", "fit_reader", "cross_fitted_hints"]


def hint_label(intent: str) -> str:
    """The hint text of a corpus intent: ``ask_creatures`` -> ``ask creatures``."""
    return intent.replace("_", " ")


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_reader(
    embeddings: np.ndarray,
    labels: Sequence[str],
    *,
    classes: Sequence[str] | None = None,
    l2: float = 1e-4,
    steps: int = 1000,
    lr: float = 5.0,
) -> IntentReader:
    """Softmax regression of ``labels`` on ``embeddings`` (N, E); every class weighs the same in the loss.

    ``classes`` fixes the label order (default: sorted labels); a class without examples keeps zero weights and
    a very low bias, so the reader never answers it."""
    classes = tuple(sorted(set(labels)) if classes is None else classes)
    if len(embeddings) != len(labels) or not len(labels):
        raise ValueError(f"{len(embeddings)} embeddings for {len(labels)} labels")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    x = _normalise(embeddings)
    n, dim = x.shape
    k = len(classes)
    counts = np.bincount(y, minlength=k)
    sample_weight = 1.0 / counts[y]
    sample_weight /= sample_weight.sum()
    onehot = np.eye(k)[y]
    weights, bias = np.zeros((dim, k)), np.zeros(k)
    absent = counts == 0
    for _ in range(steps):
        z = x @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) * sample_weight[:, None]
        weights -= lr * (x.T @ grad + l2 * weights)
        bias -= lr * grad.sum(axis=0)
    bias[absent] = -1e4
    return IntentReader(tuple(hint_label(c) for c in classes), weights.astype(np.float32), bias.astype(np.float32))


def cross_fitted_hints(
    embeddings: np.ndarray,
    intents: Sequence[str],
    groups: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
) -> tuple[list[str], float]:
    """Each row's hint from a reader fitted without its group (its paraphrase template), and their accuracy."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    names = sorted(set(groups))
    random.Random(f"intent-folds:{seed}").shuffle(names)
    fold_of = {g: i % folds for i, g in enumerate(names)}
    fold = np.array([fold_of[g] for g in groups])
    classes = tuple(sorted(set(intents)))
    hints: list[str] = [""] * len(intents)
    x = np.asarray(embeddings)
    for f in range(folds):
        inside = np.flatnonzero(fold != f)
        outside = np.flatnonzero(fold == f)
        if not len(outside):
            continue
        reader = fit_reader(x[inside], [intents[i] for i in inside], classes=classes)
        for i, hint in zip(outside, reader.read(x[outside])):
            hints[i] = hint
    accuracy = float(np.mean([h == hint_label(t) for h, t in zip(hints, intents)]))
    return hints, accuracy
