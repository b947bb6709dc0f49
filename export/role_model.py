"""The default role model: a small decoder-only transformer with a multimodal prefix (LLaVA-style).

Read top to bottom: the config, the vision and prefix encoders, the decoder block, then :class:`RoleModel`.
The prefix encoder turns the persona card's MiniLM embedding, the screenshot's visual tokens and the player
utterance's MiniLM embedding into ``prefix_tokens`` embeddings that sit in front of the decoder's text (see
``npc_runtime.prompt.layout_ids``). The decoder step takes and returns a KV cache so the ONNX export serves one
token at a time; the same code runs prefill (``T > 1``, ``P = 0``) and decode (``T = 1``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from export.tokenizer import IGNORE_INDEX
from npc_runtime.emotion import EMOTIONS
from npc_runtime.prompt import NPC, SPECIAL_TOKENS

__all__ = [
    "FUSIONS",
    "RoleModelConfig",
    "KVCache",
    "place_prefix",
    "VisionEncoder",
    "PrefixEncoder",
    "DecoderBlock",
    "CopyHead",
    "RoleModel",
    "save_checkpoint",
    "load_checkpoint",
]

log = logging.getLogger(__name__)

FUSIONS = ("concat", "weighted_sum", "cross_attention")
#: Additive attention bias for masked keys: large enough that exp() underflows to 0, small enough to stay finite.
MASK_VALUE = -1e9
#: The ``<npc>`` token, which opens each NPC line: the copy head's induction bonus counts turns by it.
_NPC_ID = SPECIAL_TOKENS.index(NPC)

#: One (key, value) pair per layer, each (B, H, P, Dh).
KVCache = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class RoleModelConfig:
    """Every size of a role model; a checkpoint stores it and loading rebuilds the model from it."""

    vocab_size: int = 4096
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    max_positions: int = 384
    text_embed_dim: int = 384  # MiniLM sentence embedding width
    n_persona_tokens: int = 4
    n_visual_tokens: int = 16  # a square number: the CNN ends on a sqrt(N) x sqrt(N) grid
    image_size: int = 64
    vision_channels: tuple[int, ...] = (32, 64, 128)  # one stride-2 conv per entry
    fusion: str = "concat"
    #: The card's traits, mood and speaking style are on the decoder's ``<know>`` line
    #: (``PersonaCard.knowledge_text(voice=True)``); False is the layout of models trained before voice lines.
    prompt_voice: bool = False
    #: Double-quoted phrases on the ``<know>`` line have a space inside their quotes
    #: (``PersonaCard.knowledge_text(spaced_quotes=True)``), so a quoted catchphrase's first word is the same token
    #: there as in a reply and the copy head can copy it; False is the layout of models trained before.
    spaced_quotes: bool = False
    n_emotions: int = len(EMOTIONS)
    #: A pointer (copy) head: the next-token distribution mixes the language model's with an attention over the
    #: text tokens so far, so a name, price or place on the ``<know>`` or ``<ctx>`` line can be copied even when
    #: it was never seen in training. Its keys and the tokens they point at are cached as one more KV pair.
    copy_head: bool = False
    #: Token ids below this are never copied (the special tokens: padding, prefix slots, turn markers).
    copy_min_id: int = len(SPECIAL_TOKENS)
    #: With the copy head, an induction term: a position before the reader's own ``<npc>`` turn whose previous
    #: token is the token just read gets a copy score bonus (a learned function of the reader's state), so after
    #: copying one piece of a multi-piece name the head can point at the piece that followed it in the prompt.
    #: Each cached position keeps its previous token's id and its turn beside its own id (see :class:`CopyHead`);
    #: the decoder's inputs and outputs do not change.
    copy_induction: bool = False
    dropout: float = 0.0
    tie_embeddings: bool = True
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        positive = (
            "vocab_size",
            "d_model",
            "n_layers",
            "n_heads",
            "d_ff",
            "max_positions",
            "text_embed_dim",
            "n_persona_tokens",
            "n_visual_tokens",
            "image_size",
            "n_emotions",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"RoleModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        for name in ("prompt_voice", "spaced_quotes", "copy_head", "copy_induction"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.copy_min_id, int) or isinstance(self.copy_min_id, bool) or self.copy_min_id < 0:
            raise ValueError(f"copy_min_id must be a non-negative int, got {self.copy_min_id!r}")
        if self.copy_induction and not self.copy_head:
            raise ValueError("copy_induction needs copy_head")
        if self.copy_induction and self.d_model // self.n_heads < 3:
            raise ValueError("copy_induction needs a head_dim of at least 3 (the cache keeps three numbers per "
                             "position)")  # fmt: skip
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.vision_channels or any(
            not isinstance(c, int) or isinstance(c, bool) or c <= 0 for c in self.vision_channels
        ):
            raise ValueError(f"vision_channels must be positive ints, got {self.vision_channels!r}")
        grid = math.isqrt(self.n_visual_tokens)
        if grid * grid != self.n_visual_tokens:
            raise ValueError(f"n_visual_tokens must be a square number, got {self.n_visual_tokens}")
        reduced = 2 ** len(self.vision_channels)
        if self.image_size % (reduced * grid):
            raise ValueError(
                f"image_size ({self.image_size}) must be divisible by 2**len(vision_channels) * sqrt(n_visual_tokens)"
                f" = {reduced * grid}"
            )
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if len(value) != 3 or any(not isinstance(v, (int, float)) for v in value):
                raise ValueError(f"{name} must be 3 numbers, got {value!r}")
        if any(v <= 0 for v in self.image_std):
            raise ValueError(f"image_std must be positive, got {self.image_std!r}")
        if self.prefix_tokens + 2 > self.max_positions:
            raise ValueError(
                f"max_positions ({self.max_positions}) leaves no room after {self.prefix_tokens} prefix tokens"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_layers(self) -> int:
        """Number of (key, value) pairs in the decoder's cache: one per layer, plus the copy head's."""
        return self.n_layers + (1 if self.copy_head else 0)

    @property
    def prefix_tokens(self) -> int:
        """K, the number of prefix embeddings in front of the text; depends on the fusion."""
        if self.fusion == "concat":
            return self.n_persona_tokens + self.n_visual_tokens + 1  # [persona; visual; utterance]
        if self.fusion == "weighted_sum":
            return self.n_persona_tokens  # every modality projected to the same K tokens
        return self.n_persona_tokens + 1  # cross_attention: persona and utterance queries

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoleModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RoleModelConfig fields: {unknown}")
        values = dict(data)
        for name in ("vision_channels", "image_mean", "image_std"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def place_prefix(prefix: Tensor, prefix_mask: Tensor) -> Tensor:
    """Scatter K prefix embeddings into the rows where ``prefix_mask`` is 1, in order; zeros elsewhere.

    prefix (B, K, D), prefix_mask (B, L) -> (B, L, D). Works for any left or right padding of the rows.
    """
    mask = prefix_mask.to(prefix.dtype)
    index = (torch.cumsum(mask, dim=1) - 1).clamp(min=0, max=prefix.shape[1] - 1).long()  # (B, L)
    rows = torch.gather(prefix, 1, index.unsqueeze(-1).expand(-1, -1, prefix.shape[2]))  # (B, L, D)
    return rows * mask.unsqueeze(-1)


class MLP(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, d_hidden)
        self.proj = nn.Linear(d_hidden, d_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


def _attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, drop: nn.Dropout) -> Tensor:
    """Scaled dot-product attention with an additive bias; written out so ONNX export is plain MatMul/Softmax.

    q (B, H, T, Dh), k and v (B, H, L, Dh), bias broadcastable to (B, H, T, L) -> (B, H, T, Dh).
    """
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, T, L)
    if bias is not None:
        scores = scores + bias
    return torch.matmul(drop(torch.softmax(scores, dim=-1)), v)


def _attend_split(q: Tensor, past: tuple[Tensor, Tensor], k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """The same attention as ``_attend`` over ``cat(past, new)``, computed without concatenating the cache.

    q, k, v (B, H, T, Dh) of the T new positions, past (B, H, P, Dh) each, bias (B, 1, T, P + T). Only the small
    (B, H, T, P + T) score matrix is joined, so the exported graph reads the cache once and copies none of it;
    the runtime keeps the cache in place and writes each step's new keys and values into it.
    """
    p = past[0].shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.cat([torch.matmul(q, past[0].transpose(-2, -1)), torch.matmul(q, k.transpose(-2, -1))], dim=-1)
    probs = torch.softmax(scores * scale + bias, dim=-1)  # (B, H, T, P + T)
    return torch.matmul(probs[..., :p], past[1]) + torch.matmul(probs[..., p:], v)


class VisionEncoder(nn.Module):
    """Screenshot to visual tokens: stride-2 convs, then a patchifying conv onto a sqrt(N) grid."""

    def __init__(self, cfg: RoleModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in cfg.vision_channels:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), nn.GELU()]
            c_in = c_out
        self.stem = nn.Sequential(*layers)
        grid = math.isqrt(cfg.n_visual_tokens)
        patch = cfg.image_size // (2 ** len(cfg.vision_channels)) // grid
        self.patch = nn.Conv2d(c_in, cfg.d_model, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(cfg.n_visual_tokens, cfg.d_model))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, image: Tensor) -> Tensor:
        x = self.patch(self.stem(image))  # (B, 3, S, S) -> (B, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, D, g, g) -> (B, N, D)
        return self.norm(x + self.pos)


class CrossAttention(nn.Module):
    """Pre-norm cross attention with residual and MLP: queries attend over a context, no mask."""

    def __init__(self, cfg: RoleModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm_q = nn.LayerNorm(cfg.d_model)
        self.norm_kv = nn.LayerNorm(cfg.d_model)
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm_mlp = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, cfg.d_model, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)  # (B, n, D) -> (B, H, n, Dh)

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        b, k, d = queries.shape
        q = self._heads(self.q(self.norm_q(queries)))
        key, value = self.kv(self.norm_kv(context)).split(d, dim=2)
        y = _attend(q, self._heads(key), self._heads(value), None, self.drop)  # (B, H, K, Dh)
        queries = queries + self.out(y.transpose(1, 2).reshape(b, k, d))
        return queries + self.mlp(self.norm_mlp(queries))


class PrefixEncoder(nn.Module):
    """Persona, screenshot and utterance to the decoder's K prefix embeddings, by the configured fusion."""

    def __init__(self, cfg: RoleModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, e = cfg.d_model, cfg.text_embed_dim
        # Role embedding: persona card's MiniLM vector through an MLP projector to n_persona_tokens tokens.
        self.persona = MLP(e, cfg.d_ff, cfg.n_persona_tokens * d)
        # Stands in for the visual tokens when the request carries no screenshot.
        self.no_image = nn.Parameter(torch.zeros(cfg.n_visual_tokens, d))
        if cfg.fusion == "concat":
            self.visual = nn.Linear(d, d)
            self.utterance = nn.Linear(e, d)
        elif cfg.fusion == "weighted_sum":
            k = cfg.prefix_tokens
            self.visual = nn.Linear(cfg.n_visual_tokens, k)  # mixes the token axis: N tokens -> K tokens
            self.utterance = nn.Linear(e, k * d)
            self.gates = nn.Parameter(torch.ones(3))  # alpha (image), beta (persona text), gamma (utterance)
            self.pos = nn.Parameter(torch.zeros(k, d))
        else:
            self.utterance = nn.Linear(e, d)
            self.cross = CrossAttention(cfg)
        self.norm = nn.LayerNorm(d)

    def forward(
        self, persona_embedding: Tensor, utterance_embedding: Tensor, visual_features: Tensor, image_present: Tensor
    ) -> Tensor:
        cfg = self.cfg
        b = persona_embedding.shape[0]
        persona = self.persona(persona_embedding).view(b, cfg.n_persona_tokens, cfg.d_model)  # (B, Np, D)
        present = image_present.to(visual_features.dtype).view(b, 1, 1)
        visual = visual_features * present + self.no_image * (1.0 - present)  # (B, N, D)
        if cfg.fusion == "concat":
            utterance = self.utterance(utterance_embedding).unsqueeze(1)  # (B, E) -> (B, 1, D)
            prefix = torch.cat([persona, self.visual(visual), utterance], dim=1)  # (B, Np + N + 1, D)
        elif cfg.fusion == "weighted_sum":
            image_part = self.visual(visual.transpose(1, 2)).transpose(1, 2)  # (B, N, D) -> (B, K, D)
            utterance = self.utterance(utterance_embedding).view(b, cfg.prefix_tokens, cfg.d_model)
            alpha, beta, gamma = self.gates[0], self.gates[1], self.gates[2]
            prefix = alpha * image_part + beta * persona + gamma * utterance + self.pos  # (B, K, D)
        else:
            utterance = self.utterance(utterance_embedding).unsqueeze(1)  # (B, 1, D)
            queries = torch.cat([persona, utterance], dim=1)  # (B, Np + 1, D)
            context = torch.cat([visual, utterance], dim=1)  # (B, N + 1, D)
            prefix = self.cross(queries, context)
        return self.norm(prefix)


class SelfAttention(nn.Module):
    """Causal multi-head self attention over the KV cache plus the new positions."""

    def __init__(self, cfg: RoleModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, bias: Tensor, past: tuple[Tensor, Tensor] | None, new_only: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the output and the keys and values: of all P + T positions, or with ``new_only`` of the T new ones."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        # (B, T, D) -> (B, H, T, Dh)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        if new_only:
            if past is None:
                past = (k[:, :, :0], v[:, :, :0])
            y = _attend_split(q, past, k, v, bias).transpose(1, 2).reshape(b, t, d)
            return self.resid_drop(self.out(y)), k, v
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, P + T, Dh)
            v = torch.cat([past[1], v], dim=2)
        y = _attend(q, k, v, bias, self.attn_drop)  # (B, H, T, Dh)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.resid_drop(self.out(y)), k, v


class DecoderBlock(nn.Module):
    """Pre-norm transformer block (nanoGPT layout)."""

    def __init__(self, cfg: RoleModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, cfg.d_model, cfg.dropout)

    def forward(
        self, x: Tensor, bias: Tensor, past: tuple[Tensor, Tensor] | None, new_only: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        y, k, v = self.attn(self.ln_1(x), bias, past, new_only)
        x = x + y
        x = x + self.mlp(self.ln_2(x))
        return x, k, v


class CopyHead(nn.Module):
    """Pointer head: a mix of the language model's next-token distribution and a copy of an earlier text token.

    Each position gets a copy key from the decoder's final hidden state; a query from the position being predicted
    attends over the keys of every visible text token (special tokens below ``copy_min_id`` never), and the
    attention mass on a position becomes probability for that position's token. A gate from the same hidden
    state sets the share of copying: p = (1 - g) * softmax(lm_logits) + g * p_copy. The keys and the token ids
    they point at are cached like a layer's keys and values (ids as floats, repeated over the head layout), so a
    decode step sees the whole prompt without the runtime knowing anything about copying.

    With ``cfg.copy_induction`` channels 1 and 2 of the cached ids hold each position's previous token id and its
    turn (how many ``<npc>`` tokens there are up to it), and a reader whose own token equals the previous token of a
    position in an earlier turn adds a learned bonus to that position's score: the position after an earlier
    occurrence of the piece just read, which is where a multi-piece name goes on. Positions of the reader's own
    reply never get it, so the reply cannot feed its own loop ("the landing; the landing; the landing").
    """

    def __init__(self, cfg: RoleModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.query = nn.Linear(cfg.d_model, cfg.d_model)
        self.key = nn.Linear(cfg.d_model, cfg.d_model)
        self.gate = nn.Linear(cfg.d_model, 1)
        if cfg.copy_induction:
            self.induction = nn.Linear(cfg.d_model, 1)

    def cache_entry(self, h: Tensor, input_ids: Tensor, state: tuple[Tensor, Tensor] | None = None
                    ) -> tuple[Tensor, Tensor]:
        """(B, T, D) final hidden states and (B, T) ids -> keys and ids as a cache pair, each (B, H, T, Dh).

        With ``copy_induction``, ``state`` is :meth:`induction_state`'s (previous ids, turns), each (B, T), which go
        into channels 1 and 2 of the ids."""
        cfg = self.cfg
        b, t, _ = h.shape
        keys = self.key(h).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        ids = input_ids.to(h.dtype).view(b, 1, t, 1).expand(b, cfg.n_heads, t, cfg.head_dim)
        if cfg.copy_induction:
            if state is None:
                raise ValueError("copy_induction: cache_entry needs the previous token ids and turns")
            extra = [x.to(h.dtype).view(b, 1, t, 1).expand(b, cfg.n_heads, t, 1) for x in state]
            ids = torch.cat([ids.narrow(3, 0, 1), *extra, ids.narrow(3, 3, cfg.head_dim - 3)], dim=3)
        return keys, ids

    @staticmethod
    def induction_state(input_ids: Tensor, attention_mask: Tensor | None = None,
                        past_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(previous id, turn) of each new position, each (B, T) float.

        The previous id is the new position's before it, or for the first one the last visible cached position's
        (``past_ids`` (B, H, P, Dh), the copy head's cached ids, visible where ``attention_mask`` (B, P + T) says),
        or -1 where there is none. The turn counts the ``<npc>`` tokens up to and including the position, carried
        on from the last visible cached position. Right for both cache layouts the runtime uses: left padded, and
        rows packed from column 0 with masked room after them."""
        ids = input_ids.to(torch.float32)
        b = ids.shape[0]
        is_turn = (input_ids == _NPC_ID).to(ids.dtype)
        if past_ids is None or attention_mask is None:
            first = torch.full((b, 1), -1.0, dtype=ids.dtype, device=ids.device)
            base = torch.zeros((b, 1), dtype=ids.dtype, device=ids.device)
        else:
            cached_ids = past_ids[:, 0, :, 0]  # (B, P)
            cached_turns = past_ids[:, 0, :, 2]
            seen = attention_mask[:, : cached_ids.shape[1]].to(ids.dtype)  # (B, P)
            after = torch.cat([seen, torch.zeros_like(seen[:, :1])], dim=1)[:, 1:]  # is the next column visible
            last = seen * (1.0 - after)  # one-hot of the last visible column (none when nothing is visible)
            first = (last * cached_ids).sum(1, keepdim=True) - (1.0 - last.sum(1, keepdim=True))
            base = (last * cached_turns).sum(1, keepdim=True)
        return torch.cat([first, ids[:, :-1]], dim=1), base + torch.cumsum(is_turn, dim=1)

    def induction_bonus(self, h_query: Tensor, read_ids: Tensor, read_turns: Tensor, previous: Tensor,
                        turns: Tensor) -> Tensor:
        """Score bonus (B, N, L) for N readers with hidden states (B, N, D), own token ids and turns (B, N): where
        a position of an earlier turn has the reader's token as its ``previous`` id (``previous``, ``turns``:
        (B, L)). Never a position of the reader's own reply, nor for a special token."""
        read = read_ids.to(previous.dtype)
        match = (previous.unsqueeze(1) == read.unsqueeze(2)) & (read >= self.cfg.copy_min_id).unsqueeze(2)
        match = match & (turns.unsqueeze(1) < read_turns.unsqueeze(2))
        return self.induction(h_query) * match.to(h_query.dtype)  # (B, N, 1) * (B, N, L)

    def scores(self, h_query: Tensor, keys: Tensor) -> Tensor:
        """Scaled copy scores (B, N, L) of queries from h_query (B, N, D) against cached keys (B, H, L, Dh).

        Per head, then summed over heads (the same dot product over the full width), so the exported graph reads
        the cache in its own layout: no transpose or concatenation of it (see ``forward_step``)."""
        cfg = self.cfg
        b, n, _ = h_query.shape
        q = self.query(h_query).view(b, n, cfg.n_heads, cfg.head_dim).transpose(1, 2)  # (B, H, N, Dh)
        return torch.matmul(q, keys.transpose(-2, -1)).sum(1) * (1.0 / math.sqrt(cfg.d_model))

    def position_probs(self, scores: Tensor, ids: Tensor, bias: Tensor) -> Tensor:
        """Copy attention (B, N, L) from scores (B, N, L), the token ids (B, L) and the attention bias (B, N, L)."""
        # Half the attention mask's bias: a visible special token still outranks an invisible position, so a
        # position that sees no copyable token (inside the prefix) gives the same answer with or without a cache.
        never = torch.where(ids < self.cfg.copy_min_id, torch.full_like(ids, 0.5 * MASK_VALUE), torch.zeros_like(ids))
        return torch.softmax(scores + bias + never.unsqueeze(1), dim=-1)

    def mix(self, h_query: Tensor, logits: Tensor, probs: Tensor, ids: Tensor) -> Tensor:
        """Log-probabilities (B, N, V) of the mixture, from lm logits (B, N, V) and copy attention (B, N, L)."""
        b, n, length = probs.shape
        # Ids arrive as floats from the cache: round, and keep anything malformed inside the vocabulary.
        index = ids.round().clamp(0, logits.shape[-1] - 1).to(torch.int64).unsqueeze(1).expand(b, n, length)
        copied = torch.zeros_like(logits).scatter_add(2, index, probs)  # (B, N, V)
        gate = torch.sigmoid(self.gate(h_query))  # (B, N, 1)
        mixed = (1.0 - gate) * torch.softmax(logits, dim=-1) + gate * copied
        return torch.log(mixed.clamp(min=1e-12))

    def label_log_probs(self, h: Tensor, input_ids: Tensor, bias: Tensor, picked: Tensor, logits: Tensor,
                        targets: Tensor) -> Tensor:
        """Training: log p(target) of the mixture at the ``picked`` positions (B, L) of whole sequences.

        h (B, L, D) final hidden states, bias (B, 1, L, L) the causal attention bias, logits (n, V) and targets
        (n,) at the picked positions. Computed without the (n, V) copy distribution.
        """
        state = self.induction_state(input_ids) if self.cfg.copy_induction else None
        keys, _ = self.cache_entry(h, input_ids, state)
        scores = self.scores(h, keys)  # (B, L, L)
        if state is not None:
            scores = scores + self.induction_bonus(h, input_ids, state[1], *state)
        probs = self.position_probs(scores, input_ids.to(h.dtype), bias[:, 0])  # (B, L, L)
        rows = picked.nonzero()[:, 0]
        hits = (input_ids[rows] == targets.unsqueeze(1)).to(h.dtype)  # (n, L)
        p_copy = (probs[picked] * hits).sum(-1)  # (n,)
        z = self.gate(h[picked]).squeeze(-1)  # (n,)
        lm = torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)
        return torch.logaddexp(F.logsigmoid(-z) + lm, F.logsigmoid(z) + torch.log(p_copy.clamp(min=1e-12)))


def attention_bias(attention_mask: Tensor, t: int) -> Tensor:
    """Additive bias (B, 1, T, P + T): key j is visible to new position i iff it is not padding and j <= P + i.

    The T new positions are the last T of the ``attention_mask`` (B, P + T) columns.
    """
    length = attention_mask.shape[1]
    key_pos = torch.arange(length, device=attention_mask.device).unsqueeze(0)  # (1, L)
    query_pos = torch.arange(t, device=attention_mask.device).unsqueeze(1) + (length - t)  # (T, 1)
    causal = key_pos <= query_pos  # (T, L)
    visible = causal.unsqueeze(0) & (attention_mask > 0).unsqueeze(1)  # (B, T, L)
    zero = torch.zeros((), dtype=torch.float32, device=attention_mask.device)
    masked = torch.full((), MASK_VALUE, dtype=torch.float32, device=attention_mask.device)
    return torch.where(visible, zero, masked).unsqueeze(1)  # (B, 1, T, L)


class RoleModel(nn.Module):
    """Vision encoder, prefix encoder and a KV-cached decoder with language, emotion and intensity heads."""

    def __init__(self, cfg: RoleModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = VisionEncoder(cfg)
        self.prefix = PrefixEncoder(cfg)
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.emotion_head = nn.Linear(cfg.d_model, cfg.n_emotions)
        self.intensity_head = nn.Linear(cfg.d_model, 1)
        if cfg.copy_head:
            self.copy = CopyHead(cfg)
        self.apply(self._init_weights)
        if cfg.copy_induction:
            # The bonus starts at zero: a new model learns it from nothing, and one warm-started from a checkpoint
            # without it begins exactly where that checkpoint ended.
            nn.init.zeros_(self.copy.induction.weight)
            nn.init.zeros_(self.copy.induction.bias)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode_vision(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) normalised image -> (B, N, D) visual features."""
        return self.vision(image)

    def encode_prefix(
        self, persona_embedding: Tensor, utterance_embedding: Tensor, visual_features: Tensor, image_present: Tensor
    ) -> Tensor:
        """(B, E), (B, E), (B, N, D), (B,) -> (B, K, D) prefix embeddings."""
        return self.prefix(persona_embedding, utterance_embedding, visual_features, image_present)

    def forward_step(
        self,
        input_ids: Tensor,
        prefix_embeds: Tensor,
        prefix_mask: Tensor,
        attention_mask: Tensor,
        position_ids: Tensor,
        past: KVCache | None = None,
        new_only: bool = False,
        logits_to_keep: Tensor | int | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, KVCache]:
        """One decoder call over T new positions after P cached ones.

        input_ids (B, T), prefix_embeds (B, T, D), prefix_mask (B, T), attention_mask (B, P + T),
        position_ids (B, T), past: n_layers x ((B, H, P, Dh), (B, H, P, Dh)) or None for P = 0.
        With ``cfg.copy_head`` the cache has one more pair (the copy head's; see :class:`CopyHead`) and ``logits``
        are the log-probabilities of the copy mixture, which sampling and argmax treat like logits.
        Returns logits (B, T, V), emotion_logits (B, T, E), emotion_intensity (B, T) and the present cache
        (P + T positions), or with ``new_only`` the keys and values of the T new positions only (the exported
        decoder's form: the runtime owns the cache and appends them in place). With ``logits_to_keep`` N the
        three heads run on the last N positions only (their outputs are (B, N, ...)).
        """
        t = input_ids.shape[1]
        mask = prefix_mask.to(prefix_embeds.dtype).unsqueeze(-1)  # (B, T, 1)
        x = self.tok_emb(input_ids) * (1.0 - mask) + prefix_embeds * mask  # (B, T, D)
        x = self.drop(x + self.pos_emb(position_ids))
        bias = attention_bias(attention_mask, t)
        present: KVCache = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, bias, past[i] if past is not None else None, new_only)
            present.append((k, v))
        copy_cache: tuple[Tensor, Tensor] | None = None
        h_all: Tensor | None = None
        state: tuple[Tensor, Tensor] | None = None  # with copy_induction: (previous ids, turns) (B, T) of the new
        if self.cfg.copy_head:
            h_all = self.ln_f(x)  # every new position gets a copy key in the cache
            if self.cfg.copy_induction:
                past_ids = None if past is None else past[self.cfg.n_layers][1]
                state = self.copy.induction_state(input_ids, attention_mask, past_ids)
            copy_cache = self.copy.cache_entry(h_all, input_ids, state)
            if past is not None and not new_only:
                own = past[self.cfg.n_layers]
                present.append((torch.cat([own[0], copy_cache[0]], dim=2), torch.cat([own[1], copy_cache[1]], dim=2)))
            else:
                present.append(copy_cache)
        if logits_to_keep is not None:
            length = x.shape[1]
            kept = torch.arange(length - logits_to_keep, length, device=x.device)
            x = x.index_select(1, kept)
            bias = bias.index_select(2, kept)
            h_all = None if h_all is None else h_all.index_select(1, kept)
        h = self.ln_f(x) if h_all is None else h_all
        logits = self.lm_head(h)
        if copy_cache is not None:
            # Scores against the cached and the new keys separately, joined as the small (B, N, P + T) matrix,
            # like _attend_split: the cache is read in place, never copied.
            scores = self.copy.scores(h, copy_cache[0])
            token_ids = input_ids.to(h.dtype)  # (B, T)
            if past is not None:
                own_keys, own_ids = past[self.cfg.n_layers]
                scores = torch.cat([self.copy.scores(h, own_keys), scores], dim=2)
                past_ids = own_ids.narrow(3, 0, 1).narrow(1, 0, 1).flatten(1)  # (B, P): last axis first, less to slice
                token_ids = torch.cat([past_ids, token_ids], dim=1)
            if state is not None:
                read_ids, read_turns = input_ids, state[1]
                if logits_to_keep is not None:
                    read_ids, read_turns = read_ids.index_select(1, kept), read_turns.index_select(1, kept)
                previous, turns = state
                if past is not None:
                    cached = own_ids.narrow(1, 0, 1)
                    previous = torch.cat([cached.narrow(3, 1, 1).flatten(1), previous], dim=1)
                    turns = torch.cat([cached.narrow(3, 2, 1).flatten(1), turns], dim=1)
                scores = scores + self.copy.induction_bonus(h, read_ids, read_turns, previous, turns)
            probs = self.copy.position_probs(scores, token_ids, bias[:, 0])
            logits = self.copy.mix(h, logits, probs, token_ids)
        emotion_logits = self.emotion_head(h)
        intensity = torch.sigmoid(self.intensity_head(h)).squeeze(-1)
        return logits, emotion_logits, intensity, present

    def forward(
        self, batch: Mapping[str, Tensor], emotion_weight: float = 1.0, intensity_weight: float = 1.0
    ) -> dict[str, Tensor]:
        """Training loss of a batch of whole turns (prompt + reply + ``<eos>``), laid out like the runtime does.

        batch: input_ids, prefix_mask, attention_mask, position_ids, labels (B, L) with the next-token target at
        each reply position and -100 elsewhere; image (B, 3, S, S); image_present (B,); persona_embedding and
        utterance_embedding (B, E); emotion_position (B,) index of the final ``<npc>``; emotion_label (B,) int
        (-100 to skip); emotion_intensity (B,) in 0..1.
        """
        visual = self.encode_vision(batch["image"])
        prefix = self.encode_prefix(
            batch["persona_embedding"], batch["utterance_embedding"], visual, batch["image_present"]
        )
        logits, emotion_logits, intensity, _ = self.forward_step(
            batch["input_ids"],
            place_prefix(prefix, batch["prefix_mask"]),
            batch["prefix_mask"],
            batch["attention_mask"],
            batch["position_ids"],
        )
        lm_loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE_INDEX
        )
        rows = torch.arange(logits.shape[0], device=logits.device)
        at = batch["emotion_position"]
        emotion_loss = F.cross_entropy(emotion_logits[rows, at], batch["emotion_label"], ignore_index=IGNORE_INDEX)
        labelled = (batch["emotion_label"] != IGNORE_INDEX).to(intensity.dtype)
        squared = (intensity[rows, at] - batch["emotion_intensity"].to(intensity.dtype)) ** 2
        intensity_loss = (squared * labelled).sum() / labelled.sum().clamp(min=1.0)
        if not bool(labelled.any()):
            emotion_loss = torch.zeros((), device=logits.device)  # cross_entropy over nothing is NaN
        loss = lm_loss + emotion_weight * emotion_loss + intensity_weight * intensity_loss
        return {"loss": loss, "lm_loss": lm_loss, "emotion_loss": emotion_loss, "intensity_loss": intensity_loss}


def save_checkpoint(model: RoleModel, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the config, weights and optional ``extra`` metadata (e.g. training step) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.cfg.to_dict(), "state_dict": model.state_dict(), "extra": dict(extra or {})}, path)
    log.info("saved role model checkpoint %s (%d parameters)", path, model.num_parameters())
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[RoleModel, dict[str, Any]]:
    """Rebuild a :class:`RoleModel` from a checkpoint written by :func:`save_checkpoint`; returns (model, extra)."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    model = RoleModel(RoleModelConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, dict(payload.get("extra", {}))
