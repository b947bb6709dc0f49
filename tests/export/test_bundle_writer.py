"""Tests of bundle writing: the manifest load_bundle reads, checksums, limits, int8, and the tiny bundle CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from export.bundle_writer import BundleLimits, special_tokens_manifest, write_bundle
from export.role_model import RoleModel
from export.tiny import TINY_VOCAB_SIZE, main as tiny_main, tiny_config
from npc_runtime.bundle import ROLE_MODEL_GRAPHS, role_model_kv_names, load_bundle, sha256_file
from npc_runtime.emotion import EMOTIONS
from npc_runtime.errors import BundleError
from npc_runtime.prompt import SPECIAL_TOKENS

MakeModel = Callable[..., RoleModel]


def test_tiny_bundle_loads_and_describes_itself(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    m = bundle.manifest
    assert (m["format"], m["format_version"], m["kind"]) == ("npc-bundle", 1, "role-model")
    assert m["name"] == "tiny-concat" and m["version"] and m["description"] and m["created"]
    assert bundle.emotions == EMOTIONS
    assert set(bundle.graphs) == set(ROLE_MODEL_GRAPHS)
    past, present = role_model_kv_names(2)
    assert bundle.graphs["decoder"].inputs == ROLE_MODEL_GRAPHS["decoder"]["inputs"] + ("logits_to_keep", *past)
    assert bundle.graphs["decoder"].outputs == ROLE_MODEL_GRAPHS["decoder"]["outputs"] + tuple(present)
    assert m["tokenizers"] == {"decoder": "tokenizer.json", "text_encoder": "text_encoder_tokenizer.json"}
    assert bundle.file("decoder").is_file() and bundle.file("text_encoder").is_file()
    tokens = bundle.special_tokens
    assert [tokens[k]["token"] for k in ("pad", "unk", "bos", "eos", "ctx", "player", "npc", "prefix", "know")] == list(
        SPECIAL_TOKENS
    )
    assert [tokens[k]["id"] for k in ("pad", "bos", "eos", "npc", "prefix")] == [0, 2, 3, 6, 7]
    assert bundle.limits == {
        "max_prompt_tokens": 192,
        "max_new_tokens": 32,
        "max_positions": 256,
        "text_encoder_max_tokens": 256,
    }
    cfg = tiny_config(TINY_VOCAB_SIZE)
    assert bundle.model == {
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 2,
        "head_dim": 16,
        "vocab_size": TINY_VOCAB_SIZE,
        "prefix_tokens": cfg.prefix_tokens,
        "visual_tokens": 4,
        "image_size": 16,
        "image_mean": list(cfg.image_mean),
        "image_std": list(cfg.image_std),
        "text_embed_dim": 32,
        "fusion": "concat",
        "prompt_voice": False,
        "spaced_quotes": False,
        "copy_head": False,
        "copy_induction": False,
        "kv_layers": 2,
        "max_positions": 256,
    }
    for fname, meta in m["files"].items():
        assert meta == {"sha256": sha256_file(tiny_bundle / fname), "bytes": (tiny_bundle / fname).stat().st_size}
    assert m["parity"]["passed"] and m["parity"]["greedy_tokens_match"]
    assert m["precision"] == "fp32"


def test_special_tokens_manifest_matches_prompt_module() -> None:
    manifest = special_tokens_manifest()
    assert sorted(v["id"] for v in manifest.values()) == list(range(len(SPECIAL_TOKENS)))
    assert {v["token"] for v in manifest.values()} == set(SPECIAL_TOKENS)


def test_limits_validate() -> None:
    with pytest.raises(ValueError):
        BundleLimits(max_prompt_tokens=1)
    with pytest.raises(ValueError):
        BundleLimits(max_prompt_tokens=64, max_new_tokens=0)
    assert BundleLimits.for_model(256, 32) == BundleLimits(224, 32)


def test_write_bundle_rejects_bad_arguments(make_model: MakeModel, tiny_bundle: Path, tmp_path: Path) -> None:
    model = make_model()
    args = (model, tiny_bundle / "tokenizer.json", tiny_bundle / "text_encoder.onnx",
            tiny_bundle / "text_encoder_tokenizer.json", tmp_path / "out", "x")
    with pytest.raises(ValueError, match="quantize"):
        write_bundle(*args, quantize="int4")
    with pytest.raises(ValueError, match="exceed"):
        write_bundle(*args, limits={"max_prompt_tokens": 250, "max_new_tokens": 32})
    small = make_model(vocab_size=300)
    with pytest.raises(ValueError, match="tokens"):
        write_bundle(small, *args[1:])
    assert not (tmp_path / "out" / "bundle.json").exists()


def test_cli_writes_an_int8_bundle(tmp_path: Path) -> None:
    out = tmp_path / "int8"
    assert tiny_main([str(out), "--int8", "--fusion", "weighted_sum", "--seed", "3"]) == 0
    bundle = load_bundle(out)
    m = bundle.manifest
    assert m["precision"] == "int8" and m["model"]["fusion"] == "weighted_sum"
    assert m["parity"]["passed"]  # the fp32 graphs passed before quantisation
    int8 = m["parity"]["int8"]
    assert int8["tolerance"] is None and 0 < int8["max_abs_diff"]["logits"] < 1.0
    assert 0.9 < int8["text_encoder_min_cosine"] <= 1.0 + 1e-6
    ops = {node.op_type for node in onnx.load(str(out / "decoder.onnx")).graph.node}
    assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops  # a scale per activation row
    json.dumps(m, allow_nan=False)  # strict JSON: no Infinity/NaN for other languages' parsers


def test_corrupt_bundle_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in tiny_bundle.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    load_bundle(copy)
    with open(copy / "decoder.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="decoder.onnx"):
        load_bundle(copy)
