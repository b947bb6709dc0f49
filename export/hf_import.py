"""``npc-runtime import-hf``: a local Hugging Face causal LM (Llama, Qwen2, Phi, SmolLM, GPT-2) as a causal-lm bundle.

The checkpoint's decoder is exported to one ONNX graph with past/present KV tensors and dynamic batch and length
(names from ``npc_runtime.causal_engine.CAUSAL_LM_DECODER``), beside its tokenizer, its chat template (or a plain
fallback for models without one) and the emotion classifier; ONNX Runtime is checked against transformers in the
same command (greedy tokens identical, largest logit difference reported, batched equal to unbatched) before the
manifest is written. Nothing is downloaded: a Hub id is refused with a clear message.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from npc_runtime.bundle import FORMAT, FORMAT_VERSION, MANIFEST_NAME, decoder_kv_names, default_bundle_dir, sha256_file
from npc_runtime.causal_engine import CAUSAL_LM_DECODER, CHAT_TEMPLATE_ASSET, FALLBACK_CHAT_TEMPLATE, ChatTemplate
from npc_runtime.emotion import EMOTIONS
from npc_runtime.emotion_classifier import EmotionFiles, shared_head_path
from npc_runtime.errors import ConfigError, InferenceError

from .requantize import ACTIVATION_SCALES

from export.hf_random import FAMILIES, random_checkpoint

__all__ = [
    "DTYPES",
    "QUANTIZATIONS",
    "DecoderStep",
    "check_checkpoint_dir",
    "load_checkpoint",
    "export_decoder",
    "check_parity",
    "import_checkpoint",
    "random_checkpoint",
    "FAMILIES",
    "main",
]

log = logging.getLogger(__name__)

DTYPES = ("fp32", "fp16")
QUANTIZATIONS = ("int8", "int4")
DECODER_FILE = "decoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
TEMPLATE_FILE = "chat_template.jinja"
MAX_NEW_TOKENS = 64
_WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)  # fmt: skip
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Turns the parity check renders through the chat template: (player line, scene facts).
PARITY_TURNS: tuple[tuple[str, dict[str, str]], ...] = (
    ("Do you sell swords?", {"time_of_day": "night", "location": "forge"}),
    ("Where is the old mill, friend?", {"weather": "rain"}),
    ("Hello!", {}),
)
PARITY_CARD = (
    'Brenna, the blacksmith. Traits: gruff, honest. Speaking style: short sentences. Says things like: "Mind the '
    'edge." Backstory: Forged blades in Emberfall for twenty years.'
)


# ------------------------------------------------------------------------------------------------ checkpoint


def check_checkpoint_dir(source: str | Path) -> Path:
    """The checkpoint directory, or :class:`ConfigError` saying exactly what is wrong (a Hub id, a missing file)."""
    text = str(source)
    path = Path(source)
    if not path.exists():
        if _HUB_ID.match(text):
            raise ConfigError(
                f"'{text}' looks like a Hugging Face Hub id, but import-hf never downloads (it runs offline): "
                f"fetch the checkpoint where the Hub is reachable (e.g. `huggingface-cli download {text} "
                f"--local-dir DIR`) and pass that local DIR"
            )
        raise ConfigError(f"checkpoint directory not found: {path}")
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory: pass the folder that holds config.json and the weights")
    config = path / "config.json"
    if not config.is_file():
        raise ConfigError(f"{path} has no config.json: not a Hugging Face checkpoint directory")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config} is not valid JSON: {exc}") from exc
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise ConfigError(f"{path} has no weights (expected one of {', '.join(_WEIGHT_FILES)})")
    tokenizer_files = ("tokenizer.json", "vocab.json", "tokenizer.model")
    if not any((path / name).is_file() for name in tokenizer_files):
        raise ConfigError(f"{path} has no tokenizer (expected one of {', '.join(tokenizer_files)})")
    return path


def load_checkpoint(path: Path, dtype: str = "fp32") -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local directory, eager attention, eval mode; errors become ConfigError."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = torch.float16 if dtype == "fp16" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=torch_dtype, attn_implementation="eager"
        )
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, safetensors errors ...
        raise ConfigError(f"cannot load the checkpoint in {path}: {type(exc).__name__}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{path}: the runtime needs a fast tokenizer (tokenizer.json); this one is slow-only")
    return model.eval(), tokenizer


# ------------------------------------------------------------------------------------------------ graph


class DecoderStep(nn.Module):
    """A Hugging Face causal LM as one step graph: flat past KV tensors in, last-position logits and present KV out.

    The cache object transformers wants is built from the flat tensors inside ``forward`` (so tracing sees it),
    and the attention mask is made here as a 4-D additive mask from the 2-D padding mask, which every family's
    attention takes as given.
    """

    def __init__(self, model: nn.Module, n_layers: int) -> None:
        super().__init__()
        self.model = model
        self.n_layers = n_layers

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, *past: Tensor) -> tuple:
        from transformers import DynamicCache

        seq = input_ids.shape[1]
        total = attention_mask.shape[1]  # P + T
        cache = DynamicCache([(past[2 * i], past[2 * i + 1]) for i in range(self.n_layers)])
        query_pos = torch.arange(seq, device=input_ids.device) + (total - seq)  # (T,)
        key_pos = torch.arange(total, device=input_ids.device)  # (P + T,)
        causal = key_pos[None, :] <= query_pos[:, None]  # (T, P + T)
        allowed = causal[None, None] & attention_mask[:, None, None, :].bool()  # (B, 1, T, P + T)
        dtype = past[0].dtype
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]  # each (B, Hkv, P + T, Dh)
        return (out.logits, *present)  # (B, 1, V)


GROUPED_ATTENTION = "npc_grouped_eager"


def grouped_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **_: Any,
) -> tuple[Tensor, Tensor]:
    """Eager attention for grouped-query models that lets each key/value head serve its group of query heads.

    transformers' eager path copies every key and value head once per query head (``repeat_kv``) before the two
    matrix products; exported, that is an ``Expand`` of the whole cache in every layer of every step (a quarter of
    a Qwen2.5-0.5B-shaped step at batch 32 on 2 CPU cores in ONNX Runtime's profile). Here the queries are regrouped
    instead, which is the same arithmetic on the cache as stored. Registered with transformers' attention interface
    for the export only.
    """
    batch, heads, seq, dim = query.shape  # (B, H, T, Dh)
    kv_heads = key.shape[1]  # key, value: (B, Hkv, S, Dh)
    groups = heads // kv_heads  # query head h reads key/value head h // groups, as repeat_kv arranges it
    grouped = query.reshape(batch, kv_heads, groups * seq, dim)  # (B, Hkv, G*T, Dh)
    scores = torch.matmul(grouped, key.transpose(2, 3)) * scaling  # (B, Hkv, G*T, S)
    if attention_mask is not None:  # (B, 1, T, S), broadcast over the groups
        scores = scores.view(batch, kv_heads, groups, seq, -1) + attention_mask[:, :, None]
        scores = scores.view(batch, kv_heads, groups * seq, -1)
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights, value)  # (B, Hkv, G*T, Dh)
    return out.reshape(batch, heads, seq, dim).transpose(1, 2).contiguous(), weights  # (B, T, H, Dh)


def _use_grouped_attention(model: nn.Module, kv_heads: int) -> bool:
    """Switch a grouped-query model (fewer key/value heads than query heads) to :func:`grouped_attention`."""
    from transformers import AttentionInterface

    heads = getattr(model.config, "num_attention_heads", None)
    if not isinstance(heads, int) or kv_heads >= heads or heads % kv_heads:
        return False
    AttentionInterface.register(GROUPED_ATTENTION, grouped_attention)
    model.set_attn_implementation(GROUPED_ATTENTION)
    return True


def kv_shape(model: nn.Module) -> tuple[int, int, int, torch.dtype]:
    """``(n_layers, n_kv_heads, head_dim, dtype)`` of the model's KV cache, read from one real forward pass."""
    with torch.no_grad():
        out = model(input_ids=torch.zeros((1, 2), dtype=torch.long), use_cache=True)
    layers = out.past_key_values.layers
    keys = layers[0].keys  # (1, Hkv, 2, Dh)
    return len(layers), int(keys.shape[1]), int(keys.shape[3]), keys.dtype


def export_decoder(model: nn.Module, path: Path, opset: int = 17) -> tuple[int, int, int, torch.dtype]:
    """Write the step graph to ``path`` (external data beside it when over 1.5 GB); returns the KV layout."""
    import onnx

    n_layers, heads, head_dim, dtype = kv_shape(model)
    step = DecoderStep(model, n_layers).eval()
    past_names, present_names = decoder_kv_names(n_layers)
    names_in = [*CAUSAL_LM_DECODER["inputs"], *past_names]
    names_out = [*CAUSAL_LM_DECODER["outputs"], *present_names]
    batch, past, new = 2, 3, 4
    example = (
        torch.ones((batch, new), dtype=torch.long),
        torch.ones((batch, past + new), dtype=torch.long),
        torch.arange(past, past + new).repeat(batch, 1),
        *[torch.zeros((batch, heads, past, head_dim), dtype=dtype) for _ in past_names],
    )
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "new"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "new"},
        "logits": {0: "batch"},
    }
    axes.update({name: {0: "batch", 2: "past"} for name in past_names})
    axes.update({name: {0: "batch", 2: "total"} for name in present_names})
    path.parent.mkdir(parents=True, exist_ok=True)
    attention = model.config._attn_implementation
    grouped = _use_grouped_attention(model, heads)
    try:
        with tempfile.TemporaryDirectory(prefix="hf-export-") as tmp:
            raw = Path(tmp) / "raw.onnx"  # a large model's exporter scatters one file per tensor beside it
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
                torch.onnx.export(
                    step, example, str(raw), dynamo=False, input_names=names_in, output_names=names_out,
                    dynamic_axes=axes, opset_version=opset,
                )  # fmt: skip
            proto = onnx.load(str(raw))
    finally:
        if grouped:  # the parity check compares against transformers' own attention
            model.set_attn_implementation(attention)
    proto.ir_version = min(proto.ir_version, 10)  # onnxruntime 1.31 reads IR <= 13; keep a wide margin
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > 1_500_000_000  # protobuf stops at 2 GB
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=big, location=data.name)
    return n_layers, heads, head_dim, dtype


