"""Fitting the intent reader (``npc_runtime.intent_hint``) and the hints training turns read.

The reader is a class-balanced softmax regression on L2-normalised sentence embeddings of the training split's
player lines, fitted by full-batch gradient descent in numpy: deterministic, a few seconds for the default corpus.

Which hint a training turn reads (``DataConfig.intent_hint_folds``): by default the reader fitted on every training
line, as served, so the model learns to follow the hint (the shipped recipe); with ``folds >= 2``, a reader fitted
without the turn's paraphrase template (templates split into ``folds`` groups, each read by the reader of the
others, :func:`cross_fitted_hints`), so the hints are wrong as often as the served reader's are on a phrasing it
never saw and the model learns to weigh them against the words. Validation turns read the full reader.

**Reader phrasings** (``DataConfig.reader_phrasings``, :func:`reader_lines`): the corpus's player lines come from a
few hundred paraphrase templates, about 15 per intent, so the reader meets many phrasings it cannot place (on the
seen split's held-out templates it read 0.805 of the lines right). A version of extra phrasings
(``export.reader_phrasings``), written for the reader alone, is added to what the served reader is fitted on.
They are never a training turn's player line, so the corpus, its splits and the evaluation's turns are as
before; and the turns' hints still come from the reader fitted on the training lines alone
(``export.dataset._intent_hints``), so a run's training data do not change with them either: only the reader a
bundle serves does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from npc_runtime.intent_hint import IntentReader

__all__ = ["READER_PHRASINGS_VERSION", "READER_FITS", "READER_HIDDEN_FIT", "READER_HIDDEN", "hint_label", "fit_reader",
           "cross_fitted_hints", "reader_lines"]

#: The newest version of the reader phrasings (``export.reader_phrasings``); 0 is none.
READER_PHRASINGS_VERSION = 2
#: How many draws of ware, held item or place each reader phrasing with a slot is filled with.
SLOT_FILLS = 3
#: The fit of the reader (:func:`fit_reader`'s ``l2`` and ``steps``) with each version of the phrasings, each the
#: choice of a cross-validation over the training templates (each fifth of them read by a reader fitted on the
#: rest and the phrasings; ``npc-runtime reader-cv``, ``export.reader_cv``): version 1, 0.945 of their lines read
#: right, against 0.936 with version 0's fit and 0.919 for version 0 without the phrasings; version 2, 0.950
#: (docs/model.md, "Reader phrasings").
READER_FITS: dict[int, dict[str, float | int]] = {0: {"l2": 1e-4, "steps": 1000}, 1: {"l2": 1e-5, "steps": 3000},
                                                   2: {"l2": 1e-5, "steps": 6000}}  # fmt: skip
#: The fit of a reader with a hidden layer (``DataConfig.reader_hidden``; :func:`fit_reader`'s ``l2`` and Adam
#: ``steps``), and the width ``npc-runtime reader-cv`` tries by default: with version 2 of the phrasings the
#: cross-validation reads 0.957 of the left-out templates' lines right against the linear reader's 0.950, but the
#: evaluation's templates did not gain (docs/model.md, "A reader with a hidden layer"; tried, not shipped).
READER_HIDDEN_FIT: dict[str, float | int] = {"l2": 1e-4, "steps": 400}
READER_HIDDEN = 256


def hint_label(intent: str) -> str:
    """The hint text of a corpus intent: ``ask_creatures`` -> ``ask creatures``."""
    return intent.replace("_", " ")


def reader_lines(version: int, seed: int = 0) -> list[tuple[str, str]]:
    """The reader phrasings of ``version`` as (player line, intent) pairs, their slots filled: ``{item}`` with
    wares of the corpus's catalogue, ``{held}`` with what a player can hold, ``{place}`` with the village's places,
    :data:`SLOT_FILLS` draws each (seeded). Version 0: none."""
    if not version:
        return []
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version <= READER_PHRASINGS_VERSION:
        raise ValueError(f"reader phrasings must be a version from 0 to {READER_PHRASINGS_VERSION}, got {version!r}")
    from export.corpus_personas import place_name
    from export.corpus_replies import CATALOGUE
    from export.reader_phrasings import READER_PHRASINGS
    from sample_game.world import LOCATIONS, NOTHING, PLAYER_ITEMS

    fills = {
        "item": list(CATALOGUE),
        "held": [item for item in PLAYER_ITEMS if item != NOTHING],
        "place": [place_name(location) for location in LOCATIONS],
    }
    rng = random.Random(f"reader-phrasings:{version}:{seed}")
    lines: list[tuple[str, str]] = []
    for intent, phrasings in READER_PHRASINGS[version].items():
        for phrasing in phrasings:
            slot = next((name for name in fills if "{" + name + "}" in phrasing), None)
            if slot is None:
                lines.append((phrasing, intent))
                continue
            for value in rng.sample(fills[slot], min(SLOT_FILLS, len(fills[slot]))):
                lines.append((phrasing.format_map({slot: value}), intent))
    return lines


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
    lr: float | None = None,
    hidden: int = 0,
) -> IntentReader:
    """Softmax regression of ``labels`` on ``embeddings`` (N, E); every class weighs the same in the loss.

    ``classes`` fixes the label order (default: sorted labels); a class without examples keeps zero weights and
    a very low bias, so the reader never answers it. ``hidden``: the width of a hidden ReLU layer before the
    regression (0: none), the two layers fitted together by Adam (:func:`_fit_hidden`); ``lr`` defaults to 5.0
    for the linear reader's gradient descent and 0.01 for Adam."""
    classes = tuple(sorted(set(labels)) if classes is None else classes)
    if len(embeddings) != len(labels) or not len(labels):
        raise ValueError(f"{len(embeddings)} embeddings for {len(labels)} labels")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise ValueError(f"hidden must be an int >= 0, got {hidden!r}")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    x = _normalise(embeddings)
    n, dim = x.shape
    k = len(classes)
    counts = np.bincount(y, minlength=k)
    sample_weight = 1.0 / counts[y]
    sample_weight /= sample_weight.sum()
    onehot = np.eye(k)[y]
    absent = counts == 0
    labels_out = tuple(hint_label(c) for c in classes)
    if hidden:
        layers = _fit_hidden(x, onehot, sample_weight, hidden, l2, steps, 0.01 if lr is None else lr)
        layers["b2"][absent] = -1e4
        return IntentReader(labels_out, layers["w2"].astype(np.float32), layers["b2"].astype(np.float32),
                            hidden_weights=layers["w1"].astype(np.float32),
                            hidden_bias=layers["b1"].astype(np.float32))  # fmt: skip
    lr = 5.0 if lr is None else lr
    weights, bias = np.zeros((dim, k)), np.zeros(k)
    for _ in range(steps):
        z = x @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) * sample_weight[:, None]
        weights -= lr * (x.T @ grad + l2 * weights)
        bias -= lr * grad.sum(axis=0)
    bias[absent] = -1e4
    return IntentReader(labels_out, weights.astype(np.float32), bias.astype(np.float32))


