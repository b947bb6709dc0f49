"""PyTorch eager generation with the role model's own KV cache: the reference the ONNX graphs must match.

Turns are batched with left padding, exactly as the runtime's scheduler feeds the decoder graph: prefill over
the whole prompt, then one token per step. Also the benchmark peer of the ONNX Runtime server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from export.role_model import RoleModel, place_prefix
from export.tokenizer import IGNORE_INDEX, EncodedTurn

__all__ = ["collate_turns", "GenerationConfig", "GenerationResult", "generate"]

log = logging.getLogger(__name__)


def collate_turns(turns: Sequence[EncodedTurn], pad_id: int, padding_side: str = "left") -> dict[str, Tensor]:
    """Pad encoded turns into one batch: input_ids, prefix_mask, attention_mask, position_ids, labels (B, L),
    emotion_position (B,). Positions count from 0 at each turn's first real token; padding gets position 0."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if not turns:
        raise ValueError("collate_turns needs at least one turn")
    length = max(len(t.ids) for t in turns)
    b = len(turns)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    prefix_mask = torch.zeros((b, length), dtype=torch.float32)
    attention_mask = torch.zeros((b, length), dtype=torch.long)
    position_ids = torch.zeros((b, length), dtype=torch.long)
    labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
    emotion_position = torch.zeros((b,), dtype=torch.long)
    for row, turn in enumerate(turns):
        n = len(turn.ids)
        start = length - n if padding_side == "left" else 0
        span = slice(start, start + n)
        input_ids[row, span] = torch.tensor(turn.ids, dtype=torch.long)
        prefix_mask[row, span] = torch.tensor(turn.prefix_mask, dtype=torch.float32)
        attention_mask[row, span] = 1
        position_ids[row, span] = torch.arange(n, dtype=torch.long)
        labels[row, span] = torch.tensor(turn.labels, dtype=torch.long)
        emotion_position[row] = start + turn.emotion_position
    return {
        "input_ids": input_ids,
        "prefix_mask": prefix_mask,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "labels": labels,
        "emotion_position": emotion_position,
    }


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings; ``temperature`` 0 means greedy."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_k: int = 0
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0.0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")


@dataclass
class GenerationResult:
    """Generated ids per row (cut after ``<eos>`` when stopping at it), per-step logits (B, V), and the emotion
    head read at the final prompt position: logits (B, E) and intensity (B,)."""

    tokens: list[list[int]]
    emotion_logits: Tensor
    emotion_intensity: Tensor
    step_logits: list[Tensor] = field(default_factory=list)


def _choose(logits: Tensor, cfg: GenerationConfig, generator: torch.Generator | None) -> Tensor:
    """(B, V) -> (B,) next token ids."""
    if cfg.temperature == 0.0:
        return torch.argmax(logits, dim=-1)
    scaled = logits / cfg.temperature
    if cfg.top_k > 0:
        kth = torch.topk(scaled, min(cfg.top_k, scaled.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate(
    model: RoleModel,
    batch: dict[str, Tensor],
    persona_embedding: Tensor,
    utterance_embedding: Tensor,
    image: Tensor | None,
    image_present: Tensor,
    eos_id: int,
    cfg: GenerationConfig = GenerationConfig(),
    generator: torch.Generator | None = None,
) -> GenerationResult:
    """Prefill a left-padded ``batch`` (from :func:`collate_turns`) and decode up to ``cfg.max_new_tokens``.

    persona_embedding, utterance_embedding (B, E); image (B, 3, S, S) or None for no screenshot; image_present (B,).
    """
    model.eval()
    input_ids, prefix_mask = batch["input_ids"], batch["prefix_mask"]
    attention_mask, position_ids = batch["attention_mask"], batch["position_ids"]
    if not bool((attention_mask[:, -1] > 0).all()):
        raise ValueError("generation needs a left-padded batch: every row's last position must be real")
    b, dev = input_ids.shape[0], input_ids.device
    mcfg = model.cfg
    if image is None:
        visual = torch.zeros((b, mcfg.n_visual_tokens, mcfg.d_model), device=dev)
    else:
        visual = model.encode_vision(image)  # (B, N, D)
    prefix = model.encode_prefix(persona_embedding, utterance_embedding, visual, image_present)  # (B, K, D)
    logits, emotion_logits, intensity, past = model.forward_step(
        input_ids, place_prefix(prefix, prefix_mask), prefix_mask, attention_mask, position_ids
    )
    result = GenerationResult(
        tokens=[[] for _ in range(b)],
        emotion_logits=emotion_logits[:, -1],
        emotion_intensity=intensity[:, -1],
    )
    next_logits = logits[:, -1]  # (B, V)
    next_pos = position_ids[:, -1:] + 1  # (B, 1)
    finished = torch.zeros(b, dtype=torch.bool, device=dev)
    zeros_embeds = torch.zeros((b, 1, mcfg.d_model), device=dev)
    zeros_mask = torch.zeros((b, 1), device=dev)
    for step in range(cfg.max_new_tokens):
        result.step_logits.append(next_logits)
        token = _choose(next_logits, cfg, generator)  # (B,)
        chosen, done = token.tolist(), finished.tolist()  # one device sync per step, not one per row
        for row in range(b):
            if not (cfg.stop_at_eos and done[row]):
                result.tokens[row].append(chosen[row])
        finished |= token == eos_id
        last_step = step == cfg.max_new_tokens - 1
        if last_step or (cfg.stop_at_eos and bool(finished.all())) or int(next_pos.max()) >= mcfg.max_positions:
            break
        attention_mask = torch.cat([attention_mask, torch.ones((b, 1), dtype=attention_mask.dtype, device=dev)], dim=1)
        logits, _, _, past = model.forward_step(
            token.unsqueeze(1), zeros_embeds, zeros_mask, attention_mask, next_pos, past
        )
        next_logits = logits[:, -1]
        next_pos = next_pos + 1
    return result