def quantize_decoder(path: Path, mode: str, rowwise: bool = True) -> None:
    """Quantisation in place: ``int8`` per-channel MatMul weights with dynamic activations, a scale per activation
    row (``rowwise``; else ONNX Runtime's one per tensor, which lets a batch move each row's logits), or ``int4``
    blockwise weight-only MatMulNBits."""
    import onnx

    tmp = path.with_name("quantized.onnx")
    if mode == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from export.requantize import rowwise_activations

        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True)  # fmt: skip
        if rowwise:
            onnx.save(rowwise_activations(onnx.load(str(tmp)))[0], str(tmp))
    elif mode == "int4":
        try:
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        except ImportError as exc:  # onnxruntime's 4-bit quantiser needs the onnx-ir package
            raise ConfigError(f"--quantize int4 needs the onnx-ir package: pip install onnx-ir ({exc})") from exc

        quantizer = MatMulNBitsQuantizer(onnx.load(str(path)), bits=4, block_size=32, is_symmetric=True)
        quantizer.process()
        quantizer.model.save_model_to_file(str(tmp), use_external_data_format=False)
    else:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {mode!r}")
    tmp.replace(path)
    path.with_name(path.name + ".data").unlink(missing_ok=True)
    log.info("quantised %s to %s", path, mode)


