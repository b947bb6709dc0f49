"""Scheduler correctness (not speed): batching, sampling, failure handling, caches."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from npc_runtime.bundle import load_bundle
from npc_runtime.engine import ByteLRU, RoleModelEngine
from npc_runtime.errors import InferenceError
from npc_runtime.ort_backend import RuntimeOptions
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.sampling import sample_token, sample_tokens
from npc_runtime.scheduler import GenOptions, GenRequest, Scheduler, SchedulerConfig, length_groups
from npc_runtime.spelling import lexicon_words, read_lexicon


class Collector:
    def __init__(self) -> None:
        self.done: dict[object, tuple[str, dict]] = {}
        self.chunks: dict[object, list[str]] = {}
        self.cond = threading.Condition()

    def __call__(self, req: GenRequest, kind: str, payload: dict) -> None:
        with self.cond:
            if kind == "chunk":
                self.chunks.setdefault(req.key, []).append(payload["text"])
            else:
                self.done[req.key] = (kind, payload)
                self.cond.notify_all()

    def wait(self, n: int, timeout_s: float = 60) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.done) >= n, timeout_s), f"only {len(self.done)} of {n} done"


def _requests(n: int, **opts: object) -> list[GenRequest]:
    pack = PersonaPack.load(default_pack_dir())
    cards = list(pack)
    lines = ["Hello there.", "Do you sell swords?", "What is that noise?", "Where is the inn?", "Tell me a rumour."]
    out = []
    for i in range(n):
        card = cards[i % len(cards)]
        out.append(GenRequest(
            key=i, fingerprint=card.fingerprint(), card_text=card.card_text(), knowledge=card.knowledge_text(),
            text=lines[i % len(lines)] * (1 + i % 3), context={"time_of_day": "night"} if i % 2 else {},
            history=[("Hi.", "Well met.")] * (i % 3), image=None,
            options=GenOptions(**{"temperature": 0.0, "max_tokens": 10, "ignore_eos": True, **opts}),
        ))
    return out


def _run(engine, reqs: list[GenRequest], config: SchedulerConfig) -> dict[object, tuple[str, dict]]:
    sink = Collector()
    scheduler = Scheduler(engine, sink, config)
    scheduler.start()
    try:
        for req in reqs:
            scheduler.submit(req)
        sink.wait(len(reqs))
    finally:
        scheduler.stop()
    return sink.done


def test_batched_ragged_decoding_equals_each_request_alone(tiny_engine) -> None:
    reqs = _requests(7)
    together = _run(tiny_engine, reqs, SchedulerConfig(max_batch=8, max_admit_per_tick=3))
    for req in reqs:
        alone = _run(tiny_engine, [req], SchedulerConfig(max_batch=1))
        assert together[req.key][0] == "reply"
        assert together[req.key][1]["text"] == alone[req.key][1]["text"], f"request {req.key} differs"


def test_notify_wakes_the_consumer_once_per_batch_of_events(tiny_engine) -> None:
    events: list[str] = []
    wakes: list[int] = []  # how many events were waiting at each wake-up

    def sink(req: GenRequest, kind: str, payload: dict) -> None:
        events.append(kind)

    scheduler = Scheduler(tiny_engine, sink, SchedulerConfig(max_batch=8), notify=lambda: wakes.append(len(events)))
    for req in _requests(6, stream=True):
        scheduler.submit(req)  # all queued before the thread starts: they share every tick
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while events.count("reply") < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        scheduler.stop()
    assert events.count("reply") == 6 and events.count("chunk") >= 6
    assert wakes and wakes[-1] == len(events)  # nothing is left unannounced
    assert len(wakes) <= 2 * scheduler.ticks < len(events)  # one per admission or step, not one per event


def test_same_seed_repeats_and_other_seed_differs(tiny_engine) -> None:
    a = _run(tiny_engine, _requests(1, temperature=1.0, seed=7, max_tokens=24), SchedulerConfig())
    b = _run(tiny_engine, _requests(1, temperature=1.0, seed=7, max_tokens=24), SchedulerConfig())
    c = _run(tiny_engine, _requests(1, temperature=1.0, seed=8, max_tokens=24), SchedulerConfig())
    assert a[0][1]["text"] == b[0][1]["text"]
    assert a[0][1]["text"] != c[0][1]["text"]


def test_stop_sequence_cuts_the_reply(tiny_engine) -> None:
    base = _run(tiny_engine, _requests(1, max_tokens=24), SchedulerConfig())[0][1]["text"]
    assert len(base) > 4
    stop = base[2:4]
    cut = _run(tiny_engine, _requests(1, max_tokens=24, stop=(stop,)), SchedulerConfig())[0][1]["text"]
    assert stop not in cut and base.startswith(cut)


def test_engine_failure_answers_internal_and_the_scheduler_keeps_going(tiny_engine, monkeypatch) -> None:
    calls = {"n": 0}
    real_step = tiny_engine.decode_step

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise InferenceError("boom")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(tiny_engine, "decode_step", flaky)
    sink = Collector()
    scheduler = Scheduler(tiny_engine, sink, SchedulerConfig())
    scheduler.start()
    try:
        first = _requests(1)[0]
        scheduler.submit(first)
        sink.wait(1)
        assert sink.done[0][0] == "error" and sink.done[0][1]["code"] == "internal"
        second = _requests(2)[1]
        scheduler.submit(second)
        sink.wait(2)
        assert sink.done[1][0] == "reply"
    finally:
        scheduler.stop()


def test_persona_prefix_is_cached_and_equal_to_uncached(tiny_engine) -> None:
    card = PersonaPack.load(default_pack_dir()).get("scholar")
    tiny_engine.persona_cache = ByteLRU(1 << 20)
    first = tiny_engine.persona_embedding(card.fingerprint(), card.card_text())
    again = tiny_engine.persona_embedding(card.fingerprint(), card.card_text())
    fresh = tiny_engine.encode_texts([card.card_text()])[0]
    assert tiny_engine.persona_cache.hits == 1
    np.testing.assert_allclose(first, fresh, atol=1e-6)
    assert again is first


def test_byte_lru_is_bounded() -> None:
    cache = ByteLRU(max_bytes=100)
    for i in range(10):
        cache.put(i, np.zeros(10, dtype=np.float32))  # 40 bytes each
    assert cache.bytes <= 100 and len(cache) == 2
    assert cache.get(9) is not None and cache.get(0) is None


def test_sampling_rules() -> None:
    rng = np.random.default_rng(0)
    logits = np.array([0.0, 5.0, 4.0, -1.0])
    banned = np.array([1])
    assert sample_token(logits, [], GenOptions(temperature=0.0), rng, banned) == 2
    assert sample_token(logits, [2], GenOptions(temperature=0.0, repetition_penalty=3.0), rng, np.array([], dtype=np.int64)) == 1
    picks = {sample_token(logits, [], GenOptions(temperature=1.0, top_k=1), rng, banned) for _ in range(20)}
    assert picks == {2}
    picks = {sample_token(logits, [], GenOptions(temperature=1.0, top_p=0.5, top_k=0), rng, np.array([], dtype=np.int64)) for _ in range(20)}
    assert picks == {1}
    picks = {sample_token(logits, [], GenOptions(temperature=1.0, top_p=1.0, top_k=2), rng, np.array([], dtype=np.int64)) for _ in range(200)}
    assert picks == {1, 2}  # exactly the two best survive top-k 2, both get drawn
    # penalised twice over, token 1 (5 -> 5/3) drops below token 2 (4), for sampled rows as for greedy ones
    picks = {sample_token(logits, [1, 1], GenOptions(temperature=0.01, top_k=0, repetition_penalty=3.0), rng, np.array([], dtype=np.int64)) for _ in range(20)}
    assert picks == {2}


def test_batched_sampling_equals_row_by_row_whatever_the_neighbours() -> None:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 50)) * 3
    options = [GenOptions(temperature=0.0), GenOptions(temperature=0.8, top_k=5), GenOptions(temperature=1.2, top_k=0, top_p=0.7),
               GenOptions(temperature=0.7, top_k=40, top_p=0.9, repetition_penalty=1.3), GenOptions(temperature=1.0, top_k=50),
               GenOptions(temperature=0.5, top_k=3, top_p=0.5)]  # fmt: skip
    generated = [[1, 2], [], [3, 3, 4], [int(np.argmax(logits[3]))], [7], []]
    banned = np.array([0, 5], dtype=np.int64)
    batched = [sample_tokens(logits, generated, options, [np.random.default_rng(s) for s in range(6)], banned)
               for _ in range(3)]
    alone = [sample_token(logits[i], generated[i], options[i], np.random.default_rng(i), banned) for i in range(6)]
    assert all(b.tolist() == alone for b in batched)
    assert not set(alone) & {0, 5}
    # a row's draw does not depend on which rows share its batch
    some = sample_tokens(logits[[4, 1]], [generated[4], generated[1]], [options[4], options[1]],
                         [np.random.default_rng(4), np.random.default_rng(1)], banned)
    assert some.tolist() == [alone[4], alone[1]]


def test_prefill_groups_bound_padding() -> None:
    assert length_groups([]) == []
    assert length_groups([100, 101, 99]) == [[2, 0, 1]]  # alike: one call
    groups = length_groups([300, 20, 25, 310, 22])
    assert groups == [[1, 4, 2], [0, 3]]
    lengths = [int(x) for x in np.random.default_rng(0).integers(10, 400, size=64)]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(64))
    for g in groups:
        assert max(lengths[i] for i in g) * len(g) <= 1.25 * sum(lengths[i] for i in g)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SchedulerConfig(max_batch=0)


@pytest.fixture(scope="module")
def spelled_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle with a lexicon of a few dozen words."""
    from export.make_bundle import add_lexicon
    from export.tiny import tiny_corpus

    out = tmp_path_factory.mktemp("spelled") / "bundle"
    shutil.copytree(tiny_bundle, out)
    replies = [line.split("<npc>")[-1] for line in tiny_corpus()]
    add_lexicon(out, lexicon_words(replies))
    return out


