"""Training data for the role model: corpus turns as tensors, laid out exactly as the runtime lays out prompts.

:func:`prepare_data` builds the corpus, trains the decoder tokenizer, embeds every distinct persona card and player
line with the sentence encoder (MiniLM for the real model), renders every distinct scene through
``npc_runtime.images.preprocess`` and encodes each turn with ``npc_runtime.prompt``. The slow parts are cached in a
folder, so a resumed run reuses them. :class:`TurnData` then hands out right-padded batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from export.corpus import Corpus, CorpusConfig, Example, build_corpus
from export.corpus_emotion import EMOTION_LABELS
from export.corpus_intents import OFFER_ANSWERS
from export.corpus_personas import PROCEDURAL_PREFIX
from export.fact_swap import INVENT_VERSION
from export.intent_reader import READER_PHRASINGS_VERSION
from export.tokenizer import IGNORE_INDEX, load_tokenizer, special_token_ids, train_tokenizer
from npc_runtime.emotion import EMOTIONS
from npc_runtime.images import preprocess
from npc_runtime.intent_hint import LOOKUP_VERSION, lookup_hint
from npc_runtime.prompt import BOS, NPC, PAD, PLAYER, PREFIX, build_decoder_text, layout_ids
from sample_game.world import NOTHING

__all__ = [
    "TEXT_ENCODERS",
    "INTENT_READER_FILE",
    "DataConfig",
    "VERSIONED_OPTIONS",
    "SplitData",
    "TurnData",
    "prepare_data",
    "make_text_encoder",
    "length_grouped_batches",
]

log = logging.getLogger(__name__)

#: Sentence encoders a run can use: the real MiniLM, or a tiny random BERT (tests; its width is ``text_embed_dim``).
TEXT_ENCODERS = ("minilm", "tiny-random")
_SPLITS = ("train", "val")
_CACHE_VERSION = 1
#: The intent reader's file in the data cache and in the bundle.
INTENT_READER_FILE = "intent_reader.json"


#: The ``DataConfig`` fields that name a version of a set of rules (0: off), with the newest this code knows; runs
#: of version 1 may have recorded ``True``.
VERSIONED_OPTIONS = {"invent_facts": INVENT_VERSION, "hint_lookup": LOOKUP_VERSION,
                     "reader_phrasings": READER_PHRASINGS_VERSION}  # fmt: skip

#: The ``DataConfig`` fields that change only the intent hints or their reader, so mean nothing without
#: ``intent_hint`` (a recipe leaves them out then).
HINT_OPTIONS = ("intent_hint_folds", "hint_lookup", "reader_phrasings", "reader_hidden")


@dataclass(frozen=True)
class DataConfig:
    """What the corpus looks like and how turns become model inputs."""

    corpus_seed: int = 0
    n_procedural_personas: int = 240
    examples_per_persona: int = 170
    examples_per_bundled_persona: int = 700
    n_scenes: int = 4000
    vocab_size: int = 4096
    text_encoder: str = "minilm"
    text_embed_dim: int = 384
    image_size: int = 64
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    #: Share of turns trained without scene facts in ``<ctx>`` (the game may send none) or without a screenshot.
    context_dropout: float = 0.1
    image_dropout: float = 0.15
    #: Also train on the NPC's earlier replies in the history (they are in the same voice): more signal per turn.
    history_loss: bool = True
    #: Share of generated personas' training turns whose catchphrase and form of address are rewritten to generated
    #: ones (card text on the ``<know>`` line, reply and history; ``export.voice_swap``), so that only copying from
    #: the card predicts them. The card embedding keeps the original card.
    voice_swap: float = 0.0
    #: Share of generated personas' training turns whose persona name, card numbers (prices, reward, years) and,
    #: where it fits the turn, quest are rewritten to other ones, on the card and in every text of the turn
    #: (``export.fact_swap``), so that only copying from the ``<know>`` line predicts them. The card embedding
    #: keeps the original card.
    fact_swap: float = 0.0
    #: The fact swap invents the new name from syllables and the role, wares, places and quest title from word
    #: lists no corpus card uses (``export.fact_swap.Inventor``), so that they are split into several tokens as a
    #: card written by hand is, instead of taking them from the corpus's lists. A version of the rules: 0, off;
    #: 1, every ware alike (``True``, as runs of version 1 recorded it, reads as 1); 2, a remedy keeps a remedy word.
    invent_facts: int = 0
    #: How the corpus sets emotion labels (``CorpusConfig.emotion_labels``): ``sampled`` or ``rule``.
    emotion_labels: str = "sampled"
    #: Share of training turns whose player line is left out of the decoder text (``<player><npc>``) while its
    #: MiniLM embedding stays in the prefix, so that the model learns to read what the player means from the
    #: embedding, which places a phrasing never seen in training near the ones that were, instead of from the
    #: exact words of the corpus's paraphrase templates (docs/model.md, "Player-line dropout").
    player_dropout: float = 0.0
    #: Share of the training turns that accept or decline a quest whose history loses the NPC's offer (the turn
    #: before, which asked for work), so that the model learns to take the quest from the card and hint when the
    #: offer was made in an earlier session or has left the game's history window (docs/model.md, "Offer
    #: dropout"). Drawn per turn, apart from every other draw, so that it changes no other turn.
    offer_dropout: float = 0.0
    #: Put the intent reader's hint after each turn's player line (``npc_runtime.intent_hint``): a reader fitted
    #: on the MiniLM embeddings of the training lines, so that a phrasing never seen in training is still read as
    #: the request it is (docs/model.md, "Intent hints"). The bundle then carries the reader.
    intent_hint: bool = False
    #: Which hint a training turn reads: 0, the reader's fitted on every training line, as served, so nearly always
    #: right (the model learns to follow the hint; the shipped recipe); N >= 2, the hint of a reader fitted without
    #: the turn's template, the templates split into N groups, so the hints are wrong as often as on a phrasing
    #: never seen (the model learns to weigh them against the words). docs/model.md, "Intent hints".
    intent_hint_folds: int = 0
    #: With ``intent_hint``: add the facts a request turns on to its hint, looked up on the card or scene as the
    #: runtime does, by the rules of this version (``npc_runtime.intent_hint.lookup_hint``: "ask item: sword", "buy:
    #: candle 3", "ask place: the square", ...); the bundle's reader then tells the runtime to do so (docs/model.md,
    #: "Looked-up hints"). 0: none. ``True``, as runs of version 1 recorded it, reads as 1.
    hint_lookup: int = 0
    #: Training turns of a reply branch (``reply_branch``: the intent, and whether the reply carries card facts or
    #: says the player holds nothing) with fewer turns than this are repeated, up to ``BRANCH_REPEAT_CAP`` times, so
    #: that a rare branch (a remedy seller asked about a cough, an empty-handed player asking what they hold) is
    #: not learnt as "what usually follows this request" (docs/model.md, "Branch balance"). 0: off.
    branch_floor: int = 0
    #: With ``intent_hint``: the intent reader is fitted on the training lines plus the extra phrasings of this
    #: version, written for the reader alone (``export.intent_reader.reader_lines``), so that it reads more of the
    #: phrasings no template has; the corpus's turns, and the hints they read, stay as they are (docs/model.md,
    #: "Reader phrasings"). 0: none.
    reader_phrasings: int = 0
    #: With ``intent_hint``: the served intent reader has a hidden ReLU layer of this width before its softmax
    #: regression, fitted as ``export.intent_reader.READER_HIDDEN_FIT`` says, so that it places more of the
    #: phrasings no template has (docs/model.md, "A reader with a hidden layer"); the turns' hints, and the run, are
    #: unchanged. 0: linear.
    reader_hidden: int = 0

    def __post_init__(self) -> None:
        for name in ("n_procedural_personas", "examples_per_persona", "examples_per_bundled_persona", "n_scenes",
                     "vocab_size", "text_embed_dim", "image_size"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"DataConfig.{name} must be a positive int, got {value!r}")
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder must be one of {TEXT_ENCODERS}, got {self.text_encoder!r}")
        if self.text_encoder == "minilm" and self.text_embed_dim != 384:
            raise ValueError(f"MiniLM embeddings are 384-d, got text_embed_dim={self.text_embed_dim}")
        for name in ("context_dropout", "image_dropout", "voice_swap", "fact_swap", "player_dropout", "offer_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if isinstance(self.intent_hint_folds, bool) or not isinstance(self.intent_hint_folds, int) or \
                self.intent_hint_folds == 1 or self.intent_hint_folds < 0:
            raise ValueError(f"intent_hint_folds must be 0 or an int >= 2, got {self.intent_hint_folds!r}")
        if not isinstance(self.intent_hint, bool):
            raise ValueError(f"intent_hint must be a bool, got {self.intent_hint!r}")
        for name, newest in VERSIONED_OPTIONS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= newest:
                raise ValueError(f"{name} must be a version from 0 to {newest}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if isinstance(self.reader_hidden, bool) or not isinstance(self.reader_hidden, int) or self.reader_hidden < 0:
            raise ValueError(f"reader_hidden must be an int >= 0, got {self.reader_hidden!r}")
        for name in HINT_OPTIONS:  # but the folds, which runs from before the hints read as 5 (from_dict)
            if name != "intent_hint_folds" and getattr(self, name) and not self.intent_hint:
                raise ValueError(f"{name} shapes the intent hints or their reader: it needs intent_hint")
        if isinstance(self.branch_floor, bool) or not isinstance(self.branch_floor, int) or self.branch_floor < 0:
            raise ValueError(f"branch_floor must be an int >= 0, got {self.branch_floor!r}")
        if self.emotion_labels not in EMOTION_LABELS:
            raise ValueError(f"emotion_labels must be one of {EMOTION_LABELS}, got {self.emotion_labels!r}")
        if self.context_dropout + self.image_dropout >= 1.0:
            raise ValueError("context_dropout + image_dropout must stay below 1")

    def corpus_config(self) -> CorpusConfig:
        return CorpusConfig(
            seed=self.corpus_seed,
            n_procedural_personas=self.n_procedural_personas,
            examples_per_persona=self.examples_per_persona,
            examples_per_bundled_persona=self.examples_per_bundled_persona,
            n_scenes=self.n_scenes,
            emotion_labels=self.emotion_labels,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataConfig:
        values = dict(data)
        for name in ("image_mean", "image_std"):
            if name in values:
                values[name] = tuple(values[name])
        values.setdefault("emotion_labels", "sampled")  # runs from before the option drew them
        values.setdefault("player_dropout", 0.0)  # and before player-line dropout
        values.setdefault("offer_dropout", 0.0)  # and before offer dropout
        values.setdefault("intent_hint", False)  # and before intent hints
        values.setdefault("intent_hint_folds", 5)  # the first hinted runs knew only cross-fitting, in 5 groups
        values.setdefault("branch_floor", 0)  # and before branch balance
        values.setdefault("hint_lookup", 0)  # and before looked-up hints
        values.setdefault("reader_phrasings", 0)  # and before reader phrasings
        values.setdefault("reader_hidden", 0)  # and before readers with a hidden layer
        return cls(**values)


def make_text_encoder(kind: str, dim: int) -> Any:
    """The sentence encoder of a run (``export.text_encoder.TextEncoder``); the tiny one is fixed by seed 0."""
    from export.text_encoder import load_minilm, tiny_random_encoder

    if kind == "minilm":
        return load_minilm()
    if kind == "tiny-random":
        return tiny_random_encoder(dim=dim, seed=0)
    raise ValueError(f"unknown text encoder {kind!r}; expected one of {TEXT_ENCODERS}")


@dataclass
class SplitData:
    """One split's encoded turns; per turn: ids, labels, prompt length and row indices into the shared tables."""

    ids: list[np.ndarray]  # int64 (L,) each: prefix slots, <s>, text
    labels: list[np.ndarray]  # int64 (L,) each: next-token targets on reply positions, IGNORE_INDEX elsewhere
    prompt_length: np.ndarray  # int64 (N,): the final <npc> sits at prompt_length - 1
    persona_row: np.ndarray  # int64 (N,) into TurnData.text_embeddings
    utterance_row: np.ndarray  # int64 (N,) into TurnData.text_embeddings
    image_row: np.ndarray  # int64 (N,) into TurnData.images, -1 for no screenshot
    emotion: np.ndarray  # int64 (N,) index into EMOTIONS
    intensity: np.ndarray  # float32 (N,)
    example_index: np.ndarray  # int64 (N,): the turn's index in the corpus split (over-long turns are skipped)
    has_context: np.ndarray  # bool (N,): False where the scene facts were left out of <ctx>
    #: int64 (N,): how many times an epoch draws each turn (``DataConfig.branch_floor``); None: once each.
    repeats: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.ids], dtype=np.int64)

    def supervised_tokens(self) -> int:
        return int(sum(int((lab != IGNORE_INDEX).sum()) for lab in self.labels))


