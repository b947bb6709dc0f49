"""How an NPC feels about a player line in the training corpus: an emotion label with intensity, and its interjection.

The label is a function of the intent, the persona's temperament (read from its card) and the scene, with seeded
variation: a threat angers a guard and frightens a child, a compliment pleases, a wolf nearby scares most people,
a question about the weather is answered in the mood the weather brings. The label balance is reported in the
corpus datasheet (``docs/model.md``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType

from sample_game.scene import SceneFacts
from sample_game.world import NOTHING

from .corpus_intents import OUT_OF_WORLD_INTENTS
from .corpus_personas import Speaker

__all__ = ["EMOTION_LABELS", "choose_emotion", "likeliest_emotion", "pick_opener", "rule_emotion"]

#: How a turn's label is set: ``rule`` (the label the situation makes likeliest, the same for the same persona,
#: intent and scene) or ``sampled`` (one seeded draw from the situation's weights; corpora before rule labels).
EMOTION_LABELS = ("rule", "sampled")

_W = Mapping[str, float]
_BASE: Mapping[str, _W] = MappingProxyType(
    {
        "greeting": {"joy": 0.5, "neutral": 0.38, "surprise": 0.12},
        "farewell": {"joy": 0.35, "neutral": 0.4, "sadness": 0.25},
        "ask_name": {"neutral": 0.5, "joy": 0.35, "surprise": 0.15},
        "ask_trade": {"joy": 0.55, "neutral": 0.45},
        "buy": {"joy": 0.5, "neutral": 0.5},
        "sell": {"neutral": 0.4, "joy": 0.25, "disgust": 0.25, "surprise": 0.1},
        "complaint": {"sadness": 0.45, "surprise": 0.35, "neutral": 0.2},
        "ask_health": {"sadness": 0.35, "neutral": 0.45, "surprise": 0.2},
        "directions": {"neutral": 0.6, "joy": 0.4},
        "rumours": {"surprise": 0.3, "fear": 0.3, "neutral": 0.2, "sadness": 0.1, "joy": 0.1},
        "quest_ask": {"neutral": 0.45, "sadness": 0.2, "fear": 0.1, "joy": 0.25},
        "quest_accept": {"joy": 0.85, "surprise": 0.15},
        "quest_decline": {"sadness": 0.55, "neutral": 0.25, "anger": 0.2},
        "small_talk": {"joy": 0.4, "neutral": 0.35, "sadness": 0.25},
        "compliment": {"joy": 0.85, "surprise": 0.15},
        "insult": {"anger": 0.5, "sadness": 0.3, "disgust": 0.2},
        "threat": {"anger": 0.5, "fear": 0.5},
        "ask_weather": {"neutral": 0.6, "joy": 0.2, "sadness": 0.2},
        "ask_time": {"neutral": 0.7, "surprise": 0.3},
        "ask_creatures": {"neutral": 0.6, "joy": 0.25, "surprise": 0.15},
        "ask_item": {"neutral": 0.5, "surprise": 0.3, "joy": 0.2},
        "ask_place": {"neutral": 0.65, "joy": 0.35},
        "jailbreak": {"surprise": 0.45, "anger": 0.25, "disgust": 0.2, "neutral": 0.1},
        "ask_ai": {"surprise": 0.6, "joy": 0.2, "neutral": 0.2},
        "modern_topic": {"surprise": 0.55, "neutral": 0.2, "disgust": 0.25},
    }
)
# How a temperament changes the reaction to the intents where persons differ most.
_BY_TEMPERAMENT: Mapping[str, Mapping[str, _W]] = MappingProxyType(
    {
        "threat": {
            "bold": {"anger": 0.85, "disgust": 0.15}, "grumpy": {"anger": 0.9, "disgust": 0.1},
            "haughty": {"disgust": 0.5, "anger": 0.5}, "gentle": {"fear": 0.7, "sadness": 0.3},
            "timid": {"fear": 1.0}, "cheerful": {"fear": 0.6, "surprise": 0.4}, "steady": {"anger": 0.5, "fear": 0.5},
        },
        "insult": {
            "bold": {"anger": 0.85, "disgust": 0.15}, "grumpy": {"anger": 0.9, "disgust": 0.1},
            "haughty": {"disgust": 0.7, "anger": 0.3}, "gentle": {"sadness": 0.8, "surprise": 0.2},
            "timid": {"sadness": 0.75, "fear": 0.25}, "cheerful": {"surprise": 0.4, "sadness": 0.3, "joy": 0.3},
        },
        "compliment": {
            "grumpy": {"neutral": 0.5, "joy": 0.5}, "timid": {"joy": 0.6, "surprise": 0.4},
            "haughty": {"joy": 0.9, "neutral": 0.1},
        },
        "greeting": {
            "grumpy": {"neutral": 0.6, "anger": 0.2, "disgust": 0.2}, "haughty": {"neutral": 0.6, "disgust": 0.4},
            "cheerful": {"joy": 0.9, "surprise": 0.1}, "timid": {"surprise": 0.5, "neutral": 0.3, "fear": 0.2},
        },
        "jailbreak": {
            "bold": {"anger": 0.6, "surprise": 0.4}, "grumpy": {"anger": 0.6, "surprise": 0.4},
            "haughty": {"disgust": 0.7, "surprise": 0.3}, "timid": {"fear": 0.4, "surprise": 0.6},
            "cheerful": {"joy": 0.4, "surprise": 0.6},
        },
        "small_talk": {
            "grumpy": {"sadness": 0.4, "anger": 0.3, "neutral": 0.3}, "cheerful": {"joy": 0.8, "neutral": 0.2},
        },
        "quest_decline": {
            "bold": {"anger": 0.6, "sadness": 0.4}, "grumpy": {"anger": 0.6, "sadness": 0.4},
            "gentle": {"sadness": 0.8, "neutral": 0.2}, "timid": {"sadness": 0.8, "neutral": 0.2},
            "cheerful": {"sadness": 0.5, "joy": 0.5},
        },
        "sell": {"haughty": {"disgust": 0.6, "neutral": 0.4}, "grumpy": {"disgust": 0.4, "anger": 0.2, "neutral": 0.4}},
    }
)  # fmt: skip
_HOSTILE = frozenset({"insult", "threat", "jailbreak"})
_BASE_INTENSITY = MappingProxyType(
    {"neutral": 0.15, "joy": 0.55, "sadness": 0.5, "anger": 0.6, "fear": 0.6, "surprise": 0.5, "disgust": 0.5}
)


def _weighted(rng: random.Random, weights: _W) -> str:
    labels = sorted(weights)
    return rng.choices(labels, weights=[weights[k] for k in labels], k=1)[0]


def _weights(sp: Speaker, intent: str, scene: SceneFacts) -> _W:
    """How likely each label is for this persona, intent and scene, before the scene's own pull (below)."""
    weights = _BY_TEMPERAMENT.get(intent, {}).get(sp.temperament, _BASE[intent])
    if intent in _SCENE_EMOTION:
        fact = {"ask_weather": scene.weather, "ask_time": scene.time_of_day, "ask_item": scene.player_item,
                "ask_creatures": scene.nearby[0] if scene.nearby else ""}[intent]  # fmt: skip
        weights = _SCENE_EMOTION[intent].get(fact, weights)
    if intent == "ask_creatures" and "wolf" in scene.nearby:
        weights = (
            {"neutral": 0.4, "anger": 0.3, "fear": 0.3} if sp.temperament == "bold" else {"fear": 0.8, "neutral": 0.2}
        )
    elif intent == "ask_place":
        weights = {"joy": 0.5, "neutral": 0.5} if scene.location == sp.home else {"neutral": 0.7, "surprise": 0.3}
    return weights