def _fit_hidden(x: np.ndarray, onehot: np.ndarray, sample_weight: np.ndarray, hidden: int, l2: float, steps: int,
                lr: float) -> dict[str, np.ndarray]:
    """A hidden ReLU layer and a softmax regression on it, fitted together on the weighted cross-entropy plus
    ``l2`` times half the squared weights, by full-batch Adam from a seeded start (the same data give the same
    reader)."""
    dim, k = x.shape[1], onehot.shape[1]
    rng = np.random.default_rng([dim, hidden, k])
    layers = {"w1": rng.normal(0.0, 1.0 / np.sqrt(dim), (dim, hidden)), "b1": np.zeros(hidden),
              "w2": rng.normal(0.0, 1.0 / np.sqrt(hidden), (hidden, k)), "b2": np.zeros(k)}  # fmt: skip
    moment = {name: np.zeros_like(v) for name, v in layers.items()}
    square = {name: np.zeros_like(v) for name, v in layers.items()}
    beta1, beta2 = 0.9, 0.999
    for t in range(1, steps + 1):
        pre = x @ layers["w1"] + layers["b1"]
        h = np.maximum(pre, 0.0)
        z = h @ layers["w2"] + layers["b2"]
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad_z = (p - onehot) * sample_weight[:, None]
        grad_pre = (grad_z @ layers["w2"].T) * (pre > 0)
        grads = {"w2": h.T @ grad_z + l2 * layers["w2"], "b2": grad_z.sum(axis=0),
                 "w1": x.T @ grad_pre + l2 * layers["w1"], "b1": grad_pre.sum(axis=0)}  # fmt: skip
        for name, grad in grads.items():
            moment[name] = beta1 * moment[name] + (1 - beta1) * grad
            square[name] = beta2 * square[name] + (1 - beta2) * grad**2
            step = (moment[name] / (1 - beta1**t)) / (np.sqrt(square[name] / (1 - beta2**t)) + 1e-8)
            layers[name] -= lr * step
    return layers


def cross_fitted_hints(
    embeddings: np.ndarray,
    intents: Sequence[str],
    groups: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    extra: tuple[np.ndarray, Sequence[str]] | None = None,
    **fit: Any,
) -> tuple[list[str], float]:
    """Each row's hint from a reader fitted without its group (its paraphrase template), and their accuracy.
    ``extra`` (embeddings, intents): lines every fold's reader is fitted on too (the reader phrasings); ``fit``:
    :func:`fit_reader`'s options."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    names = sorted(set(groups))
    random.Random(f"intent-folds:{seed}").shuffle(names)
    fold_of = {g: i % folds for i, g in enumerate(names)}
    fold = np.array([fold_of[g] for g in groups])
    classes = tuple(sorted({*intents, *(extra[1] if extra is not None else ())}))
    hints: list[str] = [""] * len(intents)
    x = np.asarray(embeddings)
    for f in range(folds):
        inside = np.flatnonzero(fold != f)
        outside = np.flatnonzero(fold == f)
        if not len(outside):
            continue
        fit_x, fit_y = x[inside], [intents[i] for i in inside]
        if extra is not None and len(extra[1]):
            fit_x, fit_y = np.concatenate([fit_x, np.asarray(extra[0])]), [*fit_y, *extra[1]]
        reader = fit_reader(fit_x, fit_y, classes=classes, **fit)
        for i, hint in zip(outside, reader.read(x[outside])):
            hints[i] = hint
    accuracy = float(np.mean([h == hint_label(t) for h, t in zip(hints, intents)]))
    return hints, accuracy
