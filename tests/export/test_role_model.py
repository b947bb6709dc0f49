"""Tests of the role model: config checks, shapes, KV cache, left padding, training loss, checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from export.role_model import FUSIONS, RoleModel, RoleModelConfig, load_checkpoint, place_prefix, save_checkpoint
from export.tiny import TINY_VOCAB_SIZE, tiny_config
from export.tokenizer import encode_turn, pad_id
from npc_runtime.prompt import NPC, SPECIAL_TOKENS
from export.torch_generate import collate_turns

MakeModel = Callable[..., RoleModel]


def _inputs(model: RoleModel, lengths: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A left-padded batch of random prompts laid out as [prefix K][tokens...], with conditioning."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    k = cfg.prefix_tokens
    b, length = len(lengths), max(lengths)
    ids = torch.zeros((b, length), dtype=torch.long)
    prefix_mask = torch.zeros((b, length))
    attention_mask = torch.zeros((b, length), dtype=torch.long)
    position_ids = torch.zeros((b, length), dtype=torch.long)
    for row, n in enumerate(lengths):
        start = length - n
        ids[row, start:] = torch.randint(9, cfg.vocab_size, (n,), generator=gen)
        ids[row, start : start + k] = 7
        prefix_mask[row, start : start + k] = 1.0
        attention_mask[row, start:] = 1
        position_ids[row, start:] = torch.arange(n)
    persona = torch.nn.functional.normalize(torch.randn(b, cfg.text_embed_dim, generator=gen), dim=-1)
    utterance = torch.nn.functional.normalize(torch.randn(b, cfg.text_embed_dim, generator=gen), dim=-1)
    image = torch.randn(b, 3, cfg.image_size, cfg.image_size, generator=gen)
    present = torch.ones(b)
    with torch.no_grad():
        prefix = model.encode_prefix(persona, utterance, model.encode_vision(image), present)
    return {
        "input_ids": ids,
        "prefix_embeds": place_prefix(prefix, prefix_mask),
        "prefix_mask": prefix_mask,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
    }


def _row(inputs: dict[str, torch.Tensor], row: int, n: int) -> dict[str, torch.Tensor]:
    """Row ``row`` of a left-padded batch without its padding, as a batch of one."""
    return {key: value[row : row + 1, value.shape[1] - n :] for key, value in inputs.items()}


@pytest.mark.parametrize(
    "overrides",
    [
        {"d_model": 30, "n_heads": 4},
        {"fusion": "bogus"},
        {"n_layers": 0},
        {"vocab_size": -1},
        {"dropout": 1.0},
        {"n_visual_tokens": 5},
        {"image_size": 20},
        {"image_std": (0.0, 1.0, 1.0)},
        {"image_mean": (0.5, 0.5)},
        {"vision_channels": ()},
        {"max_positions": 8},
        {"n_heads": True},
        {"copy_induction": True, "copy_head": False},
        {"copy_induction": 1, "copy_head": True},
    ],
)
def test_config_rejects_bad_values(overrides: dict) -> None:
    values = {**tiny_config(TINY_VOCAB_SIZE).to_dict(), **overrides}
    with pytest.raises(ValueError):
        RoleModelConfig(**values)


def test_config_from_dict_round_trip_and_unknown_field() -> None:
    cfg = tiny_config(TINY_VOCAB_SIZE, "cross_attention")
    assert RoleModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        RoleModelConfig.from_dict({**cfg.to_dict(), "n_expertz": 3})


def test_prefix_tokens_per_fusion() -> None:
    # tiny: 2 persona tokens, 4 visual tokens, 1 utterance token
    assert tiny_config(TINY_VOCAB_SIZE, "concat").prefix_tokens == 7
    assert tiny_config(TINY_VOCAB_SIZE, "weighted_sum").prefix_tokens == 2
    assert tiny_config(TINY_VOCAB_SIZE, "cross_attention").prefix_tokens == 3


@pytest.mark.parametrize("fusion", FUSIONS)
def test_shapes_of_every_module(make_model: MakeModel, fusion: str) -> None:
    model = make_model(fusion, copy_head=True)
    cfg = model.cfg
    b, e, d = 3, cfg.text_embed_dim, cfg.d_model
    with torch.no_grad():
        visual = model.encode_vision(torch.randn(b, 3, cfg.image_size, cfg.image_size))
        assert visual.shape == (b, cfg.n_visual_tokens, d)
        prefix = model.encode_prefix(torch.randn(b, e), torch.randn(b, e), visual, torch.tensor([1.0, 0.0, 1.0]))
        assert prefix.shape == (b, cfg.prefix_tokens, d)
        inputs = _inputs(model, [12, 9, 10])
        logits, emotion, intensity, present = model.forward_step(**inputs)
    assert logits.shape == (b, 12, cfg.vocab_size)
    assert emotion.shape == (b, 12, cfg.n_emotions)
    assert intensity.shape == (b, 12)
    assert bool(((intensity >= 0) & (intensity <= 1)).all())
    assert cfg.copy_head and len(present) == cfg.kv_layers == cfg.n_layers + 1
    for k, v in present:
        assert k.shape == v.shape == (b, cfg.n_heads, 12, cfg.head_dim)
    torch.testing.assert_close(present[-1][1][:, 0, :, 0], inputs["input_ids"].float())  # the copy head's token ids


@pytest.mark.parametrize("fusion", FUSIONS)
def test_absent_image_ignores_visual_features(make_model: MakeModel, fusion: str) -> None:
    model = make_model(fusion)
    cfg = model.cfg
    torch.manual_seed(1)
    persona, utterance = torch.randn(1, cfg.text_embed_dim), torch.randn(1, cfg.text_embed_dim)
    va, vb = torch.randn(1, cfg.n_visual_tokens, cfg.d_model), torch.randn(1, cfg.n_visual_tokens, cfg.d_model)
    with torch.no_grad():
        absent_a = model.encode_prefix(persona, utterance, va, torch.zeros(1))
        absent_b = model.encode_prefix(persona, utterance, vb, torch.zeros(1))
        seen_a = model.encode_prefix(persona, utterance, va, torch.ones(1))
        seen_b = model.encode_prefix(persona, utterance, vb, torch.ones(1))
    torch.testing.assert_close(absent_a, absent_b)
    assert not torch.allclose(seen_a, seen_b)


def _induction_model(make_model: MakeModel, bonus: float = 4.0) -> RoleModel:
    model = make_model("concat", copy_head=True, copy_induction=True)
    with torch.no_grad():
        model.copy.induction.bias.fill_(bonus)  # a random init leaves it near zero
    return model


def _repeat_text(inputs: dict[str, torch.Tensor], k: int) -> None:
    """Each row's text becomes a short sequence, ``<npc>``, and the sequence again, so readers in the second
    turn meet tokens of the first."""
    ids = inputs["input_ids"]
    for row in range(ids.shape[0]):
        start = int((inputs["attention_mask"][row] == 0).sum()) + k
        text = ids[row, start:].clone()
        half = len(text) // 2
        ids[row, start:] = torch.cat([text[:half], torch.tensor([_NPC_ID]),
                                      text[: len(text) - half - 1]])


@pytest.mark.parametrize(("fusion", "copy_head", "induction"),
                         [*((f, True, False) for f in FUSIONS), ("concat", False, False), ("concat", True, True)])
def test_kv_cache_steps_equal_full_forward(make_model: MakeModel, fusion: str, copy_head: bool,
                                           induction: bool) -> None:
    model = _induction_model(make_model) if induction else make_model(fusion, copy_head=copy_head)
    assert len(model.forward_step(**_inputs(model, [12]))[3]) == model.cfg.kv_layers
    inputs = _inputs(model, [14, 11])
    if induction:
        _repeat_text(inputs, model.cfg.prefix_tokens)
    with torch.no_grad():
        full_logits, full_emotion, _, _ = model.forward_step(**inputs)
        split = 10  # prefill 10 positions (prefix included), then one position per step
        first = {k: v[:, :split] for k, v in inputs.items()}
        logits, emotion, _, past = model.forward_step(**first)
        step_logits, step_emotion = [logits], [emotion]
        for t in range(split, 14):
            step = {k: v[:, t : t + 1] for k, v in inputs.items() if k != "attention_mask"}
            logits, emotion, _, past = model.forward_step(
                **step, attention_mask=inputs["attention_mask"][:, : t + 1], past=past
            )
            step_logits.append(logits)
            step_emotion.append(emotion)
    real = inputs["attention_mask"].bool()  # padding rows are free to differ
    torch.testing.assert_close(torch.cat(step_logits, 1)[real], full_logits[real], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(step_emotion, 1)[real], full_emotion[real], atol=1e-5, rtol=1e-4)


def test_copy_head_mixes_a_distribution_over_visible_text_tokens(make_model: MakeModel) -> None:
    """The copy mixture is a probability distribution; with the gate fully open, all its mass is on tokens of the
    visible text, never on a special token or on a token that is not there."""
    model = make_model("concat", copy_head=True)
    inputs = _inputs(model, [16, 12])
    with torch.no_grad():
        logits = model.forward_step(**inputs)[0]
        torch.testing.assert_close(logits.exp().sum(-1), torch.ones(logits.shape[:2]), atol=1e-4, rtol=1e-4)
        model.copy.gate.bias.fill_(60.0)  # gate -> 1: copying only
        copied = model.forward_step(**inputs)[0].exp()
    k = model.cfg.prefix_tokens
    for row, n in enumerate([16, 12]):
        start = inputs["input_ids"].shape[1] - n
        for t in range(start + k, start + n):  # text positions: tokens at start + k .. t are visible
            visible = set(inputs["input_ids"][row, start + k : t + 1].tolist())
            mass = copied[row, t]
            assert float(mass[sorted(visible)].sum()) == pytest.approx(1.0, abs=1e-4)
            assert float(mass[: model.cfg.copy_min_id].sum()) < 1e-6


_NPC_ID = SPECIAL_TOKENS.index(NPC)


def _induction_only(make_model: MakeModel, text: list[int]) -> tuple[RoleModel, dict[str, torch.Tensor], int]:
    """A model whose copy head scores by the induction term alone (no content scores, gate open), and one prompt
    whose text (after the prefix slots, which start at ``k``) is ``text``; returns (model, inputs, k)."""
    model = _induction_model(make_model, bonus=30.0)
    with torch.no_grad():
        model.copy.query.weight.zero_()
        model.copy.query.bias.zero_()
        model.copy.gate.bias.fill_(60.0)
    inputs = _inputs(model, [14])
    k = model.cfg.prefix_tokens
    inputs["input_ids"][0, k:] = torch.tensor(text)
    return model, inputs, k


def test_copy_induction_points_after_an_earlier_copy_of_the_token_just_read(make_model: MakeModel) -> None:
    """A reader in the NPC's reply whose token appeared before the reply copies the token that followed it
    there; the cache keeps each position's previous id and turn in channels 1 and 2."""
    text = [101, 202, 303, 304, _NPC_ID, 101, 202]  # the reply's 101 and 202 were seen before it, on the card
    model, inputs, k = _induction_only(make_model, text)
    with torch.no_grad():
        log_probs, _, _, present = model.forward_step(**inputs)
    ids = present[-1][1][0, 0, k:]
    torch.testing.assert_close(ids[:, 0], torch.tensor(text, dtype=torch.float32))
    torch.testing.assert_close(ids[:, 1], torch.tensor([7.0, *text[:-1]]))  # previous ids
    torch.testing.assert_close(ids[:, 2], torch.tensor([0.0, 0, 0, 0, 1, 1, 1]))  # turns
    predicted = log_probs[0, k:].argmax(-1).tolist()
    assert predicted[5] == 202 and predicted[6] == 303  # after the reply's 101 comes 202, after 202 comes 303
    assert float(log_probs[0, k + 6, 303].exp()) > 0.99
    with torch.no_grad():
        model.copy.induction.bias.fill_(0.0)  # no bonus: the same scores everywhere, copying is spread out
        spread = model.forward_step(**inputs)[0]
    assert float(spread[0, k + 6, 303].exp()) < 0.5


