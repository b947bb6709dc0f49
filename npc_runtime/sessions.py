"""Conversation sessions: each session's recent exchanges and game-set memory, kept in SQLite across restarts.

A session is what a game calls one ongoing conversation (``save1:blacksmith``). The store keeps a bounded history
per session (the prompt only needs the last few exchanges) and snapshots a session as a plain map that the game
writes into its own save file and hands back later (``state.get`` / ``state.set`` in the protocol).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .emotion import EMOTIONS
from .errors import SessionStoreError

__all__ = ["STATE_FORMAT", "STATE_VERSION", "SCHEMA_VERSION", "SessionStore"]

log = logging.getLogger(__name__)

STATE_FORMAT = "npc-session"
STATE_VERSION = 1
#: Version of the SQLite schema below, stored in the ``meta`` table.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    persona TEXT NOT NULL,
    player TEXT NOT NULL,
    npc TEXT NOT NULL,
    emotion TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_session ON turns (session, id);
CREATE TABLE IF NOT EXISTS memory (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (session, key)
);
"""

_TURN_KEYS = ("player", "npc", "persona", "emotion")
_STATE_KEYS = ("format", "version", "session", "turns", "memory")


def _check_turn(turn: object, where: str) -> None:
    if not isinstance(turn, Mapping):
        raise ValueError(f"{where} must be a map")
    for key in turn:
        if key not in _TURN_KEYS:
            raise ValueError(f"{where} has unknown key {key!r}")
    for key in _TURN_KEYS:
        if key not in turn:
            raise ValueError(f"{where}.{key} is missing")
    for key in ("player", "npc", "persona"):
        if not isinstance(turn[key], str):
            raise ValueError(f"{where}.{key} must be a string")
    if not turn["persona"]:
        raise ValueError(f"{where}.persona must not be empty")
    emotion = turn["emotion"]
    if emotion is not None and emotion not in EMOTIONS:
        raise ValueError(f"{where}.emotion must be null or one of {', '.join(EMOTIONS)}")


