"""import-hf: tiny random Llama, Qwen2 and GPT-2 checkpoints to causal-lm bundles, parity with transformers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.emotion_classifier import EmotionHead, HeadConfig, export_head
from export.hf_import import FAMILIES, check_checkpoint_dir, import_checkpoint, random_checkpoint
from export.text_encoder import export_text_encoder, tiny_random_encoder
from npc_runtime import cli
from npc_runtime.bundle import load_bundle
from npc_runtime.emotion_classifier import EmotionFiles
from npc_runtime.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_emotion(tmp_path_factory: pytest.TempPathFactory) -> EmotionFiles:
    """A random width-32 sentence encoder and head: real graphs, meaningless emotions."""
    root = tmp_path_factory.mktemp("emotion")
    encoder = tiny_random_encoder(32, seed=0)
    export_text_encoder(encoder, root / "encoder.onnx")
    encoder.save_tokenizer(root / "tokenizer.json")
    torch.manual_seed(0)
    export_head(EmotionHead(HeadConfig(embed_dim=32)), root / "head.onnx", 32)
    return EmotionFiles(root / "encoder.onnx", root / "tokenizer.json", root / "head.onnx")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {family: random_checkpoint(family, root / family, seed=1) for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_import_is_parity_checked_and_loads(
    family: str, checkpoints: dict[str, Path], tiny_emotion: EmotionFiles, tmp_path: Path
) -> None:
    out = import_checkpoint(checkpoints[family], tmp_path / "bundle", emotion=tiny_emotion, max_context=512)
    bundle = load_bundle(out)
    assert bundle.kind == "causal-lm"
    parity = bundle.manifest["parity"]["fp32"]
    assert parity["greedy_tokens_identical"] is True
    assert parity["max_logit_diff"] < 1e-3
    assert parity["batched_equals_unbatched"] is True
    assert parity["batched_max_logit_diff"] < 1e-3
    assert bundle.manifest["parity"]["chat_template_matches_transformers"] is True
    assert bundle.limits["max_positions"] == 512
    template = bundle.manifest["chat_template"]["source"]
    assert template == ("fallback" if family == "gpt2" else "checkpoint")
    assert set(bundle.manifest["assets"]) == {"chat_template", "emotion_encoder", "emotion_tokenizer", "emotion_head"}
    model = bundle.model
    assert model["n_layers"] == 2 and model["kv_dtype"] == "float32"
    assert model["n_kv_heads"] == (4 if family == "gpt2" else 2)
    special = bundle.special_tokens
    if family == "qwen2":
        assert special["eos"]["token"] == "<|im_end|>"
        assert [t["token"] for t in special["extra_eos"]] == ["<|endoftext|>"]


def test_int8_import_reports_its_own_agreement(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = import_checkpoint(checkpoints["qwen2"], tmp_path / "q8", quantize="int8", emotion="shared")
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["precision"] == "int8"
    assert manifest["parity"]["fp32"]["greedy_tokens_identical"] is True
    assert set(manifest["parity"]["int8"]) >= {"greedy_tokens_identical", "max_logit_diff"}
    ops = {node.op_type for node in onnx.load(str(out / "decoder.onnx")).graph.node}
    assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops  # a scale per activation row
    assert manifest["parity"]["int8"]["batched_max_logit_diff"] < 1e-3  # so batching moves no row's logits
    tensor = import_checkpoint(checkpoints["qwen2"], tmp_path / "q8t", quantize="int8", emotion="shared",
                               activation_scales="tensor")  # fmt: skip
    parity = json.loads((tensor / "bundle.json").read_text())["parity"]["int8"]
    assert "DynamicQuantizeLinear" in {node.op_type for node in onnx.load(str(tensor / "decoder.onnx")).graph.node}
    assert parity["batched_max_logit_diff"] > 1e-2  # one scale per tensor: the batch moves a row


def test_fp16_import_has_half_precision_cache(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = import_checkpoint(checkpoints["llama"], tmp_path / "f16", dtype="fp16", emotion="shared")
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["model"]["kv_dtype"] == "float16"
    assert manifest["parity"]["fp16"]["max_logit_diff"] < 0.5


def test_hub_id_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Hugging Face Hub id.*never downloads"):
        import_checkpoint("Qwen/Qwen2.5-0.5B", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_reports_a_hub_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["import-hf", "Qwen/Qwen2.5-0.5B", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Qwen/Qwen2.5-0.5B" in err and "Hub id" in err


def test_broken_directories_name_the_problem(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        check_checkpoint_dir(tmp_path / "nothing-here")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        check_checkpoint_dir(empty)
    (empty / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        check_checkpoint_dir(empty)
    (empty / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="no weights"):
        check_checkpoint_dir(empty)
    (empty / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(ConfigError, match="no tokenizer"):
        check_checkpoint_dir(empty)

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((checkpoints["llama"] / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"this is not a safetensors file")
    with pytest.raises(ConfigError, match=r"cannot load the checkpoint"):
        import_checkpoint(broken, tmp_path / "out")


def test_bad_options_are_config_errors(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--dtype"):
        import_checkpoint(checkpoints["gpt2"], tmp_path / "a", dtype="bf16")
    with pytest.raises(ConfigError, match="--max-context"):
        import_checkpoint(checkpoints["gpt2"], tmp_path / "a", max_context=4)
    with pytest.raises(ConfigError, match="differ"):
        import_checkpoint(checkpoints["gpt2"], checkpoints["gpt2"])


def test_random_checkpoint_loads_in_transformers(checkpoints: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoints["llama"]))
    model = AutoModelForCausalLM.from_pretrained(str(checkpoints["llama"]))
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hello!"}], add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits
    assert logits.shape[-1] == model.config.vocab_size
    assert np.isfinite(logits.numpy()).all()
    assert tokenizer.decode(ids).startswith("<|begin_of_text|><|start_header_id|>user")


def test_grouped_attention_equals_transformers_eager_attention() -> None:
    from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

    from export.hf_import import grouped_attention

    class Module(torch.nn.Module):
        num_key_value_groups = 7  # 14 query heads over 2 key/value heads, as Qwen2.5-0.5B

    gen = torch.Generator().manual_seed(0)
    query = torch.randn(3, 14, 5, 16, generator=gen)  # (B, H, T, Dh)
    key, value = torch.randn(3, 2, 9, 16, generator=gen), torch.randn(3, 2, 9, 16, generator=gen)
    mask = torch.zeros(3, 1, 5, 9)
    mask[0, :, :, :4] = torch.finfo(torch.float32).min  # a left-padded row
    mask[:, :, :, 5:] += torch.triu(torch.full((5, 4), torch.finfo(torch.float32).min), diagonal=1)  # causal tail
    expected, _ = eager_attention_forward(Module().eval(), query, key, value, mask, scaling=0.25)
    got, _ = grouped_attention(Module().eval(), query, key, value, mask, scaling=0.25)
    assert got.shape == expected.shape == (3, 5, 14, 16)
    assert torch.allclose(got, expected, atol=1e-6)
