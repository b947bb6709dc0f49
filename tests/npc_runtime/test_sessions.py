"""Tests of the SQLite session store: bounded history, reset, save-state snapshots, persistence and threads."""

from __future__ import annotations

import copy
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from npc_runtime.errors import SessionStoreError
from npc_runtime.sessions import STATE_FORMAT, STATE_VERSION, SessionStore


@pytest.fixture
def store() -> Iterator[SessionStore]:
    with SessionStore(None, max_turns=3, max_chars=100) as s:
        yield s


def turn(player: str, npc: str, persona: str = "guard", emotion: str | None = None) -> dict:
    return {"player": player, "npc": npc, "persona": persona, "emotion": emotion}


def state(session: str, turns: list[dict], memory: dict | None = None) -> dict:
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "session": session,
        "turns": turns,
        "memory": {} if memory is None else memory,
    }


def test_append_and_history(store: SessionStore) -> None:
    assert store.history("s1") == []
    store.append("s1", "guard", "Hello.", "Halt.", "anger")
    store.append("s1", "guard", "Sorry.", "Move along.")
    store.append("s2", "bard", "Sing!", "Tra-la!", "joy")
    assert store.history("s1") == [turn("Hello.", "Halt.", emotion="anger"), turn("Sorry.", "Move along.")]
    assert store.history("s2") == [turn("Sing!", "Tra-la!", persona="bard", emotion="joy")]
    assert store.sessions() == ["s1", "s2"]


def test_history_keeps_at_most_max_turns(store: SessionStore) -> None:
    for i in range(5):
        store.append("s", "guard", f"p{i}", f"n{i}")
    assert [t["player"] for t in store.history("s")] == ["p2", "p3", "p4"]


def test_history_keeps_at_most_max_chars(store: SessionStore) -> None:
    store.append("s", "guard", "a" * 30, "b" * 10)  # 40 chars
    store.append("s", "guard", "c" * 30, "d" * 10)  # 80 in all
    store.append("s", "guard", "e" * 20, "f" * 10)  # 110 > 100: the oldest goes
    assert [t["player"][0] for t in store.history("s")] == ["c", "e"]
    store.append("s", "guard", "x" * 101, "")  # alone over the bound: nothing is kept
    assert store.history("s") == []


def test_bounds_count_characters_not_bytes_and_keep_nul(store: SessionStore) -> None:
    store.append("s", "guard", "é" * 50, "🐉\x00" * 25)  # exactly 100 characters
    assert store.history("s") == [turn("é" * 50, "🐉\x00" * 25)]


def test_append_validates_arguments(store: SessionStore) -> None:
    with pytest.raises(ValueError, match="emotion"):
        store.append("s", "guard", "hi", "hello", "smug")
    with pytest.raises(ValueError, match="npc"):
        store.append("s", "guard", "hi", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="session"):
        store.append("", "guard", "hi", "hello")
    assert store.sessions() == []


def test_reset(store: SessionStore) -> None:
    store.append("s", "guard", "hi", "halt")
    store.append("other", "guard", "hi", "halt")
    assert store.reset("s") is True
    assert store.history("s") == []
    assert store.reset("s") is False
    assert store.sessions() == ["other"]


def test_state_round_trip(store: SessionStore) -> None:
    snapshot = state(
        "save1:guard",
        [turn("Hello.", "Halt.", emotion="anger"), turn("I'm \"nice\"\n", "Fine.", persona="bard")],
        {"met_player": "yes", "ключ": "значение"},
    )
    store.set_state("save1:guard", copy.deepcopy(snapshot))
    assert store.get_state("save1:guard") == snapshot
    assert store.memory("save1:guard") == snapshot["memory"]
    assert store.sessions() == ["save1:guard"]


def test_get_state_of_unknown_session(store: SessionStore) -> None:
    assert store.get_state("nobody") == state("nobody", [])


def test_set_state_replaces_and_applies_bounds(store: SessionStore) -> None:
    store.append("s", "guard", "old", "old")
    store.update_memory("s", {"stale": "1"})
    turns = [turn(f"p{i}", f"n{i}") for i in range(5)]
    store.set_state("s", state("s", turns, {"fresh": "2"}))
    assert store.get_state("s") == state("s", turns[-3:], {"fresh": "2"})


def test_empty_state_still_lists_session(store: SessionStore) -> None:
    store.set_state("s", state("s", []))
    assert store.sessions() == ["s"]
    assert store.get_state("s") == state("s", [])