def _check_state(session: str, state: object) -> None:
    """Raise ``ValueError`` naming the first bad field path of a ``get_state`` snapshot."""
    if not isinstance(state, Mapping):
        raise ValueError("state must be a map")
    for key in state:
        if key not in _STATE_KEYS:
            raise ValueError(f"state has unknown key {key!r}")
    for key in _STATE_KEYS:
        if key not in state:
            raise ValueError(f"state.{key} is missing")
    if state["format"] != STATE_FORMAT:
        raise ValueError(f"state.format must be {STATE_FORMAT!r}")
    version = state["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != STATE_VERSION:
        raise ValueError(f"state.version must be {STATE_VERSION}")
    if not isinstance(state["session"], str):
        raise ValueError("state.session must be a string")
    if state["session"] != session:
        raise ValueError(f"state.session is {state['session']!r} but the target session is {session!r}")
    turns = state["turns"]
    if not isinstance(turns, list):
        raise ValueError("state.turns must be a list")
    for i, turn in enumerate(turns):
        _check_turn(turn, f"state.turns[{i}]")
    memory = state["memory"]
    if not isinstance(memory, Mapping):
        raise ValueError("state.memory must be a map")
    for key, value in memory.items():
        if not isinstance(key, str):
            raise ValueError(f"state.memory key {key!r} must be a string")
        if not isinstance(value, str):
            raise ValueError(f"state.memory[{key!r}] must be a string")


def _check_session_id(session: object) -> None:
    if not isinstance(session, str) or not session:
        raise ValueError("session must be a non-empty string")


class SessionStore:
    """Every session's bounded history and memory in one SQLite database; safe to share between threads.

    ``path`` None keeps everything in memory (tests, throw-away servers). A file database uses WAL journaling and
    survives restarts. Each session keeps at most ``max_turns`` exchanges and at most ``max_chars`` characters of
    player and NPC text; the oldest exchanges are dropped first, so a single exchange longer than ``max_chars`` is
    not kept at all.
    """

    def __init__(self, path: str | Path | None, max_turns: int = 8, max_chars: int = 4000) -> None:
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be an integer >= 1, got {max_turns!r}")
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"max_chars must be an integer >= 1, got {max_chars!r}")
        self.max_turns = max_turns
        self.max_chars = max_chars
        self.path = None if path is None else Path(path)
        self._where = ":memory:" if self.path is None else str(self.path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._where, check_same_thread=False, timeout=10.0)
        except (sqlite3.Error, OSError) as exc:
            raise SessionStoreError(f"{self._where}: cannot open the session database: {exc}") from exc
        try:
            self._init_schema(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise SessionStoreError(f"{self._where}: cannot open the session database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        if self.path is not None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise SessionStoreError(
                    f"{self._where}: session database has schema version {row[0]}, this runtime reads {SCHEMA_VERSION}"
                )

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, in one transaction; sqlite3 errors become ``SessionStoreError``."""
        with self._lock:
            if self._conn is None:
                raise SessionStoreError(f"{self._where}: session store is closed")
            try:
                with self._conn:
                    yield self._conn
            except sqlite3.Error as exc:
                raise SessionStoreError(f"{self._where}: cannot {action}: {exc}") from exc

    # ------------------------------------------------------------------------------------------- writing

    def append(self, session: str, persona: str, player: str, npc: str, emotion: str | None = None) -> None:
        """Store one exchange (the player's line, the NPC's reply and its emotion label), then apply the bounds."""
        _check_session_id(session)
        _check_turn({"player": player, "npc": npc, "persona": persona, "emotion": emotion}, "turn")
        now = time.time()
        with self._transaction("append a turn") as conn:
            self._touch(conn, session, now)
            conn.execute(
                "INSERT INTO turns (session, persona, player, npc, emotion, created) VALUES (?, ?, ?, ?, ?, ?)",
                (session, persona, player, npc, emotion, now),
            )
            self._trim(conn, session)

    def set_state(self, session: str, state: dict) -> None:
        """Replace the session with a snapshot made by :meth:`get_state`.

        The snapshot is checked strictly first (a ``ValueError`` names the bad field, e.g.
        ``state.turns[2].npc must be a string``) and nothing changes when it fails. The ``max_turns`` and
        ``max_chars`` bounds apply as for :meth:`append`: a snapshot holding more keeps only its newest exchanges.
        Memory is stored whole.
        """
        _check_session_id(session)
        _check_state(session, state)
        now = time.time()
        with self._transaction("set the session state") as conn:
            self._delete(conn, session)
            self._touch(conn, session, now)
            conn.executemany(
                "INSERT INTO turns (session, persona, player, npc, emotion, created) VALUES (?, ?, ?, ?, ?, ?)",
                [(session, t["persona"], t["player"], t["npc"], t["emotion"], now) for t in state["turns"]],
            )
            conn.executemany(
                "INSERT INTO memory (session, key, value) VALUES (?, ?, ?)",
                [(session, key, value) for key, value in state["memory"].items()],
            )
            self._trim(conn, session)

    def update_memory(self, session: str, values: Mapping[str, str]) -> None:
        """Set some memory entries of a session (other entries stay)."""
        _check_session_id(session)
        for key, value in values.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"memory[{key!r}] must map a string to a string")
        with self._transaction("update the session memory") as conn:
            self._touch(conn, session, time.time())
            conn.executemany(
                "INSERT OR REPLACE INTO memory (session, key, value) VALUES (?, ?, ?)",
                [(session, key, value) for key, value in values.items()],
            )

    def reset(self, session: str) -> bool:
        """Forget a session entirely; True when there was something to delete."""
        with self._transaction("reset a session") as conn:
            return self._delete(conn, session)

    @staticmethod
    def _touch(conn: sqlite3.Connection, session: str, now: float) -> None:
        conn.execute(
            "INSERT INTO sessions (session, updated) VALUES (?, ?) ON CONFLICT (session) DO UPDATE SET updated = ?",
            (session, now, now),
        )

    @staticmethod
    def _delete(conn: sqlite3.Connection, session: str) -> bool:
        deleted = conn.execute("DELETE FROM sessions WHERE session = ?", (session,)).rowcount
        deleted += conn.execute("DELETE FROM turns WHERE session = ?", (session,)).rowcount
        deleted += conn.execute("DELETE FROM memory WHERE session = ?", (session,)).rowcount
        return deleted > 0

    def _trim(self, conn: sqlite3.Connection, session: str) -> None:
        # Walk newest to oldest; keep exchanges while both bounds hold, then drop everything older.
        # Sizes are counted in Python: SQL length() stops at an embedded NUL character.
        rows = conn.execute(
            "SELECT id, player, npc FROM turns WHERE session = ? ORDER BY id DESC", (session,)
        ).fetchall()
        kept, chars = 0, 0
        for _, player, npc in rows:
            size = len(player) + len(npc)
            if kept + 1 > self.max_turns or chars + size > self.max_chars:
                break
            kept += 1
            chars += size
        dropped = [(row[0],) for row in rows[kept:]]
        if dropped:
            conn.executemany("DELETE FROM turns WHERE id = ?", dropped)
            log.debug("session %r: dropped %d old exchange(s)", session, len(dropped))

    # ------------------------------------------------------------------------------------------- reading

    @staticmethod
    def _read_turns(conn: sqlite3.Connection, session: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT player, npc, persona, emotion FROM turns WHERE session = ? ORDER BY id", (session,)
        ).fetchall()
        return [{"player": p, "npc": n, "persona": who, "emotion": e} for p, n, who, e in rows]

    @staticmethod
    def _read_memory(conn: sqlite3.Connection, session: str) -> dict[str, str]:
        rows = conn.execute("SELECT key, value FROM memory WHERE session = ? ORDER BY key", (session,)).fetchall()
        return dict(rows)

    def history(self, session: str) -> list[dict[str, Any]]:
        """The stored exchanges, oldest first: ``{"player", "npc", "persona", "emotion"}``; ``[]`` if unknown."""
        with self._transaction("read the history") as conn:
            return self._read_turns(conn, session)

    def memory(self, session: str) -> dict[str, str]:
        """The session's memory map (``{}`` if unknown)."""
        with self._transaction("read the session memory") as conn:
            return self._read_memory(conn, session)

    def get_state(self, session: str) -> dict[str, Any]:
        """A msgpack-friendly snapshot of the session for the game's save file (see :meth:`set_state`)."""
        with self._transaction("read the session state") as conn:
            turns, memory = self._read_turns(conn, session), self._read_memory(conn, session)
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "session": session, "turns": turns, "memory": memory}

    def sessions(self) -> list[str]:
        """Every stored session id, sorted."""
        with self._transaction("list sessions") as conn:
            rows = conn.execute("SELECT session FROM sessions ORDER BY session").fetchall()
        return [row[0] for row in rows]

    # ------------------------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the database; safe to call twice. Any later call raises ``SessionStoreError``."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error as exc:
                    raise SessionStoreError(f"{self._where}: cannot close: {exc}") from exc
                finally:
                    self._conn = None

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SessionStore({self._where!r}, max_turns={self.max_turns}, max_chars={self.max_chars})"