# ------------------------------------------------------------------------------------------------ parity


def _ort_greedy(session: Any, prompts: Sequence[Sequence[int]], n_new: int, kv: tuple[int, int, int, Any]):
    """Greedy decode of ``prompts`` together (left padded) in ONNX Runtime: tokens (B, n), logits (B, n, V)."""
    n_layers, heads, head_dim, dtype = kv
    past_names, present_names = decoder_kv_names(n_layers)
    batch, width = len(prompts), max(len(p) for p in prompts)
    ids = np.zeros((batch, width), dtype=np.int64)
    attn = np.zeros((batch, width), dtype=np.int64)
    pos = np.zeros((batch, width), dtype=np.int64)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :], attn[row, width - len(p) :], pos[row, width - len(p) :] = p, 1, np.arange(len(p))
    past = {name: np.zeros((batch, heads, 0, head_dim), dtype=dtype) for name in past_names}
    tokens, logits = [], []
    lengths = np.array([len(p) for p in prompts], dtype=np.int64)
    for step in range(n_new):
        out = session.run(None, {"input_ids": ids, "attention_mask": attn, "position_ids": pos, **past})
        last = out[0][:, -1, :].astype(np.float32)  # (B, V)
        nxt = last.argmax(axis=1)
        tokens.append(nxt)
        logits.append(last)
        past = dict(zip(past_names, out[1:]))
        ids, pos = nxt[:, None].astype(np.int64), (lengths + step)[:, None]
        attn = np.concatenate([attn, np.ones((batch, 1), dtype=np.int64)], axis=1)
    return np.stack(tokens, axis=1), np.stack(logits, axis=1)