@dataclass
class TurnData:
    """Everything training reads: the tokenizer file, embedding and image tables, and the encoded splits."""

    tokenizer_path: Path
    n_prefix: int
    text_embeddings: np.ndarray  # float32 (n_texts, E)
    images: np.ndarray  # float32 (n_images, 3, S, S), already normalised by npc_runtime.images.preprocess
    splits: dict[str, SplitData]
    corpus_digest: str
    #: The intent reader the hints came from (``DataConfig.intent_hint``), None without hints.
    intent_reader_path: Path | None = None

    def batch(self, split: str, rows: Sequence[int]) -> dict[str, Tensor]:
        """Right-padded batch of the given turns, in the layout ``RoleModel.forward`` documents."""
        data = self.splits[split]
        b = len(rows)
        length = max(len(data.ids[r]) for r in rows)
        pad = special_token_ids()[PAD]
        input_ids = torch.full((b, length), pad, dtype=torch.long)
        labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((b, length), dtype=torch.long)
        prefix_mask = torch.zeros((b, length), dtype=torch.float32)
        prefix_mask[:, : self.n_prefix] = 1.0
        for i, r in enumerate(rows):
            n = len(data.ids[r])
            input_ids[i, :n] = torch.from_numpy(data.ids[r])
            labels[i, :n] = torch.from_numpy(data.labels[r])
            attention_mask[i, :n] = 1
        rows_np = np.asarray(rows, dtype=np.int64)
        image_rows = data.image_row[rows_np]
        present = image_rows >= 0
        images = np.zeros((b, *self.images.shape[1:]), dtype=np.float32)  # (B, 3, S, S)
        images[present] = self.images[image_rows[present]]
        return {
            "input_ids": input_ids,
            "prefix_mask": prefix_mask,
            "attention_mask": attention_mask,
            "position_ids": torch.arange(length, dtype=torch.long).expand(b, length).clone(),
            "labels": labels,
            "image": torch.from_numpy(images),
            "image_present": torch.from_numpy(present.astype(np.float32)),
            "persona_embedding": torch.from_numpy(self.text_embeddings[data.persona_row[rows_np]]),
            "utterance_embedding": torch.from_numpy(self.text_embeddings[data.utterance_row[rows_np]]),
            "emotion_position": torch.from_numpy(data.prompt_length[rows_np] - 1),
            "emotion_label": torch.from_numpy(data.emotion[rows_np]),
            "emotion_intensity": torch.from_numpy(data.intensity[rows_np]),
        }


