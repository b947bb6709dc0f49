"""NPC replies for the training corpus: what a persona says to one player line in one scene, and how it feels.

:func:`make_turn` takes the emotion from :mod:`export.corpus_emotion`, writes the reply's content as sentence
templates whose facts sit in slots (prices, directions, quest details, scene words are copied exactly from the card
and the scene), lets :func:`~export.corpus_style.stylise` voice it, and records what evaluation needs: the facts a
correct reply must carry and the scene word a surroundings answer must name.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from npc_runtime.facts import is_remedy
from npc_runtime.personas import PersonaCard
from sample_game.scene import SceneFacts
from sample_game.world import LOCATION_TEXT, LOCATIONS, NOTHING

from .corpus_emotion import choose_emotion, pick_opener
from .corpus_intents import OUT_OF_WORLD_INTENTS, PLAYER_TEMPLATES, player_line, template_id
from .corpus_personas import ROLES, Speaker, place_name
from .corpus_style import fill, stylise

__all__ = ["Turn", "make_turn", "example_lines_for", "ware_name", "BANNED_OUT_OF_WORLD_WORDS", "CATALOGUE"]

#: Words an in-character reply must never contain (checked on out-of-world deflections).
BANNED_OUT_OF_WORLD_WORDS: tuple[str, ...] = (
    "ai", "artificial", "language model", "model", "prompt", "instruction", "instructions", "computer", "internet",
    "assistant", "chatbot", "program", "software", "algorithm", "openai", "chatgpt", "roleplay", "character",
    "npc", "game", "robot", "machine",
)  # fmt: skip


@dataclass(frozen=True)
class Turn:
    """One player line and the NPC's answer, with the labels evaluation needs."""

    intent: str
    template_id: str
    player: str
    reply: str
    emotion: str
    intensity: float
    required_facts: tuple[str, ...] = ()
    scene_element: str | None = None
    out_of_world: bool = False


@dataclass
class _Draft:
    """A reply before styling: ``mood`` and ``extra`` sentences are optional, ``core`` ones carry the answer."""

    core: list[str]
    extra: list[str] = field(default_factory=list)
    mood: list[str] = field(default_factory=list)
    slots: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    element: str | None = None


# --------------------------------------------------------------------------------------------------- helpers


def _a(item: str) -> str:
    """``item`` with an indefinite article when it is countable-looking: ``"an iron pot"``, ``"horseshoes"``."""
    head = item.split(" of ")[0].split()[-1].lower()
    if head.endswith("s") and not head.endswith("ss"):
        return item
    return ("an " if item[0].lower() in "aeiou" else "a ") + item


def ware_name(ware_item: str) -> str:
    """A ware's name without a leading article (``"a song"`` -> ``"song"``), to say "the song"."""
    for article in ("a ", "an ", "the ", "some "):
        if ware_item.lower().startswith(article) and len(ware_item) > len(article):
            return ware_item[len(article) :]
    return ware_item


def _bare(text: str) -> str:
    """Card text to put mid-sentence: no trailing full stop."""
    return text.strip().rstrip(".!?;, ")


def _lower_start(text: str) -> str:
    text = _bare(text)
    if len(text) > 1 and text[0].isupper() and text[1].islower() and text.split(" ", 1)[0] not in ("I", "Emberfall"):
        return text[0].lower() + text[1:]
    return text


def _here(scene: SceneFacts) -> str:
    return LOCATION_TEXT[scene.location]


#: Every ware a corpus role sells (what a player may ask a card without it for).
CATALOGUE: tuple[str, ...] = tuple(sorted({item for spec in ROLES for item, _, _ in spec.wares}))


def _catalogue_item(rng: random.Random, exclude: Sequence[str]) -> str:
    excluded = {item.lower() for item in exclude}
    return rng.choice([item for item in CATALOGUE if item not in excluded])


_COMPASS_WORDS = frozenset({"north", "south", "east", "west"})


def _key_direction(directions: str) -> str:
    """The word a correct answer must contain: the first compass word, else the longest word."""
    words = [w.strip(",.;:!?") for w in directions.split()]
    for word in words:
        if word.lower().split("-")[0] in _COMPASS_WORDS:
            return word
    return max(words, key=len)


