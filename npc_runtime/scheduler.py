"""Continuous batching: every live generation advances by one batched decoder step per tick.

New requests wait in a bounded queue, are prefilled together (ragged, left padded) and join the running batch
at the next tick; finished, cancelled and timed-out ones leave at once. The scheduler runs on its own thread and
reports through a sink callback, so the socket loop never waits on inference.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .emotion import summarise
from .engine import PrefillResult, RoleModelEngine
from .errors import ImageError, InferenceError
from .facts import DEFAULT_FACT_BIAS, combine
from .grounding import DEFAULT_SCENE_BIAS
from .protocol import ImageInput, SayOptions
from .sampling import DEFAULT_NO_REPEAT_NGRAM, sample_tokens
from .voice import DEFAULT_CATCHPHRASE_RATE, DEFAULT_VOICE_BIAS, steer

__all__ = ["GenRequest", "GenOptions", "Scheduler", "SchedulerConfig", "Overloaded", "STEERING_LIMITS",
           "steering_errors"]

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The queue is full; the server answers ``overloaded``."""


#: The most each steering setting may be (``GenOptions.voice_bias`` and the others; the biases in nats, the
#: catchphrase rate a share of replies): a serve or eval option outside ``0..max`` is refused. Voice stays lower:
#: its nudge sits where a reply may end, and a large one makes a tic.
STEERING_LIMITS: dict[str, float] = {"voice_bias": 20.0, "fact_bias": 50.0, "scene_bias": 50.0,
                                     "catchphrase_rate": 1.0}  # fmt: skip


def steering_errors(values: dict[str, float]) -> list[str]:
    """What is wrong with the steering settings in ``values`` (names of ``STEERING_LIMITS``): ``name``, its range
    and the value, one line each; empty when they are all in range."""
    return [f"{name} must be in 0..{STEERING_LIMITS[name]:g}{'' if name.endswith('_rate') else ' nats'} (0: off), "
            f"got {value}" for name, value in values.items() if not 0.0 <= value <= STEERING_LIMITS[name]]


@dataclass(frozen=True)
class GenOptions:
    """Sampling options with the server's defaults filled in."""

    max_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    seed: int | None = None
    stream: bool = False
    repetition_penalty: float = 1.1
    #: A reply never says the same this many tokens twice (0: off); not settable over the protocol, a server
    #: setting (``npc-runtime serve --no-repeat-ngram``).
    no_repeat_ngram: int = DEFAULT_NO_REPEAT_NGRAM
    #: Voice steering towards the card's form of address, in nats (0: off; ``npc_runtime.voice``); not settable
    #: over the protocol, a server setting (``npc-runtime serve --voice-bias``).
    voice_bias: float = DEFAULT_VOICE_BIAS
    #: The share of replies that end with the card's catchphrase (0: none steered; ``npc_runtime.voice``); a server
    #: setting (``npc-runtime serve --catchphrase-rate``).
    catchphrase_rate: float = DEFAULT_CATCHPHRASE_RATE
    #: Fact steering towards the card's price or direction where a reply is about to say one, in nats (0: off;
    #: ``npc_runtime.facts``); a server setting (``npc-runtime serve --fact-bias``).
    fact_bias: float = DEFAULT_FACT_BIAS
    #: Scene steering towards the element the request's scene facts give where a reply is about to name the weather,
    #: a creature, the player's item or the time of day, in nats (0: off; ``npc_runtime.grounding``); a server
    #: setting (``npc-runtime serve --scene-bias``).
    scene_bias: float = DEFAULT_SCENE_BIAS
    stop: tuple[str, ...] = ()
    timeout_ms: int = 30_000
    #: Not settable over the protocol: benchmarks and tests use it for replies of a fixed length.
    ignore_eos: bool = False

    @classmethod
    def from_protocol(cls, options: SayOptions, defaults: GenOptions | None = None) -> GenOptions:
        base = defaults or cls()
        values = {name: getattr(options, name) for name in cls.__dataclass_fields__ if hasattr(options, name)}
        merged = {k: (v if v is not None else getattr(base, k)) for k, v in values.items()}
        if not options.stop:
            merged["stop"] = base.stop
        merged["ignore_eos"] = base.ignore_eos
        merged["voice_bias"] = base.voice_bias
        merged["catchphrase_rate"] = base.catchphrase_rate
        merged["fact_bias"] = base.fact_bias
        merged["scene_bias"] = base.scene_bias
        return cls(**merged)