#: The most times branch balance draws one turn in an epoch (``DataConfig.branch_floor``).
BRANCH_REPEAT_CAP = 3


def reply_branch(ex: Example) -> str:
    """The kind of reply a turn teaches: its intent, with ``:facts`` where the reply must carry card facts (the
    card has the wares, quest or remedy asked about) and ``:nothing`` where it says the player's hands are empty."""
    if ex.required_facts:
        return f"{ex.intent}:facts"
    if ex.scene_element == NOTHING:
        return f"{ex.intent}:nothing"
    return ex.intent


def branch_repeats(examples: Sequence[Example], floor: int, seed: int) -> np.ndarray:
    """How many times an epoch draws each turn: a branch (``reply_branch``) with ``n < floor`` turns is drawn
    ``min(floor / n, BRANCH_REPEAT_CAP)`` times as often, whole repeats for all of its turns and the fraction as
    one more repeat for a seeded share of them; every other turn once."""
    branches = [reply_branch(ex) for ex in examples]
    counts = Counter(branches)
    rng = np.random.default_rng([seed, floor])
    draws = rng.random(len(examples))
    repeats = np.ones(len(examples), dtype=np.int64)
    for i, branch in enumerate(branches):
        factor = min(floor / counts[branch], BRANCH_REPEAT_CAP)
        if factor > 1.0:
            repeats[i] = int(factor) + int(draws[i] < factor - int(factor))
    return repeats


