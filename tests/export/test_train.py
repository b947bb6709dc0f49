"""Tests of training: the reply-only loss equals the model's, loss goes down, seeds and resume are exact."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from export.dataset import DataConfig, TurnData, length_grouped_batches, prepare_data
from export.role_model import RoleModel, load_checkpoint
from export.tokenizer import encode_turn, load_tokenizer
from export.train import CHECKPOINT_NAME, LOG_NAME, TrainConfig, main, preset_configs, reply_losses, train


def _tiny_cfg(**changes: object) -> TrainConfig:
    _, _, cfg = preset_configs("tiny")
    return replace(cfg, threads=1, **changes)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> TurnData:
    model_cfg, data_cfg, _ = preset_configs("tiny")
    assert model_cfg.prompt_voice  # the presets train with the card's voice on the <know> line
    return prepare_data(data_cfg, model_cfg.prefix_tokens, model_cfg.max_positions,
                        tmp_path_factory.mktemp("data"), progress=False, voice=True)  # fmt: skip


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight uninterrupted tiny steps, val loss recorded at every step."""
    out = tmp_path_factory.mktemp("straight")
    train(_tiny_cfg(eval_every=1), out, progress=False)
    return out


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / LOG_NAME).read_text(encoding="utf-8").splitlines()]


def _copy_data(src: Path, dst: Path) -> None:
    shutil.copytree(src / "data", dst / "data")  # reuse the prepared caches; the run still checks their keys


def test_train_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        TrainConfig(steps=0)
    with pytest.raises(ValueError):
        TrainConfig(preset="huge")
    with pytest.raises(ValueError):
        TrainConfig(lr=-1.0)


def test_lr_schedule_warms_up_then_decays() -> None:
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert cfg.lr_at(0) == pytest.approx(0.1)
    assert cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(55) < cfg.lr_at(20)
    assert cfg.lr_at(100) == pytest.approx(0.1)


def test_turns_are_encoded_like_the_runtime(tiny_data: TurnData) -> None:
    """Ids and final-reply labels equal export.tokenizer.encode_turn, the layout the runtime serves (with the
    card's voice on the <know> line, as ``RoleModelEngine.knowledge_of`` gives it for a voice-trained bundle)."""
    from export.corpus import build_corpus

    _, data_cfg, _ = preset_configs("tiny")
    examples = build_corpus(data_cfg.corpus_config()).splits["train"]
    tokenizer = load_tokenizer(tiny_data.tokenizer_path)
    split = tiny_data.splits["train"]
    assert len(split) == len(examples) and not split.has_context.all() and split.has_context.any()
    for row in range(len(split)):
        ex = examples[int(split.example_index[row])]
        context = ex.scene.to_context() if split.has_context[row] else {}
        want = encode_turn(tokenizer, tiny_data.n_prefix, ex.card.knowledge_text(voice=True), context, ex.history, ex.player,
                           ex.reply)  # fmt: skip
        assert split.ids[row].tolist() == want.ids
        assert split.prompt_length[row] == want.prompt_length
        assert split.labels[row][want.prompt_length - 1 :].tolist() == want.labels[want.prompt_length - 1 :]


def _prepared_with(tiny_data: TurnData, tmp_path: Path, **changes: Any) -> tuple[TurnData, list, Any]:
    """The tiny preset's data prepared again with ``changes`` to its ``DataConfig`` (reusing ``tiny_data``'s
    caches): the new data, the corpus's training examples and the tokenizer."""
    from export.corpus import build_corpus

    model_cfg, data_cfg, _ = preset_configs("tiny")
    shutil.copytree(tiny_data.tokenizer_path.parent, tmp_path / "data")
    data = prepare_data(replace(data_cfg, **changes), model_cfg.prefix_tokens, model_cfg.max_positions,
                        tmp_path / "data", progress=False, voice=True)  # fmt: skip
    return data, build_corpus(data_cfg.corpus_config()).splits["train"], load_tokenizer(data.tokenizer_path)


