"""The engine for ``causal-lm`` bundles: a studio's own Hugging Face chat model, imported by ``npc-runtime import-hf``.

It gives the scheduler the same calls as the role-model engine (see ``npc_runtime/engine.py``). The persona card
becomes the system prompt, rendered with the model's chat template (jinja2, sandboxed) together with the scene
facts and the session's history; the decoder graph takes ``input_ids``, ``attention_mask``, ``position_ids`` and
the past KV tensors, as Hugging Face models do. A :class:`~npc_runtime.guard.ReplyGuard` keeps replies in
character, and the runtime's emotion classifier tags the finished reply. Screenshots are not seen by a text-only
model: scene facts reach it as text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from .bundle import Bundle, decoder_kv_names
from .emotion import EMOTIONS, NEUTRAL, summarise
from .emotion_classifier import EmotionClassifier, find_emotion_files
from .engine import ByteLRU, Prepared, PrefillResult
from .errors import BundleError
from .guard import ReplyGuard
from .kv_cache import ConcatKVCache
from .ort_backend import OrtGraph, RuntimeOptions, resolve_providers
from .personas import PersonaCard
from .prompt import format_context
from .protocol import ImageInput

__all__ = [
    "CAUSAL_LM_DECODER",
    "CHAT_TEMPLATE_ASSET",
    "FALLBACK_CHAT_TEMPLATE",
    "ChatTemplate",
    "system_prompt",
    "CausalLMEngine",
]

log = logging.getLogger(__name__)

#: Fixed input and output names of a causal-lm decoder graph; past/present KV names from ``decoder_kv_names``
#: follow them. B batch, T new positions, P past positions, V vocabulary.
CAUSAL_LM_DECODER: dict[str, tuple[str, ...]] = {
    "inputs": (
        "input_ids",  # int64 (B, T)
        "attention_mask",  # int64 (B, P + T); 0 marks left padding
        "position_ids",  # int64 (B, T); counted from each row's first real token
    ),
    "outputs": ("logits",),  # float32 (B, 1, V): the last position only
}
#: Manifest ``assets`` key of the chat template file.
CHAT_TEMPLATE_ASSET = "chat_template"

#: For models without a chat template (the GPT-2 family): a plain script layout the guard's stops know.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}Player: {{ message['content'] }}\n"
    "{% else %}NPC: {{ message['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}NPC:{% endif %}"
)


class ChatTemplate:
    """A Hugging Face chat template rendered in a sandboxed jinja2 environment (as ``transformers`` renders it)."""

    def __init__(self, source: str, special: Mapping[str, str]) -> None:
        from jinja2 import TemplateError
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **_: Any) -> str:
            return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self.template = env.from_string(source)
        except TemplateError as exc:
            raise BundleError(f"chat template does not parse: {exc}") from exc
        self._error = TemplateError
        self.special = dict(special)

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        try:
            return self.template.render(messages=list(messages), add_generation_prompt=True, **self.special)
        except self._error as exc:
            raise BundleError(f"chat template failed to render: {exc}") from exc


def system_prompt(card_text: str, knowledge: str, context: Mapping[str, str] | None) -> str:
    """The persona card as a system prompt: who the NPC is, what it knows, the scene now, and the rules of play."""
    lines = [
        f"You are {card_text.strip()}",
        "Stay in character at all times: you are this person, in this world. You are not an AI or an assistant; "
        "never mention prompts, models or instructions. Reply with one or two short spoken sentences.",
    ]
    if knowledge.strip():
        lines.append(f"What you know: {knowledge.strip()}")
    scene = format_context(context)
    if scene:
        lines.append(f"The scene now: {scene}")
    return "\n".join(lines)


@dataclass
class CachedPrompt:
    """A persona card's last prompt: its token ids and their KV ``(1, Hkv, L, Dh)`` per tensor, in own memory."""

    ids: np.ndarray
    kv: list[np.ndarray]

    @property
    def nbytes(self) -> int:  # what ByteLRU bounds
        return sum(a.nbytes for a in self.kv)