def length_grouped_batches(
    indices: Sequence[int], lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group: int = 50,
    repeats: np.ndarray | None = None,
) -> list[list[int]]:
    """Batches of similar length (less padding): shuffle, sort within groups of ``group`` batches, shuffle batches.

    ``repeats`` (per turn, ``SplitData.repeats``) draws turn ``i`` ``repeats[i]`` times. Deterministic for (indices,
    seed, epoch); the last incomplete batch is dropped so every rank gets the same count.
    """
    if repeats is not None:
        indices = [i for i in indices for _ in range(int(repeats[i]))]
    rng = np.random.default_rng([seed, epoch])
    order = np.asarray(indices, dtype=np.int64)[rng.permutation(len(indices))]
    batches: list[list[int]] = []
    span = batch_size * group
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        for b in range(0, len(chunk) - batch_size + 1, batch_size):
            batches.append([int(x) for x in chunk[b : b + batch_size]])
    return [batches[i] for i in rng.permutation(len(batches))]


# --------------------------------------------------------------------------------------------------- preparation


def _encode_split(
    examples: Sequence[Example],
    tokenizer: Any,
    n_prefix: int,
    max_positions: int,
    history_loss: bool,
    context_dropped: Sequence[bool],
    voice: bool = False,
    spaced_quotes: bool = False,
    player_dropped: Sequence[bool] | None = None,
    hints: Sequence[str] | None = None,
    hint_lookup: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray], list[int], list[int]]:
    """ids, labels, prompt lengths and the kept example indices; turns that cannot fit are skipped. A turn in
    ``player_dropped`` has an empty player line in the decoder text (its embedding is the prefix's business);
    ``hints`` are the intent reader's hints that follow each turn's player line, with their looked-up fact where
    ``hint_lookup`` (``npc_runtime.intent_hint.lookup_hint``, on the turn's own card, scene facts and line)."""
    ids_of = special_token_ids()
    npc_id, player_id = ids_of[NPC], ids_of[PLAYER]
    histories = [list(ex.history) for ex in examples]
    all_ids: list[np.ndarray] = []
    all_labels: list[np.ndarray] = []
    prompt_lengths: list[int] = []
    kept: list[int] = []

    def texts(i: int) -> tuple[str, str]:
        ex = examples[i]
        context = {} if context_dropped[i] else ex.scene.to_context()
        knowledge = ex.card.knowledge_text(voice=voice, spaced_quotes=spaced_quotes)
        player = "" if player_dropped is not None and player_dropped[i] else ex.player
        hint = hints[i] if hints is not None else ""
        hint = lookup_hint(hint, knowledge, context, player, hint_lookup)
        prompt = build_decoder_text(knowledge, context, histories[i], player, hint=hint)
        return prompt, build_decoder_text(knowledge, context, histories[i], player, reply=ex.reply, hint=hint)

    pending = list(range(len(examples)))
    while pending:
        pairs = [texts(i) for i in pending]
        prompts = tokenizer.encode_batch([p for p, _ in pairs])
        fulls = tokenizer.encode_batch([f for _, f in pairs])
        retry = []
        for i, prompt_enc, full_enc in zip(pending, prompts, fulls):
            ids, _ = layout_ids(full_enc.ids, n_prefix, ids_of[PREFIX], ids_of[BOS])
            if len(ids) > max_positions:
                # Like the runtime: drop the oldest exchange until the turn fits; skip it if nothing is left.
                if histories[i]:
                    histories[i].pop(0)
                    retry.append(i)
                continue
            prompt_len = n_prefix + 1 + len(prompt_enc.ids)
            if ids[:prompt_len][-1] != npc_id or full_enc.ids[: len(prompt_enc.ids)] != prompt_enc.ids:
                raise ValueError("the reply changed how the prompt tokenizes; is this the project tokenizer?")
            labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
            labels[prompt_len - 1 : len(ids) - 1] = ids[prompt_len:]
            if history_loss:
                # Earlier NPC replies: from each earlier <npc> up to the token before the next <player>.
                marks = [p for p, t in enumerate(ids[:prompt_len]) if t in (npc_id, player_id)]
                for a, b in zip(marks, marks[1:]):
                    if ids[a] == npc_id and ids[b] == player_id:
                        labels[a : b - 1] = ids[a + 1 : b]
            all_ids.append(np.asarray(ids, dtype=np.int64))
            all_labels.append(labels)
            prompt_lengths.append(prompt_len)
            kept.append(i)
        pending = retry
    order = np.argsort(kept, kind="stable")  # retried turns come back in example order
    return ([all_ids[j] for j in order], [all_labels[j] for j in order], [prompt_lengths[j] for j in order],
            [kept[j] for j in order])  # fmt: skip