@dataclass
class GenRequest:
    """One ``say`` as the scheduler sees it; ``key`` is opaque to the scheduler (the server's routing key)."""

    key: Hashable
    fingerprint: str
    card_text: str
    knowledge: str
    text: str
    context: Mapping[str, str]
    history: Sequence[tuple[str, str]]
    image: ImageInput | None
    options: GenOptions
    arrived: float = field(default_factory=time.monotonic)
    #: The intent hint to give the model instead of its bundle's reader's (``RoleModelEngine.prepare_batch``; a
    #: bundle without a reader ignores it). The server never sets it: the offline evaluation does, to ask a turn
    #: the reader misread again with the right hint (``export.evaluate``, the ``right_hint`` control).
    hint: str | None = None

    @property
    def deadline(self) -> float:
        return self.arrived + self.options.timeout_ms / 1000.0


@dataclass(frozen=True)
class SchedulerConfig:
    max_batch: int = 64
    max_queue: int = 256
    max_admit_per_tick: int = 16

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_admit_per_tick"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


#: sink(request, kind, payload): kind is "chunk" ({text, seq}), "reply" ({text, emotion, usage, timing_ms})
#: or "error" ({code, message, field?}). Called on the scheduler thread.
Sink = Callable[[GenRequest, str, dict], None]


def length_groups(lengths: Sequence[int], slack: float = 1.25) -> list[list[int]]:
    """Split prompts into prefill groups, shortest first, so that no group pads its rows (to its longest) to more
    than ``slack`` times the positions they really have; one group when lengths are alike."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if current and lengths[i] * (len(current) + 1) > slack * (total + lengths[i]):
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += lengths[i]
    if current:
        groups.append(current)
    return groups


_OPEN_WORD = re.compile(r"\w+(?:['\u2019]\w*)*$")


def _open_word_chars(text: str) -> int:
    """How many characters of ``text``'s end belong to a word that may still go on."""
    match = _OPEN_WORD.search(text)
    return len(match.group(0)) if match else 0


@dataclass
class _Live:
    """Per-request generation state inside the running batch."""

    req: GenRequest
    rng: np.random.Generator
    prompt_tokens: int
    max_new: int
    admitted: float
    emotion: dict[str, Any]
    generated: list[int] = field(default_factory=list)
    position: int = 0  # position id of the next token fed to the decoder
    sent: int = 0  # characters of text already streamed
    seq: int = 0
    first_token: float | None = None
    text: str = ""
    done: bool = False
    broke_character: bool = False  # the engine's guard cut an out-of-character span from the reply
    spelling: Any = None  # the reply's spelling constraint (spelling.RowSpelling) where the engine has one
    voice: Any = None  # the reply's steering: facts.RowFacts and/or voice.RowVoice (facts.combine), or None


