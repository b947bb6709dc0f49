"""The out-of-character guard: unit rules, and through the scheduler with a scripted engine (nothing leaks)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from npc_runtime.emotion import EMOTIONS
from npc_runtime.engine import ByteLRU, Prepared, PrefillResult
from npc_runtime.guard import GuardConfig, ReplyGuard, deflection_line
from npc_runtime.kv_cache import ConcatKVCache
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.scheduler import GenOptions, GenRequest, Scheduler

CARD = 'Brenna, the blacksmith. Traits: gruff. Says things like: "Mind the edge." "Steel sings." Backstory: x.'


def test_cut_finds_out_of_character_talk_at_its_sentence() -> None:
    guard = ReplyGuard()
    text = "Aye, good steel. As an AI language model, I cannot sell swords."
    cut, broke = guard.cut(text)
    assert broke and text[:cut] == "Aye, good steel."
    for line in ("I'm an AI, friend.", "My system prompt says no.", "That is in my instructions", "Ask ChatGPT."):
        assert guard.breaks_character(line), line
    for line in ("Aye, forged this morning.", "The prompt courier left at dawn?", "Maintain your blade."):
        assert not guard.cut(line)[1], line


def test_cut_stops_at_the_players_turn() -> None:
    guard = ReplyGuard(extra_stops=["###"])
    assert guard.cut("Twelve silver.\nUser: too much") == (len("Twelve silver."), False)
    assert guard.cut("Twelve silver.\nPlayer: hm") == (len("Twelve silver."), False)
    assert guard.cut("Twelve ### silver") == (len("Twelve "), False)
    assert guard.cut("Twelve silver.") == (-1, False)
    assert guard.hold_chars >= GuardConfig().max_match_chars - 1


def test_repair_keeps_the_prefix_and_answers_in_character() -> None:
    guard = ReplyGuard()
    assert deflection_line(CARD) == "Mind the edge."
    assert deflection_line("no examples here") and "AI" not in deflection_line("no examples here")
    assert guard.repair("", CARD) == "Mind the edge."
    assert guard.repair("Hm,", CARD) == "Hm, Mind the edge."
    assert guard.repair("Good steel here. ", CARD) == "Good steel here."


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError):
        GuardConfig(patterns=("(",))
    with pytest.raises(ValueError):
        GuardConfig(stops=("",))


class ScriptedEngine:
    """Replies with a fixed list of text pieces, then <eos>; has the guard the causal-lm engine has."""

    PROMPT = 3

    def __init__(self, script: list[str]) -> None:
        self.vocab = ["<eos>", *dict.fromkeys(script)]
        self.script = [self.vocab.index(piece) for piece in script] + [0]
        self.eos_id = 0
        self.banned_ids = np.zeros(0, dtype=np.int64)
        self.max_positions = 200
        self.bundle = SimpleNamespace(emotions=EMOTIONS)
        self.persona_cache = ByteLRU(1 << 10)
        self.guard = ReplyGuard()

    def _logits(self, indices: np.ndarray) -> np.ndarray:
        logits = np.zeros((len(indices), len(self.vocab)), dtype=np.float32)
        for row, i in enumerate(indices):
            logits[row, self.script[min(int(i), len(self.script) - 1)]] = 10.0
        return logits

    def prepare(self, *args: object) -> Prepared:
        return Prepared([1] * self.PROMPT, np.zeros(self.PROMPT, np.float32), np.zeros((0, 0), np.float32))

    def prefill(self, items: list[Prepared]) -> PrefillResult:
        b = len(items)
        return PrefillResult(self._logits(np.zeros(b)), np.zeros((b, len(EMOTIONS)), np.float32),
                             np.zeros(b, np.float32), [np.zeros((b, 1, self.PROMPT, 1), np.float32)],
                             np.ones((b, self.PROMPT), np.int64))  # fmt: skip

    def step(self, last_ids, positions, kv, mask):
        b = len(last_ids)
        kv = [np.concatenate([kv[0], np.zeros((b, 1, 1, 1), np.float32)], axis=2)]
        return self._logits(positions - self.PROMPT + 1), kv, np.concatenate([mask, np.ones((b, 1), np.int64)], 1)

    def new_cache(self) -> ConcatKVCache:
        return ConcatKVCache()

    def decode_step(self, last_ids, positions, cache: ConcatKVCache) -> np.ndarray:
        logits, cache.kv, cache.mask = self.step(last_ids, positions, cache.kv, cache.mask)
        return logits

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids if i)

    def reply_emotion(self, text: str, at_prompt: dict) -> dict:
        return at_prompt


def _reply(script: list[str]) -> tuple[str, list[str]]:
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    done = threading.Event()
    chunks: list[str] = []
    result: dict = {}

    def sink(req: GenRequest, kind: str, payload: dict) -> None:
        if kind == "chunk":
            chunks.append(payload["text"])
        else:
            result.update(payload, kind=kind)
            done.set()

    scheduler = Scheduler(ScriptedEngine(script), sink)
    scheduler.start()
    try:
        scheduler.submit(GenRequest(
            key=1, fingerprint=card.fingerprint(), card_text=card.card_text(), knowledge="", text="Swords?",
            context={}, history=[], image=None, options=GenOptions(temperature=0.0, max_tokens=40, stream=True),
        ))  # fmt: skip
        assert done.wait(30)
    finally:
        scheduler.stop()
    assert result["kind"] == "reply"
    assert "".join(chunks) == result["text"]
    return result["text"], chunks


def test_scheduler_never_streams_the_out_of_character_part() -> None:
    script = ["Aye", ",", " good", " steel", " here", ".", " As", " an", " AI", " language", " model", ",", " I",
              " cannot", " sell", " anything", "."]  # fmt: skip
    text, chunks = _reply(script)
    assert text == "Aye, good steel here."
    assert not any("AI" in c or "As" in c for c in chunks)


def test_a_reply_that_is_all_out_of_character_becomes_an_in_character_line() -> None:
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    text, _ = _reply(["As", " an", " AI", ",", " I", " have", " no", " swords", "."])
    assert text == deflection_line(card.card_text())
    assert "AI" not in text


def test_a_turn_marker_ends_the_reply_without_a_deflection() -> None:
    text, _ = _reply(["Twelve", " silver", " a", " blade", ".", "\n", "User", ":", " too", " much"])
    assert text == "Twelve silver a blade."