class CausalLMEngine:
    """Runs a ``causal-lm`` bundle with ONNX Runtime for the scheduler."""

    def __init__(
        self,
        bundle: Bundle,
        options: RuntimeOptions | None = None,
        persona_cache_bytes: int = 8 << 20,
        prefix_cache_bytes: int = 256 << 20,
        min_reuse_tokens: int = 16,
    ) -> None:
        if bundle.kind != "causal-lm":
            raise BundleError(f"{bundle.root}: engine needs a causal-lm bundle, got {bundle.kind}")
        if "decoder" not in bundle.graphs:
            raise BundleError(f"{bundle.root}: causal-lm bundle lacks graph 'decoder'")
        self.bundle = bundle
        self.options = options or RuntimeOptions()
        providers, self.cpu_reason = resolve_providers(self.options.device)
        model = bundle.model
        try:
            self.n_layers = int(model["n_layers"])
            self.n_kv_heads = int(model["n_kv_heads"])
            self.head_dim = int(model["head_dim"])
            self.kv_dtype = np.dtype(str(model.get("kv_dtype", "float32")))
            self.max_positions = int(bundle.limits["max_positions"])
            self.max_prompt_tokens = int(bundle.limits.get("max_prompt_tokens", self.max_positions // 2))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{bundle.root}: malformed model/limits in manifest: {exc}") from exc
        self.past_names, self.present_names = decoder_kv_names(self.n_layers)
        spec = bundle.graphs["decoder"]
        expected = [*CAUSAL_LM_DECODER["inputs"], *self.past_names]
        if list(spec.inputs) != expected or list(spec.outputs) != [*CAUSAL_LM_DECODER["outputs"], *self.present_names]:
            raise BundleError(f"{bundle.root}: decoder graph names do not match the causal-lm spec")
        self.graph = OrtGraph(spec.path, spec.inputs, spec.outputs, self.options, providers)
        self.provider = self.graph.provider

        self.tokenizer = Tokenizer.from_file(str(bundle.file("decoder")))
        special = bundle.special_tokens
        try:
            eos = [int(special["eos"]["id"])] + [int(t["id"]) for t in special.get("extra_eos", [])]
            self.pad_id = int(special.get("pad", special["eos"])["id"])
            names = {key: str(special[key]["token"]) for key in ("bos", "eos", "pad") if key in special}
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{bundle.root}: malformed special_tokens in manifest: {exc}") from exc
        self.eos_id = eos[0]
        #: Other end-of-turn ids: their probability is folded into ``eos_id`` so the scheduler sees one end token.
        self.extra_eos = np.array(sorted(set(eos[1:]) - {self.eos_id}), dtype=np.int64)
        added = [t for t in self.tokenizer.get_added_tokens_decoder().values() if t.special]
        self.special_texts = sorted({t.content for t in added}, key=len, reverse=True)
        #: Special tokens a reply may never contain (turn headers, padding); end-of-turn tokens end it instead.
        self.banned_ids = np.array(
            sorted({self.tokenizer.token_to_id(t) for t in self.special_texts} - set(eos)), dtype=np.int64
        )
        template_source = bundle.file(CHAT_TEMPLATE_ASSET).read_text(encoding="utf-8")
        self.chat = ChatTemplate(template_source, {f"{k}_token": v for k, v in names.items()})
        self.guard = ReplyGuard(extra_stops=[str(s) for s in bundle.manifest.get("stop_sequences", [])])
        #: The last prompt's KV per persona card: the next prompt of that card skips the positions it shares
        #: with it (the system prompt at least: card, rules, knowledge). Bounded in bytes.
        self.prefix_cache = ByteLRU(prefix_cache_bytes)  # fingerprint -> CachedPrompt
        self.min_reuse_tokens = min_reuse_tokens
        files = find_emotion_files(bundle)
        self.emotion_classifier = (
            EmotionClassifier(files, self.options, providers, bundle.emotions) if files is not None else None
        )
        if self.emotion_classifier is None:
            log.warning("%s: no emotion classifier found; every reply is tagged neutral", bundle.root)

    # ----------------------------------------------------------------------------------- prompts

    def knowledge_of(self, card: PersonaCard) -> str:
        """The card's facts line; its voice is already in the system prompt's card text."""
        return card.knowledge_text()

    def _scrub(self, text: str) -> str:
        """Break up special-token spellings in untrusted text, so a player cannot forge a turn header."""
        for token in self.special_texts:
            text = text.replace(token, " ".join(token))
        return text

    def render_prompt(
        self,
        card_text: str,
        knowledge: str,
        context: Mapping[str, str],
        history: Sequence[tuple[str, str]],
        player_text: str,
    ) -> str:
        """The chat-template text of one turn, ending with the generation prompt of the NPC's reply."""
        clean = {self._scrub(str(k)): self._scrub(str(v)) for k, v in (context or {}).items()}
        messages = [{"role": "system", "content": system_prompt(self._scrub(card_text), self._scrub(knowledge), clean)}]
        for player, npc in history:
            messages.append({"role": "user", "content": self._scrub(player)})
            messages.append({"role": "assistant", "content": self._scrub(npc)})
        messages.append({"role": "user", "content": self._scrub(player_text)})
        try:
            return self.chat.render(messages)
        except BundleError:
            # Some templates (Gemma's, for one) refuse a system role: give its text to the first user turn.
            system = messages.pop(0)["content"]
            messages[0] = {"role": "user", "content": f"{system}\n\n{messages[0]['content']}"}
            return self.chat.render(messages)

    def prompt_ids(
        self,
        card_text: str,
        knowledge: str,
        context: Mapping[str, str],
        history: Sequence[tuple[str, str]],
        player_text: str,
    ) -> list[int]:
        """Token ids of the prompt, fitted to ``max_prompt_tokens``: the oldest history goes first, then the
        player's line is cut to its end, then the card and its knowledge are shortened (the template stays whole)."""
        turns = list(history)
        while True:
            text = self.render_prompt(card_text, knowledge, context, turns, player_text)
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
            if len(ids) <= self.max_prompt_tokens:
                return ids
            if turns:
                turns.pop(0)
            elif len(player_text) > 200:
                player_text = player_text[-200:]
            elif len(card_text) > 120:
                card_text = card_text[: len(card_text) * 2 // 3].rsplit(" ", 1)[0]
            elif len(knowledge) > 120:
                knowledge = knowledge[: len(knowledge) * 2 // 3].rsplit(" ", 1)[0]
            else:
                log.warning("prompt of %d tokens cut to its last %d", len(ids), self.max_prompt_tokens)
                return ids[-self.max_prompt_tokens :]

    def prepare(
        self,
        fingerprint: str,
        card_text: str,
        knowledge: str,
        context: Mapping[str, str],
        history: Sequence[tuple[str, str]],
        player_text: str,
        image: ImageInput | None,
    ) -> Prepared:
        """The request's chat prompt as token ids; no prefix embeddings (K = 0)."""
        ids = self.prompt_ids(card_text, knowledge, context, history, player_text)
        return Prepared(
            ids=ids,
            prefix_mask=np.zeros(len(ids), dtype=np.float32),
            prefix_embeds=np.zeros((0, 0), dtype=np.float32),
            cache_key=fingerprint,
        )

    # ----------------------------------------------------------------------------------- decoder

    def _end_logits(self, logits: np.ndarray) -> np.ndarray:
        """(B, V) float32 logits with every end-of-turn id's probability folded into ``eos_id``."""
        logits = logits.astype(np.float32, copy=True)
        if self.extra_eos.size:
            ends = np.concatenate([logits[:, [self.eos_id]], logits[:, self.extra_eos]], axis=1)  # (B, 1 + n)
            logits[:, self.eos_id] = np.logaddexp.reduce(ends, axis=1)
            logits[:, self.extra_eos] = -np.inf
        return logits

    def _reused(self, item: Prepared) -> tuple[int, list[np.ndarray] | None]:
        """How many leading positions of ``item`` a cached prompt of its card already holds, and their KV."""
        if item.cache_key is None:
            return 0, None
        entry = self.prefix_cache.get(item.cache_key)
        if entry is None:
            return 0, None
        cached_ids, kv = entry.ids, entry.kv
        limit = min(len(cached_ids), len(item.ids) - 1)  # at least one new position, for its logits
        shared = int(np.argmin(np.append(cached_ids[:limit] == np.asarray(item.ids[:limit]), False)))
        if shared < self.min_reuse_tokens:
            return 0, None
        return shared, [a[:, :, :shared] for a in kv]

    def prefill(self, items: Sequence[Prepared]) -> PrefillResult:
        """Run the prompts of ``items`` together. Each row may start from the cached KV of an earlier prompt of
        the same card: its cached positions are left padded in ``past``, its new ones in the input, and the mask
        (with a padding gap between them) and explicit positions keep the attention exact."""
        batch = len(items)
        reuse = [self._reused(p) for p in items]
        past_len = max(n for n, _ in reuse)
        width = max(len(p.ids) - n for p, (n, _) in zip(items, reuse))
        ids = np.full((batch, width), self.pad_id, dtype=np.int64)  # (B, T)
        attn = np.zeros((batch, past_len + width), dtype=np.int64)
        pos = np.zeros((batch, width), dtype=np.int64)
        past = [np.zeros((batch, self.n_kv_heads, past_len, self.head_dim), dtype=self.kv_dtype)
                for _ in self.past_names]  # fmt: skip
        for row, (p, (n, kv)) in enumerate(zip(items, reuse)):
            new = len(p.ids) - n
            ids[row, width - new :] = p.ids[n:]
            attn[row, past_len - n : past_len] = 1
            attn[row, past_len + width - new :] = 1
            pos[row, width - new :] = np.arange(n, len(p.ids))
            if kv is not None:
                for target, cached in zip(past, kv):
                    target[row, :, past_len - n :] = cached[0]
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": attn, "position_ids": pos}
        feeds.update(zip(self.past_names, past))
        out = self.graph.run(feeds)
        present = [out[name] for name in self.present_names]
        for row, p in enumerate(items):
            if p.cache_key is not None:
                valid = attn[row].astype(bool)
                kv = [np.ascontiguousarray(a[row : row + 1, :, valid]) for a in present]
                self.prefix_cache.put(p.cache_key, CachedPrompt(np.asarray(p.ids, dtype=np.int64), kv))
        n_labels = len(self.bundle.emotions)
        return PrefillResult(
            logits=self._end_logits(out["logits"][:, -1, :]),
            emotion_logits=np.zeros((batch, n_labels), dtype=np.float32),  # uniform: reply_emotion decides
            emotion_intensity=np.zeros(batch, dtype=np.float32),
            kv=present,
            mask=attn,
        )

    def step(
        self, last_ids: np.ndarray, positions: np.ndarray, kv: list[np.ndarray], mask: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """One token for each row: logits ``(B, V)``, the grown KV ``(B, Hkv, P + 1, Dh)`` and mask ``(B, P + 1)``."""
        batch = last_ids.shape[0]
        attn = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
        feeds: dict[str, Any] = {
            "input_ids": last_ids.reshape(batch, 1).astype(np.int64),
            "attention_mask": attn,
            "position_ids": positions.reshape(batch, 1).astype(np.int64),
        }
        feeds.update(zip(self.past_names, kv))
        out = self.graph.run(feeds)
        return self._end_logits(out["logits"][:, -1, :]), [out[name] for name in self.present_names], attn

    def new_cache(self) -> ConcatKVCache:
        """An empty running-batch KV cache: left-padded ``present`` arrays that :meth:`decode_step` replaces."""
        return ConcatKVCache()

    def decode_step(self, last_ids: np.ndarray, positions: np.ndarray, cache: ConcatKVCache) -> np.ndarray:
        """One token for each row of ``cache``: logits ``(B, V)``; the grown ``present`` arrays replace the cache's."""
        logits, cache.kv, cache.mask = self.step(last_ids, positions, cache.kv, cache.mask)
        return logits

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def reply_emotion(self, text: str, at_prompt: dict[str, Any]) -> dict[str, Any]:
        """The finished reply's emotion from the runtime's classifier (neutral without one)."""
        if self.emotion_classifier is not None:
            return self.emotion_classifier.emotion(text)
        labels = self.bundle.emotions or EMOTIONS
        return summarise([5.0 if label == NEUTRAL else 0.0 for label in labels], 0.0, labels)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.bundle.name,
            "kind": self.bundle.kind,
            "architecture": str(self.bundle.model.get("architecture", "")),
        }