def test_player_dropout_empties_the_player_line_of_some_training_turns(tiny_data: TurnData, tmp_path: Path) -> None:
    """Dropped turns read ``<player> <npc>`` with the line's embedding kept; the rest, val and the scene dropout are
    as without it."""
    dropped, examples, tokenizer = _prepared_with(tiny_data, tmp_path, player_dropout=0.5)
    plain, split = tiny_data.splits["train"], dropped.splits["train"]
    assert (split.has_context == plain.has_context).all() and (split.utterance_row == plain.utterance_row).all()
    emptied = 0
    for row in range(len(split)):
        ex = examples[int(split.example_index[row])]
        context = ex.scene.to_context() if split.has_context[row] else {}
        if split.ids[row].tolist() != plain.ids[row].tolist():
            want = encode_turn(tokenizer, dropped.n_prefix, ex.card.knowledge_text(voice=True), context, ex.history,
                               "", ex.reply)  # fmt: skip
            assert split.ids[row].tolist() == want.ids
            emptied += 1
    assert 0.3 < emptied / len(split) < 0.7
    assert all(a.tolist() == b.tolist() for a, b in zip(dropped.splits["val"].ids, tiny_data.splits["val"].ids))


def test_offer_dropout_strips_the_offer_from_some_quest_answers_and_leaves_every_other_turn(
    tiny_data: TurnData, tmp_path: Path
) -> None:
    """A dropped quest answer is encoded with its history less the last turn (the offer); every other training
    turn, and validation, is as without the option."""
    from export.corpus_intents import OFFER_ANSWERS

    dropped, examples, tokenizer = _prepared_with(tiny_data, tmp_path, offer_dropout=0.99)
    plain, split = tiny_data.splits["train"], dropped.splits["train"]
    answers = stripped = 0
    for row in range(len(split)):
        ex = examples[int(split.example_index[row])]
        if ex.intent not in OFFER_ANSWERS:
            assert split.ids[row].tolist() == plain.ids[row].tolist()
            continue
        answers += 1
        assert ex.history  # the corpus puts the offer before every answer
        if split.ids[row].tolist() != plain.ids[row].tolist():
            context = ex.scene.to_context() if split.has_context[row] else {}
            want = encode_turn(tokenizer, dropped.n_prefix, ex.card.knowledge_text(voice=True), context,
                               ex.history[:-1], ex.player, ex.reply)  # fmt: skip
            assert split.ids[row].tolist() == want.ids
            stripped += 1
    assert answers >= 2 and stripped == answers  # the tiny corpus has few answers: (nearly) all of them lose it
    assert all(a.tolist() == b.tolist() for a, b in zip(dropped.splits["val"].ids, tiny_data.splits["val"].ids))


def test_history_replies_are_labelled(tiny_data: TurnData) -> None:
    split = tiny_data.splits["train"]
    with_history = [r for r in range(len(split)) if (split.labels[r][: split.prompt_length[r] - 1] != -100).any()]
    assert with_history, "no training turn got labels on its earlier NPC replies"


def test_reply_losses_equal_model_forward(tiny_data: TurnData) -> None:
    model_cfg, _, _ = preset_configs("tiny")
    torch.manual_seed(3)
    model = RoleModel(model_cfg).eval()
    batch = tiny_data.batch("train", list(range(6)))
    with torch.no_grad():
        want = model(batch, emotion_weight=0.7, intensity_weight=0.3)
        got = reply_losses(model, batch, emotion_weight=0.7, intensity_weight=0.3)
    for key in ("loss", "lm_loss", "emotion_loss", "intensity_loss"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5)


