"""Procedurally varied persona cards for the training corpus, and what the corpus needs to know about any card.

Hundreds of generated personas (roles, traits, speaking styles, wares, directions, quests, rumours) teach the
model to condition on the card instead of memorising nine characters. Each one is a real
:class:`~npc_runtime.personas.PersonaCard`, so the model trains on exactly the text the runtime will feed it.
:class:`Speaker` wraps any card (bundled, generated or written by a studio) with its style profile, temperament,
home and the pieces of knowledge that survive ``knowledge_text()``'s length cap (only those may be required in a
reply, since only those are visible to the model).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from npc_runtime.personas import MAX_KNOWLEDGE_CHARS, Knowledge, PersonaCard, Place, Quest, Ware
from sample_game.world import CREATURES, LOCATIONS, NPC_HOME, PERSONA_IDS

from .corpus_style import DIALECTS, StyleProfile, describe_style, profile_from_card, temperament_of

__all__ = ["RoleSpec", "ROLES", "Speaker", "place_name", "make_procedural_personas", "PROCEDURAL_PREFIX", "FIRST_NAMES",
           "SURNAMES"]

PROCEDURAL_PREFIX = "proc_"


@dataclass(frozen=True)
class RoleSpec:
    """A job a generated persona can have: where it works, what it sells (item, min, max price), its work talk."""

    name: str
    homes: tuple[str, ...]
    wares: tuple[tuple[str, int, int], ...]
    work_lines: tuple[str, ...]


def _role(name: str, homes: str, wares: Sequence[tuple[str, int, int]], *work: str) -> RoleSpec:
    return RoleSpec(name, tuple(homes.split()), tuple(wares), tuple(work))


ROLES: tuple[RoleSpec, ...] = (
    _role("blacksmith", "forge", [("longsword", 30, 60), ("dagger", 8, 16), ("horseshoe", 2, 5), ("iron pot", 5, 12),
          ("hand axe", 12, 25)], "The bellows have been hungry all day.", "Iron does not wait for anyone.",
          "I've three blades to finish before the market opens."),
    _role("armourer", "forge", [("shield", 20, 40), ("iron helm", 15, 30), ("chain shirt", 50, 90),
          ("leather gloves", 4, 9)], "A good shield has saved more lives than any sword.",
          "Rivets, rivets and more rivets today."),
    _role("merchant", "market", [("rope", 2, 5), ("lantern", 6, 12), ("wool cloak", 10, 20), ("spice pouch", 5, 12),
          ("map of the valley", 8, 15)], "Trade's been slow since the bridge flooded.",
          "Caravans bring the best goods in spring."),
    _role("baker", "market", [("loaf of bread", 1, 3), ("honey cake", 2, 5), ("meat pie", 3, 6), ("sweet bun", 1, 3)],
          "I was up before the roosters to light the oven.", "Flour prices keep climbing."),
    _role("tailor", "market", [("linen shirt", 4, 8), ("leather boots", 10, 20), ("felt hat", 3, 7),
          ("wool cloak", 10, 20)], "Half the village tears its sleeves on the brambles.",
          "A needle and patience, that's my whole trade."),
    _role("guard", "gate", [], "Quiet shift so far, and I like it that way.", "I keep an eye on everyone who passes."),
    _role("watchman", "gate", [], "Night watch is long and cold.", "I count every cart through the gate."),
    _role("hunter", "gate meadow", [("rabbit pelt", 2, 5), ("deer hide", 8, 14), ("hunting bow", 20, 35)],
          "The deer have moved up to the high woods.", "Tracks were fresh this morning."),
    _role("stablehand", "gate", [("saddle", 15, 30), ("bridle", 5, 10), ("bag of oats", 2, 4)],
          "The horses are restless today.", "Mucking out stalls is honest work."),
    _role("innkeeper", "inn", [("room for the night", 5, 10), ("mug of ale", 1, 3), ("bowl of stew", 2, 5)],
          "Every bed was full last night.", "The cellar needs restocking before the festival."),
    _role("cook", "inn", [("bowl of stew", 2, 5), ("roast chicken", 4, 8), ("apple pie", 2, 5)],
          "The stew has been simmering since dawn.", "Nobody leaves my kitchen hungry."),
    _role("healer", "temple", [("healing salve", 4, 10), ("cup of herb tea", 1, 3), ("clean bandage", 2, 5),
          ("sleeping draught", 6, 12)], "Three coughs and a sprained ankle already today.",
          "Rest heals more than any herb."),
    _role("priest", "temple", [("candle", 1, 3), ("blessed charm", 5, 12), ("prayer book", 8, 15)],
          "The temple bell needs a new rope.", "Folk come to pray more when the nights are long."),
    _role("herbalist", "meadow temple", [("bundle of chamomile", 1, 3), ("willow bark", 2, 5), ("mint sprig", 1, 2)],
          "The chamomile is blooming early this year.", "I know every herb between here and the hills."),
    _role("scholar", "library", [], "I have been reading the same chapter for a week.",
          "The old chronicles are full of strange tales."),
    _role("scribe", "library", [("letter written", 2, 5), ("pot of ink", 3, 6), ("sheet of parchment", 1, 3)],
          "My hand aches from copying all morning.", "Half the village cannot read, so they come to me."),
    _role("alchemist", "library", [("glowing tonic", 8, 18), ("smelling salts", 3, 7), ("fire powder", 10, 25)],
          "Something bubbled over in my workshop again.", "Every mixture teaches me something."),
    _role("guide", "square", [("guided walk", 3, 8)], "I've walked every path in this valley twice.",
          "Travellers always get lost by the old mill."),
    _role("town crier", "square", [], "My voice is hoarse from the morning news.",
          "Proclamations don't read themselves."),
    _role("bard", "square inn", [("song of your choosing", 1, 4)], "I'm writing a ballad about the reeve's goat.",
          "A good tune is worth more than gold."),
    _role("carpenter", "square", [("wooden stool", 4, 8), ("carved bowl", 2, 4), ("oak chest", 15, 30)],
          "The new roof beams are nearly done.", "Good oak is hard to find these days."),
    _role("child", "riverside meadow", [], "I've been skipping stones all day.", "Nobody lets me help with anything."),
    _role("fisher", "riverside", [("fresh trout", 2, 5), ("smoked eel", 3, 7), ("fishing hooks", 1, 3)],
          "The fish are biting well this week.", "The river's been high since the thaw."),
    _role("ferryman", "riverside", [("river crossing", 1, 3)], "The current's strong today.",
          "I've crossed this river ten thousand times."),
    _role("miller", "riverside", [("sack of flour", 3, 6), ("bag of oats", 2, 4)],
          "The wheel has been turning since dawn.",
          "Everyone needs flour, rain or shine."),
    _role("farmer", "meadow", [("basket of eggs", 1, 2), ("wheel of cheese", 5, 10), ("jug of milk", 1, 3)],
          "The harvest looks good this year.", "My goats got into the turnips again."),
    _role("shepherd", "meadow", [("bundle of wool", 3, 6), ("jug of goat milk", 1, 3)],
          "Counted the flock twice and got two numbers.", "The lambs are growing fast."),
    _role("woodcutter", "meadow", [("bundle of firewood", 2, 4), ("oak planks", 5, 10)],
          "The axe needs sharpening again.", "Winter's coming, everyone wants firewood."),
)  # fmt: skip
ROLES_BY_NAME = MappingProxyType({spec.name: spec for spec in ROLES})

FIRST_NAMES = (
    "Ada Alwin Anselm Berta Bram Cedric Celia Dara Dunstan Edda Elric Esme Fenna Finn Galen Greta Hal Hilde Ivo Isolde "
    "Jory Juna Kestrel Lorn Lotte Mabel Milo Nell Niall Odo Orla Pim Quinn Rhosyn Rowan Sable Silas Tilda Ulric Una "
    "Vera Wilf Wynn Yara Yorick Zelda Agnes Basil Clem Dorran Elsa Fitch Gwen Hamish Ione Jasper Kit Linnea Morwen "
    "Ned Oswin Perrin Rosalind Sten Tansy Ursel Viggo Wendel Aldo Brisa Corin Della Emmet Fiora Gideon Hazel Ingo Jessa"
).split()
SURNAMES = (
    "Ashdown Barrow Copperkettle Dunmore Elmsworth Fairweather Greenhollow Hartwell Inkwater Juniper Kettleburn "
    "Longbottom Millbrook Nettlefield Oakhart Pebblestone Quickwater Redfern Stonebridge Thistledown Underhill Vantree "
    "Willowby Yarrow Ambergate Blackthorn Cinderfell Dewberry Emberlight Flintlock Goldrush Hollins Ivybank Larkspur "
    "Marsh Northcott Oldacre Pike Rushmore Saltmarsh Tanner Wickham"
).split()

_TRAITS = MappingProxyType(
    {
        "bold": ("brave", "stern", "stubborn", "dutiful", "fierce", "loyal"),
        "gentle": ("kind", "gentle", "patient", "caring", "calm"),
        "timid": ("shy", "nervous", "cautious", "anxious", "jumpy"),
        "cheerful": ("cheerful", "jolly", "playful", "witty", "friendly"),
        "haughty": ("proud", "vain", "pompous", "fussy", "aloof"),
        "grumpy": ("grumpy", "cynical", "impatient", "sour", "surly"),
        "steady": ("practical", "thoughtful", "honest", "hardworking", "quiet", "observant", "thrifty", "devout"),
    }
)
_ADDRESSES = MappingProxyType(
    {
        "plain": ("traveller", "friend", "stranger", "neighbour"),
        "old_country": ("lad", "lass", "laddie", "my bairn"),
        "courtly": ("good sir", "honoured guest", "my lord", "esteemed visitor"),
        "street": ("mate", "pal", "chum", "guv"),
        "scholarly": ("my dear fellow", "young scholar", "curious one"),
        "childlike": ("mister", "missus", "grown-up"),
        "poetic": ("sweet stranger", "dear heart", "my songbird"),
        "soothing": ("little one", "dear one", "child"),
        "military": ("citizen", "civilian", "recruit"),
        "gossipy": ("dearie", "love", "petal", "sweetheart"),
    }
)
_CATCHPHRASES = (
    "By the anvil!", "Mind the step.", "Stars keep us.", "Coin is coin.", "Old bones, new tricks.",
    "Rain or shine, I'm here.", "Well, there it is.", "Not on my watch.", "Mark my words.", "Saints and cinders!",
    "Hold your horses.", "Easy does it.", "That's the way of it.", "Burn my bread!", "Keep your wits about you.",
    "Slow and steady.", "Sure as sunrise.", "Fancy that!", "A fair deal is a good deal.", "Waste not, want not.",
    "Off you pop.", "Head up, feet moving.", "Blessings on your road.", "Oh, my stars!", "The river knows.",
    "Every stone has a story.", "Hammer and tongs!", "No rest for the busy.", "One step at a time.", "Steady on!",
    "What a day, what a day.", "By my grandmother's ladle!", "Ember keep you.", "Good as gold.", "Right as rain.",
    "Leave it with me.", "Tally ho!", "Mind your purse.", "Fresh as the morning.", "By the old oak!",
)  # fmt: skip
_ORIGINS = ("the northern hills", "a fishing village on the coast", "the capital", "a farm down the valley",
            "across the eastern sea", "a mountain town", "Emberfall itself", "a travelling caravan")  # fmt: skip
_GOALS = (
    "save enough silver for a house of my own", "see the capital once before I grow old", "earn the reeve's respect",
    "teach my craft to an apprentice", "find out who keeps stealing from the market", "repay an old debt",
    "keep the village safe through winter", "write down every tale of the valley", "win the harvest festival contest",
    "make peace with an estranged brother",
)  # fmt: skip
_RELATIONS = (
    "old friend",
    "rival",
    "cousin",
    "owes them money",
    "a good customer",
    "cannot stand them",
    "admires them",
)

_COMPASS = ("north", "south", "east", "west", "north-east", "north-west", "south-east", "south-west")
_VIA = ("past the old well", "along the cobbled lane", "over the little bridge", "behind the bakery",
        "through the orchard", "past the temple steps", "along the river path", "by the crooked oak",
        "past the horse trough", "under the stone arch")  # fmt: skip
_MARKER = ("the door with the brass knocker", "where the smoke rises", "under the red awnings", "the blue shutters",
           "by the mossy steps", "next to the haystacks", "the green door", "the tall tower", "beside the rain barrel",
           "the house with the painted sign")  # fmt: skip

_QUEST_THINGS = ("hammer", "locket", "lantern", "key", "ring", "letter", "bell", "map", "flute", "ledger")
_QUEST_ADJ = ("Lost", "Stolen", "Missing", "Forgotten", "Hidden", "Broken")
_RUMOUR_WHO = ("the miller", "a tinker", "old Nan", "the reeve's nephew", "two shepherds", "a pedlar", "the ferryman")
_RUMOUR_WHAT = ("a white stag", "strange lights", "a hooded stranger", "a wolf as big as a pony", "a ghostly bell",
                "fresh tracks of a bear", "smoke from the old ruin")  # fmt: skip


def place_name(location: str) -> str:
    """How a card names a place of the village: ``"the inn"``."""
    return f"the {location}"


# --------------------------------------------------------------------------------------------------- any card


@dataclass(frozen=True)
class Speaker:
    """A card plus what the corpus derives from it; knowledge fields hold only what ``knowledge_text()`` shows."""

    card: PersonaCard
    profile: StyleProfile
    temperament: str
    home: str
    knowledge_text: str
    wares: tuple[Ware, ...]
    places: tuple[Place, ...]
    quest: Quest | None
    rumours: tuple[str, ...]
    facts: tuple[str, ...]
    work_lines: tuple[str, ...]

    @classmethod
    def from_card(cls, card: PersonaCard, home: str | None = None) -> Speaker:
        text = card.knowledge_text()
        k = card.knowledge
        spec = ROLES_BY_NAME.get(card.role.lower().strip())
        if home is None:
            home = NPC_HOME.get(card.id) or (spec.homes[0] if spec else "square")
        if home not in LOCATIONS:
            raise ValueError(f"home must be one of {LOCATIONS}, got {home!r}")
        quest = k.quest
        if quest is not None and not all(part in text for part in (quest.title, quest.reward, quest.location)):
            quest = None
        return cls(
            card=card,
            profile=profile_from_card(card),
            temperament=temperament_of(card),
            home=home,
            knowledge_text=text,
            wares=tuple(w for w in k.wares if f"{w.item} {w.price}" in text),
            places=tuple(p for p in k.places if f"{p.name} ({p.directions})" in text),
            quest=quest,
            rumours=tuple(r for r in k.rumours if r in text),
            facts=tuple(f for f in k.facts if f in text),
            work_lines=spec.work_lines if spec else (),
        )


# --------------------------------------------------------------------------------------------------- generation


def _directions(rng: random.Random, canonical: dict[str, str], location: str) -> str:
    if location in canonical and rng.random() < 0.4:
        return canonical[location]
    return f"{rng.choice(_COMPASS)} {rng.choice(_VIA)}, {rng.choice(_MARKER)}"


def _knowledge(rng: random.Random, spec: RoleSpec, home: str, first: str, canonical: dict[str, str]) -> Knowledge:
    wares = ()
    if spec.wares:
        chosen = rng.sample(spec.wares, k=min(len(spec.wares), rng.randint(2, 4)))
        wares = tuple(Ware(item, rng.randint(lo, hi)) for item, lo, hi in chosen)
    others = [loc for loc in LOCATIONS if loc != home]
    known = rng.sample(others, k=rng.randint(2, 3))
    if rng.random() < 0.5:
        known.insert(0, home)
    places = tuple(Place(place_name(loc), _directions(rng, canonical, loc)) for loc in known)
    quest = None
    if rng.random() < 0.7:
        thing = rng.choice(_QUEST_THINGS)
        where = rng.choice(others)
        reward = f"{rng.randint(5, 40)} silver coins"
        task, title = rng.choice(
            (
                (f"find the {thing} I lost near {place_name(where)}", f"The {rng.choice(_QUEST_ADJ)} {thing.title()}"),
                (f"carry a sealed {thing} to {place_name(where)}", f"A {thing.title()} for {rng.choice(FIRST_NAMES)}"),
                (f"chase the {rng.choice(CREATURES)} away from {place_name(where)}", f"Trouble at the {where.title()}"),
                (f"gather three bundles of herbs from {place_name(where)}", f"{first}'s Remedy"),
            )
        )
        quest = Quest(title=title, task=task, reward=reward, location=place_name(where))
    rumours = tuple(
        f"{rng.choice(_RUMOUR_WHO)} saw {rng.choice(_RUMOUR_WHAT)} near {place_name(rng.choice(LOCATIONS))}"
        for _ in range(rng.randint(1, 2))
    )
    facts = (f"has worked at {place_name(home)} for {rng.randint(2, 40)} years",)
    return Knowledge(facts=facts, rumours=rumours, wares=wares, places=places, quest=quest)


def _profile(rng: random.Random, role: str) -> StyleProfile:
    dialect = "childlike" if role == "child" and rng.random() < 0.7 else rng.choice(DIALECTS)
    return StyleProfile(
        dialect=dialect,
        verbosity=rng.choice(("terse", "plain", "flowery")),
        address=rng.choice(_ADDRESSES[dialect]) if rng.random() < 0.8 else None,
        catchphrase=rng.choice(_CATCHPHRASES),
        excitable=dialect == "childlike" or rng.random() < 0.25,
        hesitant=rng.random() < 0.15,
    )


def _fit_knowledge(card: PersonaCard) -> PersonaCard:
    """Drop rumours, then places, until the whole knowledge line fits the runtime's cap (nothing gets cut)."""
    k = card.knowledge
    while len(card.knowledge_text(max_chars=10**6)) > MAX_KNOWLEDGE_CHARS:
        if len(k.rumours) > 1:
            k = replace(k, rumours=k.rumours[:-1])
        elif len(k.places) > 1:
            k = replace(k, places=k.places[:-1])
        else:
            break
        card = replace(card, knowledge=k)
    return card


