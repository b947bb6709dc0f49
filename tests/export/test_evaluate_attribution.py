"""The persona-attribution classifier: separable personas are told apart, controls score low, no leakage."""

from __future__ import annotations

import numpy as np
import pytest

from export.eval_attribution import FeatureConfig, PersonaClassifier, chance_level, hits_at_1

_SMITH = [
    "Aye, lass, the blade is sharp.",
    "Nae haggling, lad. Mind the edge.",
    "Aye, forged this morning. Mind the edge.",
    "Out of the heat, lass.",
    "Aye, steel is honest, lad.",
    "Nae, lad, the forge is hot.",
]
_MERCHANT = [
    "Indeed, esteemed customer, a bargain!",
    "Splendid wares, esteemed customer, truly.",
    "Indeed, the finest silks in the valley.",
    "A bargain, I assure you, esteemed friend.",
    "Indeed, prices are fair, esteemed customer.",
    "Truly splendid, I assure you.",
]
_CHILD = [
    "Guess what, I found a frog!",
    "Wow, guess what, mister?",
    "I'm not allowed near the river, wow!",
    "Guess what, the goat ate my shoe!",
    "Wow, can I see your sword, mister?",
    "Mister, guess what happened!",
]


def _lines() -> list[tuple[str, str]]:
    return [("smith", t) for t in _SMITH] + [("merchant", t) for t in _MERCHANT] + [("child", t) for t in _CHILD]


def _bag_of_letters(texts) -> np.ndarray:
    """A toy sentence encoder (letter counts) standing in for MiniLM."""
    out = np.zeros((len(texts), 26), dtype=np.float32)
    for row, text in enumerate(texts):
        for ch in text.lower():
            if "a" <= ch <= "z":
                out[row, ord(ch) - 97] += 1
    return out


@pytest.mark.parametrize(
    "features", [FeatureConfig(), FeatureConfig(max_n=1, embedding_weight=0.2), FeatureConfig(max_n=1)]
)
def test_in_role_replies_are_attributed_and_swapped_ones_are_not(features: FeatureConfig) -> None:
    clf = PersonaClassifier(_bag_of_letters, features, folds=1).fit(_lines())
    replies = ["Aye, lass, mind the edge.", "Indeed, esteemed customer, a bargain.", "Guess what, mister? Wow!"]
    truth = [clf.index(p) for p in ("smith", "merchant", "child")]
    scores = clf.scores(replies)
    assert hits_at_1(scores, truth) == 1.0
    swapped = [clf.index(p) for p in ("merchant", "child", "smith")]
    assert hits_at_1(scores, swapped) == 0.0


def test_cross_fitting_never_scores_a_line_with_centroids_built_from_it() -> None:
    lines = _lines() + [("merchant", "qqq zzz")]  # words that occur in no other line
    leaky = PersonaClassifier(None, FeatureConfig(), folds=1).fit(lines)
    assert leaky.scores(["qqq zzz"])[0, leaky.index("merchant")] > 0.0
    fitted = PersonaClassifier(None, FeatureConfig(), folds=2).fit(lines)
    held_out = fitted.scores(["qqq zzz"], paired_reference=["qqq zzz"])
    assert np.all(held_out == 0.0)  # the only lines with these words were in the held-out fold


def test_candidate_mask_restricts_the_choice_to_the_pool_plus_the_true_persona() -> None:
    clf = PersonaClassifier(None, FeatureConfig(), folds=1).fit(_lines())
    mask = clf.candidate_mask(["child", "smith"], pool=["smith"])
    assert mask.tolist() == [
        [True, False, True],  # labels are sorted: child, merchant, smith
        [False, False, True],
    ]
    assert chance_level(mask) == pytest.approx((1 / 2 + 1) / 2)


def test_hits_at_1_among_candidates_by_hand() -> None:
    scores = np.array([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])
    assert hits_at_1(scores, [1, 1]) == 0.0
    allowed = np.array([[False, True, True], [True, True, True]])
    assert hits_at_1(scores, [1, 1], allowed) == 0.5
    with pytest.raises(ValueError):
        hits_at_1(scores, [0, 0], allowed)  # the first row's true class is not a candidate


def test_classifier_rejects_bad_setups() -> None:
    with pytest.raises(ValueError):
        PersonaClassifier(None, FeatureConfig(embedding_weight=0.5))  # embeddings without an encoder
    with pytest.raises(ValueError):
        FeatureConfig(ngram_weight=0.0, embedding_weight=0.0)
    with pytest.raises(ValueError):
        PersonaClassifier(None).fit([("smith", "Aye.")])  # one persona
    with pytest.raises(ValueError):
        PersonaClassifier(None).scores(["Aye."])  # not fitted
