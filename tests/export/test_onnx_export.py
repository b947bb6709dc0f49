"""Tests of the ONNX export: graph names and dynamic axes, parity with PyTorch for every fusion."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.onnx_export import GRAPH_FILES, OPSET, ParityError, check_parity, export_role_model
from export.role_model import RoleModel
from export.tiny import build_tiny_bundle
from npc_runtime.bundle import ROLE_MODEL_GRAPHS, ROLE_MODEL_OPTIONAL_INPUTS, load_bundle, role_model_kv_names

MakeModel = Callable[..., RoleModel]


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "copy_head"])
def cross_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-attention bundle without and with the copy head (its cache has one more KV pair)."""
    return build_tiny_bundle(tmp_path_factory.mktemp("cross") / "b", seed=1, fusion="cross_attention",
                             copy_head=request.param)


def _kv_layers(bundle: Path) -> int:
    """Two layers, plus the copy head's pair where the bundle has one."""
    return int(load_bundle(bundle).model["kv_layers"])


def _copy_text_parts(src: Path, dst: Path) -> None:
    for name in ("tokenizer.json", "text_encoder_tokenizer.json", GRAPH_FILES["text_encoder"]):
        shutil.copyfile(src / name, dst / name)


@pytest.mark.parametrize(("fusion", "copy_head"), [("concat", True), ("weighted_sum", True),
                                                   ("cross_attention", True), ("concat", False)])
def test_every_fusion_exports_with_parity(
    make_model: MakeModel, tiny_bundle: Path, tmp_path: Path, fusion: str, copy_head: bool
) -> None:
    model = make_model(fusion, seed=4, copy_head=copy_head)
    _copy_text_parts(tiny_bundle, tmp_path)
    export_role_model(model, tmp_path)
    report = check_parity(model, tmp_path, steps=5)
    print(f"{fusion}: max abs logit diff {report['max_abs_diff']['logits']:.2e}")
    assert report["passed"] and report["greedy_tokens_match"]
    assert report["prompts"] == 3 and report["greedy_steps"] == 5
    assert max(report["max_abs_diff"].values()) < 1e-3


def test_copy_induction_exports_with_parity(make_model: MakeModel, tiny_bundle: Path, tmp_path: Path) -> None:
    """The induction bonus reads previous ids and turns out of the cache inside the graph; greedy tokens agree."""
    model = make_model("concat", seed=4, copy_head=True, copy_induction=True)
    with torch.no_grad():
        model.copy.induction.bias.fill_(4.0)  # a random init leaves it near zero
    _copy_text_parts(tiny_bundle, tmp_path)
    export_role_model(model, tmp_path)
    report = check_parity(model, tmp_path, steps=8)
    assert report["passed"] and report["greedy_tokens_match"]
    assert max(report["max_abs_diff"].values()) < 1e-3


def test_graph_names_come_from_the_bundle_spec(cross_bundle: Path) -> None:
    past, present = role_model_kv_names(_kv_layers(cross_bundle))
    for name, spec in ROLE_MODEL_GRAPHS.items():
        model = onnx.load(str(cross_bundle / GRAPH_FILES[name]))
        onnx.checker.check_model(model)
        inputs = [i.name for i in model.graph.input]
        outputs = [o.name for o in model.graph.output]
        extra_in, extra_out = ([*ROLE_MODEL_OPTIONAL_INPUTS[name], *past], present) if name == "decoder" else ([], [])
        assert inputs == list(spec["inputs"]) + extra_in
        assert outputs == list(spec["outputs"]) + extra_out
        assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= OPSET
        assert all(node.name for node in model.graph.node)


def test_decoder_graph_has_dynamic_batch_and_lengths(cross_bundle: Path) -> None:
    session = ort.InferenceSession(str(cross_bundle / GRAPH_FILES["decoder"]), providers=["CPUExecutionProvider"])
    past_names, _ = role_model_kv_names(_kv_layers(cross_bundle))
    d, heads, head_dim = 32, 2, 16
    for b, t, p in [(1, 1, 0), (5, 4, 7), (2, 9, 0), (3, 1, 30)]:
        feeds = {
            "input_ids": np.full((b, t), 20, dtype=np.int64),
            "prefix_embeds": np.zeros((b, t, d), dtype=np.float32),
            "prefix_mask": np.zeros((b, t), dtype=np.float32),
            "attention_mask": np.ones((b, p + t), dtype=np.int64),
            "position_ids": np.tile(np.arange(p, p + t, dtype=np.int64), (b, 1)),
            "logits_to_keep": np.array(t, dtype=np.int64),
        }
        feeds.update({n: np.zeros((b, heads, p, head_dim), dtype=np.float32) for n in past_names})
        logits, emotion, intensity, *kv = session.run(None, feeds)
        assert logits.shape == (b, t, 400) and emotion.shape == (b, t, 7) and intensity.shape == (b, t)
        assert all(x.shape == (b, heads, t, head_dim) for x in kv)  # the new positions only
        feeds["logits_to_keep"] = np.array(1, dtype=np.int64)
        last, last_emotion, last_intensity, *_ = session.run(None, feeds)
        assert last.shape == (b, 1, 400) and last_emotion.shape == (b, 1, 7) and last_intensity.shape == (b, 1)
        np.testing.assert_allclose(last[:, 0], logits[:, -1], atol=1e-5)
        np.testing.assert_allclose(last_emotion[:, 0], emotion[:, -1], atol=1e-5)


def test_vision_and_prefix_graphs_take_any_batch(cross_bundle: Path) -> None:
    vision = ort.InferenceSession(str(cross_bundle / GRAPH_FILES["vision_encoder"]), providers=["CPUExecutionProvider"])
    prefix = ort.InferenceSession(str(cross_bundle / GRAPH_FILES["prefix_encoder"]), providers=["CPUExecutionProvider"])
    for b in (1, 4):
        visual = vision.run(None, {"image": np.zeros((b, 3, 16, 16), dtype=np.float32)})[0]
        assert visual.shape == (b, 4, 32)
        out = prefix.run(None, {
            "persona_embedding": np.ones((b, 32), dtype=np.float32),
            "utterance_embedding": np.ones((b, 32), dtype=np.float32),
            "visual_features": visual,
            "image_present": np.zeros((b,), dtype=np.float32),
        })[0]
        assert out.shape == (b, 3, 32)  # cross_attention: 2 persona tokens + 1 utterance token


def test_parity_failure_is_loud(make_model: MakeModel, tiny_bundle: Path, tmp_path: Path) -> None:
    model = make_model("concat", seed=2)
    _copy_text_parts(tiny_bundle, tmp_path)
    export_role_model(model, tmp_path)
    with torch.no_grad():
        weight = model.blocks[1].mlp.proj.weight  # PyTorch now differs from the exported graphs
        weight.add_(0.5 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ParityError, match="disagree"):
        check_parity(model, tmp_path)
    report = check_parity(model, tmp_path, strict=False)
    assert not report["passed"]
    assert report["max_abs_diff"]["logits"] > 1e-3
    assert report["max_abs_diff"]["visual_features"] < 1e-4  # the vision encoder was left alone
