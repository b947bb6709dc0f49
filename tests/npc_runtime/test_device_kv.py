"""The device-resident KV cache's engine path, run on the CPU provider with host memory (the CUDA run is in
test_cuda.py): the same logits as the numpy cache, and the shipped write graph is the one export builds."""

from __future__ import annotations

import numpy as np
import pytest

from npc_runtime.bundle import load_bundle
from npc_runtime.device_kv import KV_WRITE_GRAPH, DeviceKVCache
from npc_runtime.engine import RoleModelEngine
from npc_runtime.kv_cache import SlotKVCache
from npc_runtime.ort_backend import RuntimeOptions


def test_shipped_kv_write_graph_is_what_export_builds() -> None:
    from export.kv_write_graph import build

    assert KV_WRITE_GRAPH.read_bytes() == build().SerializeToString(), \
        "npc_runtime/data/kv_write.onnx is stale: run python -m export.kv_write_graph"


def test_device_cache_gives_the_host_caches_logits(tiny_bundle, tiny_engine, ragged_greedy) -> None:
    device = RoleModelEngine(load_bundle(tiny_bundle),
                             RuntimeOptions(device="cpu", intra_op_threads=1, kv_cache="device"))
    assert isinstance(device.new_cache(), DeviceKVCache) and isinstance(tiny_engine.new_cache(), SlotKVCache)
    want_tokens, want_logits = ragged_greedy(tiny_engine)
    got_tokens, got_logits = ragged_greedy(device)
    assert got_tokens == want_tokens
    for want, got in zip(want_logits, got_logits, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_kv_cache_option_is_checked() -> None:
    assert RuntimeOptions().kv_cache == "auto"
    with pytest.raises(ValueError, match="kv_cache"):
        RuntimeOptions(kv_cache="gpu")