def test_length_grouped_batches_are_deterministic_and_cover_once() -> None:
    lengths = torch.randint(10, 100, (103,)).numpy()
    a = length_grouped_batches(range(103), lengths, 8, seed=1, epoch=0, group=3)
    b = length_grouped_batches(range(103), lengths, 8, seed=1, epoch=0, group=3)
    c = length_grouped_batches(range(103), lengths, 8, seed=1, epoch=1, group=3)
    assert a == b and a != c
    flat = [i for batch in a for i in batch]
    assert len(flat) == len(set(flat)) == 12 * 8
    # branch balance: turn i is drawn repeats[i] times (104 draws: 13 batches, none dropped)
    repeats = np.ones(103, dtype=np.int64)
    repeats[0] = 2
    drawn = [i for batch in length_grouped_batches(range(103), lengths, 8, 1, 0, 3, repeats=repeats) for i in batch]
    assert len(drawn) == 104 and drawn.count(0) == 2 and sorted(set(drawn)) == list(range(103))


def test_training_reduces_val_loss(straight_run: Path) -> None:
    history = [r for r in _log(straight_run) if "val_loss" in r]
    assert len(history) == 8
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.05
    model, extra = load_checkpoint(straight_run / CHECKPOINT_NAME)
    assert extra["step"] == 8 and (straight_run / extra["tokenizer"]).exists()


