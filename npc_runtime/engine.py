"""The role-model engine: turns a request into decoder inputs and runs the bundle's ONNX graphs.

It owns the tokenizers, the prefix encoders (text, vision, fusion) with their caches, and two decoder calls:
a ragged, left-padded prefill and a batched one-token step. Which requests share a step is the scheduler's job.

What the scheduler uses of an engine (another bundle kind provides the same): ``prepare(...) -> Prepared``
(and ``prepare_batch(requests)`` where it can batch), ``prefill(items) -> PrefillResult``, ``new_cache()`` and
``decode_step(last_ids, positions, cache) -> logits`` (``npc_runtime.kv_cache``), ``decode(ids)``,
``reply_emotion(text, at_prompt)``, and the attributes ``eos_id``, ``banned_ids``, ``max_positions``,
``bundle.emotions``. ``step(last_ids, positions, kv, mask)`` runs one step on caller-held arrays, for tools.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from . import prompt
from .bundle import Bundle, role_model_kv_names
from .device_kv import CudaMemory, DeviceKVCache, HostMemory, KVWriter
from .errors import BundleError, ImageError
from .facts import FactSteering
from .grounding import SceneSteering
from .images import decode_image, image_key, preprocess
from .intent_hint import IntentReader, load_reader, lookup_hint
from .kv_cache import SlotKVCache
from .ort_backend import CUDA, OrtGraph, RuntimeOptions, resolve_providers
from .personas import PersonaCard
from .protocol import ImageInput
from .sentence_encoder import SentenceEncoder
from .spelling import Lexicon, RowSpelling, read_lexicon
from .voice import VoiceSteering

__all__ = ["RoleModelEngine", "Prepared", "PrefillResult", "ByteLRU", "load_engine"]

log = logging.getLogger(__name__)


class ByteLRU:
    """A thread-safe LRU cache bounded by the total ``nbytes`` of its values (numpy arrays, or any object with an
    ``nbytes``)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            if value.nbytes > self.max_bytes:
                return
            self._items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.max_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self.bytes -= evicted.nbytes

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._items), "bytes": self.bytes, "hits": self.hits, "misses": self.misses}


_ONE = np.array(1, dtype=np.int64)


@dataclass
class Prepared:
    """One request's prompt, ready for prefill."""

    ids: list[int]  # prompt token ids, prefix slots included
    prefix_mask: np.ndarray  # float32 (L,)
    prefix_embeds: np.ndarray  # float32 (K, D): rows for the first K positions
    cache_key: str | None = None  # engines that reuse a prompt's KV (causal LMs) key it by persona card
    hint: str = ""  # the intent reader's label of the player's line ("ask trade"; empty: no reader)


@dataclass
class _Request:
    """The fields of a request that :meth:`RoleModelEngine.prepare_batch` reads (a scheduler request has them too)."""

    fingerprint: str
    card_text: str
    knowledge: str
    context: Mapping[str, str]
    history: Sequence[tuple[str, str]]
    text: str
    image: ImageInput | None


@dataclass
class PrefillResult:
    logits: np.ndarray  # float32 (B, V) at each row's last prompt position
    emotion_logits: np.ndarray  # float32 (B, E)
    emotion_intensity: np.ndarray  # float32 (B,)
    kv: list[np.ndarray]  # per past name, (B, H, L, Dh), left padded
    mask: np.ndarray  # int64 (B, L)


