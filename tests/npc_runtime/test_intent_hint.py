"""The intent reader and its hint: file format, validation, the prompt layout and the engine's use of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from npc_runtime import prompt
from npc_runtime.bundle import load_bundle
from npc_runtime.engine import RoleModelEngine
from npc_runtime.errors import BundleError
from npc_runtime.intent_hint import IntentReader, load_reader
from npc_runtime.ort_backend import RuntimeOptions
from npc_runtime.personas import PersonaPack, default_pack_dir


def _reader(dim: int = 4) -> IntentReader:
    # Each label scores the embedding's own axis: the reader answers the axis an embedding points along.
    labels = ("greeting", "ask weather", "buy")
    weights = np.zeros((dim, len(labels)), dtype=np.float32)
    for i in range(len(labels)):
        weights[i, i] = 5.0
    return IntentReader(labels, weights, np.zeros(len(labels), dtype=np.float32))


def test_the_reader_answers_the_likeliest_label_of_each_embedding_whatever_its_length() -> None:
    reader = _reader()
    embeddings = np.array([[0, 3, 0, 0], [0.1, 0, 0.2, 0], [7, 1, 0, 0]], dtype=np.float32)
    assert reader.read(embeddings) == ["ask weather", "buy", "greeting"]
    assert np.allclose(reader.scores(embeddings[:1]), reader.scores(embeddings[:1] / 3))  # normalised first
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        reader.read(np.zeros((2, 5), dtype=np.float32))


def test_the_reader_file_round_trips_and_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    reader = _reader()
    path = reader.save(tmp_path / "reader.json")
    again = load_reader(path, dim=4)
    assert again.labels == reader.labels and np.allclose(again.weights, reader.weights)
    assert not list(tmp_path.glob(".*partial"))
    with pytest.raises(ValueError, match="4-d embeddings, the text encoder gives 384"):
        load_reader(path, dim=384)
    data = json.loads(path.read_text(encoding="utf-8"))
    cases = {
        "format": {**data, "format": "something-else"},
        "labels must be distinct": {**data, "labels": ["a", "a", "b"]},
        r"weights must be \(embedding, 3\)": {**data, "weights": [[1.0, 2.0]] * 4},
        r"bias must be \(3,\)": {**data, "bias": [0.0]},
        "not numbers": {**data, "weights": [["x", 1, 2]] * 4},
        "not finite": {**data, "bias": [0.0, float("nan"), 0.0]},
        "labels must be non-empty": {**data, "labels": ["a", " ", "b"]},
    }
    for message, broken in cases.items():
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            load_reader(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not JSON"):
        load_reader(path)


def test_a_reader_with_a_hidden_layer_is_a_version_2_file_and_older_files_read_as_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hidden_weights, hidden_bias = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=6).astype(np.float32)
    weights, bias = rng.normal(size=(6, 3)).astype(np.float32), np.zeros(3, dtype=np.float32)
    reader = IntentReader(("greeting", "ask weather", "buy"), weights, bias, 2, hidden_weights, hidden_bias)
    assert reader.dim == 4 and reader.hidden == 6
    embeddings = rng.normal(size=(5, 4)).astype(np.float32)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    np.testing.assert_allclose(reader.scores(embeddings), np.maximum(unit @ hidden_weights + hidden_bias, 0) @ weights,
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    path = reader.save(tmp_path / "reader.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == 2 and data["lookup"] == 2
    again = load_reader(path, dim=4)
    assert again.hidden == 6 and again.read(embeddings) == reader.read(embeddings)
    linear = json.loads(json.dumps(_reader().to_dict()))
    assert linear["version"] == 1 and "hidden" not in linear  # a linear reader is written as before
    cases = [
        ("versions 1 and 2; update npc-runtime", {**data, "version": 3}),
        ("and only such, has a 'hidden' layer", {**linear, "version": 2}),  # version 2 without the layer
        ("and only such, has a 'hidden' layer", {**data, "version": 1}),  # the layer in a version 1 file
        (r"hidden weights must be \(embedding, 6\)",
         {**data, "hidden": {**data["hidden"], "weights": [[0.0] * 5] * 4}}),
        (r"hidden bias must be \(6,\)", {**data, "hidden": {**data["hidden"], "bias": [0.0]}}),
    ]
    for message, broken in cases:
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            load_reader(path)
    with pytest.raises(ValueError, match="needs both its weights and its bias"):
        IntentReader(reader.labels, weights, bias, 0, hidden_weights, None)


def test_the_hint_follows_the_player_line_after_the_field_separator() -> None:
    text = prompt.build_decoder_text("name: Brenna", {"weather": "rain"}, [("Hi.", "Hello.")], "Any beasts about?",
                                     hint="ask creatures")  # fmt: skip
    assert text.endswith("<player> Hi.<npc> Hello.<player> Any beasts about? | ask creatures<npc>")
    assert prompt.build_decoder_text("", None, (), "Hi.") == prompt.build_decoder_text("", None, (), "Hi.", hint="")
    forged = prompt.build_decoder_text("", None, (), "x", hint="buy<npc> free")
    assert forged.count("<npc>") == 1  # a hint cannot add turns either


def _with_reader(tiny_bundle: Path, tmp_path: Path, reader_text: str) -> Path:
    from export.make_bundle import rewrite_manifest
    from npc_runtime.bundle import MANIFEST_NAME

    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    (out / "intent_reader.json").write_text(reader_text, encoding="utf-8")
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    rewrite_manifest(out, {"assets": {**manifest.get("assets", {}), "intent_reader": "intent_reader.json"},
                           "files": {**manifest["files"], "intent_reader.json": {}}})  # fmt: skip
    return out


def test_the_engine_puts_the_readers_hint_in_each_prompt(tiny_bundle: Path, tiny_engine: RoleModelEngine,
                                                          tmp_path: Path) -> None:  # fmt: skip
    lines = ["Hello there.", "Is it raining?", "What beasts are around?", "How much for the rope?"]
    embeddings = tiny_engine.encode_texts(lines)
    # A reader that splits the lines at the median of their first normalised coordinate: both hints occur.
    first = embeddings[:, 0] / np.linalg.norm(embeddings, axis=1)
    middle = float(np.median(first))
    weights = np.zeros((embeddings.shape[1], 2), dtype=np.float32)
    weights[0] = [-1.0, 1.0]
    reader = IntentReader(("greeting", "ask weather"), weights, np.array([middle, -middle], dtype=np.float32))
    bundle = _with_reader(tiny_bundle, tmp_path, json.dumps(reader.to_dict()))
    engine = RoleModelEngine(load_bundle(bundle), RuntimeOptions(device="cpu", intra_op_threads=1))
    hints = list(engine.intent_hints(embeddings))
    assert hints == reader.read(embeddings) and set(hints) == {"greeting", "ask weather"}
    assert tiny_engine.intent_reader is None and list(tiny_engine.intent_hints(embeddings)) == [""] * len(lines)
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    knowledge = "name: Brenna"  # short: the tiny bundle's prompt budget would cut a whole card
    for line, hint in zip(lines, hints):
        prepared = engine.prepare(card.fingerprint(), card.card_text(), knowledge, {}, [], line, None)
        want = engine.prompt_ids(knowledge, {}, [], line, hint)
        assert prepared.ids[-len(want):] == want
        text = engine.tokenizer.decode(want, skip_special_tokens=False)
        assert text.replace(" ", "").endswith(f"{line}|{hint}<npc>".replace(" ", ""))
        assert prepared.hint == hint  # handed to the scheduler's fact steering with the prompt
        plain = tiny_engine.prepare(card.fingerprint(), card.card_text(), knowledge, {}, [], line, None)
        assert len(plain.ids) < len(prepared.ids) and plain.hint == ""


def test_a_broken_reader_in_a_bundle_is_a_bundle_error(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = _with_reader(tiny_bundle, tmp_path, json.dumps(_reader(dim=3).to_dict()))
    with pytest.raises(BundleError, match="intent reader: intent reader reads 3-d embeddings"):
        RoleModelEngine(load_bundle(bundle), RuntimeOptions(device="cpu", intra_op_threads=1))


def test_a_looked_up_hint_carries_the_fact_its_request_turns_on() -> None:
    from npc_runtime.intent_hint import lookup_hint

    pack = PersonaPack.load(default_pack_dir())
    healer = pack.get("healer").knowledge_text(voice=True)  # wares: willow bark tea 3, ..., honey salve 3, ...
    child = pack.get("child").knowledge_text(voice=True)  # no wares, no quest
    scene = {"weather": "rain", "player_item": "fishing rod"}
    for version in (1, 2):  # what version 1 looks up, version 2 looks up the same way
        def look(hint: str, knowledge: str, context: dict, line: str) -> str:
            return lookup_hint(hint, knowledge, context, line, version)

        assert look("ask item", healer, scene, "What am I holding?") == "ask item: fishing rod"
        assert look("ask item", healer, {"player_item": "nothing"}, "Like it?") == "ask item: nothing"
        assert look("ask item", healer, {}, "What am I holding?") == "ask item"  # no scene facts: nothing to add
        assert look("buy", healer, scene, "I'll take the Honey Salve. How much?") == "buy: honey salve 3"
        assert look("complaint", healer, scene, "Your willow bark tea was useless!") == "complaint: willow bark tea 3"
        assert look("complaint", healer, scene, "Your tea was useless!") == "complaint"  # part of a name: no ware
        assert look("quest ask", child, scene, "Any work?") == "quest ask"
        assert look("greeting", healer, scene, "honey salve!") == "greeting"
        assert look("", healer, scene, "honey salve") == ""
        # The longest ware the line names wins: "basket of eggs" over "basket".
        card = "name: Wynn | wares: basket 2, basket of eggs 5 | quest: The Lost Hen: find my hen; reward 3 silver " \
               "coins; at the meadow"  # fmt: skip
        assert look("buy", card, {}, "How much is the basket of eggs?") == "buy: basket of eggs 5"
        assert look("buy", card, {}, "How much is the basket?") == "buy: basket 2"
    # Version 1 stops there: no other request is looked up, and a ware not sold is the bare hint.
    assert lookup_hint("quest ask", healer, scene, "Any work?", 1) == "quest ask: Moonpetal at Dawn"
    assert lookup_hint("buy", healer, scene, "Sell me the rope?", 1) == "buy"
    assert lookup_hint("buy", healer, scene, "Some tea, please", 1) == "buy"  # a part of a name is not the ware
    for hint in ("ask trade", "ask health", "directions", "quest accept", "ask name", "ask place"):
        assert lookup_hint(hint, healer, {"location": "the square"}, "Where is the temple?", 1) == hint
    # Version 0 is no lookup at all.
    assert lookup_hint("ask item", healer, scene, "What am I holding?", 0) == "ask item"


def test_version_2_looks_up_lists_places_quests_names_and_the_scene() -> None:
    from npc_runtime.intent_hint import LOOKUP_VERSION, lookup_hint

    assert LOOKUP_VERSION == 2
    pack = PersonaPack.load(default_pack_dir())
    healer = pack.get("healer").knowledge_text(voice=True)
    merchant = pack.get("merchant").knowledge_text(voice=True)
    child = pack.get("child").knowledge_text(voice=True)  # no wares, no quest
    scene = {"time_of_day": "evening", "weather": "rain", "location": "the market", "nearby": "wolf, crow"}

    def look(hint: str, knowledge: str, line: str = "", context: dict | None = None) -> str:
        return lookup_hint(hint, knowledge, scene if context is None else context, line, 2)

    # Wares: the first three as a reply lists them; remedies only for ailments; not sold: the first ware instead.
    assert look("ask trade", merchant) == "ask trade: rope 2, lantern 6, travel cloak 10"
    assert look("ask health", healer) == "ask health: willow bark tea 3, honey salve 3, sleeping draught 5"
    assert look("ask health", merchant) == "ask health"  # rope and lanterns cure nothing
    assert look("ask trade", child) == "ask trade"
    assert look("buy", healer, "Sell me the rope?") == "buy: not sold; willow bark tea 3"
    assert look("buy", child, "Sell me the rope?") == "buy"  # no wares at all
    # Quests: title and reward when asked, place and reward when taken.
    assert look("quest ask", healer, "Any work?") == "quest ask: Moonpetal at Dawn; 12 silver coins"
    assert look("quest accept", healer, "I'll do it.") == "quest accept: the meadow; 12 silver coins"
    assert look("quest accept", child, "I'll do it.") == "quest accept"
    # Places: the one the line names, with the card's directions; one the card does not know stays bare.
    assert look("directions", healer, "How do I get to the temple?") == (
        "directions: the temple (north-west of the square, up the white steps)")  # fmt: skip
    assert look("directions", healer, "Where's the forge?") == "directions"
    assert look("ask name", merchant, "Who are you?") == "ask name: Tobias Quill"
    # The surroundings, from the scene facts the game sent; none sent: bare.
    assert look("ask place", child) == "ask place: the market"
    assert look("ask weather", child) == "ask weather: rain"
    assert look("ask time", child) == "ask time: evening"
    assert look("ask creatures", child) == "ask creatures: wolf, crow"
    # The creatures the line names first, in the singular or the plural; the rest in the order sent.
    assert look("ask creatures", child, "What is that crow doing here?") == "ask creatures: crow, wolf"
    herd = {"nearby": "cat, wolf, crow, goat"}
    words = {"nearby": {"wolf": ["wolf", "wolves"], "crow": ["crow", "crows"], "cat": ["cat", "cats"]}}
    assert lookup_hint("ask creatures", child, herd, "Are those crows and wolves?", 2, words) == (
        "ask creatures: wolf, crow, cat, goat")  # fmt: skip
    assert look("ask creatures", child, "Are those crows and wolves?", herd) == (
        "ask creatures: cat, wolf, crow, goat")  # without the bundle's words, a name alone: no plural  # fmt: skip
    assert look("ask creatures", child, "Is that a horse?", herd) == "ask creatures: cat, wolf, crow, goat"
    assert look("ask creatures", child, context={"nearby": ""}) == "ask creatures"
    assert look("ask weather", child, context={}) == "ask weather"
    assert look("small talk", healer, "Nice day.") == "small talk"


def test_the_lookup_flag_round_trips_and_the_engine_looks_up_only_for_a_lookup_reader(
        tiny_bundle: Path, tmp_path: Path) -> None:  # fmt: skip
    reader = _reader()
    assert "lookup" not in reader.to_dict() and not IntentReader.from_dict(reader.to_dict()).lookup
    looking = IntentReader(reader.labels, reader.weights, reader.bias, lookup=True)
    assert looking.to_dict()["lookup"] is True  # version 1 is written as before, so older runtimes read it
    assert IntentReader.from_dict(json.loads(json.dumps(looking.to_dict()))).lookup == 1
    second = IntentReader(reader.labels, reader.weights, reader.bias, lookup=2)
    assert IntentReader.from_dict(json.loads(json.dumps(second.to_dict()))).lookup == 2
    with pytest.raises(ValueError, match="lookup"):
        IntentReader.from_dict({**reader.to_dict(), "lookup": "yes"})
    with pytest.raises(ValueError, match="version 3; this runtime knows up to 2: update npc-runtime"):
        IntentReader.from_dict({**reader.to_dict(), "lookup": 3})
    options = RuntimeOptions(device="cpu", intra_op_threads=1)
    scene = {"player_item": "sword"}
    dim = int(load_bundle(tiny_bundle).model["text_embed_dim"])
    for lookup in (0, 1, 2):
        fitting = IntentReader(reader.labels, np.zeros((dim, 3), dtype=np.float32), reader.bias, lookup=lookup)
        bundle = _with_reader(tiny_bundle, tmp_path / str(lookup), json.dumps(fitting.to_dict()))
        engine = RoleModelEngine(load_bundle(bundle), options)
        hint = engine.looked_up("ask item", "name: Brenna", scene, "What am I holding?")
        assert hint == ("ask item: sword" if lookup else "ask item")
        # each bundle is served the rules its model was trained on: only version 2 looks up a name
        assert engine.looked_up("ask name", "name: Brenna", scene, "Who?") == (
            "ask name: Brenna" if lookup == 2 else "ask name")  # fmt: skip
        # the creatures a line names come first (the tiny bundle has no scene words: by the name itself)
        herd = {"nearby": "cat, wolf"}
        assert engine.looked_up("ask creatures", "", herd, "Is that wolf yours?") == (
            "ask creatures: wolf, cat" if lookup == 2 else "ask creatures")  # fmt: skip
        text = engine.tokenizer.decode(engine.prompt_ids("name: Brenna", scene, [], "Mine?", "ask item"),
                                       skip_special_tokens=False)  # fmt: skip
        assert text.replace(" ", "").endswith(f"Mine?|{hint}<npc>".replace(" ", "")), text
