"""npc_runtime.batch: per-prompt options, order, and the evaluation's import path using the same code."""

from __future__ import annotations

from typing import Any

import pytest

from npc_runtime.batch import Prompt, generate
from npc_runtime.scheduler import GenOptions


def test_per_prompt_options_and_order(tiny_engine: Any) -> None:
    base = GenOptions(max_tokens=10, temperature=0.9, timeout_ms=600_000)
    prompts = [
        Prompt(key=f"k{i}", fingerprint="none", card_text="", knowledge="", player="Hello there!",
               options=GenOptions(max_tokens=3 + i, temperature=0.9, seed=i % 2, timeout_ms=600_000))
        for i in range(4)
    ]  # fmt: skip
    prompts.append(Prompt(key="base", fingerprint="none", card_text="", knowledge="", player="Hello there!"))
    progress: list[int] = []
    out = generate(tiny_engine, prompts, base, max_in_flight=8, progress=progress.append)
    assert sum(progress) == 5
    assert all(g.error is None for g in out)
    assert [g.completion_tokens <= 3 + i for i, g in enumerate(out[:4])] == [True] * 4
    assert out[4].completion_tokens <= 10
    again = generate(tiny_engine, list(reversed(prompts[:4])), base, max_in_flight=8)
    assert [g.text for g in out[:4]] == [g.text for g in reversed(again)]


class _Recording:
    """The real engine, recording the size of every prefill and decoding step the scheduler asks of it."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.batches: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def prefill(self, items: Any) -> Any:
        self.batches.append(("prefill", len(items)))
        return self._engine.prefill(items)

    def decode_step(self, last: Any, positions: Any, cache: Any) -> Any:
        self.batches.append(("step", len(last)))
        return self._engine.decode_step(last, positions, cache)


def test_the_batches_and_so_the_replies_do_not_depend_on_timing(tiny_engine: Any) -> None:
    """Which requests share a step is a function of the prompts alone: a slow consumer (here a progress callback
    that sleeps) changes nothing. A dynamically quantised decoder scales activations over the batch, so this is
    what makes an evaluation or a tree reproducible."""
    import time

    prompts = [Prompt(key=f"k{i}", fingerprint="none", card_text="", knowledge="", player=line,
                      options=GenOptions(max_tokens=2 + 3 * (i % 4), temperature=0.9, seed=i, timeout_ms=600_000))
               for i, line in enumerate(["Hello there!", "What do you sell?", "Any rumours?", "Where is the well?",
                                         "Nice weather.", "Who are you?", "Goodbye.", "Any work?", "Is it late?"])]
    runs = []
    for pause in (0.0, 0.01, 0.0):
        engine = _Recording(tiny_engine)
        out = generate(engine, prompts, GenOptions(), max_in_flight=4, progress=lambda n: time.sleep(pause))
        runs.append((engine.batches, [g.text for g in out]))
    assert runs[0] == runs[1] == runs[2]
    batches = runs[0][0]
    assert max(n for kind, n in batches if kind == "step") == 4  # the window is kept full
    assert len({n for kind, n in batches if kind == "step"}) > 1  # and rows come and go: a real test of the order


def test_a_started_scheduler_is_not_stepped_from_outside(tiny_engine: Any) -> None:
    from npc_runtime.scheduler import Scheduler

    scheduler = Scheduler(tiny_engine, lambda req, kind, payload: None)
    assert scheduler.step() is False  # nothing queued or running
    scheduler.start()
    try:
        with pytest.raises(RuntimeError, match="thread"):
            scheduler.step()
    finally:
        scheduler.stop()


def test_eval_generate_is_the_same_code() -> None:
    from export import eval_generate

    import npc_runtime.batch as batch

    assert eval_generate.generate is batch.generate and eval_generate.Prompt is batch.Prompt


def test_window_must_be_positive(tiny_engine: Any) -> None:
    with pytest.raises(ValueError):
        generate(tiny_engine, [], GenOptions(), max_in_flight=0)