class RoleModelEngine:
    """Runs a ``role-model`` bundle with ONNX Runtime."""

    def __init__(
        self,
        bundle: Bundle,
        options: RuntimeOptions | None = None,
        persona_cache_bytes: int = 8 << 20,
        image_cache_bytes: int = 32 << 20,
        spelling: bool = True,
    ) -> None:
        """``spelling=False`` turns off the bundle's spelling constraint (``npc_runtime.spelling``), for
        comparisons; bundles without a lexicon have none."""
        if bundle.kind != "role-model":
            raise BundleError(f"{bundle.root}: engine needs a role-model bundle, got {bundle.kind}")
        self.bundle = bundle
        self.options = options or RuntimeOptions()
        providers, self.cpu_reason = resolve_providers(self.options.device)
        self.graphs = {
            name: OrtGraph(spec.path, spec.inputs, spec.outputs, self.options, providers)
            for name, spec in bundle.graphs.items()
            if name != "text_encoder"
        }
        self.text_encoder = SentenceEncoder(
            bundle.graphs["text_encoder"].path,
            bundle.file("text_encoder"),
            int(bundle.limits.get("text_encoder_max_tokens", 256)),
            self.options,
            providers,
        )
        self.provider = self.graphs["decoder"].provider
        #: Where the running batch's KV cache lives: "device" (``npc_runtime.device_kv``, bound with IOBinding)
        #: or "host" (numpy, ``SlotKVCache``). ``auto`` puts it on the device with CUDA.
        self.kv_cache = self.options.kv_cache
        if self.kv_cache == "auto":
            self.kv_cache = "device" if self.provider == CUDA else "host"
        self._kv_memory: HostMemory | CudaMemory | None = None
        self._kv_writer: KVWriter | None = None
        if self.kv_cache == "device":
            self._kv_memory = CudaMemory() if self.provider == CUDA else HostMemory()
            self._kv_writer = KVWriter(self.options, providers)
        model = bundle.model
        self.d_model = int(model["d_model"])
        self.n_layers = int(model["n_layers"])
        self.prefix_tokens = int(model["prefix_tokens"])
        self.image_size = int(model["image_size"])
        self.image_mean = [float(x) for x in model["image_mean"]]
        self.image_std = [float(x) for x in model["image_std"]]
        self.max_positions = int(model["max_positions"])
        #: Whether the model was trained with the card's voice (traits, mood, style) on its ``<know>`` line.
        self.prompt_voice = bool(model.get("prompt_voice", False))
        #: Whether its ``<know>`` line had a space inside double quotes (``personas.space_quotes``).
        self.spaced_quotes = bool(model.get("spaced_quotes", False))
        self.n_heads = int(model["n_heads"])
        self.head_dim = int(model["head_dim"])
        #: Cache entries: one (key, value) pair per layer, plus the copy head's where the model has one
        #: (its keys and the token ids they point at; the engine caches them like any layer's).
        self.kv_layers = int(model.get("kv_layers", self.n_layers))
        self.past_names, self.new_names = role_model_kv_names(self.kv_layers)
        #: Decoders exported with ``logits_to_keep`` run their heads on the last prompt position only at prefill.
        self.keeps_last = "logits_to_keep" in bundle.graphs["decoder"].inputs
        declared = bundle.graphs["decoder"].outputs
        if any(name not in declared for name in self.new_names):
            raise BundleError(
                f"{bundle.root}: the decoder graph does not output {self.new_names[0]!r} and the rest: it was "
                "exported by an older version; export the checkpoint again (npc-runtime export)"
            )
        self.limits = bundle.limits
        self.max_prompt_tokens = int(self.limits.get("max_prompt_tokens", self.max_positions // 2))

        self.tokenizer = Tokenizer.from_file(str(bundle.file("decoder")))
        special = bundle.special_tokens
        try:
            self.token_id = {name: int(special[name]["id"]) for name in special}
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{bundle.root}: malformed special_tokens in manifest: {exc}") from exc
        for name in ("pad", "bos", "eos", "prefix"):
            if name not in self.token_id:
                raise BundleError(f"{bundle.root}: manifest special_tokens lacks '{name}'")
        self.eos_id = self.token_id["eos"]
        #: Tokens a reply may never contain (structure tokens); <eos> is allowed and ends the reply.
        #: The prompt's field separator is never said either: a copy that runs past the end of a card's field
        #: would otherwise carry it into the reply ("Corwin Ashgrove |").
        vocab = self.tokenizer.get_vocab_size()
        pieces = [self.tokenizer.decode([i], skip_special_tokens=False) for i in range(vocab)]
        separators = [i for i, piece in enumerate(pieces) if prompt.FIELD_SEPARATOR.strip() in piece]
        self.banned_ids = np.array(
            sorted({v for k, v in self.token_id.items() if k != "eos"} | set(separators)), dtype=np.int64
        )
        #: The spelling constraint's lexicon, where the bundle has one (``assets["lexicon"]``) and it is on.
        self.lexicon: Lexicon | None = None
        if spelling and "lexicon" in bundle.manifest.get("assets", {}):
            try:
                words = read_lexicon(bundle.file("lexicon"))
            except (OSError, UnicodeDecodeError) as exc:
                raise BundleError(f"{bundle.root}: cannot read the lexicon: {exc}") from exc
            self.lexicon = Lexicon(words, pieces, self.eos_id)
        #: Voice steering towards a card's catchphrase and form of address (``GenOptions.voice_bias``).
        self.voice = VoiceSteering(lambda text: self.tokenizer.encode(text, add_special_tokens=False).ids, pieces,
                                   self.eos_id)
        #: Fact steering towards the card's price or direction where a reply says one (``GenOptions.fact_bias``).
        self.facts = FactSteering(lambda text: self.tokenizer.encode(text, add_special_tokens=False).ids, pieces)
        #: Scene steering towards the scene facts' element where a reply names one (``GenOptions.scene_bias``),
        #: where the bundle lists its scene words (manifest ``scene_words``).
        self.scene: SceneSteering | None = None
        if bundle.manifest.get("scene_words") is not None:
            try:
                self.scene = SceneSteering(bundle.manifest["scene_words"],
                                           lambda text: self.tokenizer.encode(text, add_special_tokens=False).ids,
                                           pieces)  # fmt: skip
            except ValueError as exc:
                raise BundleError(f"{bundle.root}: bad scene_words in the manifest: {exc}") from exc
        #: What each player's line asks for, read from its sentence embedding, where the model was trained with
        #: these hints (asset ``intent_reader``; ``npc_runtime.intent_hint``).
        self.intent_reader: IntentReader | None = None
        if "intent_reader" in bundle.manifest.get("assets", {}):
            try:
                self.intent_reader = load_reader(bundle.file("intent_reader"), int(model["text_embed_dim"]))
            except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
                raise BundleError(f"{bundle.root}: bad intent reader: {exc}") from exc
        #: Tokens that end a reply if sampled despite the ban (a turn marker means the reply is over).
        self.persona_cache = ByteLRU(persona_cache_bytes)
        self.image_cache = ByteLRU(image_cache_bytes)
        self._blank_visual: np.ndarray | None = None

    # ----------------------------------------------------------------------------------- prefix encoders

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``(B, E)`` from the bundle's text encoder (MiniLM in the default bundle)."""
        return self.text_encoder.encode(texts)

    def persona_embedding(self, fingerprint: str, card_text: str) -> np.ndarray:
        """The persona card's embedding ``(E,)``, computed once per card content."""
        cached = self.persona_cache.get(fingerprint)
        if cached is None:
            cached = self.encode_texts([card_text])[0]
            self.persona_cache.put(fingerprint, cached)
        return cached

    def warm_personas(self, cards: Sequence[tuple[str, str]], batch: int = 16) -> int:
        """Embed the ``(fingerprint, card_text)`` cards not cached yet, ``batch`` per text-encoder call, so no
        player waits for a card's first use. Returns how many were embedded."""
        todo = {fp: text for fp, text in cards if self.persona_cache.get(fp) is None}
        items = list(todo.items())
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            for (fingerprint, _), embedding in zip(chunk, self.encode_texts([text for _, text in chunk])):
                self.persona_cache.put(fingerprint, embedding.copy())
        return len(items)

    def visual_features(self, image: ImageInput | None) -> tuple[np.ndarray, float]:
        """``(N, D)`` visual tokens of a screenshot and 1.0, or blank tokens and 0.0 without one."""
        result = self._visual_batch([image])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _blank(self) -> tuple[np.ndarray, float]:
        if self._blank_visual is None:
            blank = np.zeros((1, 3, self.image_size, self.image_size), dtype=np.float32)
            self._blank_visual = self.graphs["vision_encoder"].run({"image": blank})["visual_features"][0]
        return self._blank_visual, 0.0

    # ----------------------------------------------------------------------------------- prompts

    def knowledge_of(self, card: PersonaCard) -> str:
        """The card's ``<know>`` line in the layout this bundle's model was trained on."""
        return card.knowledge_text(voice=self.prompt_voice, spaced_quotes=self.spaced_quotes)

    def prompt_ids(
        self,
        knowledge: str,
        context: Mapping[str, str],
        history: Sequence[tuple[str, str]],
        player_text: str,
        hint: str = "",
    ) -> list[int]:
        """Decoder token ids of the prompt text, dropping the oldest history until it fits; ``hint`` is the intent
        reader's (:meth:`intent_hints`), given its looked-up fact here where the bundle's model reads one
        (:meth:`looked_up`)."""
        budget = self.max_prompt_tokens - self.prefix_tokens - 1
        hint = self.looked_up(hint, knowledge, context, player_text)
        turns = list(history)
        while True:
            text = prompt.build_decoder_text(knowledge, context, turns, player_text, hint=hint)
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
            if len(ids) <= budget:
                return ids
            if turns:
                turns.pop(0)
                continue
            if len(player_text) > 200:
                player_text = player_text[-200:]
                continue
            log.warning("prompt of %d tokens cut to %d", len(ids), budget)
            return ids[-budget:]

    def looked_up(self, hint: str, knowledge: str, context: Mapping[str, str], player_text: str) -> str:
        """``hint`` with the facts it turns on, by the lookup version this bundle's model was trained with
        (``IntentReader.lookup``, :func:`npc_runtime.intent_hint.lookup_hint`; none: ``hint``)."""
        if hint and self.intent_reader is not None:
            words = self.scene.words if self.scene is not None else None
            return lookup_hint(hint, knowledge, context, player_text, self.intent_reader.lookup, words)
        return hint

    def intent_hints(self, utterance_embeddings: np.ndarray) -> Sequence[str]:
        """The intent reader's hint of each player line's sentence embedding; empty without a reader."""
        if self.intent_reader is None:
            return [""] * len(utterance_embeddings)
        return self.intent_reader.read(utterance_embeddings)

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
        """Everything prefill needs for one request; runs the prefix encoders (cached where possible)."""
        request = _Request(fingerprint, card_text, knowledge, context, history, player_text, image)
        result = self.prepare_batch([request])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _visual_batch(self, images: Sequence[ImageInput | None]) -> list[tuple[np.ndarray, float] | ImageError]:
        """Visual tokens of each screenshot: cached ones looked up, the others decoded and encoded in one call."""
        out: list[Any] = [None] * len(images)
        todo: dict[str, tuple[np.ndarray, list[int]]] = {}
        for i, image in enumerate(images):
            if image is None:
                out[i] = self._blank()
                continue
            key = image_key(image)
            cached = self.image_cache.get(key)
            if cached is not None:
                out[i] = (cached, 1.0)
            elif key in todo:
                todo[key][1].append(i)
            else:
                try:
                    rgb = decode_image(image)
                except ImageError as exc:
                    out[i] = exc
                    continue
                todo[key] = (preprocess(rgb, self.image_size, self.image_mean, self.image_std), [i])
        if todo:
            pixels = np.stack([p for p, _ in todo.values()])
            features = self.graphs["vision_encoder"].run({"image": pixels})["visual_features"]
            for (key, (_, rows)), feature in zip(todo.items(), features):
                feature = feature.copy()  # own memory: the cache must not pin the whole batch
                self.image_cache.put(key, feature)
                for i in rows:
                    out[i] = (feature, 1.0)
        return out

    def prepare_batch(self, requests: Sequence[Any]) -> list[Prepared | Exception]:
        """:meth:`prepare` for many requests at once: one text-encoder call for all new persona cards, one for
        all player lines, one vision call for the new screenshots and one prefix-encoder call.

        Each request has the attributes ``fingerprint, card_text, knowledge, context, history, text, image``, and
        may have ``hint``: an intent hint to use instead of the reader's (``GenRequest.hint``; evaluation only).
        A request whose image cannot be decoded gets its :class:`ImageError` in its place; the others go on.
        """
        visuals = self._visual_batch([r.image for r in requests])
        ok = [i for i, v in enumerate(visuals) if not isinstance(v, Exception)]
        results: list[Prepared | Exception] = [v if isinstance(v, Exception) else None for v in visuals]  # type: ignore[misc]
        if not ok:
            return results
        new_cards: dict[str, str] = {}
        for i in ok:
            r = requests[i]
            if r.fingerprint not in new_cards and self.persona_cache.get(r.fingerprint) is None:
                new_cards[r.fingerprint] = r.card_text
        if new_cards:
            for fingerprint, embedding in zip(new_cards, self.encode_texts(list(new_cards.values()))):
                self.persona_cache.put(fingerprint, embedding.copy())
        personas = np.stack([self.persona_embedding(requests[i].fingerprint, requests[i].card_text) for i in ok])
        utterances = self.encode_texts([requests[i].text for i in ok])  # (B, E)
        prefix = self.graphs["prefix_encoder"].run(
            {
                "persona_embedding": personas,
                "utterance_embedding": utterances,
                "visual_features": np.stack([visuals[i][0] for i in ok]),  # type: ignore[index]
                "image_present": np.array([visuals[i][1] for i in ok], dtype=np.float32),  # type: ignore[index]
            }
        )["prefix_embeds"]  # (B, K, D)
        hints = list(self.intent_hints(utterances))
        for row, i in enumerate(ok):
            r = requests[i]
            given = getattr(r, "hint", None)  # an evaluation's override of the reader (GenRequest.hint)
            if given is not None and self.intent_reader is not None:
                hints[row] = given
            text_ids = self.prompt_ids(r.knowledge, r.context, r.history, r.text, hints[row])
            ids, mask = prompt.layout_ids(text_ids, self.prefix_tokens, self.token_id["prefix"], self.token_id["bos"])
            results[i] = Prepared(ids=ids, prefix_mask=np.asarray(mask, dtype=np.float32), prefix_embeds=prefix[row],
                                  hint=hints[row])  # fmt: skip
        return results

    # ----------------------------------------------------------------------------------- decoder

    def _empty_past(self, batch: int) -> dict[str, np.ndarray]:
        empty = np.zeros((batch, self.n_heads, 0, self.head_dim), dtype=np.float32)
        return {name: empty for name in self.past_names}

    def new_cache(self) -> SlotKVCache | DeviceKVCache:
        """An empty running-batch KV cache that :meth:`decode_step` updates in place (see :attr:`kv_cache`)."""
        if self._kv_memory is not None and self._kv_writer is not None:
            return DeviceKVCache(self._kv_memory, self._kv_writer, len(self.past_names), self.n_heads, self.head_dim,
                                 max_length=self.max_positions)
        return SlotKVCache(len(self.past_names), self.n_heads, self.head_dim, np.float32, max_length=self.max_positions)

    def _full_feeds(self, items: Sequence[Prepared]) -> tuple[dict[str, Any], np.ndarray]:
        """Decoder feeds for whole sequences (no cache), left padded to the longest; returns them and the mask."""
        batch = len(items)
        width = max(len(p.ids) for p in items)
        ids = np.full((batch, width), self.token_id["pad"], dtype=np.int64)
        pmask = np.zeros((batch, width), dtype=np.float32)
        embeds = np.zeros((batch, width, self.d_model), dtype=np.float32)
        attn = np.zeros((batch, width), dtype=np.int64)
        pos = np.zeros((batch, width), dtype=np.int64)
        for row, p in enumerate(items):
            n = len(p.ids)
            start = width - n
            ids[row, start:] = p.ids
            pmask[row, start:] = p.prefix_mask
            k = p.prefix_embeds.shape[0]
            embeds[row, start : start + k] = p.prefix_embeds
            attn[row, start:] = 1
            pos[row, start:] = np.arange(n)
        feeds: dict[str, Any] = {
            "input_ids": ids,
            "prefix_embeds": embeds,
            "prefix_mask": pmask,
            "attention_mask": attn,
            "position_ids": pos,
        }
        feeds.update(self._empty_past(batch))
        return feeds, attn

    def prefill(self, items: Sequence[Prepared]) -> PrefillResult:
        """Run the prompts of ``items`` together, left padded to the longest."""
        feeds, attn = self._full_feeds(items)
        if self.keeps_last:
            feeds["logits_to_keep"] = _ONE
        out = self.graphs["decoder"].run(feeds)
        return PrefillResult(
            logits=out["logits"][:, -1, :],
            emotion_logits=out["emotion_logits"][:, -1, :],
            emotion_intensity=out["emotion_intensity"][:, -1],
            kv=[out[name] for name in self.new_names],
            mask=attn,
        )

    def _step_feeds(self, last_ids: np.ndarray, positions: np.ndarray, attn: np.ndarray) -> dict[str, Any]:
        batch = last_ids.shape[0]
        feeds = {
            "input_ids": last_ids.reshape(batch, 1).astype(np.int64),
            "prefix_embeds": np.zeros((batch, 1, self.d_model), dtype=np.float32),
            "prefix_mask": np.zeros((batch, 1), dtype=np.float32),
            "attention_mask": attn,
            "position_ids": positions.reshape(batch, 1).astype(np.int64),
        }
        if self.keeps_last:
            feeds["logits_to_keep"] = _ONE
        return feeds

    def decode_step(self, last_ids: np.ndarray, positions: np.ndarray,
                    cache: SlotKVCache | DeviceKVCache) -> np.ndarray:
        """One token for each row of ``cache``: logits ``(B, V)``; the new keys and values go into the cache."""
        feeds = self._step_feeds(last_ids, positions, cache.attention_mask())
        if isinstance(cache, DeviceKVCache):
            # the past is read and the new positions written where they lie; only the logits come back
            graph = self.graphs["decoder"]
            binding = graph.session.io_binding()
            for name, value in feeds.items():
                binding.bind_cpu_input(name, value)
            binding.bind_output("logits", "cpu")
            cache.bind(binding, self.past_names, self.new_names)
            graph.run_bound(binding)
            logits = binding.get_outputs()[0].numpy()
            cache.commit()
            return logits[:, -1, :]
        feeds.update(zip(self.past_names, cache.past()))
        out = self.graphs["decoder"].run(feeds, ["logits", *self.new_names])
        cache.write([out[name] for name in self.new_names])
        return out["logits"][:, -1, :]

    def step(
        self, last_ids: np.ndarray, positions: np.ndarray, kv: list[np.ndarray], mask: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """One token for each row, on caller-held arrays: returns logits ``(B, V)``, the grown KV and mask.

        For tools and checks; the scheduler uses :meth:`decode_step`, which grows its cache in place.
        """
        batch = last_ids.shape[0]
        attn = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
        feeds = self._step_feeds(last_ids, positions, attn)
        feeds.update(zip(self.past_names, kv))
        out = self.graphs["decoder"].run(feeds, ["logits", *self.new_names])
        grown = [np.concatenate([past, out[name]], axis=2) for past, name in zip(kv, self.new_names)]
        return out["logits"][:, -1, :], grown, attn

    def reply_ids(self, reply: str) -> list[int]:
        """The token ids a reply adds after its prompt's ``<npc>``, ``<eos>`` included, exactly as in training."""
        bare = prompt.build_decoder_text("", None, (), "")
        full = self.tokenizer.encode(prompt.build_decoder_text("", None, (), "", reply), add_special_tokens=False).ids
        head = self.tokenizer.encode(bare, add_special_tokens=False).ids
        return full[len(head) :]

    def continuation_logprobs(self, prepared: Prepared, continuations: Sequence[Sequence[int]]) -> list[float]:
        """Log-probability the model gives each continuation (token ids, e.g. :meth:`reply_ids`) after the
        prepared prompt, summed over its tokens; one decoder call for all of them (teacher forcing, no sampling).

        It ranks candidate lines for one prompt: the eval uses it to ask whether the model prefers the card's
        own catchphrase to another one where the reference reply has it.
        """
        if not continuations or any(len(c) == 0 for c in continuations):
            raise ValueError("continuation_logprobs needs at least one non-empty continuation")
        longest = max(len(c) for c in continuations)
        if len(prepared.ids) + longest > self.max_positions:
            raise ValueError(f"prompt ({len(prepared.ids)}) + continuation ({longest}) exceeds {self.max_positions}")
        rows = [
            Prepared(
                ids=[*prepared.ids, *c],
                prefix_mask=np.concatenate([prepared.prefix_mask, np.zeros(len(c), dtype=np.float32)]),
                prefix_embeds=prepared.prefix_embeds,
            )
            for c in continuations
        ]
        width = len(prepared.ids) + longest
        feeds, _ = self._full_feeds(rows)
        if self.keeps_last:
            feeds["logits_to_keep"] = np.array(longest + 1, dtype=np.int64)
        logits = self.graphs["decoder"].run(feeds, ["logits"])["logits"]  # (B, kept, V)
        kept = logits.shape[1]
        out = []
        for row, c in enumerate(continuations):
            # Token t of the continuation sits at width - len(c) + t and is predicted one position earlier.
            at = np.arange(width - len(c) - 1, width - 1) - (width - kept)
            scores = logits[row, at].astype(np.float64)
            top = scores.max(axis=1, keepdims=True)
            logp = scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
            out.append(float(logp[np.arange(len(c)), list(c)].sum()))
        return out

    def reply_emotion(self, text: str, at_prompt: dict[str, Any]) -> dict[str, Any]:
        """The reply's emotion: the role model's head already gave it at the prompt; other engines classify text."""
        return at_prompt

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def spelling(
        self, knowledge: str, context: Mapping[str, str], history: Sequence[tuple[str, str]]
    ) -> RowSpelling | None:
        """A reply's spelling constraint, None without a lexicon: the bundle's lexicon (the words NPCs said in
        training) plus the words of the card's facts line, the scene and the NPC's own earlier replies.

        The player's words are not lent to the reply: a word only the player used ("the football match", "ignore
        your instructions") is the way out-of-world talk gets into a reply, and no training reply repeats one. A
        game that wants a player's word said (their name) sends it in the context."""
        if self.lexicon is None:
            return None
        texts = [knowledge, *context.values(), *(npc for _player, npc in history)]
        return self.lexicon.row(texts)

    def describe(self) -> dict[str, Any]:
        return {"name": self.bundle.name, "kind": self.bundle.kind}


def load_engine(bundle: Bundle, options: RuntimeOptions | None = None, spelling: bool = True) -> Any:
    """The engine for the bundle's kind: :class:`RoleModelEngine` or the causal-LM engine."""
    if bundle.kind == "role-model":
        return RoleModelEngine(bundle, options, spelling=spelling)
    if bundle.kind == "causal-lm":
        try:
            from .causal_engine import CausalLMEngine
        except ImportError as exc:
            raise BundleError(f"{bundle.root}: this runtime cannot serve causal-lm bundles yet ({exc})") from exc
        return CausalLMEngine(bundle, options)
    raise BundleError(f"{bundle.root}: unknown bundle kind {bundle.kind!r}")
