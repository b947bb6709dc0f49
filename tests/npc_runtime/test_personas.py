"""Tests of persona cards: the bundled pack, load errors, the TOML writer and the SillyTavern importer."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from npc_runtime.emotion import EMOTIONS
from npc_runtime.errors import PersonaError
from npc_runtime.personas import (
    MAX_STYLE_CHARS,
    Knowledge,
    PersonaCard,
    PersonaPack,
    Place,
    Quest,
    Ware,
    card_to_toml,
    default_pack_dir,
    import_sillytavern,
    load_persona,
)

BUNDLED_IDS = ("bard", "blacksmith", "child", "guard", "guide", "healer", "innkeeper", "merchant", "scholar")
VILLAGE_PLACES = {"forge", "inn", "market", "gate", "square", "temple", "riverside", "library", "meadow"}

GOOD_CARD = """\
id = "smith"
name = "Brenna Ironhand"
role = "blacksmith"
backstory = "Took over the forge."
traits = ["gruff", "honest"]
speaking_style = "short, blunt sentences"
example_lines = ["Aye.", "Mind the edge."]

[knowledge]
facts = ["the forge is old"]

[[knowledge.wares]]
item = "longsword"
price = 40
"""


def write(tmp_path: Path, text: str, stem: str = "smith") -> Path:
    path = tmp_path / f"{stem}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make_card(**overrides: object) -> PersonaCard:
    values: dict = {
        "id": "smith",
        "name": "Brenna Ironhand",
        "role": "blacksmith",
        "backstory": "Took over the forge.",
        "traits": ("gruff", "honest"),
        "speaking_style": "short, blunt sentences",
        "example_lines": ("Aye.", "Mind the edge."),
    }
    values.update(overrides)
    return PersonaCard(**values)


# ------------------------------------------------------------------------------------------- the bundled pack


@pytest.fixture(scope="module")
def pack() -> PersonaPack:
    return PersonaPack.load(default_pack_dir())


def test_bundled_pack_has_the_nine_personas(pack: PersonaPack) -> None:
    assert pack.ids == BUNDLED_IDS
    assert len(pack) == 9
    assert [card.id for card in pack] == list(BUNDLED_IDS)
    assert "healer" in pack and "dragon" not in pack
    with pytest.raises(KeyError):
        pack.get("dragon")


def test_bundled_cards_are_distinct_and_complete(pack: PersonaPack) -> None:
    names = [card.name for card in pack]
    assert len(set(names)) == len(names)
    styles = [card.speaking_style for card in pack]
    assert len(set(styles)) == len(styles)
    assert len({card.fingerprint() for card in pack}) == len(pack)
    quests = 0
    for card in pack:
        assert 4 <= len(card.example_lines) <= 6, card.id
        assert 2 <= len(card.knowledge.places) <= 4, card.id
        assert 2 <= len(card.knowledge.rumours) <= 3, card.id
        assert card.relationships, card.id
        assert set(card.relationships) <= set(BUNDLED_IDS) - {card.id}, card.id
        assert card.default_emotion in EMOTIONS
        for place in card.knowledge.places:
            assert place.name.removeprefix("the ") in VILLAGE_PLACES, (card.id, place.name)
        quests += card.knowledge.quest is not None
    assert quests >= 5
    for persona_id in ("blacksmith", "merchant", "innkeeper", "healer"):
        assert pack.get(persona_id).knowledge.wares, persona_id


def test_bundled_directions_agree_between_cards(pack: PersonaPack) -> None:
    directions: dict[str, set[str]] = {}
    for card in pack:
        for place in card.knowledge.places:
            directions.setdefault(place.name, set()).add(place.directions)
    assert {name: len(found) for name, found in directions.items()} == {name: 1 for name in directions}


def test_bundled_knowledge_text_is_short_single_line(pack: PersonaPack) -> None:
    for card in pack:
        text = card.knowledge_text()
        assert len(text) < 700, card.id
        assert "\n" not in text
        assert text.startswith(f"name: {card.name} | role: {card.role}")
        for ware in card.knowledge.wares:
            assert f"{ware.item} {ware.price}" in text
        if card.knowledge.quest is not None:
            assert card.knowledge.quest.title in text


def test_card_text_puts_identity_first(pack: PersonaPack) -> None:
    card = pack.get("blacksmith")
    text = card.card_text()
    assert text == card.card_text()
    assert text.index(card.name) < text.index(card.traits[0]) < text.index(card.example_lines[0])
    assert text.index(card.example_lines[-1]) < text.index("Backstory")
    assert "\n" not in text


def test_public_fields_are_plain_data(pack: PersonaPack) -> None:
    fields = pack.get("merchant").public_fields()
    assert fields["id"] == "merchant"
    assert isinstance(fields["traits"], list) and isinstance(fields["example_lines"], list)
    assert type(fields["relationships"]) is dict
    assert fields["knowledge"]["wares"][0] == {"item": "rope", "price": 2}
    assert set(fields["knowledge"]["quest"]) == {"title", "task", "reward", "location"}

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return isinstance(value, (str, int))

    assert plain(fields)


# ------------------------------------------------------------------------------------------- card behaviour


def test_fingerprint_changes_with_the_card() -> None:
    card = make_card()
    assert card.fingerprint() == make_card().fingerprint()
    assert len(card.fingerprint()) == 64
    changed = make_card(knowledge=Knowledge(wares=(Ware("dagger", 12),)))
    assert changed.fingerprint() != card.fingerprint()
    assert make_card(traits=("kind",)).fingerprint() != card.fingerprint()


def test_knowledge_text_drops_relationships_then_rumours_then_facts() -> None:
    card = make_card(
        relationships={"guard": "old friend " * 5},
        knowledge=Knowledge(
            facts=("fact one " * 10, "fact two " * 10),
            rumours=("rumour one " * 10, "rumour two " * 10),
            wares=(Ware("longsword", 40),),
        ),
    )
    full = card.knowledge_text(max_chars=10_000)
    assert "knows:" in full and "rumours:" in full and "facts:" in full
    no_knows = card.knowledge_text(max_chars=len(full) - 1)
    assert "knows:" not in no_knows and "rumour two" in no_knows
    one_rumour = card.knowledge_text(max_chars=len(no_knows) - 1)
    assert "rumour one" in one_rumour and "rumour two" not in one_rumour
    tiny = card.knowledge_text(max_chars=80)
    assert len(tiny) <= 80
    assert "rumour" not in tiny and "fact" not in tiny
    assert tiny.startswith("name: Brenna Ironhand | role: blacksmith | wares: longsword 40")


def test_voice_sections_follow_the_role_and_leave_the_facts_unchanged() -> None:
    card = make_card(
        speaking_style='gruff; calls people "lad"; often says "Mind the anvil."',
        knowledge=Knowledge(facts=("fact one " * 30, "fact two " * 30), wares=(Ware("longsword", 40),)),
    )
    plain, voiced = card.knowledge_text(), card.knowledge_text(voice=True)
    voice = " | ".join(card.voice_sections())
    assert voice.startswith("traits: ") and f"mood: {card.default_emotion}" in voice
    assert 'style: gruff; calls people "lad"; often says "Mind the anvil."' in voice
    head = f"name: {card.name} | role: {card.role} | "
    # The same facts survive the length cap with or without the voice: only the voice is inserted after the role.
    assert voiced == head + voice + " | " + plain[len(head):]
    assert card.knowledge_text(max_chars=80, voice=True) == head + voice + " | " + card.knowledge_text(max_chars=80)[len(head):]


def test_voice_style_is_capped_at_a_word_boundary() -> None:
    card = make_card(speaking_style="word " * 100)
    style = card.voice_sections()[-1]
    assert style.startswith("style: word") and len(style) <= len("style: ") + MAX_STYLE_CHARS
    assert style.endswith("word")


def test_fingerprint_covers_what_the_voice_line_shows() -> None:
    card = make_card(default_emotion="neutral")
    assert make_card(default_emotion="joy").fingerprint() != card.fingerprint()


def test_card_is_immutable_and_validates_itself() -> None:
    rels = {"guard": "friend"}
    card = make_card(relationships=rels)
    rels["bard"] = "enemy"
    assert dict(card.relationships) == {"guard": "friend"}
    with pytest.raises(TypeError):
        card.relationships["x"] = "y"  # type: ignore[index]
    assert hash(card) == hash(make_card(relationships={"guard": "friend"}))
    with pytest.raises(ValueError, match="example_lines"):
        make_card(example_lines=("only one",))
    with pytest.raises(ValueError, match="default_emotion"):
        make_card(default_emotion="smug")
    with pytest.raises(ValueError, match="price"):
        Ware("sword", -1)


# ------------------------------------------------------------------------------------------- load errors


def test_load_good_card(tmp_path: Path) -> None:
    card = load_persona(write(tmp_path, GOOD_CARD))
    assert card.id == "smith"
    assert card.traits == ("gruff", "honest")
    assert card.knowledge.wares == (Ware("longsword", 40),)
    assert card.knowledge.facts == ("the forge is old",)
    assert card.default_emotion == "neutral"
    assert card.source == str(tmp_path / "smith.toml")


BAD_CARDS = [
    ("missing name", GOOD_CARD.replace('name = "Brenna Ironhand"\n', ""), "name"),
    ("name not str", GOOD_CARD.replace('name = "Brenna Ironhand"', "name = 3"), "name"),
    ("traits not list", GOOD_CARD.replace('traits = ["gruff", "honest"]', 'traits = "gruff"'), "traits"),
    ("traits empty", GOOD_CARD.replace('traits = ["gruff", "honest"]', "traits = []"), "traits"),
    ("trait not str", GOOD_CARD.replace('traits = ["gruff", "honest"]', 'traits = ["gruff", 2]'), "traits[1]"),
    ("one example", GOOD_CARD.replace('["Aye.", "Mind the edge."]', '["Aye."]'), "example_lines"),
    ("unknown emotion", 'default_emotion = "smug"\n' + GOOD_CARD, "default_emotion"),
    ("bad id", GOOD_CARD.replace('id = "smith"', 'id = "Smith!"'), "id"),
    ("id not stem", GOOD_CARD.replace('id = "smith"', 'id = "other"'), "id"),
    ("negative price", GOOD_CARD.replace("price = 40", "price = -5"), "knowledge.wares[0].price"),
    ("float price", GOOD_CARD.replace("price = 40", "price = 4.5"), "knowledge.wares[0].price"),
    ("missing price", GOOD_CARD.replace("price = 40\n", ""), "knowledge.wares[0].price"),
    ("knowledge not table", GOOD_CARD.split("[knowledge]")[0].replace("role =", 'knowledge = 3\nrole ='), "knowledge"),
    (
        "place without directions",
        GOOD_CARD + '\n[[knowledge.places]]\nname = "the inn"\n',
        "knowledge.places[0].directions",
    ),
    (
        "quest without reward",
        GOOD_CARD + '\n[knowledge.quest]\ntitle = "t"\ntask = "k"\nlocation = "the inn"\n',
        "knowledge.quest.reward",
    ),
    ("relationship not str", GOOD_CARD + "\n[relationships]\nguard = 1\n", "relationships.guard"),
]


@pytest.mark.parametrize(("text", "field_name"), [c[1:] for c in BAD_CARDS], ids=[c[0] for c in BAD_CARDS])
def test_load_errors_name_file_and_field(tmp_path: Path, text: str, field_name: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PersonaError) as info:
        load_persona(path)
    assert info.value.path == str(path)
    assert info.value.field == field_name
    assert str(path) in str(info.value) and field_name in str(info.value)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'id = "smith"\nname = "unterminated\n')
    with pytest.raises(PersonaError, match=r"line 2") as info:
        load_persona(path)
    assert info.value.path == str(path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "ghost.toml"
    with pytest.raises(PersonaError) as info:
        load_persona(path)
    assert info.value.path == str(path)


def test_unknown_top_level_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, 'favourite_colour = "red"\n' + GOOD_CARD)
    with caplog.at_level(logging.WARNING, logger="npc_runtime.personas"):
        card = load_persona(path)
    assert card.name == "Brenna Ironhand"
    assert any("favourite_colour" in record.getMessage() for record in caplog.records)


def test_pack_rejects_bad_file_and_duplicate_ids(tmp_path: Path) -> None:
    write(tmp_path, GOOD_CARD)
    write(tmp_path, GOOD_CARD.replace('id = "smith"', 'id = "broken"').replace("traits", "trait"), stem="broken")
    with pytest.raises(PersonaError) as info:
        PersonaPack.load(tmp_path)
    assert info.value.field == "traits" and info.value.path.endswith("broken.toml")

    card = make_card()
    with pytest.raises(PersonaError, match="duplicate"):
        PersonaPack.from_cards([card, make_card(name="Other")])
    assert PersonaPack.from_cards([card]).get("smith") is card
    with pytest.raises(PersonaError):
        PersonaPack.load(tmp_path / "missing")


# ------------------------------------------------------------------------------------------- TOML writer

HOSTILE = 'say "hi" \\ back\\slash\nnew line\ttab é ✓ 🐉 """ \'\'\' \x01\x7f\r end'


