"""Tests of batching turns and of PyTorch generation with the KV cache."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tokenizers import Tokenizer

from export.role_model import RoleModel, place_prefix
from export.tokenizer import encode_turn, pad_id
from export.torch_generate import GenerationConfig, collate_turns, generate

MakeModel = Callable[..., RoleModel]
EOS_ID = 3
PROMPTS = [
    ("name: Brenna | wares: longsword 40", {"time_of_day": "night"}, [], "Do you sell swords?"),
    ("name: Tom", {"weather": "rain", "location": "mill"}, [("Hello there!", "Mind the puddles.")], "Busy?"),
    ("name: Ash", {}, [], "Hi"),
]


def _turns(tokenizer: Tokenizer, k: int) -> list:
    return [encode_turn(tokenizer, k, *p) for p in PROMPTS]


def _conditioning(model: RoleModel, b: int) -> tuple[torch.Tensor, ...]:
    cfg = model.cfg
    gen = torch.Generator().manual_seed(7)
    persona = torch.randn(b, cfg.text_embed_dim, generator=gen)
    utterance = torch.randn(b, cfg.text_embed_dim, generator=gen)
    image = torch.randn(b, 3, cfg.image_size, cfg.image_size, generator=gen)
    present = torch.tensor([1.0, 0.0, 1.0][:b])
    return persona, utterance, image, present


def test_collate_left_and_right(tiny_tokenizer: Tokenizer) -> None:
    turns = _turns(tiny_tokenizer, 4)
    lengths = [len(t.ids) for t in turns]
    longest = max(lengths)
    left = collate_turns(turns, pad_id(), "left")
    right = collate_turns(turns, pad_id(), "right")
    for row, (turn, n) in enumerate(zip(turns, lengths)):
        assert left["input_ids"][row, longest - n :].tolist() == turn.ids
        assert left["attention_mask"][row].tolist() == [0] * (longest - n) + [1] * n
        assert left["position_ids"][row, longest - n :].tolist() == list(range(n))
        assert int(left["emotion_position"][row]) == longest - 1
        assert right["input_ids"][row, :n].tolist() == turn.ids
        assert right["prefix_mask"][row, :n].tolist() == turn.prefix_mask
        assert int(right["emotion_position"][row]) == n - 1
        assert bool((right["input_ids"][row, n:] == pad_id()).all())
    with pytest.raises(ValueError):
        collate_turns(turns, pad_id(), "middle")
    with pytest.raises(ValueError):
        collate_turns([], pad_id())


def test_generation_config_validates() -> None:
    for bad in ({"max_new_tokens": 0}, {"temperature": -1.0}, {"top_k": -2}):
        with pytest.raises(ValueError):
            GenerationConfig(**bad)


def test_right_padded_batch_is_rejected(make_model: MakeModel, tiny_tokenizer: Tokenizer) -> None:
    model = make_model()
    batch = collate_turns(_turns(tiny_tokenizer, model.cfg.prefix_tokens), pad_id(), "right")
    with pytest.raises(ValueError, match="left-padded"):
        generate(model, batch, *_conditioning(model, 3), eos_id=EOS_ID)


def test_batched_greedy_equals_each_turn_alone(make_model: MakeModel, tiny_tokenizer: Tokenizer) -> None:
    model = make_model("cross_attention")
    turns = _turns(tiny_tokenizer, model.cfg.prefix_tokens)
    cond = _conditioning(model, 3)
    cfg = GenerationConfig(max_new_tokens=8, stop_at_eos=False)
    batched = generate(model, collate_turns(turns, pad_id()), *cond, eos_id=EOS_ID, cfg=cfg)
    for row, turn in enumerate(turns):
        one = [c[row : row + 1] for c in cond]
        alone = generate(model, collate_turns([turn], pad_id()), *one, eos_id=EOS_ID, cfg=cfg)
        assert alone.tokens[0] == batched.tokens[row]
        torch.testing.assert_close(alone.emotion_logits[0], batched.emotion_logits[row], atol=1e-5, rtol=1e-4)
        for a, b in zip(alone.step_logits, batched.step_logits):
            torch.testing.assert_close(a[0], b[row], atol=1e-5, rtol=1e-4)


def test_cached_steps_match_a_full_forward_over_the_result(make_model: MakeModel, tiny_tokenizer: Tokenizer) -> None:
    model = make_model("concat")
    turn = _turns(tiny_tokenizer, model.cfg.prefix_tokens)[0]
    persona, utterance, image, present = (c[:1] for c in _conditioning(model, 3))
    result = generate(model, collate_turns([turn], pad_id()), persona, utterance, image, present, eos_id=EOS_ID,
                      cfg=GenerationConfig(max_new_tokens=6, stop_at_eos=False))
    ids = torch.tensor([turn.ids + result.tokens[0][:-1]])
    n = ids.shape[1]
    mask = torch.tensor([turn.prefix_mask + [0.0] * (n - len(turn.ids))])
    with torch.no_grad():
        prefix = model.encode_prefix(persona, utterance, model.encode_vision(image), present)
        positions = torch.arange(n)[None]
        logits = model.forward_step(ids, place_prefix(prefix, mask), mask, torch.ones_like(ids), positions)[0]
    want = logits[0, len(turn.ids) - 1 :]  # (6, V): the positions that predicted each generated token
    torch.testing.assert_close(torch.stack([s[0] for s in result.step_logits]), want, atol=1e-5, rtol=1e-4)
    assert result.tokens[0] == want.argmax(-1).tolist()


def test_stop_at_eos_cuts_each_row(make_model: MakeModel, tiny_tokenizer: Tokenizer) -> None:
    model = make_model("concat")
    batch = collate_turns(_turns(tiny_tokenizer, model.cfg.prefix_tokens), pad_id())
    cond = _conditioning(model, 3)
    free = generate(model, batch, *cond, eos_id=EOS_ID, cfg=GenerationConfig(max_new_tokens=10, stop_at_eos=False))
    stop_id = free.tokens[0][2]  # pretend the third token of row 0 is <eos>
    stopped = generate(model, batch, *cond, eos_id=stop_id, cfg=GenerationConfig(max_new_tokens=10))
    assert stopped.tokens[0][-1] == stop_id and len(stopped.tokens[0]) <= 3
    for free_row, stopped_row in zip(free.tokens, stopped.tokens):
        cut = free_row.index(stop_id) + 1 if stop_id in free_row else len(free_row)
        assert stopped_row == free_row[:cut]


def test_sampling_is_reproducible_and_top_k_one_is_greedy(make_model: MakeModel, tiny_tokenizer: Tokenizer) -> None:
    model = make_model("weighted_sum")
    batch = collate_turns(_turns(tiny_tokenizer, model.cfg.prefix_tokens), pad_id())
    cond = _conditioning(model, 3)
    sampled = GenerationConfig(max_new_tokens=8, temperature=1.5, stop_at_eos=False)
    first = generate(model, batch, *cond, eos_id=EOS_ID, cfg=sampled, generator=torch.Generator().manual_seed(1))
    again = generate(model, batch, *cond, eos_id=EOS_ID, cfg=sampled, generator=torch.Generator().manual_seed(1))
    assert first.tokens == again.tokens
    greedy = generate(model, batch, *cond, eos_id=EOS_ID, cfg=GenerationConfig(max_new_tokens=8, stop_at_eos=False))
    top1 = GenerationConfig(max_new_tokens=8, temperature=1.5, top_k=1, stop_at_eos=False)
    top1_result = generate(model, batch, *cond, eos_id=EOS_ID, cfg=top1, generator=torch.Generator().manual_seed(2))
    assert top1_result.tokens == greedy.tokens
    assert first.tokens != greedy.tokens  # a hot, near-uniform random model does not sample its arg-max 24 times