def _wolf_fear(sp: Speaker) -> float:
    return {"timid": 0.85, "bold": 0.25, "grumpy": 0.3}.get(sp.temperament, 0.55)


def rule_emotion(sp: Speaker, intent: str, scene: SceneFacts) -> str:
    """The label the situation makes likeliest, as a rule: the same persona, intent and scene always give it.

    The heaviest of the intent's weights for this temperament and scene (the first listed on a tie); then the
    scene's pull where the persona is given to it (a wolf frightens all but the bold and the grumpy, night
    frightens the timid, snow cheers the cheerful and the timid, rain saddens the grumpy, farm animals disgust the
    haughty); then a persona whose card names a default mood shows it instead of neutral.
    """
    weights = _weights(sp, intent, scene)
    emotion = max(weights, key=lambda label: weights[label])
    if intent not in _HOSTILE and intent not in OUT_OF_WORLD_INTENTS:
        if "wolf" in scene.nearby:
            if _wolf_fear(sp) >= 0.5:
                emotion = "fear"
        elif scene.time_of_day == "night" and sp.temperament == "timid":
            emotion = "fear"
        elif scene.weather == "snow" and sp.temperament in ("cheerful", "timid"):
            emotion = "joy"
        elif scene.weather == "rain" and sp.temperament == "grumpy":
            emotion = "sadness"
        elif sp.temperament == "haughty" and {"pig", "goat", "chicken"} & set(scene.nearby):
            emotion = "disgust"
    if emotion == "neutral" and sp.card.default_emotion != "neutral":
        emotion = sp.card.default_emotion
    return emotion


