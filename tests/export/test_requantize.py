"""Re-quantising a bundle's dynamic int8 MatMuls: fp32 keeps the model and makes rows independent; nbits8 runs;
int8 with a scale per activation row keeps the int8 weights and makes rows independent to the last bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from export.requantize import main, requantize_bundle, rowwise_activations
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


@pytest.fixture(scope="module")
def per_tensor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bundle quantised as ONNX Runtime's tool alone does it: one activation scale per tensor."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.make_bundle import rewrite_manifest
    from export.tiny import build_tiny_bundle

    out = Path(build_tiny_bundle(tmp_path_factory.mktemp("tiny-per-tensor"), seed=1, quantize=None))
    for name in ("decoder", "prefix_encoder"):
        path = out / f"{name}.onnx"
        quantize_dynamic(str(path), str(path.with_suffix(".q.onnx")), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], per_channel=True)  # fmt: skip
        path.with_suffix(".q.onnx").replace(path)
    precision = json.loads((out / "bundle.json").read_text(encoding="utf-8")).get("graph_precision", {})
    rewrite_manifest(out, {"graph_precision": {**precision, "decoder": "int8", "prefix_encoder": "int8"}})
    return out


@pytest.mark.parametrize("mode", ["fp32", "fp16-weights"])
@pytest.mark.parametrize("source", ["export's int8", "per-tensor int8"])
def test_float_modes_keep_the_weights_and_make_rows_independent(tiny_int8: Path, per_tensor: Path, tmp_path: Path,
                                                                 mode: str, source: str) -> None:
    tiny_int8 = tiny_int8 if source == "export's int8" else per_tensor
    assert {"MatMulIntegerToFloat" if source == "export's int8" else "MatMulInteger"} <= _ops(tiny_int8 / "decoder.onnx")
    out = requantize_bundle(tiny_int8, tmp_path / mode, mode)
    assert not {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeLinear"} & _ops(out / "decoder.onnx")
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
    assert info.value.code == 1 and "fp32, or rewritten already" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_int8), "--out", str(tmp_path / "x"), "--graphs", "nope"])
    assert "no graph" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_int8), "--out", str(tiny_int8)])
    assert "another folder" in capsys.readouterr().err


def test_int8_rows_keeps_the_int8_weights_and_makes_rows_independent(per_tensor: Path, tmp_path: Path) -> None:
    tiny_int8 = per_tensor
    out = requantize_bundle(tiny_int8, tmp_path / "rows", "int8-rows", ["decoder", "prefix_encoder"])
    ops = _ops(out / "decoder.onnx")
    assert "MatMulIntegerToFloat" in ops and not {"MatMulInteger", "DynamicQuantizeLinear"} & ops
    before = {i.name: i for i in onnx.load(str(tiny_int8 / "decoder.onnx")).graph.initializer}
    after = {i.name: i for i in onnx.load(str(out / "decoder.onnx")).graph.initializer}
    assert all(after[name] == init for name, init in before.items() if init.data_type == onnx.TensorProto.INT8)
    assert load_bundle(out).manifest["graph_precision"]["decoder"] == "int8-rows"
    (int8_alone, int8_batched), (alone, batched) = _first_logits(tiny_int8), _first_logits(out)
    assert float(np.abs(int8_alone - int8_batched).max()) > 1e-3  # per-tensor scales: the batch moves a row
    np.testing.assert_array_equal(alone, batched)  # a scale per row: nothing to share
    fp32 = requantize_bundle(tiny_int8, tmp_path / "fp32", "fp32", ["decoder", "prefix_encoder"])
    ref, _ = _first_logits(fp32)
    assert float(np.abs(alone - ref).max()) < 0.5  # the same weights: only the activation rounding differs


def test_the_export_quantises_a_scale_per_activation_row(tiny_int8: Path) -> None:
    """What ``npc-runtime export`` writes (``onnx_export.quantize_graphs``) is row-wise already: every graph's
    rows are independent, and rewriting it again is refused rather than done twice."""
    for name in ("decoder", "prefix_encoder", "text_encoder"):
        ops = _ops(tiny_int8 / f"{name}.onnx")
        assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops, name
    alone, batched = _first_logits(tiny_int8)
    np.testing.assert_array_equal(alone, batched)
    assert rowwise_activations(onnx.load(str(tiny_int8 / "decoder.onnx")))[1] == 0


def test_rowwise_quantisation_is_exact_per_row_and_close_to_float(tmp_path: Path) -> None:
    """One MatMul quantised by ONNX Runtime's tool, then row-wise: each row's output equals the row computed
    alone, and a row of small values beside a row of large ones keeps its precision (per tensor it does not)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(32, 16)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "one",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "t", 16])],
                              [numpy_helper.from_array(weight, "w")])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              str(tmp_path / "f.onnx"))  # fmt: skip
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), weight_type=QuantType.QInt8, per_channel=True)
    model, count = rowwise_activations(onnx.load(str(tmp_path / "q.onnx")))
    assert count == 1
    onnx.save(model, str(tmp_path / "r.onnx"))
    x = rng.normal(size=(2, 3, 32)).astype(np.float32)
    x[1] *= 50.0  # another sequence with far larger activations
    x[0, 2] = 0.0  # and a row of zeros
    want = x @ weight

    def run(name: str, feed: np.ndarray) -> np.ndarray:
        session = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": feed})[0]

    rows, tensor = run("r.onnx", x), run("q.onnx", x)
    np.testing.assert_array_equal(rows[0], run("r.onnx", x[:1])[0])  # alone or batched: the same bits
    assert not np.array_equal(tensor[0], run("q.onnx", x[:1])[0])
    np.testing.assert_array_equal(rows[0, 2], 0.0)
    small_rows, small_tensor = np.abs(rows[0] - want[0]).max(), np.abs(tensor[0] - want[0]).max()
    assert small_rows < 0.1 * small_tensor, (small_rows, small_tensor)
    assert np.abs(rows - want).max() < 0.02 * np.abs(want).max()