def test_copy_induction_never_points_inside_the_reply_it_is_writing(make_model: MakeModel) -> None:
    """A reply that repeats itself gets no bonus from its own earlier words, so it cannot feed its own loop."""
    text = [101, 102, 103, _NPC_ID, 202, 303, 202]  # 202 then 303 said in the reply: no reason to say 303 again
    model, inputs, k = _induction_only(make_model, text)
    with torch.no_grad():
        log_probs = model.forward_step(**inputs)[0]
    assert float(log_probs[0, k + 6, 303].exp()) < 0.5


@pytest.mark.parametrize("layout", ["left_padded", "packed_from_column_0"])
def test_induction_state_of_a_step_carries_on_from_the_last_visible_cached_token(layout: str) -> None:
    from export.role_model import CopyHead

    npc = float(_NPC_ID)
    ids = torch.tensor([[0.0, 0.0, 11.0, npc, 13.0], [21.0, 22.0, 0.0, 0.0, 0.0]])
    turns = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    if layout == "left_padded":
        mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
        ids[1] = torch.tensor([0.0, 0.0, 0.0, 21.0, 22.0])
    else:
        mask = torch.tensor([[1, 1, 1, 0, 0, 1], [1, 1, 0, 0, 0, 1]])
        ids[0], turns[0] = torch.tensor([11.0, npc, 13.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0])
    past = torch.stack([ids, torch.zeros_like(ids), turns], dim=-1).unsqueeze(1)  # (B, H=1, P, 3)
    new = torch.tensor([[40], [int(npc)]])
    previous, turn = CopyHead.induction_state(new, mask, past)
    torch.testing.assert_close(previous, torch.tensor([[13.0], [22.0]]))
    torch.testing.assert_close(turn, torch.tensor([[1.0], [1.0]]))  # carried on; the second row's own <npc>
    nothing = torch.zeros((2, 1, 0, 3))
    previous, turn = CopyHead.induction_state(new, mask[:, -1:], nothing)
    torch.testing.assert_close(previous, torch.tensor([[-1.0], [-1.0]]))
    torch.testing.assert_close(turn, torch.tensor([[0.0], [1.0]]))
    previous, turn = CopyHead.induction_state(torch.tensor([[5, int(npc), 7]]))
    torch.testing.assert_close(previous, torch.tensor([[-1.0, 5.0, npc]]))
    torch.testing.assert_close(turn, torch.tensor([[0.0, 1.0, 1.0]]))


