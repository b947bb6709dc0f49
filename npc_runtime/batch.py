"""Many replies at once through the runtime's own scheduler: offline evaluation and dialogue-tree generation.

Everything goes through exactly the code path a game gets (an engine from ``load_engine`` and the
:class:`~npc_runtime.scheduler.Scheduler` with continuous batching), so what is generated offline is what ships.
Requests are kept in flight up to a window, and the scheduler is driven one step at a time from the calling thread
(``Scheduler.step``), with no scheduler thread: the window is topped up between steps, so which requests share a
batch at each step depends on the prompts and the replies alone, never on thread timing. That makes a run
reproducible even with the shipped dynamically quantised decoder, whose activation scales are computed over the
whole batch, so that a row's logits move a little with the rows beside it (docs/architecture.md, "Admission and
sampling"): the same prompts, options and window give the same replies on every run on one machine.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .errors import InferenceError
from .protocol import ImageInput
from .scheduler import GenOptions, GenRequest, Overloaded, Scheduler, SchedulerConfig

__all__ = ["Prompt", "Generation", "generate", "png_image"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Prompt:
    """One request to the model: who speaks (card), what they see and what was said.

    ``options`` overrides the options given to :func:`generate` for this prompt only (a per-prompt seed);
    ``hint``, an intent hint to give the model instead of its reader's (``GenRequest.hint``; evaluation only).
    """

    key: str
    fingerprint: str
    card_text: str
    knowledge: str
    player: str
    context: Mapping[str, str] = field(default_factory=dict)
    history: tuple[tuple[str, str], ...] = ()
    image: ImageInput | None = None
    options: GenOptions | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Generation:
    """The model's answer to one prompt; ``error`` is set (and ``text`` empty) when the runtime failed it."""

    text: str
    emotion: str
    intensity: float
    completion_tokens: int
    truncated: bool  # stopped by the token limit, not by <eos>
    total_ms: float
    error: str | None = None


def png_image(rgb: np.ndarray) -> ImageInput:
    """``uint8 (H, W, 3)`` pixels as the protocol's PNG image input."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return ImageInput(format="png", data=buffer.getvalue(), width=int(rgb.shape[1]), height=int(rgb.shape[0]))


class _Collector:
    """The scheduler's sink: stores each request's final message and counts what is still in flight."""

    def __init__(self) -> None:
        self.done: dict[str, tuple[str, dict[str, Any]]] = {}
        self.in_flight = 0

    def __call__(self, req: GenRequest, kind: str, payload: dict) -> None:
        if kind == "chunk":
            return
        self.done[str(req.key)] = (kind, payload)
        self.in_flight -= 1


def _to_generation(kind: str, payload: Mapping[str, Any], max_tokens: int) -> Generation:
    if kind != "reply":
        return Generation("", "", 0.0, 0, False, 0.0, error=f"{payload.get('code')}: {payload.get('message')}")
    usage = payload.get("usage", {})
    tokens = int(usage.get("completion_tokens", 0))
    emotion = payload.get("emotion", {})
    return Generation(
        text=str(payload.get("text", "")),
        emotion=str(emotion.get("label", "")),
        intensity=float(emotion.get("intensity", 0.0)),
        completion_tokens=tokens,
        truncated=tokens >= max_tokens,
        total_ms=float(payload.get("timing_ms", {}).get("total", 0.0)),
    )


def generate(
    engine: Any,
    prompts: Sequence[Prompt],
    options: GenOptions,
    max_in_flight: int = 32,
    progress: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Answers to ``prompts`` in their order; ``progress(n)`` is called as each batch of ``n`` finishes.

    ``engine`` is any engine the scheduler can drive (``load_engine``). ``options`` apply to every prompt
    without its own. Use greedy options (temperature 0) or per-prompt seeds for reproducible output. A prompt
    the runtime fails (a bad image, an ONNX Runtime error) gives a :class:`Generation` with ``error`` set
    instead of raising.
    """
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
    keys = [p.key for p in prompts]
    if len(set(keys)) != len(keys):
        raise ValueError("prompt keys must be unique")
    collector = _Collector()
    config = SchedulerConfig(max_batch=max_in_flight, max_queue=max_in_flight, max_admit_per_tick=16)
    scheduler = Scheduler(engine, collector, config)
    _feed(scheduler, collector, prompts, options, max_in_flight, progress)
    return [_to_generation(*collector.done[p.key], (p.options or options).max_tokens) for p in prompts]


def _feed(
    scheduler: Scheduler,
    collector: _Collector,
    prompts: Sequence[Prompt],
    options: GenOptions,
    window: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Keep ``window`` requests in flight and drive the scheduler one step at a time in this thread, topping the
    window up between steps (module docstring: the batches, and so the replies, are the same on every run)."""
    submitted = reported = 0
    while True:
        while collector.in_flight < window and submitted < len(prompts):
            prompt = prompts[submitted]
            submitted += 1
            collector.in_flight += 1
            # Built here, not earlier: the request's deadline counts from its creation.
            request = GenRequest(
                key=prompt.key,
                fingerprint=prompt.fingerprint,
                card_text=prompt.card_text,
                knowledge=prompt.knowledge,
                text=prompt.player,
                context=dict(prompt.context),
                history=list(prompt.history),
                image=prompt.image,
                options=prompt.options or options,
                hint=prompt.hint,
            )
            try:
                scheduler.submit(request)
            except Overloaded as exc:  # cannot happen with max_queue >= window; a bug if it does
                raise InferenceError(f"batch generation overran the scheduler queue: {exc}") from exc
        busy = scheduler.step()
        finished = len(collector.done)
        if progress is not None and finished > reported:
            progress(finished - reported)
            reported = finished
        if not busy and submitted == len(prompts):
            break
    if collector.in_flight:  # a bug in the scheduler if it happens: say so rather than return half the answers
        raise InferenceError(f"batch generation ended with {collector.in_flight} requests unanswered")
