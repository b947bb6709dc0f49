"""The running batch's KV caches: in-place slots and left-padded concatenation keep every row's positions."""

from __future__ import annotations

import numpy as np
import pytest

from npc_runtime.device_kv import DeviceKVCache, HostMemory, KVWriter
from npc_runtime.kv_cache import ConcatKVCache, SlotKVCache
from npc_runtime.ort_backend import CPU, RuntimeOptions

HEADS, DH, TENSORS = 2, 4, 3


def _prefill(rng: np.random.Generator, lengths: list[int]) -> tuple[list[np.ndarray], np.ndarray, list[list[np.ndarray]]]:
    """Left-padded prefill output for rows of ``lengths``, and each row's true positions per tensor."""
    width = max(lengths)
    kv = [rng.standard_normal((len(lengths), HEADS, width, DH)).astype(np.float32) for _ in range(TENSORS)]
    mask = np.zeros((len(lengths), width), dtype=np.int64)
    truth = []
    for row, n in enumerate(lengths):
        mask[row, width - n :] = 1
        truth.append([t[row, :, width - n :].copy() for t in kv])
    return kv, mask, truth


def _rows_of_slot_cache(cache: SlotKVCache) -> list[list[np.ndarray]]:
    return [[b[r, :, : cache.lengths[r]] for b in cache.buffers] for r in range(len(cache))]


def _rows_of_concat_cache(cache: ConcatKVCache) -> list[list[np.ndarray]]:
    out = []
    for r in range(len(cache)):
        cols = cache.mask[r].astype(bool)
        out.append([t[r][:, cols] for t in cache.kv])
    return out


def _step(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    return [rng.standard_normal((n, HEADS, 1, DH)).astype(np.float32) for _ in range(TENSORS)]


def _rows_of_device_cache(cache: DeviceKVCache) -> list[list[np.ndarray]]:
    host = cache.to_host()
    return [[t[r, :, : cache.lengths[r]] for t in host] for r in range(len(cache))]


def _rows(cache) -> list[list[np.ndarray]]:
    if isinstance(cache, DeviceKVCache):
        return _rows_of_device_cache(cache)
    return _rows_of_slot_cache(cache) if isinstance(cache, SlotKVCache) else _rows_of_concat_cache(cache)


_WRITER: list[KVWriter] = []


def _device_cache(grow: int = 32) -> DeviceKVCache:
    """The device cache's logic in host memory: the same bindings and in-place write graph, on the CPU provider."""
    if not _WRITER:
        _WRITER.append(KVWriter(RuntimeOptions(device="cpu", intra_op_threads=1), [CPU]))
    return DeviceKVCache(HostMemory(), _WRITER[0], TENSORS, HEADS, DH, grow=grow)


def _write(cache, new: list[np.ndarray]) -> None:
    if isinstance(cache, SlotKVCache | DeviceKVCache):
        cache.write(new)
    else:
        cache.kv = [np.concatenate([a, b], axis=2) for a, b in zip(cache.kv, new)]
        cache.mask = np.concatenate([cache.mask, np.ones((len(cache), 1), dtype=np.int64)], axis=1)


@pytest.mark.parametrize("make", [lambda: SlotKVCache(TENSORS, HEADS, DH, grow=1),
                                  lambda: SlotKVCache(TENSORS, HEADS, DH, grow=4),
                                  lambda: SlotKVCache(TENSORS, HEADS, DH),
                                  ConcatKVCache,
                                  lambda: _device_cache(grow=1),
                                  _device_cache],
                         ids=["slots-grow1", "slots-grow4", "slots", "concat", "device-grow1", "device"])
def test_cache_keeps_each_rows_positions_through_joins_steps_and_leaves(make) -> None:
    rng = np.random.default_rng(7)
    cache = make()
    truth: list[list[np.ndarray]] = []
    for _ in range(8):
        kv, mask, rows = _prefill(rng, [int(x) for x in rng.integers(1, 12, size=int(rng.integers(1, 5)))])
        cache.append(kv, mask)
        truth += rows
        for _ in range(int(rng.integers(1, 9))):
            new = _step(rng, len(cache))
            _write(cache, new)
            truth = [[np.concatenate([t, n[r]], axis=1) for t, n in zip(row, new)] for r, row in enumerate(truth)]
        leaving = [r for r in range(len(cache)) if rng.random() < 0.4]
        order = cache.remove(leaving)
        assert sorted(order) == [r for r in range(len(truth)) if r not in leaving]
        truth = [truth[i] for i in order]  # the scheduler applies the same order to its rows
        assert len(cache) == len(truth)
        for got, want in zip(_rows(cache), truth, strict=True):
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)


def test_slot_cache_mask_past_views_and_memory() -> None:
    rng = np.random.default_rng(0)
    cache = SlotKVCache(TENSORS, HEADS, DH, grow=8, max_length=20)
    kv, mask, _ = _prefill(rng, [3, 5])
    cache.append(kv, mask)
    assert cache.capacity == 8 and cache.slots >= 2
    attn = cache.attention_mask()
    assert attn.shape == (2, 9) and attn.dtype == np.int64
    assert attn[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 1] and attn[1].tolist() == [1] * 5 + [0] * 3 + [1]
    past = cache.past()
    assert all(p.shape == (2, HEADS, 8, DH) and p.flags["C_CONTIGUOUS"] for p in past)
    assert all(np.shares_memory(p, b) for p, b in zip(past, cache.buffers))  # views, not copies
    for _ in range(14):  # row 1 reaches 19 positions: capacity never passes max_length
        cache.write(_step(rng, 2))
    assert cache.lengths.tolist() == [17, 19] and cache.capacity == 20
    cache.remove([1])
    for _ in range(2):
        cache.write(_step(rng, 1))
    assert cache.lengths.tolist() == [19]
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


@pytest.mark.parametrize("make", [lambda: SlotKVCache(TENSORS, HEADS, DH, grow=4), lambda: _device_cache(grow=4)],
                         ids=["slots", "device"])
def test_cache_gives_memory_back_when_long_rows_leave(make) -> None:
    rng = np.random.default_rng(1)
    cache = make()
    kv, mask, _ = _prefill(rng, [2, 30])
    cache.append(kv, mask)
    assert cache.capacity == 32
    cache.remove([1])
    assert cache.capacity == 4 and cache.lengths.tolist() == [2]
