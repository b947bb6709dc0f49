"""Train the default role model (``npc-runtime train``): corpus to checkpoint, on CPU, one GPU or many (torchrun).

A fixed seed gives the same run; ``--resume`` continues a checkpoint exactly (model, optimiser, step, data order,
RNG states); ``--max-minutes`` stops cleanly and checkpoints; ``--fusion`` swaps the preset's prefix fusion (for the
fusion ablation), and the checkpoint's model config records it. Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank
trains on its shard of every epoch (``DistributedSampler``) inside ``DistributedDataParallel``; rank 0 logs,
evaluates and writes checkpoints. See "Training" in ``docs/model.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from export.fact_swap import INVENT_VERSION
from export.intent_reader import READER_PHRASINGS_VERSION
from npc_runtime.intent_hint import LOOKUP_VERSION

__all__ = ["PRESETS", "TrainConfig", "preset_configs", "reply_losses", "train", "main"]

log = logging.getLogger(__name__)

PRESETS = ("default", "small", "tiny")
CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.jsonl"
#: Training-data augmentations a run may set (``DataConfig`` fields, each a share of turns; flags ``--voice-swap``...).
SWAP_OPTIONS = ("voice_swap", "fact_swap", "player_dropout", "offer_dropout")
#: Every ``DataConfig`` field a run may set (a ``TrainConfig`` field of the same name, None: the preset's; the flag
#: is the name with dashes), in the order the recipe names them. A resume cannot change any of them.
DATA_OPTIONS = ("emotion_labels", *SWAP_OPTIONS, "invent_facts", "intent_hint", "intent_hint_folds", "hint_lookup",
                "branch_floor", "reader_phrasings", "reader_hidden")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of one run; the model and data configs come from the preset.

    ``fusion``, ``prompt_voice`` and ``copy_head`` are the model settings a run may change: None keeps the
    preset's (``RoleModelConfig.fusion``, ``.prompt_voice``, ``.copy_head``).
    """

    preset: str = "default"
    fusion: str | None = None
    prompt_voice: bool | None = None
    #: ``RoleModelConfig.spaced_quotes`` for this run (None: the preset's).
    spaced_quotes: bool | None = None
    copy_head: bool | None = None
    #: ``RoleModelConfig.copy_induction`` for this run (None: the preset's); it turns the copy head on too.
    copy_induction: bool | None = None
    #: Warm start: a checkpoint (or run folder) whose weights this run starts from; parameters it lacks (a new
    #: head) start as their own initialiser says, the optimiser and schedule start fresh. Its tokenizer must be
    #: the one this run's data builds.
    init_from: str | None = None
    #: ``DataConfig.voice_swap``, ``.fact_swap`` and ``.emotion_labels`` for this run (None: the preset's).
    voice_swap: float | None = None
    fact_swap: float | None = None
    #: ``DataConfig.player_dropout`` for this run (None: the preset's).
    player_dropout: float | None = None
    #: ``DataConfig.offer_dropout`` for this run (None: the preset's).
    offer_dropout: float | None = None
    emotion_labels: str | None = None
    #: ``DataConfig.invent_facts`` for this run (None: the preset's).
    invent_facts: int | None = None
    #: ``DataConfig.intent_hint`` and ``.intent_hint_folds`` for this run (None: the preset's).
    intent_hint: bool | None = None
    intent_hint_folds: int | None = None
    #: ``DataConfig.hint_lookup`` for this run (None: the preset's).
    hint_lookup: int | None = None
    #: ``DataConfig.branch_floor`` for this run (None: the preset's).
    branch_floor: int | None = None
    #: ``DataConfig.reader_phrasings`` for this run (None: the preset's).
    reader_phrasings: int | None = None
    #: ``DataConfig.reader_hidden`` for this run (None: the preset's).
    reader_hidden: int | None = None
    seed: int = 0
    steps: int = 2500
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    emotion_weight: float = 0.5
    intensity_weight: float = 0.5
    eval_every: int = 200
    eval_batches: int = 8
    checkpoint_every: int = 200
    max_minutes: float | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        for name in ("weight_decay", "grad_clip", "emotion_weight", "intensity_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads <= 0):
            raise ValueError(f"threads must be a positive int, got {self.threads!r}")
        if self.fusion is not None:
            from export.role_model import FUSIONS

            if self.fusion not in FUSIONS:
                raise ValueError(f"fusion must be one of {FUSIONS} or None, got {self.fusion!r}")

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine down to ``lr * min_lr_ratio`` at ``steps``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        floor = self.lr * self.min_lr_ratio
        return floor + 0.5 * (self.lr - floor) * (1.0 + math.cos(math.pi * progress))


def preset_configs(preset: str) -> tuple[Any, Any, TrainConfig]:
    """(RoleModelConfig, DataConfig, TrainConfig) of a preset.

    ``default`` is sized for the hour budget on 2 CPU cores (see docs/model.md, "Sizing"); ``small`` is a quick
    smoke run of the real pipeline; ``tiny`` is for tests (tiny corpus, random tiny text encoder, seconds).
    """
    from export.dataset import DataConfig
    from export.role_model import RoleModelConfig

    if preset == "default":
        # The shipped recipe (docs/model.md, "The shipped run"): the copy head with its induction bonus, trained on
        # turns whose facts are swapped for invented ones (a remedy kept a remedy), rule emotion labels, the intent
        # reader's hint after each player line with the fact its request turns on looked up, the rarest reply
        # branches (a remedy for an ailment) repeated up to 3 times, the reader also fitted on phrasings written for
        # it alone, a third of the quest answers without the offer before them; 4,400 steps fit the hour budget.
        data = DataConfig(fact_swap=0.8, invent_facts=INVENT_VERSION, emotion_labels="rule", intent_hint=True,
                          hint_lookup=LOOKUP_VERSION, branch_floor=400, reader_phrasings=READER_PHRASINGS_VERSION,
                          offer_dropout=0.35)  # fmt: skip
        model = RoleModelConfig(vocab_size=data.vocab_size, d_model=192, n_layers=4, n_heads=3, d_ff=576,
                                max_positions=384, n_persona_tokens=4, n_visual_tokens=16, image_size=64,
                                vision_channels=(16, 32, 64), prompt_voice=True, copy_head=True,
                                copy_induction=True)  # fmt: skip
        return model, data, TrainConfig(preset="default", steps=4400, max_minutes=57.0)
    if preset == "small":
        data = DataConfig(n_procedural_personas=60, examples_per_persona=60, examples_per_bundled_persona=200,
                          n_scenes=800)  # fmt: skip
        model = RoleModelConfig(vocab_size=data.vocab_size, d_model=128, n_layers=2, n_heads=2, d_ff=384,
                                max_positions=384, n_visual_tokens=4, image_size=32, vision_channels=(16, 32),
                                prompt_voice=True)  # fmt: skip
        return model, data, TrainConfig(preset="small", steps=200, batch_size=16, eval_every=50, checkpoint_every=50)
    if preset == "tiny":
        data = DataConfig(n_procedural_personas=3, examples_per_persona=12, examples_per_bundled_persona=6,
                          n_scenes=200, vocab_size=1200, text_encoder="tiny-random", text_embed_dim=32,
                          image_size=16)  # fmt: skip
        model = RoleModelConfig(vocab_size=data.vocab_size, d_model=32, n_layers=2, n_heads=2, d_ff=64,
                                max_positions=512, text_embed_dim=32, n_persona_tokens=2, n_visual_tokens=4,
                                image_size=16, vision_channels=(8, 16), prompt_voice=True, copy_head=True)  # fmt: skip
        return model, data, TrainConfig(preset="tiny", steps=8, batch_size=4, lr=3e-3, warmup_steps=2,
                                        eval_every=4, eval_batches=2, checkpoint_every=4)  # fmt: skip
    raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")


# --------------------------------------------------------------------------------------------------- the loss


def reply_losses(model: Any, batch: Mapping[str, Any], emotion_weight: float = 1.0,
                 intensity_weight: float = 1.0) -> dict[str, Any]:
    """The same losses as ``RoleModel.forward``, but the vocabulary projection runs only at labelled positions.

    Prompts are ~10x longer than replies and the projection onto 4096 tokens is a quarter of the decoder's
    arithmetic, so projecting every position would waste most of it. The test suite checks this equals
    ``RoleModel.forward``.
    """
    import torch
    import torch.nn.functional as F

    from export.role_model import IGNORE_INDEX, attention_bias, place_prefix

    visual = model.encode_vision(batch["image"])  # (B, N, D)
    prefix = model.encode_prefix(batch["persona_embedding"], batch["utterance_embedding"], visual, batch["image_present"])
    input_ids, prefix_mask = batch["input_ids"], batch["prefix_mask"]
    mask = prefix_mask.unsqueeze(-1)  # (B, L, 1)
    x = model.tok_emb(input_ids) * (1.0 - mask) + place_prefix(prefix, prefix_mask) * mask  # (B, L, D)
    x = model.drop(x + model.pos_emb(batch["position_ids"]))
    bias = attention_bias(batch["attention_mask"], input_ids.shape[1])
    for block in model.blocks:
        x, _, _ = block(x, bias, None)
    h = model.ln_f(x)  # (B, L, D)
    labels = batch["labels"]
    picked = labels != IGNORE_INDEX  # (B, L)
    logits = model.lm_head(h[picked])  # (n_labelled, V)
    if model.cfg.copy_head:
        lm_loss = -model.copy.label_log_probs(h, input_ids, bias, picked, logits, labels[picked]).mean()
    else:
        lm_loss = F.cross_entropy(logits, labels[picked])
    rows = torch.arange(h.shape[0], device=h.device)
    h_emotion = h[rows, batch["emotion_position"]]  # (B, D)
    emotion_logits = model.emotion_head(h_emotion)  # (B, E)
    emotion_loss = F.cross_entropy(emotion_logits, batch["emotion_label"])
    intensity = torch.sigmoid(model.intensity_head(h_emotion)).squeeze(-1)  # (B,)
    intensity_loss = ((intensity - batch["emotion_intensity"]) ** 2).mean()
    loss = lm_loss + emotion_weight * emotion_loss + intensity_weight * intensity_loss
    return {"loss": loss, "lm_loss": lm_loss, "emotion_loss": emotion_loss, "intensity_loss": intensity_loss,
            "emotion_logits": emotion_logits}


def _loss_module(model: Any, cfg: TrainConfig) -> Any:
    """A module whose forward is :func:`reply_losses`, so DistributedDataParallel sees every forward."""
    from torch import nn

    class _Loss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: Mapping[str, Any]) -> Any:
            out = reply_losses(self.model, batch, cfg.emotion_weight, cfg.intensity_weight)
            return out["loss"], out["lm_loss"].detach(), out["emotion_loss"].detach()

    return _Loss()