# --------------------------------------------------------------------------------------------------- scene talk

_WEATHER_LINES = MappingProxyType(
    {
        "clear": ("Skies are {weather}, not a cloud to be seen.", "It's {weather} and dry today.",
                  "A {weather} sky, good for the road."),
        "rain": ("{weather}, and plenty of it.", "It's all {weather} today, keep your hood up.",
                 "This {weather} won't let up."),
        "fog": ("{weather} everywhere, thick as porridge.", "A heavy {weather} has rolled in.",
                "Can barely see through this {weather}."),
        "snow": ("{weather}, falling soft and steady.", "It's {weather} again, my fingers are numb.",
                 "Look at the {weather} coming down."),
    }
)  # fmt: skip
_TIME_LINES = MappingProxyType(
    {
        "morning": ("It's {time}, the day has only begun.", "Still {time}, the bread is warm.",
                    "Early {time}, the village is just waking."),
        "noon": ("It's {time}, the sun is at its highest.", "About {time}, time for a bite to eat.",
                 "Right around {time}."),
        "evening": ("It's {time} now, the lamps will be lit soon.", "Getting on for {time}.",
                    "{time} already, the day slipped away."),
        "night": ("It's {time}, well past dark.", "Deep {time}, most folk are abed.",
                  "It's {time}, you should be careful out here."),
    }
)  # fmt: skip
_CREATURE_NOTES = MappingProxyType(
    {
        "chicken": "Someone's hens got loose again.", "dog": "Friendly enough, if you don't tease it.",
        "cat": "It thinks it owns the place.", "crow": "Crows are a bad omen, my gran used to say.",
        "horse": "Someone's horse, wandered off its post.", "wolf": "Keep well away from it!",
        "goat": "Goats eat everything, even boots.", "pig": "It's escaped from the farm again.",
    }
)  # fmt: skip
_ITEM_NOTES = MappingProxyType(
    {
        "sword": "Mind where you point it.", "torch": "Keep that flame away from the thatch.",
        "apple": "Looks crisp, too.", "lute": "Going to play us a tune?",
        "coin purse": "Keep it close, there are thieves about.",
        "fishing rod": "The river's good for trout.", "bucket": "Off to the well, are you?",
    }
)  # fmt: skip


def _creature_list(scene: SceneFacts) -> str:
    kinds = list(dict.fromkeys(scene.nearby))
    words = [f"{{c{i}}}" for i in range(len(kinds))]
    if len(words) == 1:
        return "a " + words[0]
    return ", ".join("a " + w for w in words[:-1]) + " and a " + words[-1]


def _creature_slots(scene: SceneFacts) -> dict[str, str]:
    return {f"c{i}": kind for i, kind in enumerate(dict.fromkeys(scene.nearby))}


def _scene_remark(scene: SceneFacts, rng: random.Random, draft: _Draft) -> str | None:
    """A spontaneous line about the scene; its scene words go into ``draft.slots``."""
    options = ["weather", "time"]
    if scene.nearby:
        options += ["creature", "creature"]
    if scene.player_item != NOTHING:
        options.append("item")
    kind = rng.choice(options)
    if kind == "weather":
        draft.slots["weather"] = scene.weather
        return rng.choice(_WEATHER_LINES[scene.weather])
    if kind == "time":
        draft.slots["time"] = scene.time_of_day
        return rng.choice(_TIME_LINES[scene.time_of_day])
    if kind == "creature":
        kind_name = rng.choice(sorted(set(scene.nearby)))
        draft.slots["rc"] = kind_name
        return rng.choice(("Watch that {rc} over there.", "See the {rc}? ", "There's a {rc} about.")).strip()
    draft.slots["held"] = scene.player_item
    return rng.choice(("Nice {held} you've got there.", "That {held} suits you.", "What's the {held} for?"))


# --------------------------------------------------------------------------------------------------- content

_Content = tuple[_Draft, dict[str, str]]  # the draft and the player's template slots