def test_toml_round_trip_with_hostile_strings(tmp_path: Path) -> None:
    card = make_card(
        id="hostile",
        name=HOSTILE,
        role="role with = and [brackets]",
        backstory=HOSTILE * 2,
        traits=(HOSTILE, "plain"),
        speaking_style='"""',
        example_lines=("'", HOSTILE, "# not a comment"),
        goals=("a goal",),
        default_emotion="fear",
        relationships={"guard": HOSTILE, "Old Tom (miller)": "cousin", 'we"ird.key': "x"},
        knowledge=Knowledge(
            facts=(HOSTILE,),
            rumours=("r1", "r2"),
            wares=(Ware(HOSTILE, 0), Ware("dagger", 12)),
            places=(Place("the inn", HOSTILE),),
            quest=Quest(title=HOSTILE, task="t", reward="5 silver", location="the inn"),
        ),
    )
    text = card_to_toml(card)
    path = write(tmp_path, text, stem="hostile")
    loaded = load_persona(path)
    assert loaded == card
    assert loaded.name == HOSTILE
    assert dict(loaded.relationships) == dict(card.relationships)


def test_toml_round_trip_of_bundled_and_minimal_cards(tmp_path: Path, pack: PersonaPack) -> None:
    for card in [*pack, make_card()]:
        path = write(tmp_path, card_to_toml(card), stem=card.id)
        assert load_persona(path) == card


