"""The role model's own cased byte-level BPE tokenizer, and turns encoded exactly as the runtime lays them out.

Special tokens take the fixed ids 0..8 of ``npc_runtime.prompt.SPECIAL_TOKENS``; the tokenizer adds nothing on
its own (no post-processor), because :func:`npc_runtime.prompt.layout_ids` places ``<s>`` and the prefix slots.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from npc_runtime.prompt import BOS, NPC, PAD, PREFIX, SPECIAL_TOKENS, build_decoder_text, layout_ids

__all__ = [
    "DEFAULT_VOCAB_SIZE",
    "IGNORE_INDEX",
    "EncodedTurn",
    "train_tokenizer",
    "load_tokenizer",
    "check_special_ids",
    "special_token_ids",
    "pad_id",
    "encode_turn",
]

log = logging.getLogger(__name__)

DEFAULT_VOCAB_SIZE = 4096
#: Label of positions that carry no language-model loss (matches torch's cross_entropy default).
IGNORE_INDEX = -100


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, out_path: str | Path | None = None
) -> Tokenizer:
    """Train a cased byte-level BPE on ``texts``; special tokens get ids 0..8; saved to ``out_path`` if given."""
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ValueError(f"vocab_size must hold the specials and 256 byte symbols, got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    # No prefix space: "<npc> Aye" keeps its own leading space, so decode(encode(text)) == text.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    check_special_ids(tokenizer)
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(out_path))
    log.info("trained byte-level BPE with %d tokens", tokenizer.get_vocab_size())
    return tokenizer


def check_special_ids(tokenizer: Tokenizer) -> None:
    """Raise ValueError unless every special token has its fixed id."""
    for expected, token in enumerate(SPECIAL_TOKENS):
        actual = tokenizer.token_to_id(token)
        if actual != expected:
            raise ValueError(f"special token {token!r} has id {actual}, expected {expected}")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer written by :func:`train_tokenizer` and check its special ids."""
    tokenizer = Tokenizer.from_file(str(path))
    check_special_ids(tokenizer)
    return tokenizer


def special_token_ids() -> dict[str, int]:
    """Each special token's fixed id."""
    return {token: i for i, token in enumerate(SPECIAL_TOKENS)}


@dataclass(frozen=True)
class EncodedTurn:
    """One turn laid out for the decoder: ids and prefix mask as ``layout_ids`` gives them.

    ``labels`` holds the next-token target at every reply position (the final ``<npc>`` predicts the first reply
    token; the last reply token predicts ``<eos>``) and ``IGNORE_INDEX`` elsewhere; all ``IGNORE_INDEX`` without a
    reply. ``prompt_length`` counts prefix slots, ``<s>`` and prompt text; ``prompt_length - 1`` is the final
    ``<npc>``, where the emotion head is read.
    """

    ids: list[int]
    prefix_mask: list[float]
    labels: list[int]
    prompt_length: int

    @property
    def emotion_position(self) -> int:
        return self.prompt_length - 1


def encode_turn(
    tokenizer: Tokenizer,
    n_prefix: int,
    knowledge: str,
    context: Mapping[str, str] | None,
    history: Sequence[tuple[str, str]],
    player_text: str,
    reply: str | None = None,
    hint: str = "",
) -> EncodedTurn:
    """Encode one turn the way the runtime does (``build_decoder_text`` then ``layout_ids``)."""
    ids_of = special_token_ids()
    prompt_text = build_decoder_text(knowledge, context, history, player_text, hint=hint)
    prompt_ids, prompt_mask = layout_ids(tokenizer.encode(prompt_text).ids, n_prefix, ids_of[PREFIX], ids_of[BOS])
    if prompt_ids[-1] != ids_of[NPC]:
        raise ValueError("prompt does not end with a single <npc> token; is this the project tokenizer?")
    if reply is None:
        return EncodedTurn(prompt_ids, prompt_mask, [IGNORE_INDEX] * len(prompt_ids), len(prompt_ids))
    full_text = build_decoder_text(knowledge, context, history, player_text, reply=reply, hint=hint)
    ids, mask = layout_ids(tokenizer.encode(full_text).ids, n_prefix, ids_of[PREFIX], ids_of[BOS])
    if ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError("the reply changed how the prompt tokenizes; special tokens must split the text")
    labels = [IGNORE_INDEX] * len(ids)
    for pos in range(len(prompt_ids) - 1, len(ids) - 1):
        labels[pos] = ids[pos + 1]
    return EncodedTurn(ids, mask, labels, len(prompt_ids))


def pad_id() -> int:
    return special_token_ids()[PAD]
