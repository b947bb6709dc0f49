"""Fitting the intent reader, the cross-fitted hints of training turns, and a hinted run from training to serving."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from export.corpus import build_corpus
from export.corpus_intents import INTENTS
from export.dataset import INTENT_READER_FILE, DataConfig, prepare_data
from export.intent_reader import READER_PHRASINGS_VERSION, cross_fitted_hints, fit_reader, hint_label
from export.make_bundle import BundleConfig, make_bundle
from export.tokenizer import encode_turn, load_tokenizer
from export.train import CHECKPOINT_NAME, main, preset_configs
from npc_runtime.bundle import load_bundle
from npc_runtime.engine import RoleModelEngine
from npc_runtime.intent_hint import load_reader
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.ort_backend import RuntimeOptions


def _clusters(seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Three intents around three directions; each intent's lines come from four templates (groups)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 16) * 3.0
    x, intents, groups = [], [], []
    for c, intent in enumerate(("greeting", "ask_weather", "buy")):
        for t in range(4):
            for _ in range(5):
                x.append(centres[c] + rng.normal(0, 0.4, 16))
                intents.append(intent)
                groups.append(f"{intent}/{t:02d}")
    return np.array(x, dtype=np.float32), intents, groups


def test_the_reader_learns_separable_intents_and_never_answers_an_absent_one() -> None:
    x, intents, _ = _clusters()
    reader = fit_reader(x, intents, classes=("greeting", "ask_weather", "buy", "farewell"))
    assert reader.labels == ("greeting", "ask weather", "buy", "farewell")
    test, want, _ = _clusters(seed=1)
    assert reader.read(test) == [hint_label(i) for i in want]
    assert "farewell" not in reader.read(np.random.default_rng(2).normal(size=(50, 16)).astype(np.float32))
    again = fit_reader(x, intents, classes=("greeting", "ask_weather", "buy", "farewell"))
    assert np.array_equal(again.weights, reader.weights)  # deterministic
    with pytest.raises(ValueError, match="3 embeddings for 2 labels"):
        fit_reader(x[:3], intents[:2])


def test_a_reader_with_a_hidden_layer_reads_what_no_linear_reader_can_and_round_trips(tmp_path: Path) -> None:
    """Two intents on two opposite corners each (exclusive or): no linear map of the normalised embedding can part
    them, a hidden layer of ReLUs can. The fit is fixed by its data, and the file reads back the same reader."""
    rng = np.random.default_rng(0)
    corners = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=np.float64)
    labels = ["greeting", "greeting", "buy", "buy"]
    x = np.concatenate([c + rng.normal(0, 0.15, (30, 2)) for c in corners])
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)  # a constant third axis, so no row is near zero
    y = [label for label in labels for _ in range(30)]
    test = np.concatenate([np.concatenate([corners, np.ones((4, 1))], axis=1)] * 2)
    want = [hint_label(label) for label in labels] * 2
    linear = fit_reader(x, y, steps=2000)
    assert linear.hidden == 0 and linear.read(test) != want
    wide = fit_reader(x, y, hidden=16, steps=300, l2=1e-4)
    assert wide.hidden == 16 and wide.dim == 3 and wide.read(test) == want
    again = fit_reader(x, y, hidden=16, steps=300, l2=1e-4)
    assert np.array_equal(again.hidden_weights, wide.hidden_weights) and np.array_equal(again.weights, wide.weights)
    absent = fit_reader(x, y, classes=("greeting", "buy", "farewell"), hidden=16, steps=300)
    assert "farewell" not in absent.read(rng.normal(size=(50, 3)))
    loaded = load_reader(wide.save(tmp_path / "reader.json"), dim=3)
    assert loaded.hidden == 16 and loaded.read(test) == want
    np.testing.assert_allclose(loaded.scores(test), wide.scores(test), atol=1e-4)
    with pytest.raises(ValueError, match="hidden must be an int >= 0"):
        fit_reader(x, y, hidden=-1)


def test_cross_fitted_hints_come_from_a_reader_that_never_saw_the_template() -> None:
    """A template whose lines sit near another intent gets that intent as its hint: the reader that reads it was
    fitted without it. A reader fitted on everything would have learnt it."""
    x, intents, groups = _clusters()
    odd = [i for i, g in enumerate(groups) if g == "buy/03"]
    x[odd] = np.eye(3, 16)[0] * 3.0 + np.random.default_rng(3).normal(0, 0.1, (len(odd), 16))  # greeting-like buys
    hints, accuracy = cross_fitted_hints(x, intents, groups, folds=4, seed=0)
    assert [hints[i] for i in odd] == ["greeting"] * len(odd)
    assert accuracy == pytest.approx(np.mean([h == hint_label(t) for h, t in zip(hints, intents)]))
    assert 0.75 < accuracy <= 1 - len(odd) / len(intents)
    full = fit_reader(x, intents, steps=3000)
    assert set(full.read(x[odd])) == {"buy"}
    with pytest.raises(ValueError, match="folds"):
        cross_fitted_hints(x, intents, groups, folds=1)


def test_hinted_training_turns_read_their_hint_after_the_player_line(tmp_path: Path) -> None:
    model_cfg, data_cfg, _ = preset_configs("tiny")
    data = prepare_data(replace(data_cfg, intent_hint=True), model_cfg.prefix_tokens, model_cfg.max_positions,
                        tmp_path / "data", progress=False, voice=True)  # fmt: skip
    assert data.intent_reader_path == tmp_path / "data" / INTENT_READER_FILE
    reader = load_reader(data.intent_reader_path, dim=data_cfg.text_embed_dim)
    corpus = build_corpus(data_cfg.corpus_config())
    tokenizer = load_tokenizer(data.tokenizer_path)
    for split in ("train", "val"):
        examples, encoded = corpus.splits[split], data.splits[split]
        hints = set()
        for row in range(len(encoded)):
            ex = examples[int(encoded.example_index[row])]
            context = ex.scene.to_context() if encoded.has_context[row] else {}
            text = tokenizer.decode(encoded.ids[row].tolist(), skip_special_tokens=False)
            hint = text.split(ex.player.split()[-1] + " | ", 1)[1].split("<npc>", 1)[0]
            assert hint in reader.labels
            want = encode_turn(tokenizer, data.n_prefix, ex.card.knowledge_text(voice=True), context, ex.history,
                               ex.player, ex.reply, hint=hint)  # fmt: skip
            assert encoded.ids[row].tolist() == want.ids
            hints.add(hint)
        assert len(hints) > 1
    # With no folds, training turns read the full reader's hint, as served.
    full = prepare_data(replace(data_cfg, intent_hint=True, intent_hint_folds=0), model_cfg.prefix_tokens,
                        model_cfg.max_positions, tmp_path / "full", progress=False, voice=True)  # fmt: skip
    examples, encoded = corpus.splits["train"], full.splits["train"]
    embeddings = full.text_embeddings[encoded.utterance_row]
    for row, hint in enumerate(load_reader(full.intent_reader_path).read(embeddings)):
        text = tokenizer.decode(encoded.ids[row].tolist(), skip_special_tokens=False)
        assert text.split("<npc>")[-2].endswith(f" | {hint}"), text
    for folds in (1, -1, True):
        with pytest.raises(ValueError, match="intent_hint_folds"):
            replace(data_cfg, intent_hint_folds=folds)
    plain = prepare_data(data_cfg, model_cfg.prefix_tokens, model_cfg.max_positions, tmp_path / "plain",
                         progress=False, voice=True)  # fmt: skip
    assert plain.intent_reader_path is None
    assert all(len(a) < len(b) for a, b in zip(plain.splits["val"].ids, data.splits["val"].ids))


def test_a_hinted_run_is_stored_named_in_the_recipe_exported_with_its_reader_and_served(tmp_path: Path) -> None:
    from export.role_model import load_checkpoint

    run = tmp_path / "run"
    common = ["--preset", "tiny", "--out", str(run), "--no-progress", "--threads", "1", "--steps", "2"]
    assert main([*common, "--intent-hint", "--stop-after", "1"]) == 0
    _, extra = load_checkpoint(run / CHECKPOINT_NAME)
    assert extra["data_config"]["intent_hint"] is True and extra["intent_reader"] == f"data/{INTENT_READER_FILE}"
    with pytest.raises(ValueError, match="intent_hint"):
        main([*common, "--resume", "--no-intent-hint"])
    assert main([*common, "--resume"]) == 0
    out = tmp_path / "bundle"
    make_bundle(run, out, BundleConfig(quantize=None, eval_examples=1))
    manifest = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert manifest["assets"]["intent_reader"] == INTENT_READER_FILE and INTENT_READER_FILE in manifest["files"]
    assert manifest["training"]["recipe"].endswith("--steps 2 --intent-hint && npc-runtime export")
    assert "intent reader" in manifest["description"]
    assert (out / INTENT_READER_FILE).read_bytes() == (run / "data" / INTENT_READER_FILE).read_bytes()
    engine = RoleModelEngine(load_bundle(out), RuntimeOptions(device="cpu", intra_op_threads=1))
    assert engine.intent_reader is not None and engine.intent_reader.labels == load_reader(out / INTENT_READER_FILE).labels
    # The evaluation reports how often the reader's hint names the asked intent.
    from export.eval_report import BEGIN_MARK, END_MARK
    from export.evaluate import main as evaluate

    out_json, out_md = tmp_path / "eval.json", tmp_path / "eval.md"
    out_md.write_text(f"# Evaluation\n\n{BEGIN_MARK}\n{END_MARK}\n", encoding="utf-8")
    assert evaluate(["--model", str(out), "--limit", "4", "--out-json", str(out_json), "--out-md", str(out_md),
                     "--no-progress", "--threads", "1"]) == 0  # fmt: skip
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert report["bundle"]["intent_hint"] is True
    assert {r["turns"] for r in report["intent_reader"].values()} == {4}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in report["intent_reader"].values())
    markdown = out_md.read_text(encoding="utf-8")
    assert "Intent reader (the hint the model reads after the player's line" in markdown
    # The right-hint control scores every turn the model answered (misread ones asked again), for a reader bundle.
    for results in report["results"].values():
        assert results["right_hint"]["n"] == results["model"]["n"]
    assert "asked again with the right hint" in markdown

    # A request may carry the hint to use instead of the reader's (the control's way in); the prompt reads it.
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    line = "How much for a sword?"
    own = engine.intent_hints(engine.encode_texts([line]))[0]
    other = next(label for label in engine.intent_reader.labels if label != own)
    asked = [SimpleNamespace(fingerprint=card.fingerprint(), card_text=card.card_text(), knowledge=engine.knowledge_of(card),
                             context={}, history=[], text=line, image=None, hint=hint)
             for hint in (None, other)]  # fmt: skip
    read, given = engine.prepare_batch(asked)
    assert read.hint == own and given.hint == other and given.ids != read.ids
    want = engine.prompt_ids(asked[1].knowledge, {}, [], line, other)
    assert given.ids[-len(want):] == want


def test_every_looked_up_fact_a_corpus_reply_needs_is_in_its_hint() -> None:
    """On the corpus's own turns (hint = the true intent), version 2 puts every required fact and scene word of the
    looked-up requests into the hint (sell and ask_name's unknown branches aside)."""
    from npc_runtime.intent_hint import lookup_hint
    from npc_runtime.voice import plain_words

    corpus = build_corpus(preset_configs("tiny")[1].corpus_config())
    checked = 0
    for ex in (ex for split in corpus.splits.values() for ex in split):
        need = [*ex.required_facts, *([ex.scene_element] if ex.scene_element else [])]
        if not need or ex.intent == "sell":  # a sale names the player's own goods, from the line
            continue
        hint = lookup_hint(ex.intent.replace("_", " "), ex.card.knowledge_text(voice=True), ex.scene.to_context(),
                           ex.player, 2)  # fmt: skip
        missing = [f for f in need if f" {plain_words(f)} " not in f" {plain_words(hint)} "]
        assert not missing, (ex.intent, ex.player, hint, missing)
        checked += 1
    assert checked > 150


def test_looked_up_hints_are_built_in_training_as_the_runtime_builds_them(tmp_path: Path) -> None:
    """Every training turn reads ``lookup_hint`` of the reader's hint on its own card, scene facts and line; the
    saved reader says so, so the runtime does the same; the flag is stored, kept on resume and named in the
    recipe."""
    from export.make_bundle import _recipe
    from export.role_model import load_checkpoint
    from npc_runtime.intent_hint import lookup_hint

    model_cfg, data_cfg, _ = preset_configs("tiny")
    with pytest.raises(ValueError, match="hint_lookup shapes the intent hints or their reader: it needs intent_hint"):
        replace(data_cfg, hint_lookup=2)
    with pytest.raises(ValueError, match="hint_lookup must be a version from 0 to 2"):
        replace(data_cfg, intent_hint=True, hint_lookup=3)
    assert replace(data_cfg, intent_hint=True, hint_lookup=True).hint_lookup == 1  # how version 1 runs recorded it
    cfg = replace(data_cfg, intent_hint=True, intent_hint_folds=0, hint_lookup=2)
    data = prepare_data(cfg, model_cfg.prefix_tokens, model_cfg.max_positions, tmp_path / "data", progress=False,
                        voice=True)  # fmt: skip
    reader = load_reader(data.intent_reader_path)
    assert reader.lookup == 2
    examples, encoded = build_corpus(cfg.corpus_config()).splits["train"], data.splits["train"]
    tokenizer = load_tokenizer(data.tokenizer_path)
    looked = 0
    for row, hint in enumerate(reader.read(data.text_embeddings[encoded.utterance_row])):
        ex = examples[int(encoded.example_index[row])]
        context = ex.scene.to_context() if encoded.has_context[row] else {}
        knowledge = ex.card.knowledge_text(voice=True)
        full = lookup_hint(hint, knowledge, context, ex.player, 2)
        want = encode_turn(tokenizer, data.n_prefix, knowledge, context, ex.history, ex.player, ex.reply, hint=full)
        assert encoded.ids[row].tolist() == want.ids
        looked += full != hint
    assert looked > 0, "no training turn got a looked-up fact"

    run = tmp_path / "run"
    common = ["--preset", "tiny", "--out", str(run), "--no-progress", "--threads", "1", "--steps", "2"]
    assert main([*common, "--intent-hint", "--hint-lookup", "--stop-after", "1"]) == 0
    _, extra = load_checkpoint(run / CHECKPOINT_NAME)
    assert extra["data_config"]["hint_lookup"] == 2 and extra["train_config"]["hint_lookup"] == 2  # the newest
    for other in (["--no-hint-lookup"], ["--hint-lookup", "1"]):
        with pytest.raises(ValueError, match="hint_lookup"):
            main([*common, "--resume", *other])
    recipe = _recipe(extra["train_config"], True, {"intent_hint": True, "intent_hint_folds": 0, "hint_lookup": 2})
    assert recipe.endswith("--steps 2 --intent-hint --hint-lookup 2 && npc-runtime export")
    # The export carries the flag to the runtime, which then builds the same text.
    out = tmp_path / "bundle"
    make_bundle(run, out, BundleConfig(quantize=None, eval_examples=1))
    manifest = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert manifest["training"]["recipe"].endswith("--intent-hint --hint-lookup 2 && npc-runtime export")
    assert "the card or scene fact it turns on" in manifest["description"]
    engine = RoleModelEngine(load_bundle(out), RuntimeOptions(device="cpu", intra_op_threads=1))
    assert engine.intent_reader is not None and engine.intent_reader.lookup == 2
    assert engine.looked_up("ask item", "", {"player_item": "lute"}, "What is this?") == "ask item: lute"


def _words(line: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9{} ]", "", line.lower()).split())


@pytest.mark.parametrize("version", [1, 2])
def test_reader_phrasings_cover_every_intent_with_the_corpus_slots_and_never_repeat_a_corpus_template(version: int) -> None:
    """The phrasings are only worth fitting if no corpus template is among them: then a held-out template stays
    unseen by the reader, as the evaluation's seen split assumes, and a training one adds nothing."""
    from export.corpus_intents import PLAYER_TEMPLATES
    from export.reader_phrasings import READER_PHRASINGS

    phrasings_of = READER_PHRASINGS[version]
    assert tuple(phrasings_of) == tuple(INTENTS)
    templates = {_words(t) for ts in PLAYER_TEMPLATES.values() for t in ts}
    seen: set[str] = set()
    for intent, phrasings in phrasings_of.items():
        assert len(phrasings) >= 20 * version, intent
        slots = {s for t in PLAYER_TEMPLATES[intent] for s in re.findall(r"\{(\w+)\}", t)}
        for line in phrasings:
            words = _words(line)
            assert words not in templates, (intent, line)
            assert words not in seen, (intent, line)
            seen.add(words)
            assert set(re.findall(r"\{(\w+)\}", line)) == slots, (intent, line)  # a slot in every line or none
            assert line.count("{") == len(slots) and len(line) <= 100 and line.isascii()


def test_each_version_of_the_phrasings_keeps_the_lines_of_the_one_before() -> None:
    from export.reader_phrasings import READER_PHRASINGS

    from export.intent_reader import READER_FITS

    assert sorted(READER_PHRASINGS) == list(range(1, READER_PHRASINGS_VERSION + 1))
    assert sorted(READER_FITS) == list(range(READER_PHRASINGS_VERSION + 1))  # every version has its fit
    for version in range(2, READER_PHRASINGS_VERSION + 1):
        for intent, lines in READER_PHRASINGS[version - 1].items():
            assert READER_PHRASINGS[version][intent][: len(lines)] == lines
            assert len(READER_PHRASINGS[version][intent]) > len(lines)


@pytest.mark.parametrize("version", [1, 2])
def test_reader_lines_fill_each_slot_from_the_world_and_are_fixed_by_seed(version: int) -> None:
    from export.corpus_replies import CATALOGUE
    from export.intent_reader import SLOT_FILLS, reader_lines
    from export.reader_phrasings import READER_PHRASINGS

    phrasings_of = READER_PHRASINGS[version]
    lines = reader_lines(version, seed=0)
    assert lines == reader_lines(version, seed=0) and lines != reader_lines(version, seed=1)
    assert reader_lines(0) == []
    for bad in (READER_PHRASINGS_VERSION + 1, -1, True):
        with pytest.raises(ValueError, match=f"reader phrasings must be a version from 0 to {READER_PHRASINGS_VERSION}"):
            reader_lines(bad)
    assert not any("{" in text for text, _ in lines)
    slotted = sum("{" in t for ts in phrasings_of.values() for t in ts)
    assert len(lines) == sum(map(len, phrasings_of.values())) + (SLOT_FILLS - 1) * slotted
    buys = [text for text, intent in lines if intent == "buy"]
    assert all(any(ware in text for ware in CATALOGUE) for text in buys)
    assert len({text for text, intent in lines if intent == "sell"}) == SLOT_FILLS * len(phrasings_of["sell"])


def test_extra_lines_are_fitted_into_every_cross_fitted_reader() -> None:
    """A template whose lines sit near another intent is read right by the reader that never saw it once extra
    lines of its own intent lie where it does."""
    x, intents, groups = _clusters()
    odd = [i for i, g in enumerate(groups) if g == "buy/03"]
    x[odd] = np.eye(3, 16)[0] * 3.0 + np.random.default_rng(3).normal(0, 0.1, (len(odd), 16))
    extra_x = np.eye(3, 16)[0] * 3.0 + np.random.default_rng(4).normal(0, 0.1, (30, 16))
    hints, _ = cross_fitted_hints(x, intents, groups, folds=4, seed=0, extra=(extra_x, ["buy"] * 30))
    assert [hints[i] for i in odd] == ["buy"] * len(odd)
    bare, _ = cross_fitted_hints(x, intents, groups, folds=4, seed=0)
    assert [bare[i] for i in odd] == ["greeting"] * len(odd)


def test_a_run_with_reader_phrasings_fits_them_into_its_reader_alone(tmp_path: Path) -> None:
    """The phrasings change the served reader and nothing else of the data: the turns, their embedding table and
    their tokens, hints included, are those of a run without them. The option is validated, stored, kept on resume
    and named in the recipe."""
    from export.intent_reader import READER_FITS, fit_reader, reader_lines
    from export.make_bundle import _recipe
    from export.role_model import load_checkpoint

    model_cfg, data_cfg, _ = preset_configs("tiny")
    with pytest.raises(ValueError, match="reader_phrasings shapes the intent hints or their reader: it needs"):
        replace(data_cfg, reader_phrasings=1)
    newest = READER_PHRASINGS_VERSION
    with pytest.raises(ValueError, match=f"reader_phrasings must be a version from 0 to {newest}"):
        replace(data_cfg, intent_hint=True, reader_phrasings=newest + 1)
    hinted = replace(data_cfg, intent_hint=True, intent_hint_folds=0)
    args = (model_cfg.prefix_tokens, model_cfg.max_positions)
    plain = prepare_data(hinted, *args, tmp_path / "plain", progress=False, voice=True)
    data = prepare_data(replace(hinted, reader_phrasings=1), *args, tmp_path / "data", progress=False, voice=True)
    assert np.array_equal(plain.text_embeddings, data.text_embeddings)
    for split in ("train", "val"):
        a, b = plain.splits[split], data.splits[split]
        assert np.array_equal(a.example_index, b.example_index) and np.array_equal(a.utterance_row, b.utterance_row)
        assert all(np.array_equal(x, y) for x, y in zip(a.ids, b.ids)) and len(a.ids) == len(b.ids)
    lines = reader_lines(1, hinted.corpus_seed)
    extra = np.load(tmp_path / "data" / "reader_embeddings.npy")
    assert extra.shape == (len(lines), data_cfg.text_embed_dim)
    # The saved reader is the fit of the training lines plus the phrasings, with version 1's fit.
    examples, encoded = build_corpus(hinted.corpus_config()).splits["train"], data.splits["train"]
    row_of = {examples[int(i)].player: int(r) for i, r in zip(encoded.example_index, encoded.utterance_row)}
    first = list(dict.fromkeys((ex.player, ex.intent) for ex in examples))
    x = data.text_embeddings[[row_of[text] for text, _ in first]]
    want = fit_reader(np.concatenate([x, extra]), [i for _, i in first] + [i for _, i in lines], classes=INTENTS,
                      **READER_FITS[1])  # fmt: skip
    got = load_reader(data.intent_reader_path)
    np.testing.assert_allclose(got.weights, want.weights, atol=1e-6)
    before = load_reader(plain.intent_reader_path)
    assert not np.allclose(got.weights, before.weights, atol=1e-3)
    # ... and it reads some lines otherwise than the reader the turns' hints came from, which they did not follow.
    assert got.read(data.text_embeddings) != before.read(data.text_embeddings)

    run = tmp_path / "run"
    common = ["--preset", "tiny", "--out", str(run), "--no-progress", "--threads", "1", "--steps", "2",
              "--intent-hint"]  # fmt: skip
    assert main([*common, "--reader-phrasings", "--stop-after", "1"]) == 0
    _, saved = load_checkpoint(run / CHECKPOINT_NAME)
    assert saved["data_config"]["reader_phrasings"] == newest and saved["train_config"]["reader_phrasings"] == newest
    with pytest.raises(ValueError, match="reader_phrasings"):
        main([*common, "--resume", "--no-reader-phrasings"])
    assert main([*common, "--resume"]) == 0
    recipe = _recipe(saved["train_config"], True, {"intent_hint": True, "intent_hint_folds": 0, "reader_phrasings": newest})
    assert recipe.endswith(f"--steps 2 --intent-hint --reader-phrasings {newest} && npc-runtime export")


def test_a_run_whose_reader_has_a_hidden_layer_changes_its_reader_alone(tmp_path: Path) -> None:
    """``reader_hidden`` gives the served reader a hidden layer, fitted as ``READER_HIDDEN_FIT`` says, and changes
    nothing else of the data: the turns and their tokens, hints included, are those of a run without it. The option
    is validated, stored, kept on resume and named in the recipe; a run that recorded none had a linear reader."""
    from export.intent_reader import READER_HIDDEN_FIT, fit_reader
    from export.make_bundle import _recipe
    from export.role_model import load_checkpoint

    model_cfg, data_cfg, _ = preset_configs("tiny")
    with pytest.raises(ValueError, match="reader_hidden shapes the intent hints or their reader: it needs intent_hint"):
        replace(data_cfg, reader_hidden=8)
    hinted = replace(data_cfg, intent_hint=True, intent_hint_folds=0)
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="reader_hidden must be an int >= 0"):
            replace(hinted, reader_hidden=bad)
    assert DataConfig.from_dict({k: v for k, v in hinted.to_dict().items() if k != "reader_hidden"}) == hinted
    args = (model_cfg.prefix_tokens, model_cfg.max_positions)
    plain = prepare_data(hinted, *args, tmp_path / "plain", progress=False, voice=True)
    data = prepare_data(replace(hinted, reader_hidden=8), *args, tmp_path / "data", progress=False, voice=True)
    for split in ("train", "val"):
        a, b = plain.splits[split], data.splits[split]
        assert all(np.array_equal(x, y) for x, y in zip(a.ids, b.ids)) and len(a.ids) == len(b.ids)
    got, before = load_reader(data.intent_reader_path), load_reader(plain.intent_reader_path)
    assert got.hidden == 8 and before.hidden == 0 and got.labels == before.labels
    examples, encoded = build_corpus(hinted.corpus_config()).splits["train"], data.splits["train"]
    row_of = {examples[int(i)].player: int(r) for i, r in zip(encoded.example_index, encoded.utterance_row)}
    first = list(dict.fromkeys((ex.player, ex.intent) for ex in examples))
    x = data.text_embeddings[[row_of[text] for text, _ in first]]
    want = fit_reader(x, [i for _, i in first], classes=INTENTS, hidden=8, **READER_HIDDEN_FIT)
    np.testing.assert_allclose(got.hidden_weights, want.hidden_weights, atol=1e-6)

    run = tmp_path / "run"
    common = ["--preset", "tiny", "--out", str(run), "--no-progress", "--threads", "1", "--steps", "2",
              "--intent-hint"]  # fmt: skip
    assert main([*common, "--reader-hidden", "8", "--stop-after", "1"]) == 0
    _, saved = load_checkpoint(run / CHECKPOINT_NAME)
    assert saved["data_config"]["reader_hidden"] == 8 and saved["train_config"]["reader_hidden"] == 8
    with pytest.raises(ValueError, match="reader_hidden"):
        main([*common, "--resume", "--reader-hidden", "0"])
    recipe = _recipe(saved["train_config"], True, {"intent_hint": True, "intent_hint_folds": 0, "reader_hidden": 8})
    assert recipe.endswith("--steps 2 --intent-hint --reader-hidden 8 && npc-runtime export")
