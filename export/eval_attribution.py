"""Persona attribution for the role-consistency metric: an independent classifier trained only on reference lines.

A reply is "in role" when a classifier that has only ever seen the corpus's reference lines attributes it to the
persona that was meant to say it. Features are a sentence embedding (MiniLM, from whatever ``encode`` function the
caller passes) next to hashed word uni- and bigram TF-IDF, which keeps the verbal tics (``Aye``, ``lass``, a
catchphrase) that a sentence embedding smooths away. The classifier is multinomial logistic regression in numpy,
so evaluation needs no scikit-learn. Hits@1 is computed among a candidate set per reply (see ``docs/eval.md``).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .eval_metrics import words

__all__ = [
    "FeatureConfig",
    "TextFeaturizer",
    "SoftmaxRegression",
    "PersonaClassifier",
    "hits_at_1",
    "chance_level",
    "fold_of",
]

log = logging.getLogger(__name__)

#: texts -> float32 (N, E) sentence embeddings
Encoder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class FeatureConfig:
    """How texts become classifier features."""

    hash_dim: int = 2048  # buckets of the hashed word uni/bigram block; 0 turns the block off
    use_embedding: bool = True
    ngram_weight: float = 1.0  # scale of the (unit-length) n-gram block against the (unit-length) embedding
    batch_size: int = 64  # texts per encoder call

    def __post_init__(self) -> None:
        if self.hash_dim < 0:
            raise ValueError(f"hash_dim must be >= 0, got {self.hash_dim}")
        if not self.use_embedding and self.hash_dim == 0:
            raise ValueError("features need the embedding, the n-gram block or both")
        if self.ngram_weight <= 0:
            raise ValueError(f"ngram_weight must be > 0, got {self.ngram_weight}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def _bucket(gram: str, dim: int) -> int:
    # crc32, not hash(): Python salts str hashes per process, and the features must be reproducible.
    return zlib.crc32(gram.encode("utf-8")) % dim


def _grams(text: str) -> list[str]:
    tokens = words(text)
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


class TextFeaturizer:
    """Texts to ``float32 (N, F)`` features: ``[embedding | weight * tfidf(hashed 1-2 grams)]``; fit IDF first."""

    def __init__(self, encode: Encoder | None, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        if self.config.use_embedding and encode is None:
            raise ValueError("an encoder is needed when use_embedding is set")
        self.encode = encode
        self.idf: np.ndarray | None = None  # float32 (hash_dim,)

    def _counts(self, texts: Sequence[str]) -> np.ndarray:
        dim = self.config.hash_dim
        counts = np.zeros((len(texts), dim), dtype=np.float32)  # (N, H)
        for row, text in enumerate(texts):
            for gram in _grams(text):
                counts[row, _bucket(gram, dim)] += 1.0
        return counts

    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        if self.config.hash_dim:
            present = (self._counts(texts) > 0).sum(axis=0)  # (H,) documents per bucket
            self.idf = (np.log((1.0 + len(texts)) / (1.0 + present)) + 1.0).astype(np.float32)
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``(N, E)``, unit length, batched."""
        encode = self.encode
        if encode is None:
            raise ValueError("this featurizer has no encoder")
        parts = []
        step = self.config.batch_size
        for start in range(0, len(texts), step):
            chunk = [t if t.strip() else "." for t in texts[start : start + step]]  # an empty reply still encodes
            parts.append(np.asarray(encode(chunk), dtype=np.float32))
        out = np.concatenate(parts, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        blocks = []
        if self.config.use_embedding:
            blocks.append(self.embed(texts))
        if self.config.hash_dim:
            if self.idf is None:
                raise ValueError("call fit() before transform()")
            tfidf = self._counts(texts) * self.idf  # (N, H)
            norms = np.linalg.norm(tfidf, axis=1, keepdims=True)
            blocks.append(self.config.ngram_weight * tfidf / np.maximum(norms, 1e-9))
        return np.concatenate(blocks, axis=1).astype(np.float32)


class SoftmaxRegression:
    """Multinomial logistic regression with L2 penalty, fitted by full-batch Adam (deterministic)."""

    def __init__(self, l2: float = 1e-4, steps: int = 200, lr: float = 0.05) -> None:
        if l2 < 0 or steps < 1 or lr <= 0:
            raise ValueError(f"need l2 >= 0, steps >= 1, lr > 0; got {l2}, {steps}, {lr}")
        self.l2, self.steps, self.lr = l2, steps, lr
        self.weight: np.ndarray | None = None  # (F, C)
        self.bias: np.ndarray | None = None  # (C,)
        self.mean: np.ndarray | None = None  # (F,)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int, balanced: bool = True) -> SoftmaxRegression:
        """``x (N, F)`` features, ``y (N,)`` class indices in ``0..n_classes-1``.

        ``balanced`` weighs each class equally however many lines it has, so a persona with few reference lines
        is not out-voted by the prior of one with many.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
            raise ValueError(f"expected x (N, F) and y (N,), got {x.shape} and {y.shape}")
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError("class index out of range")
        self.mean = x.mean(axis=0)
        x = x - self.mean
        n, f = x.shape
        onehot = np.zeros((n, n_classes), dtype=np.float32)
        onehot[np.arange(n), y] = 1.0
        counts = np.bincount(y, minlength=n_classes).astype(np.float32)
        if balanced:
            row_weight = (n / (np.count_nonzero(counts) * counts[y]))[:, None]  # (N, 1), mean 1
        else:
            row_weight = np.ones((n, 1), dtype=np.float32)
        w, b = np.zeros((f, n_classes), dtype=np.float32), np.zeros(n_classes, dtype=np.float32)
        m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
        beta1, beta2 = 0.9, 0.999
        for step in range(1, self.steps + 1):
            logits = x @ w + b  # (N, C)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            err = row_weight * (probs - onehot) / n  # (N, C): gradient of the mean cross-entropy wrt logits
            grad_w = x.T @ err + self.l2 * w
            grad_b = err.sum(axis=0)
            for param, grad, m, v in ((w, grad_w, m_w, v_w), (b, grad_b, m_b, v_b)):
                m *= beta1
                m += (1 - beta1) * grad
                v *= beta2
                v += (1 - beta2) * grad * grad
                m_hat = m / (1 - beta1**step)
                v_hat = v / (1 - beta2**step)
                param -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        self.weight, self.bias = w, b
        return self

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Class logits ``(N, C)``."""
        if self.weight is None or self.bias is None or self.mean is None:
            raise ValueError("call fit() first")
        return ((np.asarray(x, dtype=np.float32) - self.mean) @ self.weight + self.bias).astype(np.float64)


def hits_at_1(scores: np.ndarray, true_index: Sequence[int], candidates: np.ndarray | None = None) -> float:
    """Share of rows whose highest score among their candidates is the true class.

    ``scores (N, C)``; ``candidates (N, C)`` boolean, True where a class may be chosen for that row (the true
    class must be among them); None allows every class. Ties go to the lowest class index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    true = np.asarray(true_index, dtype=np.int64)
    if scores.ndim != 2 or true.shape != (scores.shape[0],):
        raise ValueError(f"expected scores (N, C) and true_index (N,), got {scores.shape} and {true.shape}")
    if scores.shape[0] == 0:
        raise ValueError("no rows to score")
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=bool)
        if candidates.shape != scores.shape:
            raise ValueError(f"candidates {candidates.shape} must match scores {scores.shape}")
        if not candidates[np.arange(len(true)), true].all():
            raise ValueError("the true class must be a candidate of its row")
        scores = np.where(candidates, scores, -np.inf)
    return float(np.mean(scores.argmax(axis=1) == true))


def fold_of(text: str, folds: int) -> int:
    """A stable fold index for a reference line (same text, same fold, in every run)."""
    return zlib.crc32(text.encode("utf-8")) % folds


class PersonaClassifier:
    """Attributes texts to persona ids; trained on reference lines only.

    ``fit(lines)`` takes ``(persona_id, text)`` pairs. Cross-fitting: with ``folds > 1`` it trains one model per
    fold on the lines outside that fold, and :meth:`scores` scores a text with the model that did not see the fold
    of the reference line it is paired with, so a reference line is never scored by a classifier trained on it.
    """

    def __init__(
        self,
        encode: Encoder | None,
        features: FeatureConfig | None = None,
        folds: int = 2,
        l2: float = 1e-4,
        steps: int = 200,
    ) -> None:
        if folds < 1:
            raise ValueError(f"folds must be >= 1, got {folds}")
        self.featurizer = TextFeaturizer(encode, features)
        self.folds = folds
        self.l2, self.steps = l2, steps
        self.labels: tuple[str, ...] = ()
        self._models: list[SoftmaxRegression] = []

    def fit(self, lines: Sequence[tuple[str, str]]) -> PersonaClassifier:
        if not lines:
            raise ValueError("no reference lines to train on")
        self.labels = tuple(sorted({pid for pid, _ in lines}))
        if len(self.labels) < 2:
            raise ValueError(f"need reference lines of at least two personas, got {self.labels}")
        index = {pid: i for i, pid in enumerate(self.labels)}
        texts = [text for _, text in lines]
        y = np.array([index[pid] for pid, _ in lines], dtype=np.int64)
        self.featurizer.fit(texts)
        x = self.featurizer.transform(texts)  # (N, F)
        fold = np.array([fold_of(t, self.folds) for t in texts]) if self.folds > 1 else np.zeros(len(texts), int)
        self._models = []
        for k in range(self.folds):
            train = fold != k if self.folds > 1 else np.ones(len(texts), dtype=bool)
            if not train.any():
                raise ValueError(f"fold {k} leaves no reference lines to train on")
            model = SoftmaxRegression(l2=self.l2, steps=self.steps).fit(x[train], y[train], len(self.labels))
            self._models.append(model)
        log.info(
            "persona classifier: %d reference lines, %d personas, %d features, %d fold(s)",
            len(texts), len(self.labels), x.shape[1], self.folds,
        )  # fmt: skip
        return self

    def index(self, persona_id: str) -> int:
        try:
            return self.labels.index(persona_id)
        except ValueError as exc:
            raise ValueError(f"the classifier has no reference lines of persona {persona_id!r}") from exc

    def scores(self, texts: Sequence[str], paired_reference: Sequence[str] | None = None) -> np.ndarray:
        """Class logits ``(N, C)`` in :attr:`labels` order.

        ``paired_reference[i]`` is the reference line of the example that ``texts[i]`` answers; row ``i`` is
        scored by the model that held that line's fold out. Without it, the models' logits are averaged.
        """
        if not self._models:
            raise ValueError("call fit() first")
        if not texts:
            return np.zeros((0, len(self.labels)))
        x = self.featurizer.transform(texts)
        every = np.stack([model.decision(x) for model in self._models])  # (K, N, C)
        if paired_reference is None or self.folds == 1:
            return every.mean(axis=0)
        if len(paired_reference) != len(texts):
            raise ValueError("paired_reference must have one line per text")
        folds = np.array([fold_of(t, self.folds) for t in paired_reference])
        return every[folds, np.arange(len(texts))]

    def candidate_mask(self, true_ids: Sequence[str], pool: Sequence[str]) -> np.ndarray:
        """``(N, C)`` boolean: row ``i`` may choose any persona of ``pool`` or its own ``true_ids[i]``."""
        mask = np.zeros((len(true_ids), len(self.labels)), dtype=bool)
        pool_index = [self.index(pid) for pid in pool]
        for row, pid in enumerate(true_ids):
            mask[row, pool_index] = True
            mask[row, self.index(pid)] = True
        return mask


def chance_level(candidates: np.ndarray) -> float:
    """Expected hits@1 of a uniform random guess among each row's candidates."""
    counts = np.asarray(candidates, dtype=bool).sum(axis=1)
    return float(np.mean(1.0 / np.maximum(counts, 1))) if len(counts) else math.nan
