"""Re-quantising a bundle's dynamic int8 MatMuls: fp32 keeps the model and makes rows independent; nbits8 runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from export.requantize import main, requantize_bundle
from npc_runtime.bundle import load_bundle
from npc_runtime.engine import RoleModelEngine
from npc_runtime.ort_backend import RuntimeOptions
from npc_runtime.personas import PersonaPack, default_pack_dir


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.tiny import build_tiny_bundle

    return Path(build_tiny_bundle(tmp_path_factory.mktemp("tiny-int8"), seed=1, quantize="int8"))


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _first_logits(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """Row 0's prefill logits alone and in a batch of five different prompts."""
    engine = RoleModelEngine(load_bundle(bundle), RuntimeOptions(device="cpu", intra_op_threads=1))
    cards = list(PersonaPack.load(default_pack_dir()))[:5]
    lines = ["Hello there, how are you?", "What do you sell?", "Rumours?", "Where is the inn, friend?", "Bye."]
    preps = [engine.prepare(c.fingerprint(), c.card_text(), c.knowledge_text(), {"weather": "fog"}, [], line, None)
             for c, line in zip(cards, lines)]
    return engine.prefill([preps[0]]).logits[0], engine.prefill(preps).logits[0]


@pytest.mark.parametrize("mode", ["fp32", "fp16-weights"])
def test_float_modes_keep_the_weights_and_make_rows_independent(tiny_int8: Path, tmp_path: Path, mode: str) -> None:
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= _ops(tiny_int8 / "decoder.onnx")
    out = requantize_bundle(tiny_int8, tmp_path / mode, mode)
    assert not {"MatMulInteger", "DynamicQuantizeLinear"} & _ops(out / "decoder.onnx")
    bundle = load_bundle(out)  # checksums verified
    assert bundle.manifest["graph_precision"]["decoder"] == mode and bundle.name.endswith(f"-{mode}")
    stored = onnx.load(str(out / "decoder.onnx")).graph.initializer
    fp16 = [init for init in stored if init.data_type == onnx.TensorProto.FLOAT16]
    assert bool(fp16) == (mode == "fp16-weights")  # stored as fp16, computed in fp32 after ONNX Runtime's fold
    (int8_alone, _), (alone, batched) = _first_logits(tiny_int8), _first_logits(out)
    np.testing.assert_allclose(alone, batched, atol=1e-4)  # a row's logits do not depend on its batch
    assert float(np.abs(alone - int8_alone).max()) < 0.5  # the same weights: only the activation rounding goes


def test_nbits8_runs_with_weight_only_int8(tiny_int8: Path, tmp_path: Path) -> None:
    out = requantize_bundle(tiny_int8, tmp_path / "nbits", "nbits8")
    assert "MatMulNBits" in _ops(out / "decoder.onnx") and "MatMulInteger" not in _ops(out / "decoder.onnx")
    fp32 = requantize_bundle(tiny_int8, tmp_path / "fp32", "fp32")
    (nbits, _), (ref, _) = _first_logits(out), _first_logits(fp32)
    assert float(np.abs(nbits - ref).max()) < 0.5


def test_bad_requests_are_refused(tiny_int8: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(tiny_int8), "--out", str(tmp_path / "x"), "--graphs", "vision_encoder"])
    assert info.value.code == 1 and "fp32 already" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_int8), "--out", str(tmp_path / "x"), "--graphs", "nope"])
    assert "no graph" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_int8), "--out", str(tiny_int8)])
    assert "another folder" in capsys.readouterr().err
