"""Write a role-model bundle directory: ONNX graphs, tokenizers and the ``bundle.json`` manifest.

The manifest is exactly what ``npc_runtime.bundle.load_bundle`` reads; graph input and output names come from
``ROLE_MODEL_GRAPHS`` and ``role_model_kv_names``. Parity with PyTorch is checked before the manifest is written, so
a bundle that exists has passed it (its report is stored under ``parity``).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from export.onnx_export import (
    GRAPH_FILES,
    PARITY_TURNS,
    check_parity,
    export_role_model,
    quantize_graphs,
    text_embeddings,
)
from export.role_model import RoleModel
from export.text_encoder import TEXT_ENCODER_MAX_TOKENS
from export.tokenizer import load_tokenizer
from npc_runtime.bundle import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    ROLE_MODEL_GRAPHS,
    ROLE_MODEL_OPTIONAL_INPUTS,
    role_model_kv_names,
    sha256_file,
)
from npc_runtime.emotion import EMOTIONS
from npc_runtime.prompt import SPECIAL_TOKENS

__all__ = ["BundleLimits", "DECODER_TOKENIZER", "TEXT_ENCODER_TOKENIZER", "write_bundle", "special_tokens_manifest"]

log = logging.getLogger(__name__)

DECODER_TOKENIZER = "tokenizer.json"
TEXT_ENCODER_TOKENIZER = "text_encoder_tokenizer.json"
#: Manifest key of each special token, by its spelling in ``npc_runtime.prompt``.
_SPECIAL_KEYS = ("pad", "unk", "bos", "eos", "ctx", "player", "npc", "prefix", "know")


@dataclass(frozen=True)
class BundleLimits:
    """Serving limits written to the manifest; prompt tokens count prefix slots, ``<s>`` and text."""

    max_prompt_tokens: int
    max_new_tokens: int = 48

    def __post_init__(self) -> None:
        if self.max_prompt_tokens < 2:
            raise ValueError(f"max_prompt_tokens must be >= 2, got {self.max_prompt_tokens}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @classmethod
    def for_model(cls, max_positions: int, max_new_tokens: int = 48) -> BundleLimits:
        """Prompt gets every position the reply does not need."""
        return cls(max_prompt_tokens=max_positions - max_new_tokens, max_new_tokens=max_new_tokens)


def special_tokens_manifest() -> dict[str, dict[str, Any]]:
    """``{"pad": {"token": "<pad>", "id": 0}, ...}`` for every special token."""
    if len(_SPECIAL_KEYS) != len(SPECIAL_TOKENS):
        raise ValueError("special token keys out of step with npc_runtime.prompt.SPECIAL_TOKENS")
    return {key: {"token": tok, "id": i} for i, (key, tok) in enumerate(zip(_SPECIAL_KEYS, SPECIAL_TOKENS))}


def _graphs_manifest(n_layers: int) -> dict[str, dict[str, Any]]:
    past, new = role_model_kv_names(n_layers)
    graphs = {}
    for name, spec in ROLE_MODEL_GRAPHS.items():
        inputs, outputs = list(spec["inputs"]), list(spec["outputs"])
        if name == "decoder":
            inputs += [*ROLE_MODEL_OPTIONAL_INPUTS[name], *past]
            outputs += new
        graphs[name] = {"file": GRAPH_FILES[name], "inputs": inputs, "outputs": outputs}
    return graphs


def write_bundle(
    model: RoleModel,
    tokenizer_path: str | Path,
    text_encoder_onnx: str | Path,
    text_tokenizer_path: str | Path,
    out_dir: str | Path,
    name: str,
    description: str = "",
    quantize: str | None = None,
    limits: BundleLimits | Mapping[str, int] | None = None,
    version: str = "1",
) -> Path:
    """Export ``model`` and assemble a complete, parity-checked bundle in ``out_dir``; returns ``out_dir``.

    ``text_encoder_onnx`` and ``text_tokenizer_path`` come from :mod:`export.text_encoder`. ``quantize="int8"``
    quantises the decoder, prefix and text encoder MatMuls after fp32 parity passed, and records how well int8
    agrees with PyTorch under ``parity["int8"]``.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    cfg = model.cfg
    if limits is None:
        limits = BundleLimits.for_model(cfg.max_positions, min(48, cfg.max_positions // 4))
    elif not isinstance(limits, BundleLimits):
        limits = BundleLimits(**dict(limits))
    if limits.max_prompt_tokens + limits.max_new_tokens > cfg.max_positions:
        raise ValueError(f"limits {limits} exceed the model's {cfg.max_positions} positions")
    tokenizer = load_tokenizer(tokenizer_path)
    if tokenizer.get_vocab_size() > cfg.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} tokens, model only {cfg.vocab_size}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # a half-written directory must not look like a bundle
    shutil.copyfile(tokenizer_path, out / DECODER_TOKENIZER)
    shutil.copyfile(text_tokenizer_path, out / TEXT_ENCODER_TOKENIZER)
    shutil.copyfile(text_encoder_onnx, out / GRAPH_FILES["text_encoder"])
    export_role_model(model, out)
    parity: dict[str, Any] = check_parity(model, out)
    if quantize == "int8":
        probe = [turn[3] for turn in PARITY_TURNS] + [turn[4] for turn in PARITY_TURNS]
        fp32_text = text_embeddings(out, probe)
        quantize_graphs(out)
        parity["int8"] = check_parity(model, out, strict=False, tolerance=None)
        int8_text = text_embeddings(out, probe)
        # Both are unit vectors, so the row-wise dot product is the cosine similarity.
        parity["int8"]["text_encoder_min_cosine"] = float(np.min(np.sum(fp32_text * int8_text, axis=1)))

    graphs = _graphs_manifest(cfg.kv_layers)
    named = [spec["file"] for spec in graphs.values()] + [DECODER_TOKENIZER, TEXT_ENCODER_TOKENIZER]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "role-model",
        "name": name,
        "version": version,
        "description": description,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "precision": quantize or "fp32",
        "graphs": graphs,
        "tokenizers": {"decoder": DECODER_TOKENIZER, "text_encoder": TEXT_ENCODER_TOKENIZER},
        "special_tokens": special_tokens_manifest(),
        "emotions": list(EMOTIONS),
        "limits": {
            **asdict(limits),
            "max_positions": cfg.max_positions,
            "text_encoder_max_tokens": TEXT_ENCODER_MAX_TOKENS,
        },
        "model": {
            "d_model": cfg.d_model,
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "head_dim": cfg.head_dim,
            "vocab_size": cfg.vocab_size,
            "prefix_tokens": cfg.prefix_tokens,
            "visual_tokens": cfg.n_visual_tokens,
            "image_size": cfg.image_size,
            "image_mean": [float(v) for v in cfg.image_mean],
            "image_std": [float(v) for v in cfg.image_std],
            "text_embed_dim": cfg.text_embed_dim,
            "fusion": cfg.fusion,
            "prompt_voice": cfg.prompt_voice,
            "spaced_quotes": cfg.spaced_quotes,
            "copy_head": cfg.copy_head,
            "copy_induction": cfg.copy_induction,
            "kv_layers": cfg.kv_layers,
            "max_positions": cfg.max_positions,
        },
        "files": {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size} for name in named},
        "parity": parity,
    }
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / MANIFEST_NAME)
    log.info("wrote bundle %s (%s, %s)", out, name, manifest["precision"])
    return out
