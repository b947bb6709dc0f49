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


def test_eval_generate_is_the_same_code() -> None:
    from export import eval_generate

    import npc_runtime.batch as batch

    assert eval_generate.generate is batch.generate and eval_generate.Prompt is batch.Prompt


def test_window_must_be_positive(tiny_engine: Any) -> None:
    with pytest.raises(ValueError):
        generate(tiny_engine, [], GenOptions(), max_in_flight=0)
