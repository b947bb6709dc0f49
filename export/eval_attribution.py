"""Persona attribution for the role-consistency metric: an independent classifier trained only on reference lines.

A reply is "in role" when a classifier that has only ever seen the corpus's reference lines attributes it to the
persona that was meant to say it. The classifier is a nearest-centroid (Rocchio) one: each persona is the mean of
its reference lines' feature vectors, a text goes to the persona whose centroid is most similar (cosine). Features
are TF-IDF word uni- and bigrams (they keep the verbal tics a persona is known by: ``Aye``, ``lass``, a
catchphrase, its name and prices) and, optionally, a sentence embedding (MiniLM) for paraphrase-level similarity;
each block contributes its own cosine, weighted. Why centroids and not logistic regression: ``docs/eval.md``.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .eval_metrics import words

__all__ = ["FeatureConfig", "PersonaClassifier", "hits_at_1", "chance_level", "fold_of", "ngrams"]

log = logging.getLogger(__name__)

#: texts -> float32 (N, E) sentence embeddings
Encoder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class FeatureConfig:
    """Which feature blocks the classifier compares, and how much each block's cosine counts."""

    ngram_weight: float = 1.0  # TF-IDF word 1-2 grams; 0 turns the block off
    embedding_weight: float = 0.0  # sentence embeddings from the encoder; 0 turns the block off
    max_n: int = 2  # longest word n-gram
    batch_size: int = 64  # texts per encoder call

    def __post_init__(self) -> None:
        for name in ("ngram_weight", "embedding_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.ngram_weight == 0 and self.embedding_weight == 0:
            raise ValueError("at least one of ngram_weight and embedding_weight must be > 0")
        if self.max_n < 1:
            raise ValueError(f"max_n must be >= 1, got {self.max_n}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def ngrams(text: str, max_n: int = 2) -> list[str]:
    """Case-folded word n-grams of ``text``, n = 1..max_n."""
    tokens = words(text)
    out = list(tokens)
    for n in range(2, max_n + 1):
        out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return out


def fold_of(text: str, folds: int) -> int:
    """A stable fold index for a reference line (same text, same fold, in every run and process)."""
    return zlib.crc32(text.encode("utf-8")) % folds


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class _Centroids:
    """Per-persona unit centroids of one fold's training lines, per feature block."""

    def __init__(self, ngram: np.ndarray | None, embedding: np.ndarray | None) -> None:
        self.ngram = ngram  # float32 (C, V) or None
        self.embedding = embedding  # float32 (C, E) or None


class PersonaClassifier:
    """Attributes texts to persona ids by cosine to per-persona centroids of reference lines.

    ``fit(lines)`` takes ``(persona_id, text)`` pairs, the only data the classifier ever sees. Cross-fitting: with
    ``folds > 1`` one set of centroids is built per fold from the lines outside it, and :meth:`scores` scores the
    answer to an example with the centroids that did not see that example's own reference line, so a reference
    line is never scored by a classifier built from it (identical texts share a fold).
    """

    def __init__(self, encode: Encoder | None = None, features: FeatureConfig | None = None, folds: int = 2) -> None:
        if folds < 1:
            raise ValueError(f"folds must be >= 1, got {folds}")
        self.features = features or FeatureConfig()
        if self.features.embedding_weight > 0 and encode is None:
            raise ValueError("an encoder is needed when embedding_weight > 0")
        self.encode = encode
        self.folds = folds
        self.labels: tuple[str, ...] = ()
        self.vocabulary: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)  # (V,)
        self._centroids: list[_Centroids] = []

    # ----------------------------------------------------------------------------------------- features

    def _tfidf_rows(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each text as a sparse unit TF-IDF vector: (indices, values); unknown n-grams are dropped."""
        rows = []
        for text in texts:
            counts = Counter(g for g in ngrams(text, self.features.max_n) if g in self.vocabulary)
            if not counts:
                rows.append((np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)))
                continue
            index = np.fromiter((self.vocabulary[g] for g in counts), dtype=np.int64, count=len(counts))
            values = np.fromiter(counts.values(), dtype=np.float32, count=len(counts)) * self.idf[index]
            rows.append((index, values / max(float(np.linalg.norm(values)), 1e-12)))
        return rows

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit sentence embeddings ``(N, E)``, in batches."""
        encode = self.encode
        if encode is None:
            raise ValueError("this classifier has no encoder")
        parts = []
        step = self.features.batch_size
        for start in range(0, len(texts), step):
            chunk = [t if t.strip() else "." for t in texts[start : start + step]]  # an empty reply still encodes
            parts.append(np.asarray(encode(chunk), dtype=np.float32))
        return _unit_rows(np.concatenate(parts, axis=0))

    # ----------------------------------------------------------------------------------------- training

    def fit(self, lines: Sequence[tuple[str, str]]) -> PersonaClassifier:
        if not lines:
            raise ValueError("no reference lines to train on")
        self.labels = tuple(sorted({pid for pid, _ in lines}))
        if len(self.labels) < 2:
            raise ValueError(f"need reference lines of at least two personas, got {self.labels}")
        texts = [text for _, text in lines]
        y = np.array([self.labels.index(pid) for pid, _ in lines], dtype=np.int64)
        fold = np.array([fold_of(t, self.folds) for t in texts], dtype=np.int64)
        use_ngrams = self.features.ngram_weight > 0
        tfidf: list[tuple[np.ndarray, np.ndarray]] = []
        if use_ngrams:
            document_freq: Counter[str] = Counter()
            for text in texts:
                document_freq.update(set(ngrams(text, self.features.max_n)))
            self.vocabulary = {gram: i for i, gram in enumerate(sorted(document_freq))}
            df = np.array([document_freq[g] for g in sorted(document_freq)], dtype=np.float32)
            self.idf = (np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0).astype(np.float32)  # smoothed IDF
            tfidf = self._tfidf_rows(texts)
        embedded = self._embed(texts) if self.features.embedding_weight > 0 else None  # (N, E)

        self._centroids = []
        for k in range(self.folds):
            train = fold != k if self.folds > 1 else np.ones(len(texts), dtype=bool)
            missing = [self.labels[c] for c in range(len(self.labels)) if not np.any(train & (y == c))]
            if missing:
                raise ValueError(f"fold {k} leaves no reference line of {missing}; give them more lines")
            ngram_c = None
            if use_ngrams:
                ngram_c = np.zeros((len(self.labels), len(self.vocabulary)), dtype=np.float32)  # (C, V)
                for row in np.flatnonzero(train):
                    index, values = tfidf[row]
                    ngram_c[y[row], index] += values
                ngram_c = _unit_rows(ngram_c)
            emb_c = None
            if embedded is not None:
                emb_c = np.zeros((len(self.labels), embedded.shape[1]), dtype=np.float32)  # (C, E)
                np.add.at(emb_c, y[train], embedded[train])
                emb_c = _unit_rows(emb_c)
            self._centroids.append(_Centroids(ngram_c, emb_c))
        log.info(
            "persona classifier: %d reference lines, %d personas, %d n-grams, %d fold(s)",
            len(texts), len(self.labels), len(self.vocabulary), self.folds,
        )  # fmt: skip
        return self

    # ----------------------------------------------------------------------------------------- scoring

    def index(self, persona_id: str) -> int:
        try:
            return self.labels.index(persona_id)
        except ValueError as exc:
            raise ValueError(f"the classifier has no reference lines of persona {persona_id!r}") from exc

    def scores(self, texts: Sequence[str], paired_reference: Sequence[str] | None = None) -> np.ndarray:
        """Similarity of each text to each persona ``(N, C)``, in :attr:`labels` order.

        ``paired_reference[i]`` is the reference line of the example that ``texts[i]`` answers; row ``i`` is
        scored with the centroids of the fold that held that line out. Without it, the folds are averaged.
        """
        if not self._centroids:
            raise ValueError("call fit() first")
        if paired_reference is not None and len(paired_reference) != len(texts):
            raise ValueError("paired_reference must have one line per text")
        n, c = len(texts), len(self.labels)
        every = np.zeros((len(self._centroids), n, c), dtype=np.float64)  # (K, N, C)
        if self.features.ngram_weight > 0 and n:
            for row, (index, values) in enumerate(self._tfidf_rows(texts)):
                for k, cents in enumerate(self._centroids):
                    every[k, row] += self.features.ngram_weight * (cents.ngram[:, index] @ values)
        if self.features.embedding_weight > 0 and n:
            embedded = self._embed(texts)  # (N, E)
            for k, cents in enumerate(self._centroids):
                every[k] += self.features.embedding_weight * (embedded @ cents.embedding.T)
        if paired_reference is None or self.folds == 1:
            return every.mean(axis=0)
        folds = np.array([fold_of(t, self.folds) for t in paired_reference], dtype=np.int64)
        return every[folds, np.arange(n)]

    def candidate_mask(self, true_ids: Sequence[str], pool: Sequence[str]) -> np.ndarray:
        """``(N, C)`` boolean: row ``i`` may choose any persona of ``pool`` or its own ``true_ids[i]``."""
        mask = np.zeros((len(true_ids), len(self.labels)), dtype=bool)
        pool_index = [self.index(pid) for pid in pool]
        for row, pid in enumerate(true_ids):
            mask[row, pool_index] = True
            mask[row, self.index(pid)] = True
        return mask


def hits_at_1(scores: np.ndarray, true_index: Sequence[int], candidates: np.ndarray | None = None) -> float:
    """Share of rows whose highest score among their candidates is the true class.

    ``scores (N, C)``; ``candidates (N, C)`` boolean, True where a class may be chosen for that row (the true
    class must be among them); None allows every class. A tie is a miss unless the true class has the lowest index.
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


def chance_level(candidates: np.ndarray) -> float:
    """Expected hits@1 of a uniform random guess among each row's candidates."""
    counts = np.asarray(candidates, dtype=bool).sum(axis=1)
    return float(np.mean(1.0 / np.maximum(counts, 1))) if len(counts) else math.nan
