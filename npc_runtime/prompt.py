"""How a conversation turn is laid out as decoder text: the one definition shared by training and serving.

The role model sees, after its prefix embeddings (persona, screenshot, utterance), a plain-text sequence of the
model's own tokenizer:

    <know> name: Brenna | wares: longsword 40, dagger 12<ctx> time_of_day: night | location: forge<player> Hello.<npc> Evening.<player> Swords?<npc>

(``<know>`` carries the persona card's facts that a reply may need to copy: name, prices, directions, quest)
and generates the NPC's reply after the final ``<npc>`` until ``<eos>``. The corpus builder in ``export/`` and the
runtime both call :func:`build_decoder_text`, so the two can never drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "PAD",
    "UNK",
    "BOS",
    "EOS",
    "CTX",
    "KNOW",
    "PLAYER",
    "NPC",
    "PREFIX",
    "SPECIAL_TOKENS",
    "CONTEXT_ORDER",
    "format_context",
    "build_decoder_text",
    "history_pairs",
    "layout_ids",
]

PAD = "<pad>"
UNK = "<unk>"
BOS = "<s>"
EOS = "<eos>"
CTX = "<ctx>"
KNOW = "<know>"
PLAYER = "<player>"
NPC = "<npc>"
#: Placeholder token id position for prefix embeddings (persona, vision, utterance) in the decoder input.
PREFIX = "<prefix>"

#: Special tokens in their fixed id order: a tokenizer trained by ``export/`` gives them ids 0..len-1.
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS, CTX, PLAYER, NPC, PREFIX, KNOW)

#: Between the fields of the ``<know>`` and ``<ctx>`` lines; replies never contain it (``RoleModelEngine.banned_ids``).
FIELD_SEPARATOR = " | "

#: Well-known scene facts come first, in this order; other keys follow sorted by name.
CONTEXT_ORDER: tuple[str, ...] = ("time_of_day", "weather", "location", "nearby", "player_item")


def _clean(text: str) -> str:
    # Special-token spellings in user text would let a player forge turns; break them up.
    for tok in SPECIAL_TOKENS:
        text = text.replace(tok, tok.replace("<", "< "))
    return " ".join(text.split())


def format_context(context: Mapping[str, str] | None) -> str:
    """Scene facts as one line, ``key: value`` pairs joined by `` | ``; empty string for no facts."""
    if not context:
        return ""
    keys = [k for k in CONTEXT_ORDER if k in context]
    keys += sorted(k for k in context if k not in CONTEXT_ORDER)
    parts = []
    for key in keys:
        value = _clean(str(context[key]))
        if value:
            parts.append(f"{_clean(key)}: {value}")
    return FIELD_SEPARATOR.join(parts)


def history_pairs(turns: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """``[{"player": ..., "npc": ...}, ...]`` as ``(player, npc)`` tuples, skipping malformed entries."""
    pairs = []
    for turn in turns:
        player, npc = turn.get("player"), turn.get("npc")
        if isinstance(player, str) and isinstance(npc, str):
            pairs.append((player, npc))
    return pairs


def build_decoder_text(
    knowledge: str,
    context: Mapping[str, str] | None,
    history: Sequence[tuple[str, str]],
    player_text: str,
    reply: str | None = None,
    hint: str = "",
) -> str:
    """The decoder's text for one turn; with ``reply`` (training) the reply and ``<eos>`` are appended.

    ``knowledge`` is the persona's compact facts line (``PersonaCard.knowledge_text()``); ``history`` holds earlier ``(player, npc)`` exchanges, oldest first; the caller trims it to fit the context.
    ``hint`` (models trained with intent hints, ``npc_runtime.intent_hint``) is what the intent reader makes of
    the player's line; it follows the line after the field separator: ``<player> Any beasts about? | ask creatures<npc>``.
    """
    pieces = [KNOW, " ", _clean(knowledge), CTX, " ", format_context(context)]
    for player, npc in history:
        pieces += [PLAYER, " ", _clean(player), NPC, " ", _clean(npc)]
    pieces += [PLAYER, " ", _clean(player_text)]
    if hint:
        pieces += [FIELD_SEPARATOR, _clean(hint)]
    pieces.append(NPC)
    if reply is not None:
        pieces += [" ", _clean(reply), EOS]
    return "".join(pieces)


def layout_ids(text_ids: Sequence[int], n_prefix: int, prefix_id: int, bos_id: int) -> tuple[list[int], list[float]]:
    """Decoder input ids and prefix mask for one prompt: ``n_prefix`` prefix slots, ``<s>``, then the text.

    The prefix slots hold ``prefix_id`` and take their embeddings from the prefix encoder (mask 1.0); every
    other position uses its token embedding (mask 0.0). Training and serving both lay prompts out this way.
    """
    ids = [prefix_id] * n_prefix + [bos_id] + list(text_ids)
    mask = [1.0] * n_prefix + [0.0] * (1 + len(text_ids))
    return ids, mask