def _reply_words_outside(lexicon: frozenset[str], done: dict, reqs: list[GenRequest]) -> list[str]:
    outside = []
    for req in reqs:
        kind, payload = done[req.key]
        assert kind == "reply", payload
        own = lexicon_words([req.knowledge, *req.context.values(), *(npc for _player, npc in req.history)])
        outside += [w for w in lexicon_words([payload["text"]]) if w not in lexicon and w not in own]
    return outside


def _spellable(row, pieces: list[int]) -> bool:
    for token in pieces:
        if not row.allows(token):
            return False
        row.advance(token)
    return row.ends_ok()


def test_a_reply_may_spell_the_card_scene_and_its_own_lines_but_not_the_players_words(spelled_bundle: Path) -> None:
    engine = RoleModelEngine(load_bundle(spelled_bundle), RuntimeOptions(device="cpu", intra_op_threads=1))
    words = {w: engine.tokenizer.encode(" " + w, add_special_tokens=False).ids
             for w in ("Ottilie", "Zorblax", "Quibbleton", "Wifipass")}  # fmt: skip
    assert not ({"ottilie", "zorblax", "quibbleton", "wifipass"} & engine.lexicon.words)

    def row():
        return engine.spelling("name: Ottilie", {"landmark": "Quibbleton"},
                               [("Is Zorblax here?", "Zorblax? Never heard of it.")])  # fmt: skip

    assert _spellable(row(), words["Ottilie"])  # the card
    assert _spellable(row(), words["Quibbleton"])  # the scene
    assert _spellable(row(), words["Zorblax"])  # the NPC said it before
    assert not _spellable(row(), words["Wifipass"])  # nobody did
    only_player = engine.spelling("name: Ottilie", {}, [("Is Zorblax here?", "No.")])
    assert not _spellable(only_player, words["Zorblax"])  # the player's word alone is not lent to the reply