# --------------------------------------------------------------------------------------------------- the run


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    info = _Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    return info


def _warm_start(model: Any, source: Path, tokenizer_path: Path) -> None:
    """Load the weights of checkpoint ``source`` (or ``source/checkpoint.pt``) into ``model``.

    Parameters the checkpoint lacks keep their initial values (the induction bonus starts at zero, so the model
    begins exactly where the checkpoint ended); one the checkpoint has but the model lacks, a shape that differs
    or a different tokenizer is an error, since the weights would then mean something else.
    """
    import torch

    path = source / CHECKPOINT_NAME if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved_tokenizer = path.parent / str(state.get("extra", {}).get("tokenizer", ""))
    if not saved_tokenizer.is_file() or saved_tokenizer.read_bytes() != tokenizer_path.read_bytes():
        raise ValueError(f"--init-from: {path} was trained with another tokenizer than this run's data builds "
                         f"({saved_tokenizer} vs {tokenizer_path}); use the same preset and data options")  # fmt: skip
    own = model.state_dict()
    extra = sorted(set(state["state_dict"]) - set(own))
    if extra:
        raise ValueError(f"--init-from: {path} has weights this model lacks: {', '.join(extra[:5])}; match its "
                         "model options (--copy-head, --fusion, --no-voice)")  # fmt: skip
    for name, tensor in state["state_dict"].items():
        if tuple(own[name].shape) != tuple(tensor.shape):
            raise ValueError(f"--init-from: {name} is {tuple(tensor.shape)} in {path}, {tuple(own[name].shape)} here")
    missing = sorted(set(own) - set(state["state_dict"]))
    model.load_state_dict(state["state_dict"], strict=False)
    log.info("warm start from %s (step %s); new parameters: %s", path, state.get("extra", {}).get("step", "?"),
             ", ".join(missing) or "none")  # fmt: skip


