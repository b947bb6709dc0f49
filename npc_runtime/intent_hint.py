"""The intent reader: what a player's line asks for, read from its sentence embedding.

The role model learnt the player's words from a few hundred paraphrase templates, so a phrasing it never saw
("What beasts are around?") is often answered as another request. The sentence encoder the bundle already runs for
the utterance prefix (MiniLM) places a new phrasing near the lines that mean the same, and a linear reader on that
embedding names the intent of most of them. A model trained with intent hints reads the reader's answer after the
player's line (``prompt.build_decoder_text``'s ``hint``): ``<player> What beasts are around? | ask creatures<npc>``.

The reader is a softmax regression over the corpus's intents, or one with a hidden ReLU layer before it (a reader
file of version 2; ``npc-runtime train --reader-hidden``), which places more of the phrasings no template has
(docs/model.md, "A reader with a hidden layer"); ``export.intent_reader`` fits it. A bundle whose
model was trained with hints carries it as the asset ``intent_reader`` (a JSON file, this module's format), and
the engine gives every request its hint. Training turns read the served reader's hints (or, with
``--intent-hint-folds N``, those of a reader fitted without their paraphrase template; ``export.intent_reader``).

**Looked-up hints** (a reader saved with a ``lookup`` version, ``npc-runtime train --hint-lookup``): for the
requests whose answer turns on facts of the card or scene, the runtime looks them up and adds them to the hint
(:func:`lookup_hint`), so the small model copies them from beside the reply instead of finding them far back on
the ``<know>`` or ``<ctx>`` line. Training and serving build the same text. The rules are versioned, because they
are part of what a model was trained on: a bundle is served the version its reader names, and a new rule needs a
new version and a model trained with it.

- Version 1: "ask item: sword" (the scene's ``player_item``); "buy: candle 3" and "complaint: candle 3" (the card's
  ware the line names, read as the fact steering reads a topic, :func:`npc_runtime.facts.last_named`, with its
  price; a bare "buy" where the card has no such ware); "quest ask: The Lost Ledger" (the card's quest title).
- Version 2 (:data:`LOOKUP_VERSION`): version 1; for a "buy" of a ware the card does not sell, the card's first
  ware, which the reply offers instead ("buy: not sold; rope 2"); "ask name: Tobias Quill" (the card's name); the
  quest's reward after its title ("quest ask: The Lost Ledger; 5 silver coins") and, for "quest accept", its place
  and reward ("quest accept: the library; 5 silver coins"); "ask trade: rope 2, lantern 6, travel cloak 10" (the
  card's first three wares, as a reply lists them); "ask health: honey salve 3, sleeping draught 5" (the card's
  remedies, :data:`npc_runtime.facts.REMEDY_WORDS`, at most three); "directions: the inn (east of the square, the
  green door)" (the card's place the line names); and the scene fact a question about the surroundings asks for,
  from ``context``: "ask place: the square" (``location``), "ask weather: rain", "ask time: evening"
  (``time_of_day``), "ask creatures: wolf, crow" (``nearby``, in the order sent: nearest first, and the reply
  names the first; since 2026-12-05 the creatures the player's line names, by the bundle's scene words, come
  first, :func:`named_first`, so "What is that wolf doing here?" beside a cat and a wolf reads "ask creatures:
  wolf, cat". No corpus line asking
  about the creatures names one, so the shipped recipe's training turns are encoded exactly as before).

A request whose fact is not there (no such ware or place on the card, no quest, no scene facts sent) keeps its bare
hint, and the model answers as it learnt to without the fact ("I have no rope", "I couldn't tell you where...").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .facts import (LIST_HINT, LISTED_WARES, card_name, card_places, card_quest, card_quest_parts, card_remedies,
                    card_wares, last_named)
from .voice import plain_words

__all__ = ["LOOKUP_VERSION", "READER_FORMAT", "SCENE_HINTS", "IntentReader", "load_reader", "lookup_hint",
           "named_first"]

READER_FORMAT = "npc-intent-reader"
#: Reader files: version 1, linear (written so still, so that older runtimes read them); version 2, with a hidden
#: layer (``hidden``), which older runtimes refuse by name instead of misreading.
READER_VERSION = 1
HIDDEN_READER_VERSION = 2
#: The newest rules of :func:`lookup_hint` this runtime knows (module docstring); 0 is no lookup.
LOOKUP_VERSION = 2
#: The hints of questions about the surroundings, and the ``context`` key each looks up (version 2).
SCENE_HINTS = {"ask place": "location", "ask weather": "weather", "ask time": "time_of_day", "ask creatures": "nearby"}


@dataclass(frozen=True)
class IntentReader:
    """Hint texts (``labels``) and a map from L2-normalised sentence embeddings to their scores: linear, or through
    a hidden ReLU layer (``hidden_weights``, ``hidden_bias``) first."""

    labels: tuple[str, ...]
    weights: np.ndarray  # float32 (E, n_labels), or (H, n_labels) after a hidden layer
    bias: np.ndarray  # float32 (n_labels,)
    #: The version of the looked-up hints (:func:`lookup_hint`) the model was trained on, which the runtime must
    #: build too; 0: none. ``True`` (how version 1 readers are written) reads as 1.
    lookup: int = 0
    hidden_weights: np.ndarray | None = None  # float32 (E, H)
    hidden_bias: np.ndarray | None = None  # float32 (H,)

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
        if (self.hidden_weights is None) != (self.hidden_bias is None):
            raise ValueError("intent reader hidden layer needs both its weights and its bias")
        if self.hidden_weights is not None:
            width = self.weights.shape[0]
            if self.hidden_weights.ndim != 2 or self.hidden_weights.shape[1] != width:
                raise ValueError(f"intent reader hidden weights must be (embedding, {width}), got "
                                 f"{self.hidden_weights.shape}")  # fmt: skip
            if self.hidden_bias.shape != (width,):
                raise ValueError(f"intent reader hidden bias must be ({width},), got {self.hidden_bias.shape}")
        layers = [self.weights, self.bias]
        if self.hidden_weights is not None:
            layers += [self.hidden_weights, self.hidden_bias]
        if not all(np.isfinite(layer).all() for layer in layers):
            raise ValueError("intent reader weights are not finite")
        if not isinstance(self.lookup, int) or not 0 <= self.lookup:
            raise ValueError(f"intent reader 'lookup' must be false, true or a version number, got {self.lookup!r}")
        if self.lookup > LOOKUP_VERSION:
            raise ValueError(f"intent reader needs looked-up hints of version {int(self.lookup)}; this runtime knows "
                             f"up to {LOOKUP_VERSION}: update npc-runtime")
        object.__setattr__(self, "lookup", int(self.lookup))

    @property
    def dim(self) -> int:
        return int((self.weights if self.hidden_weights is None else self.hidden_weights).shape[0])

    @property
    def hidden(self) -> int:
        """The width of the hidden layer; 0: a linear reader."""
        return 0 if self.hidden_weights is None else int(self.hidden_weights.shape[1])

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(B, n_labels) scores of (B, E) sentence embeddings (normalised here)."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"intent reader expects (batch, {self.dim}) embeddings, got {x.shape}")
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if self.hidden_weights is not None:
            x = np.maximum(x @ self.hidden_weights + self.hidden_bias, 0.0)
        return x @ self.weights + self.bias

    def read(self, embeddings: np.ndarray) -> list[str]:
        """The likeliest label of each embedding."""
        return [self.labels[i] for i in self.scores(embeddings).argmax(axis=1)]

    def to_dict(self) -> dict:
        hidden = {} if self.hidden_weights is None else {
            "hidden": {"bias": _rounded(self.hidden_bias), "weights": _rounded(self.hidden_weights)}}
        return {
            "format": READER_FORMAT,
            "version": HIDDEN_READER_VERSION if hidden else READER_VERSION,
            "labels": list(self.labels),
            "bias": _rounded(self.bias),
            "weights": _rounded(self.weights),
            # Version 1 is written as it always was (true), so such a reader file reads the same in older runtimes.
            **({"lookup": True if self.lookup == 1 else self.lookup} if self.lookup else {}),
            **hidden,
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
        if not isinstance(data, dict) or data.get("format") != READER_FORMAT:
            raise ValueError(f"not an intent reader (expected format '{READER_FORMAT}')")
        version = data.get("version")
        if version not in (READER_VERSION, HIDDEN_READER_VERSION):
            raise ValueError(f"intent reader file version {version!r}: this runtime reads versions {READER_VERSION} "
                             f"and {HIDDEN_READER_VERSION}; update npc-runtime")  # fmt: skip
        labels = data.get("labels")
        if not isinstance(labels, list):
            raise ValueError("intent reader has no 'labels' list")
        hidden = data.get("hidden")
        if (version == HIDDEN_READER_VERSION) != isinstance(hidden, dict):
            raise ValueError(f"an intent reader of version {HIDDEN_READER_VERSION}, and only such, has a 'hidden' "
                             "layer")  # fmt: skip
        try:
            weights = np.asarray(data.get("weights"), dtype=np.float32)
            bias = np.asarray(data.get("bias"), dtype=np.float32)
            hidden_weights = None if hidden is None else np.asarray(hidden.get("weights"), dtype=np.float32)
            hidden_bias = None if hidden is None else np.asarray(hidden.get("bias"), dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"intent reader weights are not numbers: {exc}") from exc
        return cls(tuple(labels), weights, bias, data.get("lookup", 0), hidden_weights, hidden_bias)


def _rounded(values: np.ndarray) -> list:
    """A vector or matrix as JSON numbers of 6 decimals (Python's rounding, as reader files were always written)."""
    if values.ndim == 1:
        return [round(float(v), 6) for v in values]
    return [[round(float(v), 6) for v in row] for row in values]


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


def lookup_hint(hint: str, knowledge: str, context: Mapping[str, str] | None, player_text: str, version: int,
                scene_words: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> str:
    """The hint with the facts its request turns on, by the rules of ``version`` (module docstring); any other hint,
    one whose facts are not there, or version 0: unchanged. ``scene_words``: the bundle's words for each scene
    element (``SceneSteering.words``), by which a line names a creature in view (:func:`named_first`)."""
    if not version or not hint:
        return hint
    if hint == "ask item":
        return _with(hint, _scene(context, "player_item"))
    if hint in ("buy", "complaint"):
        wares = card_wares(knowledge)
        ware = _named(wares, player_text)
        if ware:
            return _with(hint, f"{ware} {wares[ware]}")
        if version >= 2 and hint == "buy" and wares:  # not sold here; the reply offers the first ware instead
            first = next(iter(wares))
            return _with(hint, f"not sold; {first} {wares[first]}")
        return hint
    if version == 1:
        return _with(hint, card_quest(knowledge) or "") if hint == "quest ask" else hint
    if hint == "ask name":
        return _with(hint, card_name(knowledge) or "")
    if hint in ("quest ask", "quest accept"):
        quest = card_quest_parts(knowledge)
        if not quest:
            return hint
        title, _, reward, place = quest
        return _with(hint, f"{title if hint == 'quest ask' else place}; {reward}")
    if hint in (LIST_HINT, "ask health"):
        wares = card_wares(knowledge) if hint == LIST_HINT else card_remedies(knowledge)
        return _with(hint, ", ".join(f"{name} {price}" for name, price in list(wares.items())[:LISTED_WARES]))
    if hint == "directions":
        places = card_places(knowledge)
        place = _named(places, player_text)
        return _with(hint, "{} ({})".format(*places[place]) if place else "")
    scene_key = SCENE_HINTS.get(hint)
    if scene_key == "nearby":
        creatures = [part for part in _scene(context, scene_key).split(", ") if part]
        return _with(hint, ", ".join(named_first(creatures, player_text, (scene_words or {}).get(scene_key))))
    return _with(hint, _scene(context, scene_key)) if scene_key else hint


def named_first(names: Sequence[str], player_text: str, forms: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """``names`` (scene elements such as the creatures in view) with those the player's line names moved to the
    front, otherwise in their order. A name is named by any of its ``forms`` (the bundle's scene words: "wolf",
    "wolves"), as whole words; a name ``forms`` does not list, by itself."""
    said = f" {plain_words(player_text)} "

    def named(name: str) -> bool:
        return any(f" {plain_words(form)} " in said for form in (forms or {}).get(name, (name,)))

    return sorted(names, key=lambda name: not named(name))  # a stable sort keeps each group's order


def _scene(context: Mapping[str, str] | None, key: str) -> str:
    return " ".join(str((context or {}).get(key, "")).split())


def _with(hint: str, fact: str) -> str:
    return f"{hint}: {fact}" if fact else hint


def _named(names: Mapping[str, object], player_text: str) -> str | None:
    """The card name (a key of ``names``) the player's line names, as the fact steering reads it
    (:func:`npc_runtime.facts.last_named`)."""
    return last_named(sorted(names, key=len, reverse=True), player_text)
