"""The NPCs' names and the lines the game suggests to the player, read from the bundled persona cards.

When a card is missing or unreadable the game still runs: the NPC is called by its role and gets generic lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from npc_runtime.errors import PersonaError
from npc_runtime.personas import PersonaCard, PersonaPack, default_pack_dir
from sample_game.world import PERSONA_IDS

__all__ = ["CastMember", "load_cast", "GENERIC_LINES"]

log = logging.getLogger(__name__)

GENERIC_LINES: tuple[str, ...] = ("Hello there!", "What news in the village?", "Are you an AI?")


@dataclass(frozen=True)
class CastMember:
    """A persona as the game shows it: id, display name, role and up to three suggested player lines."""

    persona: str
    name: str
    role: str
    suggestions: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")
        if not self.suggestions:
            raise ValueError("at least one suggested line is needed")


def _suggestions(card: PersonaCard) -> tuple[str, ...]:
    lines = ["Hello there!"]
    knowledge = card.knowledge
    if knowledge.wares:
        item = knowledge.wares[0].item.strip()
        if item.split()[0].lower() not in ("a", "an", "the", "some"):
            item = "the " + item
        lines.append(f"How much for {item}?")
    if knowledge.quest is not None:
        lines.append("Any work for me?")
    elif knowledge.places:
        lines.append(f"How do I get to {knowledge.places[0].name}?")
    if len(lines) < 3:
        lines.append("What news in the village?")
    return tuple(lines[:3])


def load_cast(pack: PersonaPack | None = None) -> dict[str, CastMember]:
    """A :class:`CastMember` per id in :data:`sample_game.world.PERSONA_IDS` (the bundled pack by default)."""
    if pack is None:
        try:
            pack = PersonaPack.load(default_pack_dir())
        except (PersonaError, OSError) as exc:
            log.warning("persona cards unavailable (%s); using role names", exc)
            pack = None
    cast = {}
    for persona in PERSONA_IDS:
        if pack is not None and persona in pack:
            card = pack.get(persona)
            cast[persona] = CastMember(persona, card.name, card.role, _suggestions(card))
        else:
            cast[persona] = CastMember(persona, persona.capitalize(), persona, GENERIC_LINES)
    return cast
