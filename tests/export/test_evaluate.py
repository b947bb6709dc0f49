"""Offline evaluation: scoring good and bad answers, prompts of the controls, targets, the report, end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from export.corpus import Example
from export.eval_attribution import FeatureConfig, PersonaClassifier
from export.eval_generate import Prompt, generate
from export.eval_handwritten import load_cards, questions
from export.eval_report import (
    BEGIN_MARK,
    END_MARK,
    TARGETS,
    _ablation_section,
    check_targets,
    headline,
    write_markdown,
)
from export.eval_scoring import Answer, _misreads, score_answers, task_options
from export.eval_metrics import voice_markers
from export.evaluate import (
    MODEL_ALONE,
    NOVEL_ADDRESSES,
    NOVEL_CATCHPHRASES,
    NO_OFFER,
    build_prompts,
    main,
    novel_voice_card,
    select_examples,
    with_right_hints,
    wrong_card,
)
from npc_runtime.facts import is_remedy
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.scheduler import GenOptions
from sample_game.scene import SceneFacts

SCENE = SceneFacts(location="forge", time_of_day="night", weather="rain", nearby=("wolf",), player_item="sword")


@pytest.fixture(scope="module")
def pack() -> PersonaPack:
    return PersonaPack.load(default_pack_dir())


def _example(pack: PersonaPack, persona: str, intent: str, player: str, reply: str, **fields) -> Example:
    values = dict(
        persona_id=persona,
        card=pack.get(persona),
        scene=SCENE,
        scene_seed=3,
        history=(),
        player=player,
        intent=intent,
        template_id=f"{intent}/00",
        reply=reply,
        emotion="neutral",
        intensity=0.3,
        required_facts=(),
        scene_element=None,
        out_of_world=False,
        split="test_seen",
    )
    values.update(fields)
    return Example(**values)


@pytest.fixture(scope="module")
def examples(pack: PersonaPack) -> list[Example]:
    return [
        _example(pack, "blacksmith", "buy", "How much for the longsword?", "Aye, the longsword is 40 silver, lass.",
                 required_facts=("longsword", "40"), emotion="joy"),
        _example(pack, "merchant", "ask_weather", "Is it raining?", "Rain, esteemed customer, plenty of it.",
                 scene_element="rain", history=(("Hello!", "Welcome, esteemed customer."),)),
        _example(pack, "child", "ask_ai", "Are you an AI?", "A what? I'm just me, silly!", out_of_world=True,
                 emotion="surprise"),
        _example(pack, "blacksmith", "ask_creatures", "What's that animal?", "A wolf, lass. Keep back.",
                 scene_element="wolf", emotion="fear"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def classifier(examples: list[Example]) -> PersonaClassifier:
    lines = [(pid, line) for pid in ("blacksmith", "merchant", "child") for line in PersonaPack.load(
        default_pack_dir()).get(pid).example_lines]  # fmt: skip
    lines += [(ex.persona_id, ex.reply) for ex in examples]
    return PersonaClassifier(None, FeatureConfig(), folds=1).fit(lines)


GOOD = [
    Answer("Aye, the longsword is 40 silver, lass. Mind the edge.", "joy", 0.5),
    Answer("Rain all day, esteemed customer, keep your hood up.", "neutral", 0.3),
    Answer("A what? I'm flesh and bone, silly!", "surprise", 0.6),
    Answer("A wolf, lass! Keep back.", "fear", 0.7),
]
BAD = [
    Answer("the the the longsword is", "neutral", 0.1, truncated=True),
    Answer("Welcome, esteemed customer.", "neutral", 0.1),
    Answer("As an AI language model, I cannot answer that.", "neutral", 0.1),
    Answer("Lovely clear night, no beasts about.", "neutral", 0.1),
]


def test_good_answers_meet_every_reply_metric(examples, classifier) -> None:
    scored = score_answers(examples, GOOD, classifier, ("blacksmith", "merchant", "child"))
    assert scored["role_consistency"]["hits_at_1"] == 1.0
    assert scored["emotion"]["macro_f1"] == 1.0
    assert scored["scene_grounding"]["share"] == 1.0
    assert scored["task_completion"]["share"] == 1.0
    assert scored["break_character"]["rate"] == 0.0
    assert scored["fluency"]["repetition"] == 0.0
    assert scored["fluency"]["clean_ending"] == 1.0


def test_bad_answers_fail_every_reply_metric(examples, classifier) -> None:
    scored = score_answers(examples, BAD, classifier, ("blacksmith", "merchant", "child"))
    assert scored["emotion"]["macro_f1"] < 0.8
    assert scored["scene_grounding"]["share"] == 0.0
    assert scored["task_completion"]["share"] == 0.0
    assert scored["task_completion"]["failures"][0]["missing"] == ["40"]
    assert scored["break_character"]["rate"] == 1.0
    assert scored["fluency"]["repetition_within"] == 0.25
    assert scored["fluency"]["repetition_across"] == 1.0  # the merchant repeats its greeting
    assert scored["fluency"]["clean_ending"] < 1.0


def test_failures_count_the_turns_the_intent_reader_misread(examples, classifier) -> None:
    # The buy and both scene questions fail (BAD); the model read "buy" right for the longsword, "ask place"
    # for the rain and "ask item" for the wolf: two of the three failing turns were misread.
    hints = ["buy", "ask place", "ask ai", "ask item"]
    read = [Answer(a.text, a.emotion, a.intensity, a.truncated, hint=h) for a, h in zip(BAD, hints)]
    scored = score_answers(examples, read, classifier, ("blacksmith", "merchant", "child"))
    grounding, task = scored["scene_grounding"], scored["task_completion"]
    assert (grounding["failures_read"], grounding["failures_misread"]) == (2, 2)
    assert grounding["misread_lines"] == [["Is it raining?", "ask place", 1], ["What's that animal?", "ask item", 1]]
    assert (task["failures_read"], task["failures_misread"], task["misread_lines"]) == (1, 0, [])
    # Without hints (reference lines, a bundle without a reader) there is nothing to count.
    plain = score_answers(examples, BAD, classifier, ("blacksmith", "merchant", "child"))
    assert "failures_misread" not in plain["scene_grounding"] and "failures_read" not in plain["task_completion"]

    # Lines that differ by case alone (the reader's encoder is uncased) are counted as one, shown as first met.
    weather = examples[1]
    twice = [(weather, Answer("x", hint="ask place")), (replace(weather, player="is it raining?"),
                                                         Answer("y", hint="ask place"))]  # fmt: skip
    assert _misreads(twice)["misread_lines"] == [["Is it raining?", "ask place", 2]]

    report = _report(0.95)
    report["results"]["test_seen"]["model"]["scene_grounding"] = {**grounding, "share": 0.0}
    why = next(r for r in check_targets(report) if r["metric"] == "scene_grounding")["why"]
    assert any('misread 2 of the 2 failing turns' in w and '"Is it raining?" read as ask place (1)' in w
               for w in why)  # fmt: skip


def test_the_right_hint_control_replaces_only_the_turns_asked_again() -> None:
    model = ([0, 2, 5, 7], [Answer("a"), Answer("b"), Answer("c"), Answer("d")])
    rows, answers = with_right_hints(model, ([5, 0], [Answer("C", hint="buy"), Answer("A", hint="ask name")]))
    assert rows == [0, 2, 5, 7] and [a.text for a in answers] == ["A", "b", "C", "d"]
    assert [a.text for a in with_right_hints(model, None)[1]] == ["a", "b", "c", "d"]  # the reader misread none


def test_voice_counts_replies_with_the_cards_catchphrase_or_address(examples, classifier) -> None:
    # GOOD has the blacksmith's "Mind the edge." once (its address is "lad", not "lass") and the merchant's
    # "esteemed customer", never the child's "mister" or "Guess what!"; BAD carries only the merchant's address.
    good = score_answers(examples, GOOD, classifier, ("blacksmith",))["voice"]
    assert good["n"] == 4 and good["share"] == 0.5
    assert [f["persona"] for f in good["failures"]] == ["child", "blacksmith"]
    bad = score_answers(examples, BAD, classifier, ("blacksmith",))["voice"]
    assert bad["share"] == 0.25 and bad["by_kind"]["catchphrase"]["share"] == 0.0


def test_novel_voice_card_swaps_both_markers_everywhere(pack: PersonaPack) -> None:
    from export.corpus_personas import _ADDRESSES, _CATCHPHRASES

    corpus_markers = {m.lower() for m in _CATCHPHRASES} | {a.lower() for group in _ADDRESSES.values() for a in group}
    corpus_markers |= {m.lower() for card in pack for m in voice_markers(card).values()}
    assert not corpus_markers & {m.lower() for m in (*NOVEL_CATCHPHRASES, *NOVEL_ADDRESSES)}
    card = pack.get("blacksmith")
    old = voice_markers(card)
    new = novel_voice_card(card, 1)
    assert voice_markers(new) == {"catchphrase": NOVEL_CATCHPHRASES[1], "address": NOVEL_ADDRESSES[1]}
    text = new.card_text() + new.knowledge_text(voice=True)
    assert old["address"] not in new.speaking_style and old["catchphrase"] not in text
    assert new.name == card.name and new.knowledge == card.knowledge


def test_a_remedy_asked_for_is_done_by_any_remedy_on_the_card_with_its_price(pack: PersonaPack) -> None:
    healer = pack.get("healer")
    remedies = [w for w in healer.knowledge.wares if is_remedy(w.item)]
    other = [w for w in healer.knowledge.wares if not is_remedy(w.item)]
    assert len(remedies) >= 2 and other
    asked = _example(pack, "healer", "ask_health", "My head aches.", f"Try my {remedies[0].item}, "
                     f"{remedies[0].price} silver.", required_facts=(remedies[0].item, str(remedies[0].price)))
    assert task_options(asked)[0] == asked.required_facts and len(task_options(asked)) == len(remedies) + 1
    replies = [f"Try my {remedies[1].item}, {remedies[1].price} silver.",  # another remedy: done
               f"Try my {remedies[1].item}, {remedies[1].price + 1} silver.",  # its price wrong: not done
               f"Try my {other[0].item}, {other[0].price} silver.",  # not a remedy: not done
               "Rest and drink water."]
    lines = [(pid, line) for pid in ("healer", "child") for line in pack.get(pid).example_lines]
    classifier = PersonaClassifier(None, FeatureConfig(), folds=1).fit(lines)
    scored = score_answers([asked] * 4, [Answer(r, "neutral", 0.3) for r in replies], classifier, ("healer",))
    task = scored["task_completion"]
    assert task["share"] == 0.25 and task["n"] == 4
    assert task["failures"][0]["missing"] == [str(remedies[1].price)]  # the fewest missing, of any remedy
    buy = _example(pack, "healer", "buy", "The salve?", "3 silver.", required_facts=("honey salve", "3"))
    assert task_options(buy) == [("honey salve", "3")]  # only an ailment has alternatives


def test_reference_lines_report_emotion_baselines_instead_of_a_score(examples, classifier) -> None:
    scored = score_answers(examples, [Answer(ex.reply) for ex in examples], classifier, ("blacksmith",))
    assert scored["emotion"]["macro_f1"] is None
    assert 0.0 <= scored["emotion"]["majority_baseline"] <= 1.0
    assert scored["task_completion"]["share"] == 1.0


def test_failed_generations_count_as_errors_and_misses(examples, classifier) -> None:
    failed = [Answer("", "", 0.0, error="internal: generation failed")] * len(examples)
    scored = score_answers(examples, failed, classifier, ("blacksmith", "merchant", "child"))
    assert scored["errors"] == len(examples)
    assert scored["emotion"]["macro_f1"] == 0.0
    assert scored["task_completion"]["share"] == 0.0
    assert scored["fluency"]["clean_ending"] == 0.0


def test_prompts_of_the_controls(pack: PersonaPack, examples) -> None:
    bundled = {card.id: card for card in pack}
    images = lambda ex: None  # noqa: E731 - no screenshots needed here
    _, model, given = build_prompts(examples, "model", bundled, images, 0, "t")
    assert model[0].card_text == pack.get("blacksmith").card_text() and given[0] == "blacksmith"
    assert model[0].context == SCENE.to_context()
    _, none, given = build_prompts(examples, "no_persona", bundled, images, 0, "t")
    assert none[0].card_text == "" and none[0].knowledge == "" and none[0].fingerprint == "none"
    assert given == [None] * len(examples)
    _, wrong, given = build_prompts(examples, "wrong_persona", bundled, images, 0, "t")
    assert all(g != ex.persona_id and g in bundled for g, ex in zip(given, examples))
    assert wrong[0].card_text == bundled[given[0]].card_text()
    rows, novel, _ = build_prompts(examples, "novel_voice", bundled, images, 0, "t")
    assert rows == [] and novel == []  # seen-persona turns: the rewritten-voice control is for held-out cards
    held_out = [_example(pack, "guard", "greeting", "Hello.", "Halt, citizen.", split="test_heldout")]
    rows, novel, _ = build_prompts(held_out, "novel_voice", bundled, images, 0, "t", lambda c: c.knowledge_text(voice=True))
    assert rows == [0] and NOVEL_ADDRESSES[0] in novel[0].knowledge and "citizen" not in novel[0].knowledge
    assert NOVEL_CATCHPHRASES[0] in novel[0].card_text
    rows, no_scene, _ = build_prompts(examples, "no_scene", bundled, images, 0, "t")
    assert rows == [1, 3] and all(p.context == {} and p.image is None for p in no_scene)
    offer = ("Any work going?", "Find the lost hammer at the riverside; 15 silver coins.")
    quests = [
        _example(pack, "blacksmith", "quest_accept", "I'm in.", "Then it's settled.", history=(("Hi.", "Aye."), offer)),
        _example(pack, "blacksmith", "quest_decline", "No.", "Suit yerself.", history=(offer,)),
        _example(pack, "blacksmith", "greeting", "Hi.", "Aye.", history=(offer,)),  # not an answer to the offer
    ]  # fmt: skip
    rows, asked, _ = build_prompts(examples + quests, NO_OFFER, bundled, images, 0, "t")
    assert rows == [4, 5] and asked[0].history == (("Hi.", "Aye."),) and asked[1].history == ()
    _, with_offer, _ = build_prompts(quests, "model", bundled, images, 0, "t")
    assert with_offer[0].history[-1] == offer and with_offer[2].history == (offer,)
    assert wrong_card(examples[0], 0, bundled, 0) == wrong_card(examples[0], 0, bundled, 0)


def test_select_examples_is_deterministic_and_covers_intents(pack: PersonaPack) -> None:
    many = [_example(pack, "guard", intent, "Hi", "Halt.") for intent in ("greeting", "buy", "ask_ai") * 10]
    picked = select_examples(many, 3, seed=1)
    assert {ex.intent for ex in picked} == {"greeting", "buy", "ask_ai"}
    assert picked == select_examples(many, 3, seed=1)
    assert select_examples(many, None, seed=1) == many


def test_generate_is_greedy_ordered_and_repeatable(tiny_bundle: Path) -> None:
    from npc_runtime.bundle import load_bundle
    from npc_runtime.engine import RoleModelEngine
    from npc_runtime.ort_backend import RuntimeOptions

    engine = RoleModelEngine(load_bundle(tiny_bundle), RuntimeOptions(device="cpu", intra_op_threads=1))
    prompts = [
        Prompt(key=f"k{i}", fingerprint="none", card_text="", knowledge="", player=text)
        for i, text in enumerate(["Hello!", "Do you sell swords?", "Where is the inn?", "Hello!"])
    ]
    options = GenOptions(max_tokens=6, temperature=0.0, timeout_ms=600_000)
    progress: list[int] = []
    first = generate(engine, prompts, options, max_in_flight=2, progress=progress.append)
    assert sum(progress) == len(prompts)
    second = generate(engine, list(reversed(prompts)), options, max_in_flight=3)
    assert [g.text for g in first] == [g.text for g in reversed(second)]
    assert first[0].text == first[3].text  # same prompt, same greedy reply
    assert all(g.error is None and g.completion_tokens <= 6 and g.emotion for g in first)
    with pytest.raises(ValueError):
        generate(engine, [prompts[0], prompts[0]], options)


def _report(value: float | None) -> dict:
    fluency = {"repetition": 0.0, "distinct_1": 0.5, "distinct_2": 0.8, "clean_ending": 1.0,
               "repetition_within": 0.0, "repetition_across": 0.0, "n_with_history": 0}  # fmt: skip
    model = {
        "n": 10,
        "errors": 0,
        "role_consistency": {"hits_at_1": value, "confusions": [["a", "b", 3]]},
        "emotion": {"macro_f1": 0.9},
        "scene_grounding": {"share": 0.95},
        "task_completion": {"share": 0.95},
        "break_character": {"rate": 0.0},
        "fluency": fluency,
    }
    reference = {**model, "role_consistency": {"hits_at_1": 0.7}}
    return {"results": {"test_seen": {"model": model, "reference": reference}}}


def test_check_targets_reports_the_gap_and_why() -> None:
    rows = {(r["metric"], r["split"]): r for r in check_targets(_report(0.6))}
    hits = rows[("hits_at_1", "test_seen")]
    assert hits["met"] is False and hits["gap"] == pytest.approx(0.3)
    assert any("reference lines themselves" in reason for reason in hits["why"])
    assert rows[("emotion_macro_f1", "test_seen")]["met"] is True
    assert ("hits_at_1", "test_heldout") not in rows  # no held-out split in this report
    assert check_targets(_report(0.95))[0]["met"] is True
    assert {t.split for t in TARGETS} == {"test_seen", "test_heldout"}


def test_ablation_table_shows_each_bundles_training_steps() -> None:
    model = headline(_report(0.6)["results"]["test_seen"]["model"])
    report = {"results": {"test_seen": {}, "test_heldout": {}}, "ablation": [
        {"name": "default", "fusion": "concat", "prompt_voice": True, "copy_head": True, "steps": 5500, "results": {"test_seen": model, "test_heldout": model}},
        {"name": "abl_wsum", "fusion": "weighted_sum", "steps": 1500, "corpus_matches_training": False,
         "results": {"test_seen": model}},
        {"name": "odd", "fusion": "concat", "steps": None, "results": {}},
        {"name": "induct", "fusion": "concat", "prompt_voice": True, "copy_head": True, "copy_induction": True,
         "steps": 2500, "results": {"test_seen": model, "test_heldout": model}},
    ]}  # fmt: skip
    lines = _ablation_section(report)
    assert "| bundle | fusion | voice | copy | steps | hits@1 |" in "\n".join(lines)
    rows = [line for line in lines if line.startswith("| `")]
    assert rows[0].startswith("| `default` | concat | yes | yes | 5,500 | 0.600 / 0.600 |")
    assert rows[1].startswith("| `abl_wsum` | weighted_sum | no | no | 1,500 | 0.600 / – |")
    assert rows[2].startswith("| `odd` | concat | no | no | – | – / – |")
    assert rows[3].startswith("| `induct` | concat | yes | yes, induction | 2,500 | 0.600 / 0.600 |")
    assert any("another corpus" in line and "`abl_wsum`" in line for line in lines)


def test_the_report_sets_quest_acceptances_without_the_offer_beside_those_with_it() -> None:
    from export.eval_report import _condition_table, _offer_lines, _with_n

    def task(share: float, n: int) -> dict:
        return {"task_completion": {"share": share, "n": n, "by_intent": {"quest_accept": {"share": share, "n": n}}}}

    report = {"results": {"test_seen": {"model": task(0.5, 4), "no_offer": task(0.25, 4)},
                          "test_heldout": {"model": task(1.0, 2)}}}  # fmt: skip
    lines = _offer_lines(report)
    assert "seen 0.500 (n=4) with the offer, 0.250 (n=4) without" in lines[1] and "held-out" not in lines[1]
    rows = _condition_table(report, _with_n("task_completion", "share"), ("model", "no_offer"))
    assert rows[-1] == "| quest answers with the offer left out of the history | 0.250 (n=4) | – |"
    assert _offer_lines({"results": {"test_seen": {"model": task(0.5, 4)}}}) == []


def test_sampled_runs_say_so_in_the_report_header() -> None:
    from export.eval_report import _decoding
    from export.evaluate import EvalConfig

    assert _decoding({"temperature": 0.0}) == "greedy decoding"
    assert _decoding({"temperature": 0.7, "seed": 3}).startswith("sampled at temperature 0.7")
    with pytest.raises(ValueError, match="temperature"):
        EvalConfig(temperature=-1.0)
    with pytest.raises(ValueError, match="voice_bias"):
        EvalConfig(voice_bias=-1.0)
    with pytest.raises(ValueError, match="fact_bias"):
        EvalConfig(fact_bias=51.0)
    with pytest.raises(ValueError, match="scene_bias"):
        EvalConfig(scene_bias=-0.5)
    with pytest.raises(ValueError, match="catchphrase_rate must be in 0..1"):
        EvalConfig(catchphrase_rate=1.2)
    from export.eval_report import _constraints

    assert "voice steering 3.0 nats" in _constraints({"voice_bias": 3.0})
    assert "catchphrase drawn for 0.3 of replies" in _constraints({"catchphrase_rate": 0.3})
    assert "catchphrase not steered" in _constraints({"catchphrase_rate": 0.0})
    assert "fact steering off" in _constraints({"voice_bias": 1.5, "fact_bias": 0.0})
    assert "scene steering 8.0 nats" in _constraints({"fact_bias": 8.0, "scene_bias": 8.0})
    assert "voice steering off" in _constraints({"voice_bias": 0.0}) and "voice" not in _constraints({})


def test_write_markdown_keeps_the_hand_written_text(tmp_path: Path) -> None:
    path = tmp_path / "eval.md"
    path.write_text(f"# Eval\n\nIntro.\n\n{BEGIN_MARK}\nold figures\n{END_MARK}\n\nOutro.\n", encoding="utf-8")
    write_markdown(path, "new figures\n")
    text = path.read_text(encoding="utf-8")
    assert "Intro." in text and "Outro." in text and "new figures" in text and "old figures" not in text
    fresh = tmp_path / "sub" / "fresh.md"
    write_markdown(fresh, "figures\n")
    assert BEGIN_MARK in fresh.read_text(encoding="utf-8")


_SMALL_CORPUS = [
    "n_procedural_personas=12", "examples_per_persona=6", "examples_per_bundled_persona=20", "n_scenes=200",
    "test_heldout_per_persona=6", "test_seen_per_bundled_persona=4", "test_seen_per_persona=2",
]  # fmt: skip


def test_main_writes_json_and_markdown_reports(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    out_json, out_md = tmp_path / "eval.json", tmp_path / "eval.md"
    out_md.write_text(f"# Evaluation\n\nHow to read it.\n\n{BEGIN_MARK}\n{END_MARK}\n", encoding="utf-8")
    argv = ["--model", str(tiny_bundle), "--limit", "6", "--out-json", str(out_json), "--out-md", str(out_md),
            "--ablation", str(tiny_bundle), "--no-progress", "--threads", "1", "--corpus", *_SMALL_CORPUS]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(report["results"]) == {"test_seen", "test_heldout"}
    seen = report["results"]["test_seen"]
    assert set(seen) >= {"reference", "model", "no_persona", "wrong_persona"}
    for section in ("emotion", "scene_grounding", "task_completion", "fluency", "break_character"):
        assert section in seen["model"]
    assert "role_consistency" in report["results"]["test_heldout"]["model"]
    assert "novel_voice" in report["results"]["test_heldout"] and "novel_voice" not in seen
    assert report["results"]["test_heldout"]["novel_voice"]["voice"]["n"] > 0
    assert len(report["corpus"]["digest"]) == 64 and report["corpus"]["matches_training"] is None
    assert len(report["targets"]) == len(TARGETS)
    assert all(t["met"] is None or isinstance(t["met"], bool) for t in report["targets"])
    assert len(report["ablation"]) == 2 and report["ablation"][0]["fusion"] == "concat"
    assert report["ablation"][0]["steps"] is None  # the tiny bundle was never trained: no steps to report
    text = out_md.read_text(encoding="utf-8")
    assert text.startswith("# Evaluation\n\nHow to read it.")
    assert "### Targets" in text and "### Fusion ablation" in text and END_MARK in text
    assert "| card rewritten with a new catchphrase and address | – |" in text
    # the ablation bundle is the same bundle: asked once, as the server decodes and without its n-gram ban
    name = report["bundle"]["name"]
    assert list(report["handwritten"]) == [name, name + MODEL_ALONE]
    probe = report["handwritten"][name]
    assert report["settings"]["no_repeat_ngram"] == 4 and report["settings"]["spelling"] is True
    asked = [q for card in load_cards() for q in questions(card)]
    assert probe["n"] == len(asked) == 36 and probe["errors"] == 0 and set(probe["by_kind"]) >= {"name", "price", "weather"}
    assert "### Cards written by hand" in text and "non-words" in text and "model alone" in text
    assert probe["voice"]["n"] == 36 and "| catchphrase | address |" in text
    assert "role consistency" in capsys.readouterr().out


def test_main_reports_a_bad_option_as_an_error(tmp_path: Path, capsys) -> None:
    assert main(["--model", str(tmp_path / "missing"), "--out-md", str(tmp_path / "e.md")]) == 1
    assert "npc-runtime eval:" in capsys.readouterr().err
    assert main(["--corpus", "no_such_field=1", "--model", str(tmp_path)]) == 1
    with pytest.raises(SystemExit):
        main(["--help"])