def test_resume_continues_exactly_and_seed_fixes_the_run(straight_run: Path, tmp_path: Path) -> None:
    resumed = tmp_path / "resumed"
    _copy_data(straight_run, resumed)
    first = train(_tiny_cfg(eval_every=1), resumed, progress=False, stop_after=3)
    assert load_checkpoint(resumed / CHECKPOINT_NAME)[1]["step"] == 3
    assert first["stopped_early"] and first["total_wall_s"] == first["wall_s"]
    second = train(_tiny_cfg(eval_every=1), resumed, resume=True, progress=False)
    assert not second["stopped_early"]
    # The wall time of the whole run counts both sessions (each rounded to 0.1 s).
    assert second["total_wall_s"] >= first["total_wall_s"] + second["wall_s"] - 0.2
    assert load_checkpoint(resumed / CHECKPOINT_NAME)[1]["total_wall_s"] >= first["total_wall_s"]
    straight_log, resumed_log = _log(straight_run), _log(resumed)
    assert [r["step"] for r in resumed_log] == list(range(1, 9))
    for a, b in zip(straight_log, resumed_log):
        assert a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"], (a, b)
    want = torch.load(straight_run / CHECKPOINT_NAME, weights_only=True)
    got = torch.load(resumed / CHECKPOINT_NAME, weights_only=True)
    for name, tensor in want["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name

    other_seed = tmp_path / "seed1"
    _copy_data(straight_run, other_seed)
    train(_tiny_cfg(eval_every=1, seed=1), other_seed, progress=False, stop_after=1)
    assert _log(other_seed)[0]["loss"] != straight_log[0]["loss"]


def test_cli_help_and_resume_without_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--resume" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError):
        train(_tiny_cfg(), tmp_path / "none", resume=True, progress=False)


def test_cli_fusion_is_stored_in_the_checkpoint_and_kept_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "wsum"
    common = ["--preset", "tiny", "--out", str(out), "--no-progress", "--threads", "1"]
    assert main([*common, "--fusion", "weighted_sum", "--steps", "2", "--stop-after", "1"]) == 0
    model, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert model.cfg.fusion == "weighted_sum" and extra["step"] == 1
    assert model.cfg.prefix_tokens == model.cfg.n_persona_tokens  # the weighted sum's K, not concat's
    assert extra["train_config"]["fusion"] == "weighted_sum"

    with pytest.raises(ValueError, match="weighted_sum"):  # another fusion cannot continue these weights
        main([*common, "--resume", "--fusion", "cross_attention"])
    assert main([*common, "--resume"]) == 0  # no --fusion: the checkpoint's
    model, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert model.cfg.fusion == "weighted_sum" and extra["step"] == 2
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["fusion"] == "weighted_sum"

    with pytest.raises(ValueError):
        TrainConfig(fusion="sum")


@pytest.mark.parametrize(("flag", "field", "value"),
                         [("--no-voice", "prompt_voice", False), ("--spaced-quotes", "spaced_quotes", True)])
def test_cli_layout_flag_is_stored_and_a_resume_cannot_flip_it(tmp_path: Path, flag: str, field: str,
                                                                value: bool) -> None:
    """A flag that changes the <know> line's layout is stored in the checkpoint; resuming a run trained on the
    other layout with it is refused (its weights were trained on that layout); a plain --resume keeps it."""
    out = tmp_path / "flagged"
    common = ["--preset", "tiny", "--out", str(out), "--no-progress", "--threads", "1", "--steps", "2"]
    assert main([*common, flag, "--stop-after", "1"]) == 0
    model, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert getattr(model.cfg, field) is value and extra["train_config"][field] is value
    other = tmp_path / "other"
    assert main(["--preset", "tiny", "--out", str(other), "--no-progress", "--threads", "1", "--steps", "1"]) == 0
    with pytest.raises(ValueError, match=field):
        main(["--preset", "tiny", "--out", str(other), "--no-progress", "--threads", "1", "--resume", flag])
    assert main([*common, "--resume"]) == 0  # no flag: the checkpoint's layout
    model, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert getattr(model.cfg, field) is value and extra["step"] == 2


def test_cli_copy_head_and_emotion_labels_are_stored_named_in_the_recipe_and_a_resume_cannot_flip_them(
    tmp_path: Path,
) -> None:
    from export.make_bundle import _recipe

    out = tmp_path / "plain"
    common = ["--preset", "tiny", "--out", str(out), "--no-progress", "--threads", "1", "--steps", "2"]
    assert main([*common, "--no-copy-head", "--emotion-labels", "rule", "--stop-after", "1"]) == 0
    model, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert model.cfg.copy_head is False and not hasattr(model, "copy") and model.cfg.kv_layers == model.cfg.n_layers
    assert extra["data_config"]["emotion_labels"] == "rule"
    recipe = _recipe(extra["train_config"], True, {"emotion_labels": "rule"}, copy_head=False)
    assert recipe.endswith("--steps 2 --no-copy-head --emotion-labels rule && npc-runtime export")
    with pytest.raises(ValueError, match="emotion_labels"):
        main([*common, "--resume", "--emotion-labels", "sampled"])
    copied = tmp_path / "copied"
    assert main(["--preset", "tiny", "--out", str(copied), "--no-progress", "--threads", "1", "--steps", "1"]) == 0
    with pytest.raises(ValueError, match="copy_head"):  # weights with a copy head cannot go on without one
        main(["--preset", "tiny", "--out", str(copied), "--no-progress", "--threads", "1", "--resume",
              "--no-copy-head"])  # fmt: skip
    assert main([*common, "--resume"]) == 0
    assert load_checkpoint(out / CHECKPOINT_NAME)[0].cfg.copy_head is False


@pytest.mark.parametrize("key", ["voice_swap", "fact_swap", "player_dropout", "offer_dropout"])
def test_cli_swap_share_is_stored_and_a_resume_cannot_change_it(tmp_path: Path, key: str) -> None:
    out = tmp_path / "swap"
    flag = "--" + key.replace("_", "-")
    common = ["--preset", "tiny", "--out", str(out), "--no-progress", "--threads", "1", "--steps", "2"]
    assert main([*common, flag, "0.5", "--stop-after", "1"]) == 0
    _, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert extra["data_config"][key] == 0.5 and extra["train_config"][key] == 0.5
    with pytest.raises(ValueError, match=key):
        main([*common, "--resume", flag, "0.2"])
    assert main([*common, "--resume"]) == 0
    from export.make_bundle import _recipe

    assert _recipe(extra["train_config"], True, {key: 0.5}).endswith(f"--steps 2 {flag} 0.5 && npc-runtime export")


def test_branch_repeats_lift_rare_reply_branches_towards_the_floor() -> None:
    """A branch below the floor is drawn min(floor / n, cap) times as often (whole repeats plus a seeded share of one
    more); a branch at or above it, once per turn; the same seed gives the same repeats."""
    from collections import Counter

    from export.corpus import build_corpus
    from export.dataset import BRANCH_REPEAT_CAP, branch_repeats, reply_branch

    _, data_cfg, _ = preset_configs("small")
    examples = build_corpus(data_cfg.corpus_config()).splits["train"]
    branches = [reply_branch(ex) for ex in examples]
    counts = Counter(branches)
    assert any(b.endswith(":facts") for b in counts) and any(b.endswith(":nothing") for b in counts)
    assert all(b == ex.intent or b.startswith(ex.intent + ":") for b, ex in zip(branches, examples))
    floor = sorted(counts.values())[len(counts) // 2]  # the median branch: half the branches are below it
    repeats = branch_repeats(examples, floor, seed=0)
    assert (repeats == branch_repeats(examples, floor, seed=0)).all()
    assert repeats.min() >= 1 and repeats.max() <= BRANCH_REPEAT_CAP
    drawn = Counter()
    for branch, times in zip(branches, repeats):
        drawn[branch] += int(times)
    for branch, n in counts.items():
        want = min(floor, BRANCH_REPEAT_CAP * n) if n < floor else n
        assert abs(drawn[branch] - want) <= max(3, 0.25 * n), (branch, n, drawn[branch], want)
    assert (branch_repeats(examples, 1, seed=0) == 1).all()


def test_branch_floor_draws_repeated_turns_in_an_epoch_and_is_kept_on_resume(tmp_path: Path) -> None:
    from export.make_bundle import _recipe

    out = tmp_path / "branch"
    common = ["--preset", "tiny", "--out", str(out), "--no-progress", "--threads", "1", "--steps", "2"]
    assert main([*common, "--branch-floor", "40", "--stop-after", "1"]) == 0
    _, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert extra["data_config"]["branch_floor"] == 40 and extra["train_config"]["branch_floor"] == 40
    with pytest.raises(ValueError, match="branch_floor"):
        main([*common, "--resume", "--branch-floor", "0"])
    assert main([*common, "--resume"]) == 0
    assert _recipe(extra["train_config"], True, {"branch_floor": 40}).endswith("--branch-floor 40 && npc-runtime export")
    model_cfg, data_cfg, _ = preset_configs("tiny")
    from dataclasses import replace as with_

    balanced = prepare_data(with_(data_cfg, branch_floor=40), model_cfg.prefix_tokens, model_cfg.max_positions,
                            out / "data", progress=False, voice=True)  # fmt: skip
    repeats = balanced.splits["train"].repeats
    assert repeats is not None and repeats.max() > 1 and balanced.splits["val"].repeats is None
    with pytest.raises(ValueError, match="branch_floor"):
        with_(data_cfg, branch_floor=-1)


def test_cli_invent_facts_is_stored_named_in_the_recipe_and_a_resume_cannot_flip_it(tmp_path: Path) -> None:
    from export.make_bundle import _recipe

    out = tmp_path / "invent"
    common = ["--preset", "tiny", "--out", str(out), "--no-progress", "--threads", "1", "--steps", "2"]
    assert main([*common, "--fact-swap", "0.5", "--invent-facts", "--stop-after", "1"]) == 0
    _, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert extra["data_config"]["invent_facts"] == 2 and extra["train_config"]["invent_facts"] == 2  # the newest
    for flip in (["--no-invent-facts"], ["--invent-facts", "1"]):
        with pytest.raises(ValueError, match="invent_facts"):
            main([*common, "--resume", *flip])
    assert main([*common, "--resume"]) == 0
    recipe = _recipe(extra["train_config"], True, {"fact_swap": 0.5, "invent_facts": 2})
    assert recipe.endswith("--steps 2 --fact-swap 0.5 --invent-facts 2 && npc-runtime export")
    # runs of version 1 recorded true
    recipe = _recipe(extra["train_config"], True, {"fact_swap": 0.5, "invent_facts": True})
    assert recipe.endswith("--steps 2 --fact-swap 0.5 --invent-facts 1 && npc-runtime export")


def test_warm_start_begins_where_the_checkpoint_ended_and_adds_the_induction_bonus(tmp_path: Path) -> None:
    from export.make_bundle import _recipe
    from export.train import _warm_start

    source = tmp_path / "source"
    common = ["--preset", "tiny", "--no-progress", "--threads", "1"]
    assert main([*common, "--out", str(source), "--steps", "2"]) == 0
    before, source_extra = load_checkpoint(source / CHECKPOINT_NAME)
    assert before.cfg.copy_head and not before.cfg.copy_induction

    # The new model, warm-started, answers exactly as the checkpoint did: the bonus starts at zero.
    model_cfg, _, _ = preset_configs("tiny")
    torch.manual_seed(5)
    warm = RoleModel(replace(model_cfg, copy_induction=True)).eval()
    tokenizer = source / source_extra["tokenizer"]
    _warm_start(warm, source, tokenizer)
    assert float(warm.copy.induction.weight.detach().abs().sum()) == 0.0
    batch = {"input_ids": torch.tensor([[30, 31, 32, 30, 31]]), "prefix_embeds": torch.zeros(1, 5, model_cfg.d_model),
             "prefix_mask": torch.zeros(1, 5), "attention_mask": torch.ones(1, 5, dtype=torch.long),
             "position_ids": torch.arange(5).unsqueeze(0)}  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(warm.forward_step(**batch)[0], before.forward_step(**batch)[0])

    out = tmp_path / "warm"
    assert main([*common, "--out", str(out), "--steps", "2", "--copy-induction", "--init-from", str(source),
                 "--lr", "0.001"]) == 0  # fmt: skip
    trained, extra = load_checkpoint(out / CHECKPOINT_NAME)
    assert trained.cfg.copy_induction and trained.cfg.copy_head
    assert float(trained.copy.induction.weight.detach().abs().sum()) > 0.0  # it trained
    assert extra["train_config"]["init_from"] == str(source)
    recipe = _recipe(extra["train_config"], True, None, copy_head=True, copy_induction=True)
    assert recipe.endswith(f"--steps 2 --lr 0.001 --copy-induction --init-from {source} && npc-runtime export")
    with pytest.raises(ValueError, match="copy_induction"):
        main([*common, "--out", str(out), "--resume", "--no-copy-induction"])

    with pytest.raises(ValueError, match="lacks"):  # weights the new model has no place for
        _warm_start(RoleModel(replace(model_cfg, copy_head=False)), source, tokenizer)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _warm_start(warm, tmp_path / "nowhere", tokenizer)
    other = tmp_path / "other_tokenizer.json"
    other.write_text(tokenizer.read_text(encoding="utf-8").replace('"<pad>"', '"<PAD>"', 1), encoding="utf-8")
    with pytest.raises(ValueError, match="another tokenizer"):
        _warm_start(warm, source, other)


def test_recipe_of_the_default_preset_names_only_what_a_run_changed() -> None:
    from export.make_bundle import _recipe

    shipped = {"fact_swap": 0.8, "invent_facts": 2, "emotion_labels": "rule", "intent_hint": True,
               "intent_hint_folds": 0, "hint_lookup": 2, "branch_floor": 400, "reader_phrasings": 2,
               "offer_dropout": 0.35}  # fmt: skip
    run = {"preset": "default", "steps": 4400, "seed": 0}
    assert _recipe(run, True, shipped, copy_head=True, copy_induction=True) == (
        "npc-runtime train --preset default && npc-runtime export")  # fmt: skip
    # a reader with a hidden layer (tried, not shipped); the export reads a run that recorded none as linear
    # (DataConfig.from_dict), the preset's
    assert _recipe(run, True, {**shipped, "reader_hidden": 256}, copy_head=True, copy_induction=True).endswith(
        "--preset default --reader-hidden 256 && npc-runtime export")  # fmt: skip
    assert DataConfig.from_dict({}).reader_hidden == 0 == preset_configs("default")[1].reader_hidden
    assert _recipe(run, True, {**shipped, "reader_hidden": 0}, copy_head=True, copy_induction=True) == (
        "npc-runtime train --preset default && npc-runtime export")  # fmt: skip
    assert _recipe(run, True, shipped, copy_head=True, copy_induction=False).endswith(
        "--preset default --no-copy-induction && npc-runtime export")  # fmt: skip
    # without a copy head there is no bonus to turn off: --no-copy-head says both
    plain = _recipe({**run, "steps": 7000}, True, {"emotion_labels": "sampled", "invent_facts": False}, copy_head=False)
    assert plain == ("npc-runtime train --preset default --steps 7000 --no-copy-head --emotion-labels sampled "
                     "--fact-swap 0 --offer-dropout 0 --no-invent-facts && npc-runtime export")  # fmt: skip
    # the run shipped before the intent hints, and the cross-fitted hint run
    unhinted = _recipe(run, True, {**shipped, "intent_hint": False}, copy_head=True, copy_induction=True)
    assert unhinted.endswith("--preset default --no-intent-hint && npc-runtime export")
    bare = _recipe(run, True, {**shipped, "hint_lookup": False}, copy_head=True, copy_induction=True)
    assert bare.endswith("--preset default --no-hint-lookup && npc-runtime export")  # shipped before the lookup
    first = _recipe(run, True, {**shipped, "hint_lookup": True}, copy_head=True, copy_induction=True)
    assert first.endswith("--preset default --hint-lookup 1 && npc-runtime export")  # version 1 recorded true
    lookup2 = _recipe(run, True, {**shipped, "invent_facts": True, "branch_floor": 0}, copy_head=True,
                      copy_induction=True)  # fmt: skip
    assert lookup2.endswith("--preset default --invent-facts 1 --branch-floor 0 && npc-runtime export")  # before
    # the run shipped before offer dropout and version 2 of the phrasings (it recorded no offer dropout: 0)
    phrasings1 = {k: v for k, v in {**shipped, "reader_phrasings": 1}.items() if k != "offer_dropout"}
    assert _recipe(run, True, phrasings1, copy_head=True, copy_induction=True).endswith(
        "--preset default --offer-dropout 0 --reader-phrasings 1 && npc-runtime export")  # fmt: skip
    remedies = _recipe(run, True, {**shipped, "reader_phrasings": 0}, copy_head=True, copy_induction=True)
    assert remedies.endswith("--preset default --no-reader-phrasings && npc-runtime export")  # shipped before
    unhinted = _recipe(run, True, {**shipped, "intent_hint": False, "reader_phrasings": 0}, copy_head=True,
                       copy_induction=True)  # fmt: skip
    assert unhinted.endswith("--preset default --no-intent-hint && npc-runtime export")  # no reader, no phrasings
    crossed = _recipe(run, True, {**shipped, "intent_hint_folds": 5}, copy_head=True, copy_induction=True)
    assert crossed.endswith("--preset default --intent-hint-folds 5 && npc-runtime export")
    model_cfg, data_cfg, train_cfg = preset_configs("default")
    assert model_cfg.copy_head and model_cfg.copy_induction and train_cfg.steps == 4400
    assert data_cfg.intent_hint and data_cfg.intent_hint_folds == 0 and data_cfg.hint_lookup == 2
    assert data_cfg.branch_floor == 400 and data_cfg.invent_facts == 2 and data_cfg.reader_phrasings == 2
    assert data_cfg.offer_dropout == 0.35