def check_parity(
    model: nn.Module, onnx_path: Path, prompts: Sequence[Sequence[int]], kv: tuple, n_new: int = 8, strict: bool = True
) -> dict[str, Any]:
    """ONNX Runtime against transformers on ``prompts``: greedy tokens, max logit difference, batched vs unbatched.

    transformers is run once per prompt on the prompt plus ONNX Runtime's tokens (teacher forcing), so equal
    arg-maxes at every step mean the two greedy decodes are identical. ``strict`` raises InferenceError when they
    are not (beyond a near-tie) or when batching changes the tokens.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    dtype = np.float16 if kv[3] == torch.float16 else np.float32
    kv_np = (*kv[:3], dtype)
    max_diff, identical, near_tie, batched_diff, batched_same = 0.0, True, True, 0.0, True
    single_tokens, single_logits = [], []
    for prompt in prompts:
        tokens, logits = _ort_greedy(session, [prompt], n_new, kv_np)
        single_tokens.append(tokens[0])
        single_logits.append(logits[0])
        sequence = torch.tensor([list(prompt) + tokens[0, :-1].tolist()])
        with torch.no_grad():
            ref = model(input_ids=sequence).logits[0, len(prompt) - 1 :].float().numpy()  # (n_new, V)
        max_diff = max(max_diff, float(np.abs(ref - logits[0]).max()))
        if not np.array_equal(ref.argmax(axis=1), tokens[0]):
            identical = False
            chosen = ref[np.arange(n_new), tokens[0]]
            near_tie = near_tie and bool(np.all(ref.max(axis=1) - chosen < 1e-3))
    batched_tokens, batched_logits = _ort_greedy(session, prompts, n_new, kv_np)
    for row, tokens in enumerate(single_tokens):
        batched_same = batched_same and np.array_equal(batched_tokens[row], tokens)
        batched_diff = max(batched_diff, float(np.abs(batched_logits[row] - single_logits[row]).max()))
    report = {
        "prompts": len(prompts),
        "new_tokens": n_new,
        "greedy_tokens_identical": identical,
        "max_logit_diff": max_diff,
        "batched_equals_unbatched": bool(batched_same),
        "batched_max_logit_diff": batched_diff,
    }
    if strict and (not (identical or near_tie) or not batched_same):
        raise InferenceError(f"ONNX Runtime disagrees with transformers: {report}")
    return report


# ------------------------------------------------------------------------------------------------ bundle


def _token_entry(tokenizer: Any, token_id: int) -> dict[str, Any]:
    return {"token": tokenizer.convert_ids_to_tokens(int(token_id)), "id": int(token_id)}


def _special_tokens(model: nn.Module, tokenizer: Any) -> dict[str, Any]:
    """eos (plus every other end-of-turn id the generation config names), pad and bos for the manifest."""
    eos: list[int] = []
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(token_id, int) and token_id not in eos:
                eos.append(token_id)
    if not eos:
        raise ConfigError("the checkpoint names no end-of-sequence token (eos_token_id) in its config or tokenizer")
    if tokenizer.eos_token_id in eos:  # the tokenizer's own eos first: it is what the chat template writes
        eos.remove(tokenizer.eos_token_id)
        eos.insert(0, tokenizer.eos_token_id)
    special = {"eos": _token_entry(tokenizer, eos[0]), "extra_eos": [_token_entry(tokenizer, i) for i in eos[1:]]}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    special["pad"] = _token_entry(tokenizer, pad)
    if tokenizer.bos_token_id is not None:
        special["bos"] = _token_entry(tokenizer, tokenizer.bos_token_id)
    return special


def _chat_template(tokenizer: Any) -> tuple[str, str]:
    """``(template, source)``: the checkpoint's own chat template, or the plain fallback when it has none."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if isinstance(template, str) and template.strip():
        return template, "checkpoint"
    return FALLBACK_CHAT_TEMPLATE, "fallback"


