"""Export a RoleModel to the ONNX graphs of a role-model bundle, and prove them equal to PyTorch.

Graph and tensor names come from ``npc_runtime.bundle`` (``ROLE_MODEL_GRAPHS``, ``role_model_kv_names``); nothing is
retyped here. The TorchScript exporter (``dynamo=False``) is used on purpose: the dynamo exporter needs
``onnxscript``, which the project does not depend on, and the traced graphs keep every axis dynamic, including a
past length of 0 for the first decoder call. :func:`check_parity` runs the exported graphs with ONNX Runtime
against PyTorch (prefill of a left-padded ragged batch, then greedy steps) and raises when they disagree.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import Tensor, nn

from export.role_model import RoleModel, place_prefix
from export.text_encoder import INT8_OP_TYPES
from export.tokenizer import encode_turn, load_tokenizer, pad_id
from export.torch_generate import GenerationConfig, collate_turns, generate
from npc_runtime.bundle import ROLE_MODEL_GRAPHS, ROLE_MODEL_OPTIONAL_INPUTS, role_model_kv_names
from npc_runtime.prompt import EOS, SPECIAL_TOKENS

__all__ = [
    "OPSET",
    "GRAPH_FILES",
    "ParityError",
    "export_role_model",
    "check_parity",
    "text_embeddings",
    "quantize_graphs",
]

log = logging.getLogger(__name__)

OPSET = 17
#: File name of each graph inside a bundle directory.
GRAPH_FILES = {name: f"{name}.onnx" for name in ROLE_MODEL_GRAPHS}
#: fp32 ONNX Runtime vs PyTorch: the largest absolute difference accepted on any compared output.
PARITY_TOLERANCE = 1e-3
#: Copy-head decoders output log-probabilities; parity compares them above this floor (p = 1e-7), within
#: ``COPY_LOG_PROB_TOLERANCE`` (1% of a probability): a sharp pointer amplifies float32 rounding in its dot
#: products (the default model measured 0.9e-3 to 1.4e-3 between ONNX Runtime and PyTorch, greedy tokens equal).
LOG_PROB_FLOOR = float(np.log(1e-7))
COPY_LOG_PROB_TOLERANCE = 1e-2

#: (knowledge, context, history, player text, persona card text) of the parity prompts; lengths differ on purpose.
PARITY_TURNS: tuple[tuple[str, dict[str, str], list[tuple[str, str]], str, str], ...] = (
    ("name: Brenna | wares: longsword 40", {"time_of_day": "night"}, [], "Do you sell swords?", "A gruff smith."),
    (
        "name: Old Tom | quest: find the lost ram",
        {"time_of_day": "morning", "weather": "rain", "location": "mill"},
        [("Hello there.", "Mind the puddles."), ("Busy?", "Always.")],
        "Seen my ram? Über den Fluss, maybe…",
        "A worried miller who talks about the weather.",
    ),
    ("name: Ash", {}, [], "Hi", "A quiet hunter."),
)


class _VisionGraph(nn.Module):
    def __init__(self, model: RoleModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        return self.model.encode_vision(image)


class _PrefixGraph(nn.Module):
    def __init__(self, model: RoleModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, persona: Tensor, utterance: Tensor, visual: Tensor, image_present: Tensor) -> Tensor:
        return self.model.encode_prefix(persona, utterance, visual, image_present)


class _DecoderGraph(nn.Module):
    """forward_step with the KV cache flattened to 2 * n_layers tensors after the fixed inputs.

    Outputs the keys and values of the new positions only (``new_only``), so the graph never copies the cache.
    """

    def __init__(self, model: RoleModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: Tensor,
        prefix_embeds: Tensor,
        prefix_mask: Tensor,
        attention_mask: Tensor,
        position_ids: Tensor,
        logits_to_keep: Tensor,
        *past_flat: Tensor,
    ) -> tuple[Tensor, ...]:
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, emotion_logits, intensity, new = self.model.forward_step(
            input_ids, prefix_embeds, prefix_mask, attention_mask, position_ids, past, new_only=True,
            logits_to_keep=logits_to_keep,
        )
        flat = [t for pair in new for t in pair]
        return (logits, emotion_logits, intensity, *flat)


def _export(module: nn.Module, args: tuple[Tensor, ...], path: Path, names_in: Sequence[str],
            names_out: Sequence[str], axes: dict[str, dict[int, str]]) -> None:
    import onnx

    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer notes
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=list(names_in),
            output_names=list(names_out),
            dynamic_axes=axes,
            opset_version=OPSET,
        )
    module.eval()  # the exporter restores the original mode recursively; keep dropout off afterwards
    onnx.checker.check_model(str(path))


@torch.no_grad()
def export_role_model(model: RoleModel, out_dir: str | Path) -> dict[str, Path]:
    """Write ``vision_encoder.onnx``, ``prefix_encoder.onnx`` and ``decoder.onnx`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    cfg = model.cfg
    b, t, p = 2, 3, 2  # example sizes; every one of them is a dynamic axis in the graphs
    paths = {name: out_dir / GRAPH_FILES[name] for name in ("vision_encoder", "prefix_encoder", "decoder")}

    spec = ROLE_MODEL_GRAPHS["vision_encoder"]
    image = torch.randn(b, 3, cfg.image_size, cfg.image_size)
    _export(_VisionGraph(model), (image,), paths["vision_encoder"], spec["inputs"], spec["outputs"],
            {spec["inputs"][0]: {0: "batch"}, spec["outputs"][0]: {0: "batch"}})

    spec = ROLE_MODEL_GRAPHS["prefix_encoder"]
    prefix_args = (
        torch.randn(b, cfg.text_embed_dim),
        torch.randn(b, cfg.text_embed_dim),
        torch.randn(b, cfg.n_visual_tokens, cfg.d_model),
        torch.tensor([1.0, 0.0]),
    )
    axes = {name: {0: "batch"} for name in (*spec["inputs"], *spec["outputs"])}
    _export(_PrefixGraph(model), prefix_args, paths["prefix_encoder"], spec["inputs"], spec["outputs"], axes)

    spec = ROLE_MODEL_GRAPHS["decoder"]
    past_names, new_names = role_model_kv_names(cfg.kv_layers)
    kv_shape = (b, cfg.n_heads, p, cfg.head_dim)
    decoder_args = (
        torch.randint(len(SPECIAL_TOKENS), cfg.vocab_size, (b, t)),
        torch.randn(b, t, cfg.d_model),
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]),
        torch.tensor([[2, 3, 4], [1, 2, 3]]),
        torch.tensor(2),  # logits_to_keep
        *(torch.randn(kv_shape) for _ in past_names),
    )
    new_axes = {0: "batch", 1: "new"}
    axes = {name: dict(new_axes) for name in ("input_ids", "prefix_embeds", "prefix_mask", "position_ids")}
    axes["attention_mask"] = {0: "batch", 1: "total"}
    axes.update({name: {0: "batch", 1: "kept"} for name in spec["outputs"]})
    axes.update({name: {0: "batch", 2: "past"} for name in past_names})
    axes.update({name: {0: "batch", 2: "new"} for name in new_names})
    _export(_DecoderGraph(model), decoder_args, paths["decoder"],
            (*spec["inputs"], *ROLE_MODEL_OPTIONAL_INPUTS["decoder"], *past_names), (*spec["outputs"], *new_names), axes)
    log.info("exported role model graphs to %s", out_dir)
    return paths


class ParityError(RuntimeError):
    """Exported graphs disagree with PyTorch beyond the tolerance, or greedy tokens differ."""


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def text_embeddings(bundle_dir: str | Path, texts: Sequence[str]) -> np.ndarray:
    """Sentence embeddings (N, E) from a bundle directory's own text encoder graph and tokenizer."""
    bundle_dir = Path(bundle_dir)
    tokenizer = Tokenizer.from_file(str(bundle_dir / "text_encoder_tokenizer.json"))
    encodings = tokenizer.encode_batch(list(texts))
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    session = _session(bundle_dir / GRAPH_FILES["text_encoder"])
    return session.run(None, {name: feeds[name] for name in ROLE_MODEL_GRAPHS["text_encoder"]["inputs"]})[0]


def _ort_greedy(sessions: dict[str, Any], model: RoleModel, batch: dict[str, Tensor], persona: np.ndarray,
                utterance: np.ndarray, images: np.ndarray, present: np.ndarray, steps: int) -> dict[str, Any]:
    """Greedy decoding through the ONNX graphs, mirroring ``torch_generate.generate``."""
    cfg = model.cfg
    b = persona.shape[0]
    visual = sessions["vision_encoder"].run(None, {"image": images})[0]  # (B, N, D)
    prefix = sessions["prefix_encoder"].run(None, {
        "persona_embedding": persona, "utterance_embedding": utterance,
        "visual_features": visual, "image_present": present,
    })[0]  # (B, K, D)
    past_names, _ = role_model_kv_names(cfg.kv_layers)
    feeds = {
        "input_ids": batch["input_ids"].numpy(),
        "prefix_embeds": place_prefix(torch.from_numpy(prefix), batch["prefix_mask"]).numpy(),
        "prefix_mask": batch["prefix_mask"].numpy(),
        "attention_mask": batch["attention_mask"].numpy(),
        "position_ids": batch["position_ids"].numpy(),
        "logits_to_keep": np.array(1, dtype=np.int64),  # the runtime's prefill: the last position's heads only
    }
    empty = np.zeros((b, cfg.n_heads, 0, cfg.head_dim), dtype=np.float32)  # P = 0 on the first call
    feeds.update({name: empty for name in past_names})
    past = [empty for _ in past_names]
    n_fixed = len(ROLE_MODEL_GRAPHS["decoder"]["outputs"])
    outputs = sessions["decoder"].run(None, feeds)
    result: dict[str, Any] = {
        "visual": visual, "prefix": prefix, "emotion_logits": outputs[1][:, -1], "intensity": outputs[2][:, -1],
        "step_logits": [], "tokens": [[] for _ in range(b)],
    }
    attention_mask, position = feeds["attention_mask"], feeds["position_ids"][:, -1:] + 1
    for step in range(steps):
        logits = outputs[0][:, -1]  # (B, V)
        result["step_logits"].append(logits)
        token = logits.argmax(axis=-1)
        for row in range(b):
            result["tokens"][row].append(int(token[row]))
        if step == steps - 1:
            break
        attention_mask = np.concatenate([attention_mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        feeds = {
            "input_ids": token.reshape(b, 1).astype(np.int64),
            "prefix_embeds": np.zeros((b, 1, cfg.d_model), dtype=np.float32),
            "prefix_mask": np.zeros((b, 1), dtype=np.float32),
            "attention_mask": attention_mask,
            "position_ids": position,
            "logits_to_keep": np.array(1, dtype=np.int64),
        }
        past = [np.concatenate([feeds_past, new], axis=2) for feeds_past, new in zip(past, outputs[n_fixed:])]
        feeds.update(dict(zip(past_names, past)))
        outputs = sessions["decoder"].run(None, feeds)
        position = position + 1
    return result


@torch.no_grad()
def check_parity(model: RoleModel, bundle_dir: str | Path, steps: int = 6, strict: bool = True,
                 tolerance: float | None = PARITY_TOLERANCE, seed: int = 0) -> dict[str, Any]:
    """Run the bundle's graphs with ONNX Runtime (CPU) against PyTorch on a ragged left-padded batch.

    Compares visual features, prefix embeddings, prefill emotion outputs and the logits of ``steps`` greedy
    steps (a copy-head decoder's log-probabilities above ``LOG_PROB_FLOOR``, within ``COPY_LOG_PROB_TOLERANCE``);
    greedy tokens must be identical, and with a ``tolerance`` (None: tokens only, for int8) every max abs
    difference must stay within it. With ``strict`` a failure raises :class:`ParityError`; the report (max abs
    differences, tokens match, passed) is returned either way.
    """
    bundle_dir = Path(bundle_dir)
    model.eval()
    cfg = model.cfg
    tokenizer = load_tokenizer(bundle_dir / "tokenizer.json")
    graph_names = ("vision_encoder", "prefix_encoder", "decoder")
    sessions = {name: _session(bundle_dir / GRAPH_FILES[name]) for name in graph_names}
    turns = [encode_turn(tokenizer, cfg.prefix_tokens, k, c, h, p) for k, c, h, p, _ in PARITY_TURNS]
    batch = collate_turns(turns, pad_id(), padding_side="left")
    persona = text_embeddings(bundle_dir, [card for *_, card in PARITY_TURNS])
    utterance = text_embeddings(bundle_dir, [p for _, _, _, p, _ in PARITY_TURNS])
    if persona.shape[1] != cfg.text_embed_dim:
        raise ParityError(f"text encoder gives {persona.shape[1]}-d embeddings, model expects {cfg.text_embed_dim}")
    rng = np.random.default_rng(seed)
    b = len(turns)
    images = rng.standard_normal((b, 3, cfg.image_size, cfg.image_size)).astype(np.float32)
    present = np.array([1.0 if row % 2 == 0 else 0.0 for row in range(b)], dtype=np.float32)

    ort_out = _ort_greedy(sessions, model, batch, persona, utterance, images, present, steps)
    image_t, present_t = torch.from_numpy(images), torch.from_numpy(present)
    persona_t, utterance_t = torch.from_numpy(persona), torch.from_numpy(utterance)
    visual_t = model.encode_vision(image_t)
    prefix_t = model.encode_prefix(persona_t, utterance_t, visual_t, present_t)
    eos_id = SPECIAL_TOKENS.index(EOS)
    ref = generate(model, batch, persona_t, utterance_t, image_t, present_t, eos_id,
                   GenerationConfig(max_new_tokens=steps, stop_at_eos=False))

    def diff(a: np.ndarray, t: Tensor) -> float:
        return float(np.abs(a - t.numpy()).max())

    def logit_diff(a: np.ndarray, t: Tensor) -> float:
        if not cfg.copy_head:
            return diff(a, t)
        # A copy-head decoder outputs log-probabilities, where a float's rounding in a probability of 1e-10 is a
        # visible difference of its log; below the floor no sampler can pick a token, so compare above it.
        return float(np.abs(np.maximum(a, LOG_PROB_FLOOR) - np.maximum(t.numpy(), LOG_PROB_FLOOR)).max())

    max_abs = {
        "visual_features": diff(ort_out["visual"], visual_t),
        "prefix_embeds": diff(ort_out["prefix"], prefix_t),
        "emotion_logits": diff(ort_out["emotion_logits"], ref.emotion_logits),
        "emotion_intensity": diff(ort_out["intensity"], ref.emotion_intensity),
        "logits": max(logit_diff(a, t) for a, t in zip(ort_out["step_logits"], ref.step_logits)),
    }
    tokens_match = ort_out["tokens"] == ref.tokens
    limits = {name: tolerance for name in max_abs}
    if cfg.copy_head and tolerance is not None:
        limits["logits"] = max(tolerance, COPY_LOG_PROB_TOLERANCE)
    passed = tokens_match and (tolerance is None or all(v <= limits[k] for k, v in max_abs.items()))
    report = {
        "provider": "CPUExecutionProvider",
        "prompts": b,
        "greedy_steps": steps,
        "tolerance": tolerance,
        **({"log_prob_tolerance": limits["logits"]} if cfg.copy_head and tolerance is not None else {}),
        "max_abs_diff": max_abs,
        "greedy_tokens_match": tokens_match,
        "passed": passed,
    }
    log.info("parity %s: %s", bundle_dir, report)
    if strict and not passed:
        raise ParityError(f"ONNX graphs in {bundle_dir} disagree with PyTorch: {report}")
    return report


def quantize_graphs(
    bundle_dir: str | Path, names: Sequence[str] = ("decoder", "prefix_encoder", "text_encoder"),
    keep_fp32: Sequence[str] = (), rowwise: bool = True,
) -> None:
    """int8 dynamic quantisation (per-channel weights, a scale per activation row) of the named graphs, in place.

    The decoder and prefix encoder quantise MatMul weights only (the decoder's tied embedding stays one fp32
    table); the text encoder also quantises its word-embedding table (``text_encoder.INT8_OP_TYPES``). Nodes named
    in ``keep_fp32`` stay fp32. ONNX Runtime's tool quantises activations with one scale per tensor, which makes
    a row's output depend on the rest of its batch; :func:`export.requantize.rowwise_activations` then gives each
    row its own (``rowwise=False`` keeps ONNX Runtime's).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.requantize import rowwise_activations

    bundle_dir = Path(bundle_dir)
    for name in names:
        path = bundle_dir / GRAPH_FILES[name]
        tmp = path.with_suffix(".int8.onnx")
        op_types = list(INT8_OP_TYPES) if name == "text_encoder" else ["MatMul"]
        quantize_dynamic(
            str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=op_types, per_channel=True,
            nodes_to_exclude=list(keep_fp32),
        )
        if rowwise:
            onnx.save(rowwise_activations(onnx.load(str(tmp)))[0], str(tmp))
        tmp.replace(path)
        log.info("quantised %s to int8", path)