def test_the_scheduler_spells_only_lexicon_and_request_words(spelled_bundle: Path) -> None:
    bundle = load_bundle(spelled_bundle)
    assert read_lexicon(bundle.file("lexicon"))
    options = RuntimeOptions(device="cpu", intra_op_threads=1)
    engine = RoleModelEngine(bundle, options)
    reqs = [
        GenRequest(key=i, fingerprint=f"card-{i}", card_text="A tollkeeper.", knowledge="name: Ottilie Brackenridge",
                   text=text, context={"weather": "fog"}, history=[], image=None,
                   options=GenOptions(temperature=temperature, seed=i, max_tokens=24, stream=True))
        for i, (text, temperature) in enumerate([("Who are you?", 0.0), ("Any work?", 0.8), ("Hello!", 1.2)])
    ]  # fmt: skip
    sink = Collector()
    scheduler = Scheduler(engine, sink, SchedulerConfig(max_batch=4))
    scheduler.start()
    try:
        for req in reqs:
            scheduler.submit(req)
        sink.wait(len(reqs))
    finally:
        scheduler.stop()
    assert _reply_words_outside(engine.lexicon.words, sink.done, reqs) == []
    for req in reqs:  # whole words only are streamed, so the chunks are the reply even when it is cut mid-word
        assert "".join(sink.chunks.get(req.key, [])) == sink.done[req.key][1]["text"]
    # the control: the same random model without the constraint spells words it was never given
    loose = RoleModelEngine(bundle, options, spelling=False)
    assert loose.lexicon is None and loose.spelling("", {}, []) is None
    assert _reply_words_outside(engine.lexicon.words, _run(loose, reqs, SchedulerConfig(max_batch=4)), reqs)


def test_device_kv_cache_gives_the_host_caches_replies(tiny_bundle, tiny_engine) -> None:
    """The device-resident cache (here in host memory, on the CPU provider: the same IOBinding path and in-place
    write graph as on CUDA) gives the same greedy replies as the numpy cache while rows join and leave."""
    from dataclasses import replace

    device = RoleModelEngine(load_bundle(tiny_bundle),
                             RuntimeOptions(device="cpu", intra_op_threads=1, kv_cache="device"))
    assert (device.kv_cache, tiny_engine.kv_cache) == ("device", "host")
    reqs = [replace(r, options=replace(r.options, max_tokens=4 + 3 * (r.key % 4))) for r in _requests(9)]
    config = SchedulerConfig(max_batch=4, max_admit_per_tick=2)  # rows join and leave at different steps
    on_host, on_device = _run(tiny_engine, reqs, config), _run(device, reqs, config)
    for req in reqs:
        assert on_device[req.key][0] == "reply"
        assert on_device[req.key][1]["text"] == on_host[req.key][1]["text"], f"request {req.key} differs"