class Scheduler:
    """Owns the generation thread, the queue and the running batch."""

    def __init__(
        self,
        engine: RoleModelEngine,
        sink: Sink,
        config: SchedulerConfig | None = None,
        notify: Callable[[], None] | None = None,
    ) -> None:
        """``sink`` receives every event on the scheduler thread; ``notify``, when given, is called once after
        each batch of events (after admission and after each step) instead of the consumer waking per event."""
        self.engine = engine
        self.sink = sink
        self.notify = notify
        self._dirty = False
        self.config = config or SchedulerConfig()
        self._queue: deque[GenRequest] = deque()
        self._cancelled: set[Hashable] = set()
        self._live_keys: set[Hashable] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # running batch: row i of the KV cache belongs to self._rows[i]
        self._rows: list[_Live] = []
        self._cache = engine.new_cache()
        self.ticks = 0

    # ------------------------------------------------------------------------------------ control (any thread)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="npc-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def submit(self, req: GenRequest) -> None:
        with self._cond:
            if len(self._queue) >= self.config.max_queue:
                raise Overloaded(f"generation queue is full ({self.config.max_queue})")
            if req.key in self._live_keys:
                raise ValueError(f"request {req.key!r} is already running")
            self._queue.append(req)
            self._live_keys.add(req.key)
            self._cond.notify()

    def cancel(self, key: Hashable) -> bool:
        """Ask for ``key`` to end with ``cancelled`` at the next tick; False when it is not live."""
        with self._cond:
            if key not in self._live_keys:
                return False
            self._cancelled.add(key)
            self._cond.notify()
            return True

    def load(self) -> dict[str, int]:
        with self._cond:
            return {"queued": len(self._queue), "running": len(self._rows)}

    # ------------------------------------------------------------------------------------ generation thread

    def step(self) -> bool:
        """One tick in the calling thread: admit what the queue and the batch allow, run one decoding step, send
        the events. For a caller that drives the scheduler itself instead of starting its thread
        (:func:`npc_runtime.batch.generate`): then which requests share a batch at each step depends on the
        requests alone, never on thread timing, so a dynamically quantised model (whose activations are scaled
        over the whole batch) gives the same replies on every run. Never call it while the thread runs. Returns
        whether anything is still queued or running."""
        if self._thread is not None:
            raise RuntimeError("Scheduler.step() is for a scheduler whose thread was not started")
        with self._cond:
            if not self._queue and not self._rows:
                return False
        self._once()
        with self._cond:
            return bool(self._queue or self._rows)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._queue and not self._rows:
                    self._cond.wait()
                if self._stopping:
                    break
            self._once()
        # shutting down: everything still live ends with an error
        for live in list(self._rows):
            self._finish_error(live.req, "internal", "server shutting down")
        with self._cond:
            pending, self._queue = list(self._queue), deque()
        for req in pending:
            self._finish_error(req, "internal", "server shutting down")
        self._flush()

    def _once(self) -> None:
        """Admit, tick and flush once; a failed tick fails what is running and the scheduler goes on."""
        with self._cond:
            admit: list[GenRequest] = []
            room = self.config.max_batch - len(self._rows)
            while self._queue and len(admit) < min(room, self.config.max_admit_per_tick):
                admit.append(self._queue.popleft())
            cancelled, self._cancelled = self._cancelled, set()
            queued_now = list(self._queue)
        try:
            self._tick(admit, cancelled, queued_now)
            self._flush()
        except Exception as exc:  # never let the thread die: fail what is running, keep serving
            log.exception("scheduler tick failed")
            for live in list(self._rows):
                if not live.done:
                    self._finish_error(live.req, "internal", f"generation failed: {exc}")
            with self._cond:
                unanswered = [req for req in admit if req.key in self._live_keys]
            for req in unanswered:  # admitted this tick but not yet in the batch
                self._finish_error(req, "internal", f"generation failed: {exc}")
            self._rows = []
            self._cache.clear()
            self._flush()

    def _emit(self, req: GenRequest, kind: str, payload: dict) -> None:
        self.sink(req, kind, payload)
        self._dirty = True

    def _flush(self) -> None:
        """Tell the consumer that events are waiting: one wake-up per batch of events, not one per token."""
        if self._dirty and self.notify is not None:
            self._dirty = False
            self.notify()

    def _tick(self, admit: list[GenRequest], cancelled: set[Hashable], queued: list[GenRequest]) -> None:
        self.ticks += 1
        now = time.monotonic()
        # Cancellations and deadlines, for queued requests too.
        for req in queued:
            if req.key in cancelled or now > req.deadline:
                with self._cond:
                    try:
                        self._queue.remove(req)
                    except ValueError:
                        continue
                self._finish_error(req, *self._why_stopped(req, cancelled))
        keep: list[GenRequest] = []
        for req in admit:
            if req.key in cancelled or now > req.deadline:
                self._finish_error(req, *self._why_stopped(req, cancelled))
            else:
                keep.append(req)
        leaving = [i for i, live in enumerate(self._rows) if live.req.key in cancelled or now > live.req.deadline]
        for i in leaving:
            self._finish_error(self._rows[i].req, *self._why_stopped(self._rows[i].req, cancelled))
            self._rows[i].done = True
        self._drop_finished()

        if keep:
            self._admit(keep)
            self._flush()  # first tokens leave now, not after this tick's step
        if self._rows:
            self._step()
        self._drop_finished()

    def _why_stopped(self, req: GenRequest, cancelled: set[Hashable]) -> tuple[str, str]:
        if req.key in cancelled:
            return "cancelled", "cancelled by a cancel request"
        return "timeout", f"no reply within {req.options.timeout_ms} ms"

    def _prepare(self, reqs: list[GenRequest]) -> list[Any]:
        """Each request's prompt, or the exception that stopped it; batched when the engine can."""
        prepare_batch = getattr(self.engine, "prepare_batch", None)
        if prepare_batch is not None:
            return prepare_batch(reqs)
        out: list[Any] = []
        for req in reqs:
            try:
                out.append(
                    self.engine.prepare(
                        req.fingerprint, req.card_text, req.knowledge, req.context, req.history, req.text, req.image
                    )
                )
            except (ImageError, InferenceError) as exc:
                out.append(exc)
        return out

    def _admit(self, reqs: list[GenRequest]) -> None:
        prepared, ready = [], []
        for req, prep in zip(reqs, self._prepare(reqs)):
            if isinstance(prep, ImageError):
                self._finish_error(req, "invalid_field", f"field 'image.data' {prep}", "image.data")
            elif isinstance(prep, Exception):
                self._finish_error(req, "internal", str(prep))
            else:
                prepared.append(prep)
                ready.append(req)
        for group in length_groups([len(p.ids) for p in prepared]):
            self._prefill([ready[i] for i in group], [prepared[i] for i in group])

    def _prefill(self, ready: list[GenRequest], prepared: list[Any]) -> None:
        result = self.engine.prefill(prepared)
        admitted = time.monotonic()
        new_rows = []
        spelling = getattr(self.engine, "spelling", None)  # engines of imported chat models have none
        voice = getattr(self.engine, "voice", None)  # nor voice steering
        facts = getattr(self.engine, "facts", None)  # nor fact steering
        scene = getattr(self.engine, "scene", None)  # nor scene steering (nor a bundle without scene words)
        for row, (req, prep) in enumerate(zip(ready, prepared)):
            emotion = summarise(
                result.emotion_logits[row].tolist(), float(result.emotion_intensity[row]), self.engine.bundle.emotions
            )
            room = self.engine.max_positions - len(prep.ids)
            live = _Live(
                req=req,
                rng=np.random.default_rng(req.options.seed),
                prompt_tokens=len(prep.ids),
                max_new=max(1, min(req.options.max_tokens, room)),
                admitted=admitted,
                emotion=emotion,
                position=len(prep.ids),
            )
            if spelling is not None:
                live.spelling = spelling(req.knowledge, req.context, req.history)
            live.voice = combine(
                facts.row(req.knowledge, req.text, req.options.fact_bias, prep.hint) if facts is not None else None,
                scene.row(req.context, req.card_text, req.knowledge, req.text, req.options.scene_bias, prep.hint)
                if scene is not None else None,
                voice.row(req.card_text, req.history, req.options.voice_bias, req.text, req.options.catchphrase_rate)
                if voice is not None else None,
            )  # in this order of precedence: a price or a scene word being finished is never cut by an address
            new_rows.append(live)
        for live, token in zip(new_rows, self._sample(new_rows, result.logits)):
            self._accept(live, int(token))
        self._merge(new_rows, result)

    def _merge(self, rows: list[_Live], result: PrefillResult) -> None:
        self._cache.append(result.kv, result.mask)
        self._rows = self._rows + rows


    def _step(self) -> None:
        active = [i for i, live in enumerate(self._rows) if not live.done]
        if len(active) != len(self._rows):
            self._drop_finished()
        if not self._rows:
            return
        last = np.array([live.generated[-1] for live in self._rows], dtype=np.int64)
        positions = np.array([live.position for live in self._rows], dtype=np.int64)
        logits = self.engine.decode_step(last, positions, self._cache)
        for live, token in zip(self._rows, self._sample(self._rows, logits)):
            live.position += 1
            self._accept(live, int(token))

    def _sample(self, rows: Sequence[_Live], logits: np.ndarray) -> np.ndarray:
        logits = steer(logits, [live.voice for live in rows], [live.max_new - len(live.generated) for live in rows])
        return sample_tokens(
            logits,
            [live.generated for live in rows],
            [live.req.options for live in rows],
            [live.rng for live in rows],
            self.engine.banned_ids,
            [live.spelling.allows if live.spelling is not None else None for live in rows],
        )

    def _accept(self, live: _Live, token: int) -> None:
        """Take the sampled ``token`` for ``live``, stream new text, and finish the request when it is done."""
        if live.first_token is None:
            live.first_token = time.monotonic()
        if token == self.engine.eos_id and not live.req.options.ignore_eos:
            self._finish_reply(live)
            return
        live.generated.append(token)
        if live.spelling is not None:
            live.spelling.advance(token)
        if live.voice is not None:
            live.voice.advance(token)
        # Byte-level tokens can split a character; undecodable bytes are dropped everywhere, the same way in
        # chunks and in the final text, so the chunks always concatenate to the reply.
        text = self.engine.decode(live.generated).replace("\ufffd", "").lstrip()
        stop_at = min((text.find(s) for s in live.req.options.stop if s in text), default=-1)
        guard = getattr(self.engine, "guard", None)  # engines for imported chat models have one (npc_runtime.guard)
        if guard is not None:
            cut, broke = guard.cut(text)
            if cut >= 0 and (stop_at < 0 or cut <= stop_at):
                stop_at, live.broke_character = max(cut, live.sent), broke
        if stop_at >= 0:
            live.text = text[:stop_at]
            self._finish_reply(live)
            return
        live.text = text
        if len(live.generated) >= live.max_new:
            if live.spelling is not None and not live.spelling.ends_ok():
                live.text = text[: len(text) - _open_word_chars(text)]  # cut mid-word: end at the last whole word
            self._finish_reply(live)
            return
        if live.req.options.stream:
            safe = text.rstrip()
            if live.spelling is not None:  # a word is streamed once it is whole, so a cut reply never shows half
                safe = safe[: len(safe) - _open_word_chars(safe)]
            hold = max((len(s) - 1 for s in live.req.options.stop), default=0)
            if guard is not None:
                hold = max(hold, guard.hold_chars)
            safe = safe[: max(live.sent, len(safe) - hold)]
            if len(safe) > live.sent:
                self._emit(live.req, "chunk", {"text": safe[live.sent :], "seq": live.seq})
                live.sent = len(safe)
                live.seq += 1

    def _finish_reply(self, live: _Live) -> None:
        live.done = True
        text = live.text.rstrip()
        if live.broke_character:
            text = self.engine.guard.repair(text, live.req.card_text)
        if live.req.options.stream and len(text) > live.sent:
            self._emit(live.req, "chunk", {"text": text[live.sent :], "seq": live.seq})
            live.seq += 1
        now = time.monotonic()
        arrived = live.req.arrived
        self._forget(live.req.key)
        self._emit(
            live.req,
            "reply",
            {
                "text": text,
                "emotion": self.engine.reply_emotion(text, live.emotion),
                "usage": {"prompt_tokens": live.prompt_tokens, "completion_tokens": len(live.generated)},
                "timing_ms": {
                    "queue": round((live.admitted - arrived) * 1000.0, 3),
                    "first_token": round(((live.first_token or now) - arrived) * 1000.0, 3),
                    "total": round((now - arrived) * 1000.0, 3),
                },
            },
        )

    def _finish_error(self, req: GenRequest, code: str, message: str, field_name: str | None = None) -> None:
        self._forget(req.key)
        payload = {"code": code, "message": message}
        if field_name:
            payload["field"] = field_name
        self._emit(req, "error", payload)

    def _forget(self, key: Hashable) -> None:
        with self._cond:
            self._live_keys.discard(key)
            self._cancelled.discard(key)

    def _drop_finished(self) -> None:
        done = [i for i, live in enumerate(self._rows) if live.done]
        if done:
            order = self._cache.remove(done)
            self._rows = [self._rows[i] for i in order]