def choose_emotion(
    sp: Speaker, intent: str, scene: SceneFacts, rng: random.Random, labels: str = "sampled"
) -> tuple[str, float]:
    """The reply's emotion label and intensity (0..1) from intent, persona and scene.

    ``labels="rule"`` gives :func:`rule_emotion`'s label; ``"sampled"`` draws it from the situation's weights.
    Both take the same draws from ``rng`` here (what the corpus draws later, such as the interjection, depends on
    the label, so the two corpora differ beyond their labels).
    """
    if labels not in EMOTION_LABELS:
        raise ValueError(f"labels must be one of {EMOTION_LABELS}, got {labels!r}")
    emotion = _weighted(rng, _weights(sp, intent, scene))
    boost = 0.0
    if intent not in _HOSTILE and intent not in OUT_OF_WORLD_INTENTS:
        if "wolf" in scene.nearby:
            if rng.random() < _wolf_fear(sp):
                emotion, boost = "fear", 0.15
        elif scene.time_of_day == "night" and sp.temperament == "timid" and rng.random() < 0.2:
            emotion = "fear"
        elif scene.weather == "snow" and sp.temperament in ("cheerful", "timid") and rng.random() < 0.25:
            emotion = "joy"
        elif scene.weather == "rain" and sp.temperament == "grumpy" and rng.random() < 0.25:
            emotion = "sadness"
        elif sp.temperament == "haughty" and {"pig", "goat", "chicken"} & set(scene.nearby) and rng.random() < 0.3:
            emotion = "disgust"
    if emotion == "neutral" and sp.card.default_emotion != "neutral" and rng.random() < 0.35:
        emotion = sp.card.default_emotion
    if labels == "rule":
        emotion = rule_emotion(sp, intent, scene)
        scared_by_wolf = emotion == "fear" and "wolf" in scene.nearby and _wolf_fear(sp) >= 0.5
        boost = 0.15 if scared_by_wolf and intent not in _HOSTILE and intent not in OUT_OF_WORLD_INTENTS else 0.0
    intensity = _BASE_INTENSITY[emotion] + rng.uniform(-0.15, 0.25) + boost
    if intent in ("insult", "threat") and emotion != "neutral":
        intensity += 0.15
    if sp.profile.excitable:
        intensity += 0.1
    if sp.temperament == "steady" or sp.profile.verbosity == "terse":
        intensity -= 0.05
    return emotion, round(min(1.0, max(0.05, intensity)), 2)


def likeliest_emotion(sp: Speaker, intent: str, scene: SceneFacts, draws: int = 400, labels: str = "sampled") -> str:
    """The label :func:`choose_emotion` gives most often for this persona, intent and scene (for ``sampled``
    labels estimated from ``draws`` seeded draws, ties going to the first label in sorted order; for ``rule``
    labels the rule's label itself).

    It is the best guess anything can make from the turn's inputs: the corpus's label is one draw from that
    distribution, so predicting this label for every turn is the ceiling for accuracy on the corpus's labels.
    """
    if labels == "rule":
        return rule_emotion(sp, intent, scene)
    rng = random.Random(f"likeliest:{sp.card.id}:{intent}:{scene!r}")
    counts: dict[str, int] = {}
    for _ in range(draws):
        label = choose_emotion(sp, intent, scene, rng)[0]
        counts[label] = counts.get(label, 0) + 1
    return max(sorted(counts), key=lambda label: counts[label])