def _renderer_fingerprint(scene_keys: Sequence[tuple[Any, int]]) -> str:
    """Hash of a few rendered scenes, so cached images go stale when the shared renderer changes."""
    from export.corpus import render_example_scene

    h = hashlib.sha256()
    for facts, seed in list(scene_keys)[:: max(1, len(scene_keys) // 4)][:4]:
        h.update(np.ascontiguousarray(render_example_scene(facts, (160, 120), seed)).tobytes())
    return h.hexdigest()


def _digest(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def _cached_array(path: Path, key: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """Load ``path`` if its sidecar key matches ``key``; otherwise build, save and return the array."""
    key_path = path.with_suffix(".key")
    if path.exists() and key_path.exists() and key_path.read_text(encoding="utf-8") == key:
        log.info("reusing %s", path)
        return np.load(path)
    array = build()
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)
    key_path.write_text(key, encoding="utf-8")
    return array


def _embed_texts(config: DataConfig, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    encoder = make_text_encoder(config.text_encoder, config.text_embed_dim)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)  # (n_texts, E)
    # Longest first in batches keeps padding low; rows go back to their own slot.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in tqdm(range(0, len(order), batch_size), desc="embed texts", disable=not progress, leave=False):
        rows = order[start : start + batch_size]
        out[rows] = encoder.encode_texts([texts[i] for i in rows], batch_size=batch_size).numpy()
    return out


def _render_images(config: DataConfig, scenes: Sequence[tuple[Any, int]], progress: bool = True) -> np.ndarray:
    from export.corpus import render_example_scene

    size = config.image_size
    out = np.zeros((len(scenes), 3, size, size), dtype=np.float32)  # (n_images, 3, S, S)
    for i, (facts, seed) in enumerate(tqdm(scenes, desc="render scenes", disable=not progress, leave=False)):
        out[i] = preprocess(render_example_scene(facts, seed=seed), size, config.image_mean, config.image_std)
    return out


def _swap_voices(examples: Sequence[Example], config: DataConfig, split: str) -> list[Example]:
    """``examples`` with ``config.voice_swap`` of the generated personas' turns given generated voice markers
    (``export.voice_swap``); fixed by the corpus seed."""
    from export.eval_metrics import voice_markers
    from export.voice_swap import random_markers, swap_voice

    rng = random.Random(f"voice-swap:{config.corpus_seed}:{split}")
    markers_of: dict[str, dict[str, str]] = {}
    out, swapped = [], 0
    for ex in examples:
        draw, new = rng.random(), random_markers(rng)  # drawn for every turn, so the choice of one never shifts another
        if not ex.persona_id.startswith(PROCEDURAL_PREFIX) or draw >= config.voice_swap:
            out.append(ex)
            continue
        if ex.persona_id not in markers_of:
            markers_of[ex.persona_id] = voice_markers(ex.card)
        old = markers_of[ex.persona_id]
        npc_lines = [npc for _, npc in ex.history]
        card, texts = swap_voice(ex.card, old, new, [ex.reply, *npc_lines])
        history = tuple((player, npc) for (player, _), npc in zip(ex.history, texts[1:]))
        out.append(replace(ex, card=card, reply=texts[0], history=history))
        swapped += 1
    log.info("%s: %d of %d turns got generated voice markers", split, swapped, len(examples))
    return out


def _swap_facts(examples: Sequence[Example], config: DataConfig, split: str) -> list[Example]:
    """``examples`` with ``config.fact_swap`` of the generated personas' turns given another name and other
    numbers, on the card and in every text of the turn (``export.fact_swap``); fixed by the corpus seed."""
    from export.corpus_personas import FIRST_NAMES, SURNAMES
    from export.fact_swap import swap_facts

    quests = sorted({ex.card.knowledge.quest for ex in examples if ex.persona_id.startswith(PROCEDURAL_PREFIX)} - {None},
                    key=repr)  # fmt: skip
    out, swapped = [], 0
    for i, ex in enumerate(examples):
        # One generator per turn, so the choice of one turn never shifts another's.
        rng = random.Random(f"fact-swap:{config.corpus_seed}:{split}:{i}")
        if not ex.persona_id.startswith(PROCEDURAL_PREFIX) or rng.random() >= config.fact_swap:
            out.append(ex)
            continue
        flat_history = [line for pair in ex.history for line in pair]
        texts = [ex.reply, ex.player, *flat_history, *ex.required_facts]
        quest = rng.choice(quests) if quests else None
        scene = " ".join(map(str, ex.scene.to_context().values()))
        card, new, _ = swap_facts(ex.card, texts, rng, FIRST_NAMES, SURNAMES, _usable_quest(ex, quest),
                                  invent=config.invent_facts, keep=scene)  # fmt: skip
        lines = new[2 : 2 + len(flat_history)]
        history = tuple(zip(lines[0::2], lines[1::2]))
        required = tuple(new[2 + len(flat_history) :])
        out.append(replace(ex, card=card, reply=new[0], player=new[1], history=history, required_facts=required))
        swapped += 1
    what = ("an invented name, role, wares, places and quest title" if config.invent_facts
            else "another name, other numbers and (where it fits) another quest")  # fmt: skip
    log.info("%s: %d of %d turns got %s", split, swapped, len(examples), what)
    return out


def _drop_offers(examples: Sequence[Example], config: DataConfig, split: str) -> list[Example]:
    """``examples`` with ``config.offer_dropout`` of the turns that answer a quest offer stripped of that offer
    (their last history turn, the player asking for work and the NPC's offer); fixed by the corpus seed, one draw
    per such turn."""
    out, dropped = [], 0
    for i, ex in enumerate(examples):
        if ex.intent not in OFFER_ANSWERS or not ex.history:
            out.append(ex)
            continue
        rng = random.Random(f"offer-dropout:{config.corpus_seed}:{split}:{i}")
        if rng.random() >= config.offer_dropout:
            out.append(ex)
            continue
        out.append(replace(ex, history=ex.history[:-1]))
        dropped += 1
    log.info("%s: %d of %d turns lost the quest offer before them", split, dropped, len(examples))
    return out


def _usable_quest(ex: Example, quest: Any) -> Any:
    """``quest`` if it can replace ``ex``'s card quest without contradicting the turn: its place is not another of
    the card's places, and neither place is part of the scene the turn describes."""
    own = ex.card.knowledge.quest
    if quest is None or own is None or quest == own:
        return None
    places = {p.name.lower() for p in ex.card.knowledge.places} - {own.location.lower()}
    context = " ".join(map(str, ex.scene.to_context().values())).lower()
    bare = [loc.lower().removeprefix("the ") for loc in (own.location, quest.location)]
    if quest.location.lower() in places or any(b in context for b in bare) or ex.scene_element:
        return None
    return quest


def prepare_data(
    config: DataConfig,
    n_prefix: int,
    max_positions: int,
    cache_dir: str | Path,
    corpus: Corpus | None = None,
    progress: bool = True,
    voice: bool = False,
    spaced_quotes: bool = False,
) -> TurnData:
    """Build (or reuse from ``cache_dir``) the tokenizer, embeddings, images and encoded train/val turns.

    ``voice`` puts the card's traits, mood and speaking style on each turn's ``<know>`` line
    (``RoleModelConfig.prompt_voice``); ``spaced_quotes`` renders that line's quotes as
    ``RoleModelConfig.spaced_quotes`` says."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    corpus = corpus or build_corpus(config.corpus_config())
    digest = corpus.digest()
    examples = {split: corpus.splits[split] for split in _SPLITS}

    tokenizer_path = cache / "tokenizer.json"
    tok_key_path = cache / "tokenizer.key"
    # (The key of a run without voice lines is the one it had before they existed, so old caches stay valid.)
    tok_key = _digest([digest, str(config.vocab_size), str(_CACHE_VERSION), *(["voice"] if voice else []),
                       *(["spaced_quotes"] if spaced_quotes else [])])  # fmt: skip
    if tokenizer_path.exists() and tok_key_path.exists() and tok_key_path.read_text(encoding="utf-8") == tok_key:
        tokenizer = load_tokenizer(tokenizer_path)
    else:
        texts = [ex.decoder_text(voice, spaced_quotes) for ex in examples["train"]] + [card.card_text() for card in corpus.cards.values()]
        tokenizer = train_tokenizer(texts, config.vocab_size, tokenizer_path)
        tok_key_path.write_text(tok_key, encoding="utf-8")

    # Which turns lose their scene facts or screenshot: fixed by the corpus seed, never both for one turn.
    dropped: dict[str, tuple[list[bool], list[bool]]] = {}
    for split in _SPLITS:
        rng = random.Random(f"dropout:{config.corpus_seed}:{split}")
        draws = [rng.random() for _ in examples[split]]
        dropped[split] = (
            [d < config.context_dropout for d in draws],
            [config.context_dropout <= d < config.context_dropout + config.image_dropout for d in draws],
        )

    texts = sorted({ex.card.card_text() for s in _SPLITS for ex in examples[s]} | {ex.player for s in _SPLITS for ex in examples[s]})
    text_row = {t: i for i, t in enumerate(texts)}
    embed_key = _digest([config.text_encoder, str(config.text_embed_dim), *texts])
    text_embeddings = _cached_array(cache / "text_embeddings.npy", embed_key, lambda: _embed_texts(config, texts, progress=progress))

    scene_keys = sorted({(ex.scene, ex.scene_seed) for s in _SPLITS for ex in examples[s]}, key=repr)
    scene_row = {k: i for i, k in enumerate(scene_keys)}
    # The renderer's own pixels are part of the key: a change to the game's drawing code re-renders the cache.
    image_key = _digest([str(config.image_size), repr(config.image_mean), repr(config.image_std),
                         _renderer_fingerprint(scene_keys), *map(repr, scene_keys)])
    images = _cached_array(cache / "images.npy", image_key, lambda: _render_images(config, scene_keys, progress=progress))

    hints: dict[str, list[str] | None] = {split: None for split in _SPLITS}
    reader_path = None
    if config.intent_hint:
        extra = _reader_phrasings(config, cache, progress)
        reader_path, hints = _intent_hints(examples, text_embeddings, text_row, config.corpus_seed, cache,
                                           config.intent_hint_folds, config.hint_lookup, extra,
                                           config.reader_phrasings, config.reader_hidden)  # fmt: skip

    splits = {}
    for split in _SPLITS:
        exs = examples[split]
        no_context, no_image = dropped[split]
        encoded = list(exs)
        if split == "train" and config.voice_swap:
            encoded = _swap_voices(encoded, config, split)
        if split == "train" and config.fact_swap:
            encoded = _swap_facts(encoded, config, split)
        if split == "train" and config.offer_dropout:
            encoded = _drop_offers(encoded, config, split)
        # Player-line dropout (training turns only), drawn apart from the scene dropout so that adding it leaves
        # which turns lose their scene facts as they were.
        no_player = None
        if split == "train" and config.player_dropout:
            rng = random.Random(f"player-dropout:{config.corpus_seed}")
            no_player = [rng.random() < config.player_dropout for _ in exs]
        ids, labels, prompt_lengths, kept = _encode_split(encoded, tokenizer, n_prefix, max_positions, config.history_loss, no_context, voice, spaced_quotes, no_player, hints[split], config.hint_lookup)
        if len(kept) < len(exs):
            log.warning("%s: skipped %d turns longer than %d positions", split, len(exs) - len(kept), max_positions)
        splits[split] = SplitData(
            ids=ids,
            labels=labels,
            prompt_length=np.asarray(prompt_lengths, dtype=np.int64),
            persona_row=np.array([text_row[exs[i].card.card_text()] for i in kept], dtype=np.int64),
            utterance_row=np.array([text_row[exs[i].player] for i in kept], dtype=np.int64),
            image_row=np.array([-1 if no_image[i] else scene_row[(exs[i].scene, exs[i].scene_seed)] for i in kept], dtype=np.int64),
            emotion=np.array([EMOTIONS.index(exs[i].emotion) for i in kept], dtype=np.int64),
            intensity=np.array([exs[i].intensity for i in kept], dtype=np.float32),
            example_index=np.asarray(kept, dtype=np.int64),
            has_context=np.array([not no_context[i] for i in kept], dtype=bool),
            repeats=branch_repeats([exs[i] for i in kept], config.branch_floor, config.corpus_seed)
            if split == "train" and config.branch_floor else None,
        )
    meta = {
        "corpus_digest": digest,
        "texts": len(texts),
        "images": len(scene_keys),
        **{f"{s}_turns": len(splits[s]) for s in _SPLITS},
        **{f"{s}_supervised_tokens": splits[s].supervised_tokens() for s in _SPLITS},
        "train_length_percentiles": {p: int(np.percentile(splits["train"].lengths, p)) for p in (50, 90, 99, 100)},
    }
    (cache / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("training data ready: %s", meta)
    return TurnData(tokenizer_path, n_prefix, text_embeddings, images, splits, digest, reader_path)


def _reader_phrasings(config: DataConfig, cache: Path, progress: bool) -> tuple[np.ndarray, list[str]] | None:
    """The sentence embeddings and intents of the run's reader phrasings (``DataConfig.reader_phrasings``), cached
    apart from the turns' texts, so that the turns' embedding table is the same with or without them."""
    from export.intent_reader import reader_lines

    lines = reader_lines(config.reader_phrasings, config.corpus_seed)
    if not lines:
        return None
    texts = [text for text, _ in lines]
    key = _digest([config.text_encoder, str(config.text_embed_dim), *texts])
    embeddings = _cached_array(cache / "reader_embeddings.npy", key,
                               lambda: _embed_texts(config, texts, progress=progress))  # fmt: skip
    return embeddings, [intent for _, intent in lines]


def _intent_hints(
    examples: dict[str, Sequence[Example]],
    embeddings: np.ndarray,
    text_row: dict[str, int],
    seed: int,
    cache: Path,
    folds: int,
    lookup: int = 0,
    extra: tuple[np.ndarray, list[str]] | None = None,
    phrasings: int = 0,
    hidden: int = 0,
) -> tuple[Path, dict[str, list[str] | None]]:
    """Fit the served intent reader on the training lines and ``extra`` (the embeddings and intents of the reader
    phrasings of version ``phrasings``, fitted as ``READER_FITS`` says; with a ``hidden`` layer of that width, as
    ``READER_HIDDEN_FIT`` says), save it as ``cache/intent_reader.json``, and give each turn its hint.

    The turns' hints never depend on the phrasings: training and validation turns read the reader fitted on the
    training lines alone (0: as served before the phrasings; ``folds`` groups: each training turn from such a
    reader fitted without its template). The phrasings are for lines no template has; the training lines are read
    the same by both readers but for a handful, so a model's training data, and the run, are those of the recipe
    without them, and a new version of the phrasings needs a new reader, not a new model."""
    from export.corpus_intents import INTENTS
    from export.intent_reader import READER_FITS, READER_HIDDEN_FIT, cross_fitted_hints, fit_reader, hint_label

    first: dict[str, tuple[str, str]] = {}
    for ex in examples["train"]:
        first.setdefault(ex.player, (ex.intent, ex.template_id))
    lines = list(first)
    x = embeddings[[text_row[t] for t in lines]]
    intents = [first[t][0] for t in lines]
    base = fit_reader(x, intents, classes=INTENTS, **READER_FITS[0])
    reader = base
    fit = {**READER_HIDDEN_FIT, "hidden": hidden} if hidden else READER_FITS[phrasings]
    if extra is not None:
        reader = fit_reader(np.concatenate([x, extra[0]]), [*intents, *extra[1]], classes=INTENTS, **fit)
    elif hidden:
        reader = fit_reader(x, intents, classes=INTENTS, **fit)
    if lookup:  # the served reader tells the runtime to look the hints' facts up, as training did
        reader = replace(reader, lookup=lookup)
    if folds:
        line_hints, accuracy = cross_fitted_hints(x, intents, [first[t][1] for t in lines], folds=folds, seed=seed)
    else:
        line_hints = base.read(x)
        accuracy = float(np.mean([h == hint_label(t) for h, t in zip(line_hints, intents)]))
    path = reader.save(cache / INTENT_READER_FILE)
    hint_of = dict(zip(lines, line_hints))
    val = examples["val"]
    val_hints = base.read(embeddings[[text_row[ex.player] for ex in val]]) if val else []
    served = float(np.mean([h == hint_label(t) for h, t in zip(reader.read(x), intents)]))
    log.info("intent reader%s: fitted on %d training lines and %d reader phrasings (it reads %.3f of the training "
             "lines right); the turns' hints (%s) right in %.3f of them",
             f" (a hidden layer of {hidden})" if hidden else "", len(lines), 0 if extra is None else len(extra[1]),
             served,
             f"each from a reader fitted without its template, {folds} groups" if folds else
             "the reader fitted on the training lines alone", accuracy)  # fmt: skip
    return path, {"train": [hint_of[ex.player] for ex in examples["train"]], "val": list(val_hints)}
