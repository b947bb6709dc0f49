"""The role-model engine: batched admission equals one request at a time; the in-place cache equals the grown one."""

from __future__ import annotations

import numpy as np
import pytest

from npc_runtime.batch import png_image
from npc_runtime.bundle import load_bundle
from npc_runtime.engine import ByteLRU, RoleModelEngine, _Request
from npc_runtime.errors import ImageError
from npc_runtime.ort_backend import RuntimeOptions
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.prompt import build_decoder_text
from npc_runtime.protocol import ImageInput


def _scene(seed: int) -> ImageInput:
    rng = np.random.default_rng(seed)
    return png_image(rng.integers(0, 255, size=(40, 56, 3), dtype=np.uint8))


def _requests() -> list[_Request]:
    pack = PersonaPack.load(default_pack_dir())
    out = []
    for i, (pid, image) in enumerate(
        [("blacksmith", _scene(1)), ("merchant", None), ("guard", _scene(1)), ("healer", _scene(2)),
         ("bard", ImageInput("png", b"not a png at all", 8, 8))]  # fmt: skip
    ):
        card = pack.get(pid)
        history = [("Hello.", "Well met.")] if i % 2 else []
        out.append(_Request(card.fingerprint(), card.card_text(), card.knowledge_text(),
                            {"weather": "rain", "time_of_day": "night"}, history, f"Line number {i}?", image))
    return out


def test_batched_admission_equals_one_request_at_a_time(tiny_engine) -> None:
    tiny_engine.persona_cache, tiny_engine.image_cache = ByteLRU(1 << 20), ByteLRU(1 << 20)
    reqs = _requests()
    batched = tiny_engine.prepare_batch(reqs)
    assert isinstance(batched[-1], ImageError)  # the broken screenshot fails its own request only
    tiny_engine.persona_cache, tiny_engine.image_cache = ByteLRU(1 << 20), ByteLRU(1 << 20)
    for req, got in zip(reqs[:-1], batched[:-1]):
        alone = tiny_engine.prepare(req.fingerprint, req.card_text, req.knowledge, req.context, req.history,
                                    req.text, req.image)
        assert got.ids == alone.ids
        np.testing.assert_array_equal(got.prefix_mask, alone.prefix_mask)
        np.testing.assert_allclose(got.prefix_embeds, alone.prefix_embeds, atol=1e-4)
    with pytest.raises(ImageError):
        tiny_engine.prepare(*(getattr(reqs[-1], f) for f in ("fingerprint", "card_text", "knowledge", "context",
                                                             "history", "text", "image")))


def test_warm_personas_embeds_each_card_once(tiny_engine) -> None:
    tiny_engine.persona_cache = ByteLRU(1 << 20)
    cards = [(c.fingerprint(), c.card_text()) for c in PersonaPack.load(default_pack_dir())]
    assert tiny_engine.warm_personas(cards, batch=4) == len(cards)
    assert tiny_engine.warm_personas(cards) == 0
    misses = tiny_engine.persona_cache.misses
    for fingerprint, text in cards:
        warmed = tiny_engine.persona_embedding(fingerprint, text)
        np.testing.assert_allclose(warmed, tiny_engine.encode_texts([text])[0], atol=1e-4)
    assert tiny_engine.persona_cache.misses == misses  # every first use was already a cache hit


@pytest.fixture(scope="module")
def induction_engine(tmp_path_factory: pytest.TempPathFactory) -> RoleModelEngine:
    """A tiny bundle whose copy head has the induction bonus, which reads each row's last cached token id."""
    from export.tiny import build_tiny_bundle

    bundle = build_tiny_bundle(tmp_path_factory.mktemp("induction") / "b", seed=3, copy_induction=True)
    return RoleModelEngine(load_bundle(bundle), RuntimeOptions(device="cpu", intra_op_threads=1))


@pytest.mark.parametrize("which", ["plain", "copy_induction"])
def test_in_place_cache_steps_equal_grown_arrays(request: pytest.FixtureRequest, which: str) -> None:
    """Rows packed from column 0 with masked room after them (in place) give what left-padded rows give."""
    tiny_engine = request.getfixturevalue("tiny_engine" if which == "plain" else "induction_engine")
    reqs = _requests()[:4]
    prepared = tiny_engine.prepare_batch(reqs)
    result = tiny_engine.prefill(prepared)
    cache = tiny_engine.new_cache()
    cache.append(result.kv, result.mask)
    kv, mask = result.kv, result.mask
    last = np.argmax(result.logits, axis=1).astype(np.int64)
    positions = np.array([len(p.ids) for p in prepared], dtype=np.int64)
    for _ in range(40):  # past the cache's first growth (32 columns of headroom at most)
        in_place = tiny_engine.decode_step(last, positions, cache)
        grown, kv, mask = tiny_engine.step(last, positions, kv, mask)
        np.testing.assert_allclose(in_place, grown, atol=1e-4)
        last = np.argmax(grown, axis=1).astype(np.int64)
        positions += 1
    assert cache.lengths.tolist() == mask.sum(axis=1).tolist()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


def test_continuation_logprobs_equal_step_by_step_decoding(tiny_engine) -> None:
    """Scoring a whole line in one call gives the log-probability that feeding it token by token gives."""
    req = _requests()[1]
    prepared = tiny_engine.prepare(req.fingerprint, req.card_text, req.knowledge, req.context, req.history,
                                   req.text, req.image)  # fmt: skip
    lines = [tiny_engine.reply_ids("Mind the edge, lad."), tiny_engine.reply_ids("By the anvil!")]
    assert lines[0][-1] == tiny_engine.token_id["eos"] and len(lines[0]) != len(lines[1])
    # The reply's ids are the ones training appends after this very prompt.
    args = (req.knowledge, req.context, req.history, req.text)
    full = tiny_engine.tokenizer.encode(build_decoder_text(*args, "Mind the edge, lad."), add_special_tokens=False).ids
    head = tiny_engine.tokenizer.encode(build_decoder_text(*args), add_special_tokens=False).ids
    assert full[len(head) :] == lines[0]
    got = tiny_engine.continuation_logprobs(prepared, lines)
    for line, score in zip(lines, got):
        first = tiny_engine.prefill([prepared])
        expected = _log_softmax(first.logits[0])[line[0]]
        kv, attn = first.kv, first.mask
        for prev, token in zip(line, line[1:]):
            logits, kv, attn = tiny_engine.step(np.array([prev]), np.array([attn.shape[1]]), kv, attn)
            expected += _log_softmax(logits[0])[token]
        assert score == pytest.approx(expected, abs=2e-3)
    with pytest.raises(ValueError, match="non-empty"):
        tiny_engine.continuation_logprobs(prepared, [[]])
