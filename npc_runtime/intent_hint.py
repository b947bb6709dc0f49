"""The intent reader: what a player's line asks for, read from its sentence embedding.

The role model learnt the player's words from a few hundred paraphrase templates, so a phrasing it never saw
("What beasts are around?") is often answered as another request. The sentence encoder the bundle already runs for
the utterance prefix (MiniLM) places a new phrasing near the lines that mean the same, and a linear reader on that
embedding names the intent of most of them. A model trained with intent hints reads the reader's answer after the
player's line (``prompt.build_decoder_text``'s ``hint``): ``<player> What beasts are around? | ask creatures<npc>``.

The reader is a softmax regression over the corpus's intents (``export.intent_reader`` fits it); a bundle whose
model was trained with hints carries it as the asset ``intent_reader`` (a JSON file, this module's format), and
the engine gives every request its hint. Training turns read the served reader's hints (or, with
``--intent-hint-folds N``, those of a reader fitted without their paraphrase template; ``export.intent_reader``).

**Looked-up hints** (a reader saved with ``lookup``, ``npc-runtime train --hint-lookup``): for the requests whose
answer turns on one fact of the card or scene, the runtime looks the fact up and adds it to the hint
(:func:`lookup_hint`), so the small model copies it from beside the reply instead of finding it far back on the
``<know>`` or ``<ctx>`` line: "ask item: sword" (the scene's ``player_item``), "buy: candle 3" (the card's ware the
line names, with its price; a bare "buy" where the card has no such ware), "complaint: candle 3", and "quest ask:
The Lost Ledger" (the card's quest). Training and serving build the same text. The rules are part of what a
model with ``"lookup": true`` was trained on: a new rule (a lookup for another request) must not change what such
a bundle is served, so it needs a new value of ``lookup`` (a version) and a model trained with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .facts import card_quest, card_wares
from .voice import plain_words

__all__ = ["READER_FORMAT", "IntentReader", "load_reader", "lookup_hint"]

READER_FORMAT = "npc-intent-reader"
READER_VERSION = 1


@dataclass(frozen=True)
class IntentReader:
    """Hint texts (``labels``) and a linear map from L2-normalised sentence embeddings to their scores."""

    labels: tuple[str, ...]
    weights: np.ndarray  # float32 (E, n_labels)
    bias: np.ndarray  # float32 (n_labels,)
    #: The model was trained on looked-up hints (:func:`lookup_hint`); the runtime must build them too.
    lookup: bool = False

    def __post_init__(self) -> None:
        if not self.labels or not all(isinstance(x, str) and x.strip() for x in self.labels):
            raise ValueError("intent reader labels must be non-empty strings")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("intent reader labels must be distinct")
        n = len(self.labels)
        if self.weights.ndim != 2 or self.weights.shape[1] != n:
            raise ValueError(f"intent reader weights must be (embedding, {n}), got {self.weights.shape}")
        if self.bias.shape != (n,):
            raise ValueError(f"intent reader bias must be ({n},), got {self.bias.shape}")
        if not (np.isfinite(self.weights).all() and np.isfinite(self.bias).all()):
            raise ValueError("intent reader weights are not finite")
        if not isinstance(self.lookup, bool):
            raise ValueError(f"intent reader 'lookup' must be true or false, got {self.lookup!r}")

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(B, n_labels) scores of (B, E) sentence embeddings (normalised here)."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"intent reader expects (batch, {self.dim}) embeddings, got {x.shape}")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.maximum(norms, 1e-12)) @ self.weights + self.bias

    def read(self, embeddings: np.ndarray) -> list[str]:
        """The likeliest label of each embedding."""
        return [self.labels[i] for i in self.scores(embeddings).argmax(axis=1)]

    def to_dict(self) -> dict:
        return {
            "format": READER_FORMAT,
            "version": READER_VERSION,
            "labels": list(self.labels),
            "bias": [round(float(v), 6) for v in self.bias],
            "weights": [[round(float(v), 6) for v in row] for row in self.weights],
            **({"lookup": True} if self.lookup else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Write the reader (through a temporary file, so a reader never sees half of it)."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(partial, path)
        return path

    @classmethod
    def from_dict(cls, data: object) -> IntentReader:
        if not isinstance(data, dict) or data.get("format") != READER_FORMAT or data.get("version") != READER_VERSION:
            raise ValueError(f"not an intent reader (expected format '{READER_FORMAT}' version {READER_VERSION})")
        labels = data.get("labels")
        if not isinstance(labels, list):
            raise ValueError("intent reader has no 'labels' list")
        try:
            weights = np.asarray(data.get("weights"), dtype=np.float32)
            bias = np.asarray(data.get("bias"), dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"intent reader weights are not numbers: {exc}") from exc
        return cls(tuple(labels), weights, bias, data.get("lookup", False))


def load_reader(path: str | Path, dim: int | None = None) -> IntentReader:
    """Read a reader file; ``dim`` (the sentence encoder's width) is checked when given. Raises ``ValueError``
    naming what is wrong (an unreadable file is an ``OSError``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"intent reader is not JSON: {exc}") from exc
    reader = IntentReader.from_dict(data)
    if dim is not None and reader.dim != dim:
        raise ValueError(f"intent reader reads {reader.dim}-d embeddings, the text encoder gives {dim}")
    return reader


def lookup_hint(hint: str, knowledge: str, context: Mapping[str, str] | None, player_text: str) -> str:
    """The hint with the fact its request turns on (module docstring): the held item for "ask item", the card's
    ware the player's line names (the longest, with its price) for "buy" and "complaint", the card's quest title
    for "quest ask"; any other hint, or one whose fact is not there, unchanged."""
    if hint == "ask item":
        held = " ".join(str((context or {}).get("player_item", "")).split())
        return f"{hint}: {held}" if held else hint
    if hint in ("buy", "complaint"):
        line = f" {plain_words(player_text)} "
        named = [(name, price) for name, price in card_wares(knowledge).items() if f" {name} " in line]
        if named:
            name, price = max(named, key=lambda pair: len(pair[0]))
            return f"{hint}: {name} {price}"
        return hint
    if hint == "quest ask":
        title = card_quest(knowledge)
        return f"{hint}: {title}" if title else hint
    return hint