# ------------------------------------------------------------------------------------------- SillyTavern

V2_CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Old Tom",
        "description": "{{char}} is the miller of the village.",
        "personality": "grumpy, kind-hearted; forgetful",
        "scenario": "{{user}} arrives at the mill at dusk.",
        "first_mes": "*wipes flour from his hands* Well, {{user}}, what brings you here?",
        "mes_example": (
            "<START>\n{{user}}: Hello there.\n{{char}}: Hmph. Hello yourself.\n"
            "<START>\n{{user}}: Can I buy flour?\n{{char}}: Two silver a sack.\nNo haggling.\n"
        ),
        "creator_notes": "Tom speaks slowly, with long sighs.",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": ["male", "Miller", "fantasy"],
        "character_book": {
            "entries": [
                {"keys": ["mill"], "content": "The mill wheel broke last spring.", "enabled": True},
                {"keys": ["x"], "content": "Disabled entry.", "enabled": False},
            ]
        },
    },
}

V1_CARD = {
    "name": "Mira",
    "description": "A fisher by the river.",
    "personality": "cheerful",
    "scenario": "",
    "first_mes": "Caught anything, {{user}}?",
    "mes_example": "<START>\n{{user}}: Hi!\n{{char}}: Hi yourself!",
}


def write_json(tmp_path: Path, data: object, name: str = "card.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_import_sillytavern_v2(tmp_path: Path) -> None:
    out = import_sillytavern(write_json(tmp_path, V2_CARD), tmp_path / "pack")
    assert out == tmp_path / "pack" / "old_tom.toml"
    card = load_persona(out)
    assert card.id == "old_tom" and card.name == "Old Tom"
    assert card.traits == ("grumpy", "kind-hearted", "forgetful")
    assert card.role == "miller"
    assert "Old Tom is the miller" in card.backstory and "traveller arrives" in card.backstory
    assert card.example_lines[:2] == ("Hmph. Hello yourself.", "Two silver a sack. No haggling.")
    assert "Well, traveller, what brings you here?" in card.example_lines[2]
    assert card.knowledge.facts == ("The mill wheel broke last spring.",)
    assert "slowly" in card.speaking_style
    assert "{{" not in card_to_toml(card)
    assert PersonaPack.load(tmp_path / "pack").ids == ("old_tom",)


def test_import_sillytavern_v1_with_given_id(tmp_path: Path) -> None:
    out = import_sillytavern(write_json(tmp_path, V1_CARD), tmp_path, persona_id="fisher")
    card = load_persona(out)
    assert out.name == "fisher.toml"
    assert card.name == "Mira" and card.role == "villager"
    assert card.example_lines == ("Hi yourself!", "Caught anything, traveller?")
    assert card.traits == ("cheerful",)


def test_import_refuses_to_overwrite(tmp_path: Path) -> None:
    src = write_json(tmp_path, V1_CARD)
    out = import_sillytavern(src, tmp_path / "pack")
    before = out.read_text(encoding="utf-8")
    with pytest.raises(PersonaError, match="overwrite") as info:
        import_sillytavern(src, tmp_path / "pack")
    assert info.value.path == str(out)
    assert out.read_text(encoding="utf-8") == before


@pytest.mark.parametrize(
    ("content", "field_name"),
    [
        ("{not json", None),
        ("[1, 2]", None),
        (json.dumps({"spec": "chara_card_v2", "data": {"description": "no name"}}), "data.name"),
        (json.dumps({"name": 5, "first_mes": "a"}), "name"),
        (json.dumps({"name": "Solo", "first_mes": "only one line"}), "mes_example"),
        (json.dumps({"name": "Ω", "first_mes": "a", "mes_example": "{{char}}: b"}), "name"),
        (json.dumps({"spec": "chara_card_v2", "data": "oops"}), "data"),
    ],
    ids=["not-json", "not-object", "no-name", "name-not-str", "too-few-lines", "no-slug", "data-not-object"],
)
def test_import_bad_input_names_file_and_field(tmp_path: Path, content: str, field_name: str | None) -> None:
    src = tmp_path / "bad.json"
    src.write_text(content, encoding="utf-8")
    with pytest.raises(PersonaError) as info:
        import_sillytavern(src, tmp_path / "pack")
    assert info.value.path == str(src)
    assert info.value.field == field_name
    assert not (tmp_path / "pack").exists() or not any((tmp_path / "pack").iterdir())


def test_space_quotes_spaces_quote_pairs_and_leaves_apostrophes() -> None:
    from npc_runtime.personas import space_quotes

    assert space_quotes('says "Salt and oars!" and calls people \'sprout\'.') == (
        'says " Salt and oars! " and calls people \' sprout \'.'
    )
    assert space_quotes("Oona's Remedy; the smiths' hall") == "Oona's Remedy; the smiths' hall"
    assert space_quotes('an odd " quote') == 'an odd " quote'
    assert space_quotes("\u201cHi there\u201d, he said") == "\u201c Hi there \u201d, he said"
    assert space_quotes(space_quotes('x ("a b") y')) == 'x (" a b ") y'  # idempotent


def test_spaced_quotes_is_off_by_default_and_changes_no_fingerprint() -> None:
    for card in PersonaPack.load(default_pack_dir()):
        assert card.knowledge_text(voice=True) == card.knowledge_text(voice=True, spaced_quotes=False)
        plain = card.knowledge_text(voice=True).replace(" ", "")
        assert card.knowledge_text(voice=True, spaced_quotes=True).replace(" ", "") == plain