def _parity_prompts(tokenizer: Any, template: str, special: dict[str, Any]) -> tuple[list[list[int]], bool]:
    """Token ids of the parity turns as the runtime renders them, and whether transformers renders them the same."""
    from npc_runtime.causal_engine import system_prompt

    names = {f"{k}_token": special[k]["token"] for k in ("bos", "eos", "pad") if k in special}
    chat = ChatTemplate(template, names)
    prompts, same = [], True
    for player, scene in PARITY_TURNS:
        messages = [
            {"role": "system", "content": system_prompt(PARITY_CARD, "name: Brenna | wares: longsword 40", scene)},
            {"role": "user", "content": player},
        ]
        ids = tokenizer.backend_tokenizer.encode(chat.render(messages), add_special_tokens=False).ids
        prompts.append(ids)
        if tokenizer.chat_template:
            theirs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            same = same and theirs == chat.render(messages)
    return prompts, same


def _emotion_files(emotion: str | EmotionFiles, work_dir: Path) -> EmotionFiles | None:
    """The classifier to copy into the bundle: given files, or MiniLM (int8, from the default bundle or exported)."""
    if isinstance(emotion, EmotionFiles):
        return emotion
    if emotion == "shared":
        return None
    if emotion != "bundle":
        raise ValueError(f"emotion must be 'bundle', 'shared' or EmotionFiles, got {emotion!r}")
    head = shared_head_path()
    if not head.is_file():
        log.warning("no trained emotion head at %s (run python -m export.emotion_classifier); bundle has none", head)
        return None
    default = default_bundle_dir()
    encoder, tokenizer = default / "text_encoder.onnx", default / "text_encoder_tokenizer.json"
    if encoder.is_file() and tokenizer.is_file():
        return EmotionFiles(encoder, tokenizer, head)
    from export.emotion_classifier import export_minilm_int8

    encoder, tokenizer = export_minilm_int8(work_dir)
    return EmotionFiles(encoder, tokenizer, head)


def import_checkpoint(
    source: str | Path,
    out_dir: str | Path,
    dtype: str = "fp32",
    quantize: str | None = None,
    max_context: int | None = None,
    emotion: str | EmotionFiles = "bundle",
    name: str | None = None,
    activation_scales: str = "row",
) -> Path:
    """Export the checkpoint in ``source`` to a parity-checked ``causal-lm`` bundle in ``out_dir``; returns it.
    ``activation_scales`` (``row`` or ``tensor``): how an int8 graph scales its activations
    (:func:`quantize_decoder`)."""
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
    if quantize not in (None, *QUANTIZATIONS):
        raise ConfigError(f"--quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if quantize and dtype != "fp32":
        raise ConfigError("--quantize works on fp32 graphs; leave --dtype at fp32")
    if activation_scales not in ACTIVATION_SCALES:
        raise ConfigError(f"--activation-scales must be one of {ACTIVATION_SCALES}, got {activation_scales!r}")
    if max_context is not None and max_context < 32:
        raise ConfigError(f"--max-context must be >= 32, got {max_context}")
    src = check_checkpoint_dir(source)
    out = Path(out_dir)
    if out.resolve() == src.resolve():
        raise ConfigError("--out must differ from the checkpoint directory")
    model, tokenizer = load_checkpoint(src, "fp32")
    config = model.config
    model_positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048
    max_positions = min(int(model_positions), max_context or 4096)
    if getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None):
        max_positions = min(max_positions, int(config.sliding_window))  # the 4-D mask here is full causal

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # a half-written directory must not look like a bundle
    special = _special_tokens(model, tokenizer)
    template, template_source = _chat_template(tokenizer)
    (out / TEMPLATE_FILE).write_text(template, encoding="utf-8")
    tokenizer.backend_tokenizer.save(str(out / TOKENIZER_FILE))
    prompts, template_same = _parity_prompts(tokenizer, template, special)
    prompts = [p[-(max_positions - 16) :] for p in prompts]  # a short-context model sees the prompts' ends

    kv = export_decoder(model, out / DECODER_FILE)
    parity: dict[str, Any] = {"fp32": check_parity(model, out / DECODER_FILE, prompts, kv)}
    parity["chat_template_matches_transformers"] = template_same
    if dtype == "fp16":
        kv = export_decoder(model.half(), out / DECODER_FILE)  # .half() and .float() convert in place
        parity["fp16"] = check_parity(model.float(), out / DECODER_FILE, prompts, kv, strict=False)
    elif quantize:
        quantize_decoder(out / DECODER_FILE, quantize, rowwise=activation_scales == "row")
        parity[quantize] = check_parity(model, out / DECODER_FILE, prompts, kv, strict=False)

    n_layers, heads, head_dim, kv_dtype = kv
    past, present = decoder_kv_names(n_layers)
    assets = {CHAT_TEMPLATE_ASSET: TEMPLATE_FILE}
    with tempfile.TemporaryDirectory(prefix="emotion-") as work_dir:
        files = _emotion_files(emotion, Path(work_dir))
        if files is not None:
            for key, path, target in (
                ("emotion_encoder", files.encoder, "emotion_encoder.onnx"),
                ("emotion_tokenizer", files.tokenizer, "emotion_tokenizer.json"),
                ("emotion_head", files.head, "emotion_head.onnx"),
            ):
                shutil.copyfile(path, out / target)
                assets[key] = target
    data_file = out / (DECODER_FILE + ".data")
    named = [DECODER_FILE, TOKENIZER_FILE, *assets.values()] + ([data_file.name] if data_file.exists() else [])
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "causal-lm",
        "name": name or src.name,
        "description": f"{config.model_type} checkpoint imported by npc-runtime import-hf",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "precision": quantize or dtype,
        "graphs": {
            "decoder": {
                "file": DECODER_FILE,
                "inputs": [*CAUSAL_LM_DECODER["inputs"], *past],
                "outputs": [*CAUSAL_LM_DECODER["outputs"], *present],
            }
        },
        "tokenizers": {"decoder": TOKENIZER_FILE},
        "assets": assets,
        "chat_template": {"file": TEMPLATE_FILE, "source": template_source},
        "special_tokens": special,
        "stop_sequences": [],
        "emotions": list(EMOTIONS),
        "limits": {
            "max_positions": max_positions,
            "max_prompt_tokens": max(8, max_positions - MAX_NEW_TOKENS),
            "max_new_tokens": MAX_NEW_TOKENS,
        },
        "model": {
            "architecture": type(model).__name__,
            "model_type": config.model_type,
            "n_layers": n_layers,
            "n_kv_heads": heads,
            "head_dim": head_dim,
            "kv_dtype": "float16" if kv_dtype == torch.float16 else "float32",
            "vocab_size": int(model.get_output_embeddings().weight.shape[0]),
            "parameters": int(sum(p.numel() for p in model.parameters())),
        },
        "files": {f: {"sha256": sha256_file(out / f), "bytes": (out / f).stat().st_size} for f in named},
        "parity": parity,
    }
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / MANIFEST_NAME)
    log.info("wrote causal-lm bundle %s: %s", out, json.dumps(parity))
    return out