#: (card, rng) -> example lines in the card's voice; given by the reply module (avoids an import cycle).
LineMaker = Callable[[PersonaCard, random.Random], tuple[str, ...]]


def make_procedural_personas(
    count: int, seed: int, make_lines: LineMaker, canonical_directions: dict[str, str] | None = None
) -> list[PersonaCard]:
    """``count`` generated cards with ids ``proc_000``...; the same ``(count, seed)`` gives the same cards.

    ``make_lines`` writes each card's example lines in its own voice (so the lines show the described style);
    ``canonical_directions`` (location -> directions from the bundled cards) is reused for some places so
    generated and bundled personas agree about the village.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    canonical = dict(canonical_directions or {})
    rng = random.Random(f"personas:{seed}")
    names = [f"{first} {last}" for first in FIRST_NAMES for last in SURNAMES]
    rng.shuffle(names)
    if count > len(names):
        raise ValueError(f"at most {len(names)} procedural personas, asked for {count}")
    cards = []
    for i in range(count):
        spec = rng.choice(ROLES)
        name = names[i]
        first = name.split()[0]
        home = rng.choice(spec.homes)
        temperament = rng.choice(tuple(_TRAITS))
        traits = rng.sample(_TRAITS[temperament], k=rng.randint(1, 2))
        traits += rng.sample([t for t in _TRAITS["steady"] if t not in traits], k=1)
        profile = _profile(rng, spec.name)
        relationships = {pid: rng.choice(_RELATIONS) for pid in sorted(rng.sample(PERSONA_IDS, k=rng.randint(0, 2)))}
        default_emotion = {"cheerful": "joy", "grumpy": "anger", "timid": "fear"}.get(temperament, "neutral")
        if rng.random() < 0.5:
            default_emotion = "neutral"
        card = PersonaCard(
            id=f"{PROCEDURAL_PREFIX}{i:03d}",
            name=name,
            role=spec.name,
            backstory=(
                f"{first} came to Emberfall from {rng.choice(_ORIGINS)} and works as a {spec.name} at "
                f"{place_name(home)}. {rng.choice(spec.work_lines)}"
            ),
            traits=tuple(traits),
            speaking_style=describe_style(profile, rng),
            example_lines=("placeholder line one.", "placeholder line two."),
            goals=tuple(rng.sample(_GOALS, k=rng.randint(1, 2))),
            default_emotion=default_emotion,
            relationships=relationships,
            knowledge=_knowledge(rng, spec, home, first, canonical),
        )
        card = _fit_knowledge(card)
        lines_rng = random.Random(f"lines:{seed}:{card.id}")
        cards.append(replace(card, example_lines=make_lines(card, lines_rng)))
    return cards