def test_left_padded_batch_equals_each_request_alone(make_model: MakeModel) -> None:
    model = make_model("concat")
    lengths = [15, 9, 12]
    inputs = _inputs(model, lengths)
    with torch.no_grad():
        batch_logits, batch_emotion, batch_intensity, _ = model.forward_step(**inputs)
        for row, n in enumerate(lengths):
            logits, emotion, intensity, _ = model.forward_step(**_row(inputs, row, n))
            torch.testing.assert_close(batch_logits[row, -n:], logits[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(batch_emotion[row, -n:], emotion[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(batch_intensity[row, -n:], intensity[0], atol=1e-5, rtol=1e-4)


def test_place_prefix_fills_masked_rows_in_order() -> None:
    prefix = torch.arange(1, 7, dtype=torch.float32).view(1, 3, 2)  # (B=1, K=3, D=2)
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    placed = place_prefix(prefix, mask)
    expected = torch.tensor([[[0, 0], [0, 0], [1, 2], [3, 4], [5, 6], [0, 0]]], dtype=torch.float32)
    torch.testing.assert_close(placed, expected)


def _training_batch(model: RoleModel, tokenizer, padding_side: str = "right") -> dict[str, torch.Tensor]:
    turns = [
        encode_turn(tokenizer, model.cfg.prefix_tokens, "name: Brenna", {"time_of_day": "night"}, [],
                    "Do you sell swords?", reply="Aye, forged this very morning."),
        encode_turn(tokenizer, model.cfg.prefix_tokens, "name: Ash", {}, [("Hello there!", "Evening.")],
                    "Where is the healer?", reply="Down the road."),
    ]
    batch = collate_turns(turns, pad_id(), padding_side=padding_side)
    cfg = model.cfg
    gen = torch.Generator().manual_seed(3)
    batch.update(
        image=torch.randn(2, 3, cfg.image_size, cfg.image_size, generator=gen),
        image_present=torch.tensor([1.0, 0.0]),
        persona_embedding=torch.randn(2, cfg.text_embed_dim, generator=gen),
        utterance_embedding=torch.randn(2, cfg.text_embed_dim, generator=gen),
        emotion_label=torch.tensor([3, 6]),
        emotion_intensity=torch.tensor([0.7, 0.1]),
    )
    return batch


@pytest.mark.parametrize("fusion", FUSIONS)
def test_training_loss_is_finite_and_falls(make_model: MakeModel, tiny_tokenizer, fusion: str) -> None:
    model = make_model(fusion).train()
    batch = _training_batch(model, tiny_tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        losses = model(batch)
        assert set(losses) == {"loss", "lm_loss", "emotion_loss", "intensity_loss"}
        assert all(bool(torch.isfinite(v)) for v in losses.values())
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = float(losses["loss"].detach()) if first is None else first
    assert float(model(batch)["loss"].detach()) < 0.8 * first


def test_lm_loss_covers_reply_tokens_only(make_model: MakeModel, tiny_tokenizer) -> None:
    model = make_model("concat")
    batch = _training_batch(model, tiny_tokenizer, padding_side="left")
    with torch.no_grad():
        losses = model(batch)
        prefix = model.encode_prefix(batch["persona_embedding"], batch["utterance_embedding"],
                                     model.encode_vision(batch["image"]), batch["image_present"])
        logits, emotion, intensity, _ = model.forward_step(
            batch["input_ids"], place_prefix(prefix, batch["prefix_mask"]), batch["prefix_mask"],
            batch["attention_mask"], batch["position_ids"],
        )
    picked, targets = [], []
    for row in range(2):
        at = int(batch["emotion_position"][row])
        assert int(batch["input_ids"][row, at]) == 6  # the final <npc>
        for pos in range(at, batch["input_ids"].shape[1] - 1):
            picked.append(logits[row, pos])
            targets.append(int(batch["input_ids"][row, pos + 1]))
        assert targets[-1] == 3  # every reply ends by predicting <eos>
    manual = torch.nn.functional.cross_entropy(torch.stack(picked), torch.tensor(targets))
    torch.testing.assert_close(losses["lm_loss"], manual)
    rows = torch.arange(2)
    at = batch["emotion_position"]
    manual_emotion = torch.nn.functional.cross_entropy(emotion[rows, at], batch["emotion_label"])
    torch.testing.assert_close(losses["emotion_loss"], manual_emotion)
    manual_intensity = ((intensity[rows, at] - batch["emotion_intensity"]) ** 2).mean()
    torch.testing.assert_close(losses["intensity_loss"], manual_intensity)


def test_unlabelled_emotions_add_no_loss(make_model: MakeModel, tiny_tokenizer) -> None:
    model = make_model("concat")
    batch = _training_batch(model, tiny_tokenizer)
    batch["emotion_label"] = torch.tensor([-100, -100])
    with torch.no_grad():
        losses = model(batch)
    assert float(losses["emotion_loss"]) == 0.0
    assert float(losses["intensity_loss"]) == 0.0
    torch.testing.assert_close(losses["loss"], losses["lm_loss"])


def test_checkpoint_round_trip(make_model: MakeModel, tmp_path: Path) -> None:
    model = make_model("weighted_sum", seed=5)
    path = save_checkpoint(model, tmp_path / "ckpt" / "model.pt", extra={"step": 12})
    loaded, extra = load_checkpoint(path)
    assert extra == {"step": 12}
    assert loaded.cfg == model.cfg
    assert not loaded.training
    inputs = _inputs(model, [10, 8])
    with torch.no_grad():
        want = model.forward_step(**inputs)[0]
        got = loaded.forward_step(**inputs)[0]
    torch.testing.assert_close(got, want)
    assert loaded.lm_head.weight is loaded.tok_emb.weight  # tying survives the round trip
