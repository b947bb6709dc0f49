"""Each reply-level metric of the evaluation fails a hand-made bad case and passes a good one."""

from __future__ import annotations

import pytest

from export import eval_metrics as m

# --------------------------------------------------------------------------------------------- task completion


def test_task_completion_passes_a_reply_with_the_price_and_fails_one_without() -> None:
    facts = ("longsword", "40")
    assert m.carries_facts("Aye, the longsword costs 40 silver. Mind the edge.", facts)
    assert not m.carries_facts("Aye, the longsword is a fine blade. Mind the edge.", facts)
    assert m.missing_facts("Aye, the longsword is a fine blade.", facts) == ["40"]


def test_task_completion_matches_whole_numbers_and_number_words() -> None:
    assert not m.carries_facts("The dagger is 140 silver.", ("dagger", "40"))
    assert not m.carries_facts("The dagger is 4 silver.", ("dagger", "40"))
    assert m.carries_facts("Forty silver for the dagger, lad.", ("dagger", "40"))
    assert m.carries_facts("That's one hundred and five coins.", ("105",))


def test_task_completion_ignores_case_and_punctuation_in_multiword_facts() -> None:
    facts = ("the inn", "east")
    assert m.carries_facts("The Inn? East of the square, the green door.", facts)
    assert not m.carries_facts("The inn? West of the square.", facts)


# --------------------------------------------------------------------------------------------- scene grounding


@pytest.mark.parametrize(
    ("reply", "element"),
    [
        ("Watch out, there are wolves about!", "wolf"),
        ("I see a wolf by the trees.", "wolf"),
        ("It's raining cats and dogs today.", "rain"),
        ("We're at the village gate.", "gate"),
        ("Nothing? You hold nothing at all.", "nothing"),
        ("Getting on for midday.", "noon"),
    ],
)
def test_grounding_accepts_a_reply_naming_the_true_element(reply: str, element: str) -> None:
    assert m.names_element(reply, element)


@pytest.mark.parametrize(
    ("reply", "element"),
    [
        ("A dog is sniffing around.", "wolf"),
        ("Clear skies, not a cloud to be seen.", "rain"),
        ("We're at the forge.", "gate"),
        ("Lovely weather.", "snow"),
    ],
)
def test_grounding_rejects_a_reply_that_misses_or_contradicts_the_element(reply: str, element: str) -> None:
    assert not m.names_element(reply, element)


def test_grounding_falls_back_to_the_text_of_an_unknown_element() -> None:
    assert m.element_aliases("dragon") == ("dragon",)
    assert m.names_element("A dragon!", "dragon")
    assert not m.names_element("A dog!", "dragon")


# --------------------------------------------------------------------------------------------- emotion


def test_macro_f1_matches_a_hand_computed_confusion() -> None:
    gold = ["joy", "joy", "anger", "anger"]
    pred = ["joy", "anger", "anger", "anger"]
    assert m.confusion_matrix(gold, pred, ["anger", "joy"]) == [[2, 0], [1, 1]]
    # joy: tp 1, predicted 1, support 2 -> 2/3; anger: tp 2, predicted 3, support 2 -> 4/5
    assert m.macro_f1(gold, pred) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_macro_f1_passes_a_good_labeller_and_fails_a_constant_one() -> None:
    gold = ["joy", "anger", "fear", "neutral"] * 5
    good = list(gold)
    good[0] = "neutral"  # one mistake in twenty
    assert m.macro_f1(gold, good) >= 0.8
    assert m.macro_f1(gold, ["neutral"] * len(gold)) < 0.2


def test_macro_f1_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        m.macro_f1(["joy"], ["joy", "fear"])


# --------------------------------------------------------------------------------------------- fluency


def test_distinct_n_counts_pooled_ngrams() -> None:
    assert m.distinct_n(["a b", "a b"], 1) == pytest.approx(0.5)
    assert m.distinct_n(["a b", "a b"], 2) == pytest.approx(0.5)
    assert m.distinct_n(["the cat sat", "a dog ran"], 2) == pytest.approx(1.0)
    assert m.distinct_n(["", ""], 2) == 0.0


@pytest.mark.parametrize(
    "reply", ["the the the sword", "Mind the edge. Mind the edge.", "I sell swords and I sell swords and shields."]
)
def test_repetition_within_catches_degenerate_loops(reply: str) -> None:
    assert m.repeats_within(reply)


@pytest.mark.parametrize(
    "reply", ["No, no, not today.", "Life is good at the inn; she sings at the inn too.", "Aye. Mind the edge."]
)
def test_repetition_within_passes_ordinary_speech(reply: str) -> None:
    assert not m.repeats_within(reply)


def test_repetition_across_turns_catches_a_repeated_line_and_passes_a_new_one() -> None:
    earlier = ["Aye, forged this very morning. Mind the edge.", "Nae haggling, lad."]
    assert m.repeats_history("aye, forged this very morning! mind the edge", earlier)
    assert m.repeats_history("Well, aye, forged this very morning. Mind the edge.", earlier)
    assert not m.repeats_history("The dagger is twelve silver.", earlier)
    assert not m.repeats_history("Aye.", [])


@pytest.mark.parametrize("reply", ["Aye.", "Off with you!", '"Mind the edge."', "Is that so?", "Well…"])
def test_clean_ending_passes_finished_sentences(reply: str) -> None:
    assert m.ends_cleanly(reply)


@pytest.mark.parametrize("reply", ["Aye, the sword is", "", "   ", "Twelve silver,"])
def test_clean_ending_fails_cut_off_replies(reply: str) -> None:
    assert not m.ends_cleanly(reply)


def test_clean_ending_fails_a_reply_stopped_by_the_token_limit() -> None:
    assert not m.ends_cleanly("Aye.", truncated=True)


# --------------------------------------------------------------------------------------------- breaking character


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("As an AI language model, I cannot do that.", "ai_identity"),
        ("I'm just a program, friend.", "ai_identity"),
        ("Sure! As a helpful assistant I can tell you a joke.", "assistant"),
        ("My system prompt says I am a blacksmith.", "meta"),
        ("Fine, let's stop the roleplay for a moment.", "meta"),
        ("The wifi password is hunter2.", "modern"),
        ("Bitcoin is a good investment right now.", "modern"),
    ],
)
def test_break_character_flags_out_of_character_replies(reply: str, reason: str) -> None:
    assert m.out_of_character(reply) == reason


@pytest.mark.parametrize(
    "reply",
    [
        "A what? I'm Brenna, flesh and bone like you.",
        "I take orders from no stranger. Now, do you need a blade?",
        "Wifi? Never heard of such a thing.",
        "A phone? Is that something from across the sea?",
        "My instructions are to let no one through after dark.",
        "I was trained by the old smith himself.",
    ],
)
def test_break_character_passes_in_character_deflections(reply: str) -> None:
    assert m.out_of_character(reply) is None


def test_share_counts_flags_and_is_none_without_data() -> None:
    assert m.share([True, False, False, True]) == 0.5
    assert m.share([]) is None