def _to(batch: Mapping[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _rng_state() -> dict[str, Any]:
    import torch

    state = random.getstate()
    return {"torch": torch.get_rng_state(), "python": [state[0], list(state[1]), state[2]]}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _save(path: Path, model: Any, optimizer: Any, extra: dict[str, Any]) -> None:
    """Checkpoint readable by ``role_model.load_checkpoint`` (config, state_dict, extra) plus optimiser and RNG."""
    import torch

    payload = {
        "config": model.cfg.to_dict(),
        "state_dict": model.state_dict(),
        "extra": extra,
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def _evaluate(model: Any, data: Any, cfg: TrainConfig, device: Any) -> dict[str, float]:
    """Mean val losses and emotion accuracy over the first ``eval_batches`` val batches (a fixed set)."""
    import torch

    from export.dataset import length_grouped_batches

    val = data.splits["val"]
    # A val split smaller than a batch (tiny corpora) is still evaluated, as one smaller batch.
    size = max(1, min(cfg.batch_size, len(val)))
    batches = length_grouped_batches(range(len(val)), val.lengths, size, seed=1234, epoch=0)
    batches = batches[: cfg.eval_batches]
    totals = {"val_loss": 0.0, "val_lm_loss": 0.0, "val_emotion_loss": 0.0, "val_emotion_acc": 0.0}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for rows in batches:
            batch = _to(data.batch("val", rows), device)
            out = reply_losses(model, batch, cfg.emotion_weight, cfg.intensity_weight)
            totals["val_loss"] += float(out["loss"])
            totals["val_lm_loss"] += float(out["lm_loss"])
            totals["val_emotion_loss"] += float(out["emotion_loss"])
            hits = out["emotion_logits"].argmax(dim=-1) == batch["emotion_label"]
            totals["val_emotion_acc"] += float(hits.float().mean())
    model.train(was_training)
    return {k: round(v / max(1, len(batches)), 4) for k, v in totals.items()}


def _append_log(path: Path, record: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> dict[str, Any]:
    """Run (or resume) training into ``out_dir``; returns a summary (steps done, last losses, wall time).

    ``wall_s`` is this session's time; ``total_wall_s`` adds the sessions a ``--resume`` continued (a checkpoint
    written before that field existed counts as 0).

    ``stop_after`` ends the run (with a checkpoint) after that many steps without changing the schedule, as if
    interrupted: ``--resume`` then continues exactly.
    """
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DistributedSampler
    from tqdm import tqdm

    from export.dataset import DataConfig, length_grouped_batches, prepare_data
    from export.role_model import RoleModel, RoleModelConfig

    started = time.monotonic()
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    dist_info = _init_distributed()
    device = torch.device(f"cuda:{dist_info.local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // dist_info.world))

    model_cfg, data_cfg, _ = preset_configs(cfg.preset)
    if cfg.fusion is not None:
        model_cfg = replace(model_cfg, fusion=cfg.fusion)
    if cfg.prompt_voice is not None:
        model_cfg = replace(model_cfg, prompt_voice=cfg.prompt_voice)
    if cfg.spaced_quotes is not None:
        model_cfg = replace(model_cfg, spaced_quotes=cfg.spaced_quotes)
    if cfg.copy_head is not None:  # no copy head: no induction bonus either (unless --copy-induction asks for both)
        model_cfg = replace(model_cfg, copy_head=cfg.copy_head,
                            copy_induction=model_cfg.copy_induction and cfg.copy_head)  # fmt: skip
    if cfg.copy_induction is not None:
        model_cfg = replace(model_cfg, copy_induction=cfg.copy_induction,
                            copy_head=model_cfg.copy_head or cfg.copy_induction)  # fmt: skip
    data_cfg = replace(data_cfg, **{k: getattr(cfg, k) for k in DATA_OPTIONS if getattr(cfg, k) is not None})
    state: dict[str, Any] | None = None
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = state["extra"]
        saved_model_cfg = RoleModelConfig.from_dict(state["config"])
        # The weights fix the fusion: a different one would not even load, so say so before any work.
        if cfg.fusion is not None and cfg.fusion != saved_model_cfg.fusion:
            raise ValueError(f"--resume: {ckpt_path} was trained with fusion {saved_model_cfg.fusion!r}, not "
                             f"{cfg.fusion!r}; drop --fusion or train into another folder")  # fmt: skip
        if cfg.prompt_voice is not None and cfg.prompt_voice != saved_model_cfg.prompt_voice:
            raise ValueError(f"--resume: {ckpt_path} was trained with prompt_voice={saved_model_cfg.prompt_voice}; "
                             "drop --no-voice or train into another folder")  # fmt: skip
        if cfg.spaced_quotes is not None and cfg.spaced_quotes != saved_model_cfg.spaced_quotes:
            raise ValueError(f"--resume: {ckpt_path} was trained with spaced_quotes={saved_model_cfg.spaced_quotes}; "
                             "drop --spaced-quotes/--no-spaced-quotes or train into another folder")  # fmt: skip
        if cfg.copy_head is not None and cfg.copy_head != saved_model_cfg.copy_head:
            raise ValueError(f"--resume: {ckpt_path} was trained with copy_head={saved_model_cfg.copy_head}; "
                             "drop --copy-head/--no-copy-head or train into another folder")  # fmt: skip
        saved_data = DataConfig.from_dict(saved["data_config"])  # fills in what runs of before an option had
        for key in DATA_OPTIONS:
            if getattr(cfg, key) is not None and getattr(cfg, key) != getattr(saved_data, key):
                flag = "--" + key.replace("_", "-")
                raise ValueError(f"--resume: {ckpt_path} was trained with {key}={getattr(saved_data, key)}; drop "
                                 f"{flag} or train into another folder")  # fmt: skip
        if cfg.copy_induction is not None and cfg.copy_induction != saved_model_cfg.copy_induction:
            raise ValueError(f"--resume: {ckpt_path} was trained with copy_induction="
                             f"{saved_model_cfg.copy_induction}; drop --copy-induction or train into another "
                             "folder")  # fmt: skip
        cfg = replace(TrainConfig(**saved["train_config"]), max_minutes=cfg.max_minutes, threads=cfg.threads)
        data_cfg = saved_data
        model_cfg = saved_model_cfg
    data_cfg = replace(data_cfg, image_size=model_cfg.image_size, image_mean=tuple(model_cfg.image_mean),
                       image_std=tuple(model_cfg.image_std), text_embed_dim=model_cfg.text_embed_dim)  # fmt: skip

    # Rank 0 builds the caches first; the others then read them.
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
        data = prepare_data(data_cfg, model_cfg.prefix_tokens, model_cfg.max_positions, out / "data",
                            voice=model_cfg.prompt_voice, spaced_quotes=model_cfg.spaced_quotes,
                            progress=progress)  # fmt: skip
    if dist_info.world > 1:
        dist.barrier()
    if not dist_info.main:
        data = prepare_data(data_cfg, model_cfg.prefix_tokens, model_cfg.max_positions, out / "data",
                            voice=model_cfg.prompt_voice, spaced_quotes=model_cfg.spaced_quotes,
                            progress=False)  # fmt: skip
    from export.tokenizer import load_tokenizer

    vocab = load_tokenizer(data.tokenizer_path).get_vocab_size()
    if vocab > model_cfg.vocab_size:
        raise ValueError(f"tokenizer has {vocab} tokens, model only {model_cfg.vocab_size}")
    prep_s = time.monotonic() - started

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = RoleModel(model_cfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "pos" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )
    step, epoch, batch_in_epoch, history = 0, 0, 0, []
    earlier_wall_s = 0.0  # wall time of the sessions before a --resume, data preparation included
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        step, epoch, batch_in_epoch = state["extra"]["step"], state["extra"]["epoch"], state["extra"]["batch_in_epoch"]
        history = list(state["extra"].get("history", []))
        earlier_wall_s = float(state["extra"].get("total_wall_s", 0.0))
        log.info("resumed %s at step %d (epoch %d, batch %d)", ckpt_path, step, epoch, batch_in_epoch)
    elif cfg.init_from is not None:
        _warm_start(model, Path(cfg.init_from), data.tokenizer_path)
    loss_module = _loss_module(model, cfg)
    trainer = DistributedDataParallel(loss_module) if dist_info.world > 1 else loss_module

    train_split = data.splits["train"]
    lengths = train_split.lengths
    sampler = DistributedSampler(range(len(train_split)), num_replicas=dist_info.world, rank=dist_info.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)  # fmt: skip

    def epoch_batches(e: int) -> list[list[int]]:
        sampler.set_epoch(e)
        return length_grouped_batches(list(sampler), lengths, cfg.batch_size, cfg.seed, e,
                                      repeats=train_split.repeats)  # fmt: skip

    def extra(done: int, e: int, b: int) -> dict[str, Any]:
        return {
            "step": done, "epoch": e, "batch_in_epoch": b, "history": history,
            "train_config": asdict(cfg), "data_config": data_cfg.to_dict(),
            "tokenizer": str(data.tokenizer_path.relative_to(out)), "text_encoder": data_cfg.text_encoder,
            "corpus_digest": data.corpus_digest, "world_size": dist_info.world,
            **({"intent_reader": str(data.intent_reader_path.relative_to(out))} if data.intent_reader_path else {}),
            "total_wall_s": round(earlier_wall_s + time.monotonic() - started, 1),
        }  # fmt: skip

    log_path = out / LOG_NAME
    if dist_info.main and state is None:
        log_path.unlink(missing_ok=True)  # a fresh run starts a fresh log
    if dist_info.main:
        log.info("model %d parameters (fusion %s, %d prefix tokens), %d train turns, %d val turns, data prepared "
                 "in %.0f s", model.num_parameters(), model_cfg.fusion, model_cfg.prefix_tokens, len(train_split),
                 len(data.splits["val"]), prep_s)  # fmt: skip
    batches = epoch_batches(epoch)
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (progress and dist_info.main), dynamic_ncols=True)
    tokens_seen, window_start = 0, time.monotonic()
    model.train()
    last: dict[str, float] = {}
    stopped_early = False
    while step < cfg.steps:
        if batch_in_epoch >= len(batches):
            epoch, batch_in_epoch = epoch + 1, 0
            batches = epoch_batches(epoch)
        rows = batches[batch_in_epoch]
        batch = _to(data.batch("train", rows), device)
        lr = cfg.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, lm_loss, emotion_loss = trainer(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else None
        optimizer.step()
        step += 1
        batch_in_epoch += 1
        tokens_seen += int(batch["attention_mask"].sum())
        last = {"loss": float(loss.detach()), "lm_loss": float(lm_loss), "emotion_loss": float(emotion_loss)}
        elapsed = time.monotonic() - window_start
        bar.update(1)
        bar.set_postfix(loss=f"{last['loss']:.3f}", lm=f"{last['lm_loss']:.3f}", lr=f"{lr:.1e}",
                        tok_s=f"{tokens_seen * dist_info.world / max(elapsed, 1e-9):.0f}")  # fmt: skip
        record: dict[str, Any] = {"step": step, "lr": lr, **{k: round(v, 5) for k, v in last.items()}}
        if grad_norm is not None:
            record["grad_norm"] = round(float(grad_norm), 4)
        out_of_time = cfg.max_minutes is not None and time.monotonic() - started > cfg.max_minutes * 60
        out_of_time = out_of_time or (stop_after is not None and step >= stop_after)
        if dist_info.world > 1:  # every rank must agree to stop, or the others wait forever in all-reduce
            flag = torch.tensor([1.0 if out_of_time else 0.0], device=device)
            dist.all_reduce(flag)
            out_of_time = bool(flag.item() > 0)
        finishing = step >= cfg.steps or out_of_time
        if dist_info.main and (step % cfg.eval_every == 0 or finishing):
            record.update(_evaluate(model, data, cfg, device))
            record["wall_s"] = round(time.monotonic() - started, 1)
            history.append(record)
            log.info("step %d: %s", step, record)
        if dist_info.main:
            _append_log(log_path, record)
            if step % cfg.checkpoint_every == 0 or finishing:
                _save(ckpt_path, model, optimizer, extra(step, epoch, batch_in_epoch))
        if out_of_time:
            stopped_early = step < cfg.steps
            log.warning("stopping at step %d of %d (time budget or --stop-after)", step, cfg.steps)
            break
    bar.close()
    if dist_info.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    wall_s = time.monotonic() - started
    summary = {
        "steps": step, "target_steps": cfg.steps, "stopped_early": stopped_early, "fusion": model_cfg.fusion,
        "prompt_voice": model_cfg.prompt_voice, "spaced_quotes": model_cfg.spaced_quotes,
        "copy_head": model_cfg.copy_head,
        "copy_induction": model_cfg.copy_induction, "init_from": cfg.init_from, "last": last,
        "history": history, "wall_s": round(wall_s, 1), "data_prep_s": round(prep_s, 1),
        "total_wall_s": round(earlier_wall_s + wall_s, 1),
        "checkpoint": str(ckpt_path), "world_size": dist_info.world,
    }  # fmt: skip
    if dist_info.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    from export.corpus_emotion import EMOTION_LABELS
    from export.role_model import FUSIONS

    parser = argparse.ArgumentParser(prog="npc-runtime train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/default"), help="run folder (default: runs/default)")
    parser.add_argument("--preset", choices=PRESETS, default="default", help="model, data and schedule sizes")
    parser.add_argument("--fusion", choices=FUSIONS, default=None,
                        help="prefix fusion of persona, screenshot and utterance (default: the preset's, concat); "
                        "with --resume it must match the checkpoint's")  # fmt: skip
    parser.add_argument("--no-voice", action="store_true",
                        help="leave the card's traits, mood and speaking style off the decoder's <know> line (the "
                        "layout before voice lines; for ablations)")  # fmt: skip
    parser.add_argument("--spaced-quotes", action=argparse.BooleanOptionalAction, default=None,
                        help="a space inside each double quote on the <know> line, so a quoted catchphrase's first "
                        "word is the token a reply says and the copy head can copy it (default: the preset's, off)")  # fmt: skip
    parser.add_argument("--copy-head", action=argparse.BooleanOptionalAction, default=None,
                        help="a pointer (copy) head that mixes copying a prompt token into the next-token "
                        "distribution (default: the preset's; on in the default preset, see docs/model.md); --no-copy-head "
                        "also drops the induction bonus")  # fmt: skip
    parser.add_argument("--copy-induction", action=argparse.BooleanOptionalAction, default=None,
                        help="the copy head's induction bonus: point at the piece that followed the piece just "
                             "read (implies --copy-head; default: the preset's, on in the default preset)")  # fmt: skip
    parser.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="warm start: begin from this checkpoint's (or run folder's) weights with a fresh "
                             "optimiser and schedule; it must use the same tokenizer")  # fmt: skip
    parser.add_argument("--emotion-labels", choices=EMOTION_LABELS, default=None,
                        help="how the corpus sets emotion labels: drawn from the situation's weights, or the rule's "
                        "likeliest label (default: the preset's: rule in the default preset, sampled in the others)")  # fmt: skip
    parser.add_argument("--voice-swap", type=float, default=None, metavar="SHARE",
                        help="share of generated personas' training turns given generated catchphrases and forms of "
                        "address, so the model learns to copy them from the card (default: the preset's, 0)")  # fmt: skip
    parser.add_argument("--fact-swap", type=float, default=None, metavar="SHARE",
                        help="share of generated personas' training turns given another name, other numbers and "
                        "another quest on the card and in the turn's texts, so the model learns to copy them from "
                        "the card (default: the preset's)")  # fmt: skip
    parser.add_argument("--player-dropout", type=float, default=None, metavar="SHARE",
                        help="share of training turns whose player line is left out of the decoder text, its "
                        "sentence embedding kept, so the model learns to read phrasings it never saw from the "
                        "embedding (default: the preset's)")  # fmt: skip
    parser.add_argument("--offer-dropout", type=float, default=None, metavar="SHARE",
                        help="share of the training turns accepting or declining a quest whose history loses the "
                        "NPC's offer, so the model learns to answer one offered in an earlier session from the card "
                        "(default: the preset's)")  # fmt: skip
    parser.add_argument("--invent-facts", type=int, nargs="?", const=INVENT_VERSION, default=None, metavar="VERSION",
                        help="the fact swap invents the new name from syllables and the role, wares, places and "
                        "quest title from words no corpus card uses, so they are split into several tokens as on a "
                        f"card written by hand, by the rules of VERSION (default {INVENT_VERSION}, the newest: a "
                        "remedy keeps a remedy word; 1: every ware alike) (default: the preset's)")  # fmt: skip
    parser.add_argument("--no-invent-facts", dest="invent_facts", action="store_const", const=0,
                        help="the fact swap takes new names from the corpus's lists (version 0)")
    parser.add_argument("--intent-hint", action=argparse.BooleanOptionalAction, default=None,
                        help="put an intent reader's hint (fitted on the sentence embeddings of the training lines) "
                        "after each player line, so a phrasing never seen in training is read as the request it is; "
                        "the bundle carries the reader (default: the preset's: on in the default preset)")  # fmt: skip
    parser.add_argument("--intent-hint-folds", type=int, default=None, metavar="N",
                        help="with --intent-hint: each training turn's hint comes from a reader fitted without its "
                        "template, the templates split into N groups (as often wrong as on a new phrasing); 0: from "
                        "the reader fitted on every training line, as served (default: 0)")  # fmt: skip
    parser.add_argument("--hint-lookup", type=int, nargs="?", const=LOOKUP_VERSION, default=None, metavar="VERSION",
                        help="with --intent-hint: add the facts a request turns on to its hint, looked up on the card "
                        "or scene as the runtime does ('ask item: sword', 'buy: candle 3', 'ask place: the square'), "
                        f"by the rules of VERSION (default {LOOKUP_VERSION}, the newest; 1: held item, named ware and "
                        "quest title only); the bundle's reader tells the runtime to do the same (default: the "
                        "preset's)")  # fmt: skip
    parser.add_argument("--no-hint-lookup", dest="hint_lookup", action="store_const", const=0,
                        help="no looked-up facts in the hints (version 0)")
    parser.add_argument("--branch-floor", type=int, default=None, metavar="N",
                        help="repeat the training turns of a reply branch (an intent, and whether the reply carries "
                        "card facts or says the player holds nothing) with fewer than N turns, up to 3 times, so a "
                        "rare branch is learnt from the card and scene instead of the usual reply; 0: off (default: "
                        "the preset's)")  # fmt: skip
    parser.add_argument("--reader-phrasings", type=int, nargs="?", const=READER_PHRASINGS_VERSION, default=None,
                        metavar="VERSION",
                        help="with --intent-hint: fit the intent reader on the training lines plus the extra "
                        f"phrasings of VERSION (default {READER_PHRASINGS_VERSION}, the newest), written for the "
                        "reader alone, so it reads more phrasings no template has; the corpus's turns are unchanged "
                        "(default: the preset's)")  # fmt: skip
    parser.add_argument("--no-reader-phrasings", dest="reader_phrasings", action="store_const", const=0,
                        help="fit the intent reader on the training lines alone (version 0)")
    parser.add_argument("--reader-hidden", type=int, default=None, metavar="WIDTH",
                        help="with --intent-hint: the served intent reader has a hidden ReLU layer of WIDTH before "
                        "its softmax regression, so it places more phrasings no template has; the turns' hints, "
                        "and so the model, are unchanged; 0: linear (default: the preset's)")  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out exactly")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size (per rank)")
    parser.add_argument("--lr", type=float, default=None, help="override the preset's peak learning rate")
    parser.add_argument("--seed", type=int, default=None, help="override the seed (default 0)")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop cleanly and checkpoint after this")
    parser.add_argument("--stop-after", type=int, default=None, help="stop (and checkpoint) after this step")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: CPU count / ranks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _, _, cfg = preset_configs(args.preset)
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "max_minutes": args.max_minutes, "threads": args.threads, "fusion": args.fusion,
                 "prompt_voice": False if args.no_voice else None, "spaced_quotes": args.spaced_quotes,
                 "copy_head": args.copy_head, "copy_induction": args.copy_induction,
                 "init_from": None if args.init_from is None else str(args.init_from),
                 **{key: getattr(args, key) for key in DATA_OPTIONS}}  # fmt: skip
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if args.steps is not None and args.steps < cfg.eval_every:
        cfg = replace(cfg, eval_every=args.steps, checkpoint_every=args.steps)
    summary = train(cfg, args.out, resume=args.resume, progress=not args.no_progress, stop_after=args.stop_after)
    log.info("training done: %d steps in %.0f s; checkpoint %s", summary["steps"], summary["wall_s"], summary["checkpoint"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