# ------------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="npc-runtime import-hf",
        description="Import a local Hugging Face causal LM checkpoint as a causal-lm bundle (offline; checked "
        "against transformers).",
    )
    p.add_argument("checkpoint", help="local checkpoint directory (config.json, weights, tokenizer)")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--dtype", choices=DTYPES, default="fp32", help="graph precision (default: %(default)s)")
    p.add_argument("--quantize", choices=QUANTIZATIONS, help="quantisation of the decoder MatMuls")
    p.add_argument("--activation-scales", choices=ACTIVATION_SCALES, default="row",
                   help="with --quantize int8: activations scaled per row (a reply does not depend on the others in "
                   "its batch; default) or per tensor (ONNX Runtime's dynamic quantisation as it comes)")
    p.add_argument("--max-context", type=int, help="most positions (prompt + reply) served (default: the model's)")
    p.add_argument("--name", help="model name in the manifest (default: the checkpoint folder's name)")
    p.add_argument(
        "--shared-emotion", action="store_true",
        help="do not copy the emotion classifier into the bundle; the runtime uses its own",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = import_checkpoint(
        args.checkpoint, args.out, dtype=args.dtype, quantize=args.quantize, max_context=args.max_context,
        emotion="shared" if args.shared_emotion else "bundle", name=args.name, activation_scales=args.activation_scales,
    )  # fmt: skip
    parity = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))["parity"]
    fp32 = parity["fp32"]
    print(
        f"wrote {out}: greedy tokens identical to transformers: {fp32['greedy_tokens_identical']}, "
        f"max logit difference {fp32['max_logit_diff']:.2e}, batched equals unbatched: "
        f"{fp32['batched_equals_unbatched']}"
    )
    for mode in ("fp16", *QUANTIZATIONS):
        if mode in parity:
            print(f"{mode}: greedy tokens identical: {parity[mode]['greedy_tokens_identical']}, "
                  f"max logit difference {parity[mode]['max_logit_diff']:.2e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