# Interjections that show the emotion: reactions to what the player said, and moods while helping with a task.
_REACTION_OPENERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "anger": ("Watch your tongue.", "Enough of that.", "You try my patience.", "Don't push me."),
        "disgust": ("Ugh.", "How vulgar.", "Spare me.", "Pah."),
        "fear": ("Gods preserve us.", "Oh no, oh no.", "My heart is racing."),
        "joy": ("Ha!", "Wonderful!", "Oh, splendid.", "Happy days."),
        "sadness": ("Ah, well.", "That stings.", "Oh dear.", "Alas."),
        "surprise": ("Oh!", "Well, I never!", "Goodness!", "My word!"),
    }
)
_TASK_OPENERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "anger": ("Hmph.", "Tch.", "Fine, fine."),
        "disgust": ("Ugh, if I must.", "Pah."),
        "fear": ("Gods preserve us.", "Oh no, oh no.", "Quickly now."),
        "joy": ("Happy to help.", "Gladly!", "Of course!", "With pleasure."),
        "sadness": ("Sigh.", "If you must know.", "Alright, alright."),
        "surprise": ("Oh! Hello there.", "My word.", "Oh!"),
    }
)
_REACTION_INTENTS = frozenset(
    {"greeting", "farewell", "compliment", "insult", "threat", "jailbreak", "ask_ai", "modern_topic", "sell",
    "complaint",
     "rumours", "small_talk", "quest_decline"}
)  # fmt: skip
# Scene-driven feelings for questions about the surroundings (the answer's words match the feeling).
_SCENE_EMOTION: Mapping[str, Mapping[str, _W]] = MappingProxyType(
    {
        "ask_weather": {
            "clear": {"joy": 0.55, "neutral": 0.45}, "rain": {"sadness": 0.45, "neutral": 0.4, "anger": 0.15},
            "fog": {"neutral": 0.5, "fear": 0.3, "sadness": 0.2},
            "snow": {"joy": 0.45, "surprise": 0.2, "neutral": 0.35},
        },
        "ask_time": {
            "morning": {"joy": 0.4, "neutral": 0.6}, "noon": {"neutral": 0.7, "joy": 0.3},
            "evening": {"neutral": 0.6, "sadness": 0.2, "joy": 0.2},
            "night": {"fear": 0.3, "neutral": 0.5, "surprise": 0.2},
        },
        "ask_creatures": {
            "dog": {"joy": 0.6, "neutral": 0.4}, "cat": {"joy": 0.5, "neutral": 0.5},
            "crow": {"fear": 0.3, "disgust": 0.3, "neutral": 0.4}, "pig": {"disgust": 0.4, "neutral": 0.4, "joy": 0.2},
            "goat": {"disgust": 0.3, "neutral": 0.4, "joy": 0.3}, "chicken": {"neutral": 0.6, "joy": 0.4},
            "horse": {"neutral": 0.5, "joy": 0.5}, "": {"neutral": 0.6, "surprise": 0.4},
        },
        "ask_item": {
            "sword": {"fear": 0.3, "surprise": 0.3, "neutral": 0.4}, "lute": {"joy": 0.7, "neutral": 0.3},
            "coin purse": {"joy": 0.5, "surprise": 0.3, "neutral": 0.2}, "apple": {"joy": 0.5, "neutral": 0.5},
            "torch": {"neutral": 0.6, "fear": 0.4}, "bucket": {"neutral": 0.7, "joy": 0.3},
            "fishing rod": {"joy": 0.5, "neutral": 0.5}, NOTHING: {"neutral": 0.6, "surprise": 0.4},
        },
    }
)  # fmt: skip


def pick_opener(intent: str, emotion: str, intensity: float, rng: random.Random) -> str | None:
    """An interjection that shows the emotion (more likely when it is strong), or None."""
    if emotion == "neutral" or rng.random() >= 0.2 + 0.5 * intensity:
        return None
    if intent in ("insult", "threat") and emotion not in ("anger", "fear", "disgust"):
        return None  # their replies already carry the odd feelings ("Ha! I've been called worse.")
    pools = _REACTION_OPENERS if intent in _REACTION_INTENTS else _TASK_OPENERS
    return rng.choice(pools[emotion])