BAD_STATES = [
    ("not a map", lambda s: [1], "state must be a map"),
    ("unknown key", lambda s: {**s, "extra": 1}, "state has unknown key 'extra'"),
    ("missing memory", lambda s: {k: v for k, v in s.items() if k != "memory"}, "state.memory is missing"),
    ("format", lambda s: {**s, "format": "other"}, "state.format"),
    ("version", lambda s: {**s, "version": 2}, "state.version"),
    ("version bool", lambda s: {**s, "version": True}, "state.version"),
    ("session", lambda s: {**s, "session": "other"}, "state.session"),
    ("turns", lambda s: {**s, "turns": "no"}, "state.turns must be a list"),
    ("turn map", lambda s: {**s, "turns": [*s["turns"], 5]}, r"state.turns\[2\] must be a map"),
    (
        "turn npc",
        lambda s: {**s, "turns": [*s["turns"], turn("a", 3)]},  # type: ignore[arg-type]
        r"state.turns\[2\].npc must be a string",
    ),
    (
        "turn missing player",
        lambda s: {**s, "turns": [{"npc": "x", "persona": "guard", "emotion": None}]},
        r"state.turns\[0\].player is missing",
    ),
    ("turn emotion", lambda s: {**s, "turns": [turn("a", "b", emotion="smug")]}, r"state.turns\[0\].emotion"),
    ("turn extra", lambda s: {**s, "turns": [{**turn("a", "b"), "t": 1}]}, r"state.turns\[0\] has unknown key"),
    ("memory map", lambda s: {**s, "memory": ["a"]}, "state.memory must be a map"),
    ("memory value", lambda s: {**s, "memory": {"k": 1}}, r"state.memory\['k'\] must be a string"),
]


@pytest.mark.parametrize(("mutate", "message"), [b[1:] for b in BAD_STATES], ids=[b[0] for b in BAD_STATES])
def test_set_state_rejects_bad_field_and_changes_nothing(store: SessionStore, mutate, message: str) -> None:
    store.append("s", "guard", "keep", "me")
    good = state("s", [turn("a", "b"), turn("c", "d")])
    before = store.get_state("s")
    with pytest.raises(ValueError, match=message):
        store.set_state("s", mutate(good))
    assert store.get_state("s") == before


def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "sessions.db"
    with SessionStore(path) as first:
        first.append("s", "innkeeper", "A room?", "Five silver, love.", "joy")
        first.update_memory("s", {"paid": "no"})
    with SessionStore(path) as second:
        assert second.history("s") == [turn("A room?", "Five silver, love.", persona="innkeeper", emotion="joy")]
        assert second.memory("s") == {"paid": "no"}
        conn = sqlite3.connect(path)
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        finally:
            conn.close()
        assert mode == "wal" and version == "1"


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    SessionStore(path).close()
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    finally:
        conn.close()
    with pytest.raises(SessionStoreError, match="schema version 99"):
        SessionStore(path)


def test_corrupt_file_and_closed_store_raise_session_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SessionStoreError, match="garbage.db") as info:
        SessionStore(path)
    assert isinstance(info.value.__cause__, sqlite3.Error)
    store = SessionStore(None)
    store.close()
    store.close()
    with pytest.raises(SessionStoreError, match="closed"):
        store.history("s")


def test_constructor_validates_bounds() -> None:
    with pytest.raises(ValueError, match="max_turns"):
        SessionStore(None, max_turns=0)
    with pytest.raises(ValueError, match="max_chars"):
        SessionStore(None, max_chars=-1)


def test_threads_append_concurrently(tmp_path: Path) -> None:
    n_threads, n_turns = 4, 20
    errors: list[BaseException] = []
    with SessionStore(tmp_path / "threads.db", max_turns=n_turns, max_chars=10_000) as store:

        def work(k: int) -> None:
            try:
                for i in range(n_turns):
                    store.append(f"s{k}", "guard", f"p{k}.{i}", f"n{k}.{i}")
                    store.append("shared", "guard", f"p{k}.{i}", "x")
                    store.history("shared")
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for k in range(n_threads):
            assert [t["player"] for t in store.history(f"s{k}")] == [f"p{k}.{i}" for i in range(n_turns)]
        assert len(store.history("shared")) == n_turns
        assert store.sessions() == ["s0", "s1", "s2", "s3", "shared"]