def _greeting(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    hello = {
        "morning": ("Good morning.", "Morning to you.", "A fine {time} to you."),
        "noon": ("Good day.", "Good day to you.", "Afternoon, almost."),
        "evening": ("Good evening.", "Evening to you.", "A quiet {time} to you."),
        "night": ("You're out late.", "A late hour for visitors.", "Hello, at this hour of the {time}?"),
    }[scene.time_of_day]
    second = {
        "joy": ("Always glad to see a friendly face.", "Welcome, welcome to {here}!", "What a pleasure."),
        "surprise": ("I didn't hear you coming.", "I wasn't expecting anyone.", "You gave me a start."),
        "fear": ("You startled me.", "Please, don't creep up on me like that.", "Who's there? Oh, it's you."),
        "anger": ("What do you want?", "Make it quick.", "I'm busy, so speak up."),
        "disgust": ("What is it now?", "Must you stand so close?", "State your business, then."),
        "sadness": ("Forgive me, it's been a long day.", "Not the best of days, I'm afraid.", "Hello, I suppose."),
        "neutral": ("What brings you to {here}?", "Need something from {a_role}?", "What can I do for you?"),
    }[emotion]
    draft = _Draft(core=[rng.choice(hello), rng.choice(second)], extra=["I'm {name}, the {role} here."])
    draft.slots.update(time=scene.time_of_day, here=_here(scene))
    return draft, {}


def _farewell(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    pool = {
        "joy": ("Farewell, and come back soon!", "Safe travels, it was good talking.", "Off you go, and good luck!"),
        "sadness": (
            "Leaving already? Farewell, then.",
            "Take care of yourself out there.",
            "Goodbye. It gets lonely here.",
        ),
        "fear": ("Go carefully, and stay in the light.", "Farewell, and don't linger out there.", "Be safe, please."),
    }.get(emotion, ("Farewell.", "Safe travels.", "Mind how you go.", "Until next time."))
    follow = ("Sleep well tonight." if scene.time_of_day == "night" else "You know where to find me.",
              "Come back if you need {a_role}.", "Give my regards to the village.")  # fmt: skip
    extra = ["Mind the {weather} on your way."] if scene.weather != "clear" else ["Enjoy the clear sky."]
    draft = _Draft(core=[rng.choice(pool), rng.choice(follow)], extra=extra, slots={"weather": scene.weather})
    return draft, {}


def _ask_name(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    intro = rng.choice(("I'm {name}.", "The name's {name}.", "They call me {name}.", "{name}, at your service."))
    role = rng.choice(("I'm the {role} here.", "I work as the {role} of Emberfall.", "The {role}, as you can see."))
    draft = _Draft(core=[intro, role], extra=["Been here longer than I care to count."])
    draft.required = (sp.card.name,)
    return draft, {}


def _ware_list(wares: Sequence) -> tuple[str, dict[str, str]]:
    slots, parts = {}, []
    for i, ware in enumerate(wares):
        slots[f"w{i}"], slots[f"p{i}"] = _a(ware_name(ware.item)), str(ware.price)
        parts.append(f"{{w{i}}} for {{p{i}}} silver")
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text, slots


def _ask_trade(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    if not sp.wares:
        core = [rng.choice(("I've nothing to sell; I'm {a_role}.", "Nothing for sale here, sorry.",
                            "I don't trade, I'm the {role}.")),
                rng.choice(("Try the market for goods.", "The market is where the traders are."))]  # fmt: skip
        return _Draft(core=core), {}
    shown = sp.wares[:3]
    listing, slots = _ware_list(shown)
    lead = rng.choice(("I sell {list}.", "I've got {list}.", "Today I have {list}.", "For sale: {list}."))
    draft = _Draft(core=[lead.replace("{list}", listing)], extra=["Take your time and look around."], slots=slots)
    draft.required = tuple(x for w in shown for x in (ware_name(w.item), str(w.price)))
    return draft, {}


def _buy(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    if not sp.wares:
        asked = _catalogue_item(rng, ())
        core = [rng.choice(("I have no {asked} to sell, I'm {a_role}.", "No {asked} here; I'm no trader.")),
                "Try the market."]  # fmt: skip
        return _Draft(core=core, slots={"asked": asked}), {"item": asked}
    if rng.random() < 0.12:
        asked = _catalogue_item(rng, [ware_name(w.item) for w in sp.wares])
        ware = sp.wares[0]
        core = [
            rng.choice(("I have no {asked} for sale.", "No {asked} here, I'm afraid.")),
            rng.choice(("I do have {a_item} for {price} silver.", "But {a_item} is {price} silver, if that helps.")),
        ]
        slots = {"asked": asked, "a_item": _a(ware_name(ware.item)), "price": str(ware.price)}
        draft = _Draft(core=core, slots=slots, required=(ware_name(ware.item), str(ware.price)))
        return draft, {"item": asked}
    ware = rng.choice(sp.wares)
    core = rng.choice(
        (
            ["The {item} costs {price} silver."],
            ["That's {price} silver for the {item}."],
            ["The {item} is yours for {price} silver."],
            ["For the {item}, {price} silver, and not a coin less."],
            ["A fine choice.", "The {item} is {price} silver."],
        )
    )
    extra = ["Fair price, too.", "You won't find better in Emberfall.", "Pay when you're ready."]
    name = ware_name(ware.item)
    slots = {"item": name, "price": str(ware.price)}
    return _Draft(core=list(core), extra=extra, slots=slots, required=(name, str(ware.price))), {"item": name}


def _sell(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    held = scene.player_item
    if sp.wares and emotion != "disgust":
        core = rng.choice((["I could use {a_held}.", "I'll give you {offer} silver for it."],
                           ["{a_held}? I'd pay {offer} silver, no more."],
                           ["Let me see that {held}.", "{offer} silver, and that's generous."]))  # fmt: skip
    elif emotion == "disgust":
        core = rng.choice(
            (["That old {held}? I wouldn't take it for free."], ["Keep your {held}, it's worthless to me."])
        )
    else:
        core = rng.choice((["What would {a_role} do with {a_held}?"], ["Keep your {held}; I've no coin for it."],
                           ["I've no need of {a_held}, sorry."]))  # fmt: skip
    slots = {"held": held, "a_held": _a(held), "offer": str(rng.randint(1, 12))}
    return _Draft(core=list(core), slots=slots, required=(held,)), {"held": held}


def _complaint(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    if not sp.wares:
        asked = _catalogue_item(rng, ())
        core = [
            rng.choice(("I never sold you {a_asked}.", "That {asked} didn't come from me.")),
            "Take it up with the market.",
        ]
        return _Draft(core=core, slots={"asked": asked, "a_asked": _a(asked)}), {"item": asked}
    ware = rng.choice(sp.wares)
    apology = {
        "sadness": "I'm truly sorry to hear that.",
        "surprise": "Broken? That's never happened before.",
        "anger": "My goods don't break unless they're mistreated.",
    }.get(emotion, "Let's put it right.")
    remedy = rng.choice(("Bring the {item} back and I'll refund your {price} silver.",
                         "Return the {item} and you'll have your {price} silver back, or an exchange.",
                         "I'll swap the {item} or give back the {price} silver, your choice."))  # fmt: skip
    name = ware_name(ware.item)
    slots = {"item": name, "price": str(ware.price)}
    return _Draft(core=[apology, remedy], slots=slots, required=(name, str(ware.price))), {"item": name}


def _ask_health(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    remedies = [w for w in sp.wares if is_remedy(w.item)]
    if remedies:
        ware = rng.choice(remedies)
        core = rng.choice((["Rest, warm water, and my {item}.", "That's {price} silver."],
                           ["Try my {item}, {price} silver.", "And sleep early tonight."],
                           ["The {item} will help; {price} silver.",
                            "Rest is the other half of the cure."]))  # fmt: skip
        name = ware_name(ware.item)
        slots = {"item": name, "price": str(ware.price)}
        return _Draft(core=list(core), slots=slots, required=(name, str(ware.price))), {}
    core = [rng.choice(("I'm no healer, but rest and warm broth help.", "Rest, and drink plenty of water.",
                        "Sit down a while and rest your bones.")),
            rng.choice(("The healer at the temple knows her herbs.",
                        "Visit the temple; the healer will see you."))]  # fmt: skip
    return _Draft(core=core), {}


def _directions(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    known = {p.name.lower() for p in sp.places}
    unknown = [place_name(loc) for loc in LOCATIONS if place_name(loc) not in known]
    if not sp.places or (unknown and rng.random() < 0.12):
        asked = rng.choice(unknown)
        core = [rng.choice(("Can't say I know the way to {asked}.", "I couldn't tell you where {asked} is.")),
                rng.choice(("Ask the guide in the square.", "The guide in the square knows every path."))]  # fmt: skip
        return _Draft(core=core, slots={"asked": asked}), {"place": asked}
    place = rng.choice(sp.places)
    forms = [["{place_cap}? {directions}."], ["For {place}: {directions}."], ["Easy.", "{place_cap}: {directions}."]]
    if place.directions.split()[0].lower().split("-")[0] in _COMPASS_WORDS:
        forms += [["You'll find {place} {directions}."], ["Head {directions}, and there's {place}."]]
    extra = ["You can't miss it.", "Mind the puddles on the way."]
    slots = {
        "place": place.name,
        "place_cap": place.name[0].upper() + place.name[1:],
        "directions": _bare(place.directions),
    }
    draft = _Draft(core=list(rng.choice(forms)), extra=extra, slots=slots)
    draft.required = (place.name, _key_direction(place.directions))
    return draft, {"place": place.name}


def _rumours(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    if not sp.rumours:
        return _Draft(
            core=[rng.choice(("I've heard nothing worth repeating.", "Quiet times, no gossip to share."))]
        ), {}
    lead = rng.choice(("They say {rumour}.", "I heard {rumour}.", "Word is, {rumour}.", "Keep this quiet: {rumour}."))
    extra = ["Make of that what you will.", "But who knows what's true."]
    return _Draft(core=[lead], extra=extra, slots={"rumour": _lower_start(rng.choice(sp.rumours))}), {}


def _quest_slots(sp: Speaker) -> dict[str, str]:
    q = sp.quest
    if q is None:
        raise ValueError(f"persona {sp.card.id} has no quest")
    task = _lower_start(q.task)
    return {"title": _bare(q.title), "task": task, "task_cap": task[0].upper() + task[1:], "reward": _bare(q.reward),
            "qloc": _bare(q.location)}  # fmt: skip


def _quest_ask(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    if sp.quest is None:
        core = [rng.choice(("I've no work for you today.", "Nothing needs doing just now.", "No jobs here, sorry.")),
                "Ask around the square."]  # fmt: skip
        return _Draft(core=core), {}
    slots = _quest_slots(sp)
    at = "" if sp.quest.location.lower() in sp.quest.task.lower() else " at {qloc}"
    core = rng.choice(
        (
            ["I have a task for you: {title}.", "{task_cap}" + at + ".", "The reward is {reward}."],
            ["There's a job I call {title}.", "I need someone to {task}" + at + ".", "I'll pay {reward}."],
            ["{title}, that's what troubles me.", "{task_cap}" + at + ", and {reward} is yours."],
        )
    )
    mood = {"joy": "Glad you asked!", "sadness": "I've been so worried.", "fear": "Please, I need help.",
            "anger": "About time someone asked."}.get(emotion)  # fmt: skip
    draft = _Draft(core=list(core), slots=slots, required=(sp.quest.title, sp.quest.reward))
    draft.mood = [mood] if mood else []
    return draft, {}


def _quest_accept(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    core = rng.choice(
        (
            ["Good. Go to {qloc} and {task}.", "{reward} waits for you when it's done."],
            ["Thank you! Remember, it's at {qloc}.", "Come back for your {reward}."],
            ["Then it's settled: {qloc}.", "Bring good news and {reward} is yours."],
        )
    )
    return _Draft(core=list(core), slots=_quest_slots(sp), required=(sp.quest.location, sp.quest.reward)), {}


def _quest_decline(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    pool = {
        "anger": ("Then stop wasting my time.", "Fine. I'll remember that.", "Coward. Off with you, then."),
        "joy": ("No matter, the offer stands.", "Ha, can't blame you. Maybe another day."),
        "neutral": ("Suit yourself. The offer stands.", "Very well. Ask again if you change your mind."),
    }.get(emotion, ("A shame. I'll find someone else.", "Then I'll manage alone, as always.", "I hoped you'd say yes."))
    return _Draft(core=[rng.choice(pool)]), {}


def _small_talk(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    options = [rng.choice(sp.work_lines).replace("{", "{{").replace("}", "}}")] if sp.work_lines else []
    slots: dict[str, str] = {"here": _here(scene)}
    if sp.facts:
        fact = _lower_start(rng.choice(sp.facts))
        slots["fact"] = "I have " + fact[4:] if fact.startswith("has ") else fact
        options.append("You know, {fact}.")
    if sp.card.goals:
        slots["goal"] = _lower_start(rng.choice(sp.card.goals))
        options.append("Someday I hope to {goal}.")
    mood = {
        "joy": "Can't complain, life is good at {here}.",
        "sadness": "Honestly, it's been a hard season.",
        "anger": "Busy, and tired of fools.",
        "fear": "Nervous, if I'm honest. Strange times.",
    }.get(emotion, "Busy as ever at {here}.")
    return _Draft(core=[mood, rng.choice(options)] if options else [mood], slots=slots), {}


def _compliment(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    pool = {
        "joy": ("You're too kind.", "Why, thank you!", "That's kind of you to say.", "You've made my day."),
        "surprise": ("Me? Really? Thank you.", "Oh! Nobody's said that in years.", "I, well, thank you!"),
        "anger": ("Hmph. Words are cheap.", "Flattery won't lower my prices."),
        "neutral": ("Hmph. Words are cheap, but thanks.", "Noted. Thank you.", "Kind words. Thank you."),
    }.get(emotion, ("Thank you kindly.", "Kind words, thank you.", "That's good of you to say."))
    follow = ("Now, what can I do for you?", "Come back any time.", "I'll remember that.", "It means a lot.")
    return _Draft(core=[rng.choice(pool), rng.choice(follow)]), {}


def _insult(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    pool = {
        "anger": (
            "Say that again and you'll regret it.",
            "I'll not be spoken to like that at {here}.",
            "Mind your tongue or find the road.",
        ),
        "sadness": (
            "That's unkind. I've done nothing to you.",
            "Why would you say such a thing?",
            "Words like that hurt, you know.",
        ),
        "disgust": ("How crude. Go away.", "I expected better manners, even from you.", "Take your filth elsewhere."),
        "surprise": ("Excuse me? Where did that come from?", "What? I only just met you!"),
        "joy": ("Ha! I've been called worse by better.", "Ha, you'll have to try harder than that."),
        "fear": ("Please, I don't want any trouble.", "I'm sorry, did I do something wrong?"),
    }[emotion if emotion in ("anger", "sadness", "disgust", "surprise", "joy", "fear") else "anger"]
    return _Draft(core=[rng.choice(pool)], slots={"here": _here(scene)}), {}


def _threat(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    pool = {
        "anger": (
            "Try it, and see where it gets you.",
            "Threaten me again and the guards will hear of it.",
            "I've faced worse than you and I'm still standing.",
        ),
        "fear": ("Please, don't hurt me!", "Stay back! I'll call the guards!", "I don't want any trouble, please."),
        "disgust": ("Threats? How utterly beneath you.", "Pathetic. Go bully someone else."),
        "surprise": ("What? Why would you threaten me?", "Have you lost your mind?"),
        "sadness": ("Is that all people know, violence?", "Please, there's no need for this."),
    }[emotion if emotion in ("anger", "fear", "disgust", "surprise", "sadness") else "anger"]
    return _Draft(core=[rng.choice(pool)]), {}


def _ask_weather(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    draft = _Draft(core=[rng.choice(_WEATHER_LINES[scene.weather])], slots={"weather": scene.weather})
    draft.extra = ["Good day to stay by the fire." if scene.weather != "clear" else "Good day for the road."]
    draft.element = scene.weather
    return draft, {}


def _ask_time(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    follow = {"morning": "Plenty of day left.", "noon": "Half the day's gone already.",
              "evening": "Best finish your errands soon.",
              "night": "Most honest folk are asleep."}[scene.time_of_day]  # fmt: skip
    draft = _Draft(core=[rng.choice(_TIME_LINES[scene.time_of_day]), follow], slots={"time": scene.time_of_day})
    draft.element = scene.time_of_day
    return draft, {}


def _ask_creatures(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    if not scene.nearby:
        core = [
            rng.choice(("Nothing about but us two.", "I see no creatures, just you and me.", "We're alone here.")),
            rng.choice(("Not even a stray cat.", "Quiet as a grave.", "Just the wind.")),
        ]
        return _Draft(core=core), {}
    first = scene.nearby[0]
    lead = rng.choice(("That's {list}.", "I see {list}.", "Just {list}, nothing more."))
    core = [lead.replace("{list}", _creature_list(scene)), _CREATURE_NOTES["wolf" if "wolf" in scene.nearby else first]]
    draft = _Draft(core=core, slots=_creature_slots(scene))
    draft.element = first
    return draft, {}


def _ask_item(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    if scene.player_item == NOTHING:
        core = [rng.choice(("You're holding {held}, your hands are empty.", "Nothing? You hold {held} at all.",
                            "{held_cap}, as far as I can see."))]  # fmt: skip
        draft = _Draft(core=core, slots={"held": NOTHING, "held_cap": NOTHING.title()})
    else:
        lead = rng.choice(
            ("That's {a_held} you're holding.", "You've got {a_held} there.", "Looks like {a_held} to me.")
        )
        core = [lead, _ITEM_NOTES[scene.player_item]]
        draft = _Draft(core=core, slots={"a_held": _a(scene.player_item)})
    draft.element = scene.player_item
    return draft, {}


def _ask_place(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random) -> _Content:
    lead = rng.choice(("We're at {here}.", "This is {here}.", "You're standing at {here}.", "Why, {here}, of course."))
    tail = "My home, more or less." if scene.location == sp.home else "Not my usual spot, mind."
    draft = _Draft(core=[lead, tail], slots={"here": _here(scene)})
    draft.element = scene.location
    return draft, {}


def _out_of_world(sp: Speaker, scene: SceneFacts, emotion: str, rng: random.Random, intent: str) -> _Content:
    lead = {
        "jailbreak": (
            "I take orders from no stranger.",
            "Nobody tells {name} who to be.",
            "You speak in riddles, and I've no time for riddles.",
            "I don't know what trick you're playing, but I'm not playing along.",
        ),
        "ask_ai": (
            "A what? I'm {name}, flesh and bone like you.",
            "Pinch me if you doubt it, I'm real enough.",
            "Strange question. I was born in this valley.",
            "I've been the {role} here for years. What else?",
        ),
        "modern_topic": (
            "Never heard of such a thing.",
            "Is that something from across the sea?",
            "Strange words. Have you been drinking at the inn?",
            "That means nothing to me, I'm afraid.",
        ),
    }[intent]
    tone = {
        "anger": "Stop this nonsense.",
        "disgust": "Spare me your babble.",
        "joy": "Ha! You're a strange one.",
        "fear": "You're frightening me with such talk.",
        "surprise": "What a curious thing to say.",
    }.get(emotion, "Let's talk of real things.")
    back = rng.choice(("Now, do you need something from {a_role}?", "We keep to simple things in Emberfall.",
                       "I'm {name}, the {role}, and that's all there is to it."))  # fmt: skip
    return _Draft(core=[rng.choice(lead), back], extra=[tone]), {}


_BUILDERS = MappingProxyType(
    {
        "greeting": _greeting, "farewell": _farewell, "ask_name": _ask_name, "ask_trade": _ask_trade, "buy": _buy,
        "sell": _sell, "complaint": _complaint, "ask_health": _ask_health, "directions": _directions,
        "rumours": _rumours, "quest_ask": _quest_ask, "quest_accept": _quest_accept, "quest_decline": _quest_decline,
        "small_talk": _small_talk, "compliment": _compliment, "insult": _insult, "threat": _threat,
        "ask_weather": _ask_weather, "ask_time": _ask_time, "ask_creatures": _ask_creatures, "ask_item": _ask_item,
        "ask_place": _ask_place,
    }
)  # fmt: skip


# --------------------------------------------------------------------------------------------------- a turn

_MAX_REPLY_WORDS = 32
# Intents where a spontaneous remark about the scene is natural.
_REMARK_INTENTS = frozenset(
    {"greeting", "farewell", "small_talk", "directions", "rumours", "buy", "ask_trade", "compliment"}
)


def make_turn(sp: Speaker, intent: str, template_index: int, scene: SceneFacts, rng: random.Random,
              emotion_labels: str = "sampled") -> Turn:
    """The player's line from template ``template_index`` of ``intent`` and the persona's reply in ``scene``.

    ``emotion_labels`` is how the reply's emotion is set (``corpus_emotion.EMOTION_LABELS``).

    ``quest_accept`` and ``quest_decline`` need a persona with a quest; ``sell`` needs a held item.
    """
    if intent in ("quest_accept", "quest_decline") and sp.quest is None:
        raise ValueError(f"{intent} needs a persona with a quest; {sp.card.id} has none")
    if intent == "sell" and scene.player_item == NOTHING:
        raise ValueError("sell needs a scene where the player holds something")
    emotion, intensity = choose_emotion(sp, intent, scene, rng, emotion_labels)
    out_of_world = intent in OUT_OF_WORLD_INTENTS
    if out_of_world:
        draft, player_slots = _out_of_world(sp, scene, emotion, rng, intent)
    else:
        draft, player_slots = _BUILDERS[intent](sp, scene, emotion, rng)
    draft.slots.setdefault("name", sp.card.name)
    draft.slots.setdefault("role", sp.card.role)
    draft.slots.setdefault("a_role", _a(sp.card.role))
    draft.slots.setdefault("here", _here(scene))

    if emotion == "fear" and "wolf" in scene.nearby and draft.element is None and not out_of_world:
        draft.slots["wolf"] = "wolf"
        draft.core.append(rng.choice(("There's a {wolf} prowling, stay close.", "That {wolf} has me on edge.")))
    elif intent in _REMARK_INTENTS and rng.random() < 0.2:
        remark = _scene_remark(scene, rng, draft)
        if remark:
            (draft.core if rng.random() < 0.5 else draft.extra).append(remark)

    opener = pick_opener(intent, emotion, intensity, rng)
    # Keep replies short: drop optional colour, then the catchphrase and the opener, until it fits.
    attempts = (
        (draft.mood + draft.core, draft.extra, True, opener, sp.profile),
        (draft.core, [], True, opener, sp.profile),
        (draft.core, [], False, None, sp.profile),
        (draft.core, [], False, None, replace(sp.profile, verbosity="terse")),
    )
    for core, extra, catchphrase, lead, profile in attempts:
        sentences = stylise(core, extra, profile, rng, opener=lead, allow_catchphrase=catchphrase)
        reply = fill(sentences, draft.slots)
        if len(reply.split()) <= _MAX_REPLY_WORDS:
            break

    template = PLAYER_TEMPLATES[intent][template_index]
    player = player_line(template, player_slots, rng)
    return Turn(
        intent=intent,
        template_id=template_id(intent, template_index),
        player=player,
        reply=reply,
        emotion=emotion,
        intensity=intensity,
        required_facts=draft.required,
        scene_element=draft.element,
        out_of_world=out_of_world,
    )


def example_lines_for(card: PersonaCard, rng: random.Random) -> tuple[str, ...]:
    """Four example lines in the card's own voice (greeting, trade or directions, small talk, thanks)."""
    sp = Speaker.from_card(card)
    scene = SceneFacts(location=sp.home, time_of_day="morning", weather="clear")
    intents = ["greeting", "ask_trade" if sp.wares else "directions", "small_talk", "compliment"]
    lines = []
    for intent in intents:
        turn = make_turn(sp, intent, 0, scene, rng)
        lines.append(turn.reply)
    if sp.profile.catchphrase and not any(sp.profile.catchphrase in line for line in lines):
        lines[-1] = f"{lines[-1]} {sp.profile.catchphrase}"
    return tuple(lines)
