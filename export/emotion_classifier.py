"""Train the runtime's emotion classifier: a small head on MiniLM sentence embeddings of the corpus reply lines.

The head (``EMOTION_HEAD_GRAPH`` in ``npc_runtime/emotion_classifier.py``) maps a reply's ``sentence_embedding``
to Ekman-plus-neutral logits and an intensity in 0..1. Only the head is shipped (``npc_runtime/models/emotion/``,
a few hundred kB); the encoder is the default bundle's int8 MiniLM or a copy ``import-hf`` puts in a bundle.
Held-out personas' lines give the reported macro-F1. ``python -m export.emotion_classifier`` trains and writes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from npc_runtime.emotion import EMOTIONS
from npc_runtime.emotion_classifier import EMOTION_HEAD_GRAPH, shared_head_path

__all__ = ["HeadConfig", "EmotionHead", "export_head", "export_minilm_int8", "macro_f1", "train", "main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadConfig:
    """Shape and training of the head."""

    embed_dim: int = 384
    hidden: int = 128
    epochs: int = 60
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class EmotionHead(nn.Module):
    """(B, E_txt) sentence embeddings -> (B, E) emotion logits and (B,) intensity in 0..1."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.hidden), nn.GELU())
        self.emotion = nn.Linear(cfg.hidden, len(EMOTIONS))
        self.intensity = nn.Linear(cfg.hidden, 1)

    def forward(self, sentence_embedding: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(sentence_embedding)  # (B, hidden)
        return self.emotion(h), torch.sigmoid(self.intensity(h)).squeeze(-1)


def export_head(head: EmotionHead, path: str | Path, embed_dim: int) -> Path:
    """The head as ONNX with a dynamic batch, checked against PyTorch."""
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names_in, names_out = list(EMOTION_HEAD_GRAPH["inputs"]), list(EMOTION_HEAD_GRAPH["outputs"])
    example = F.normalize(torch.randn(3, embed_dim), dim=-1)
    head.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            head, (example,), str(path), dynamo=False, input_names=names_in, output_names=names_out,
            dynamic_axes={names_in[0]: {0: "batch"}, names_out[0]: {0: "batch"}, names_out[1]: {0: "batch"}},
            opset_version=17,
        )  # fmt: skip
        want = head(example)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {names_in[0]: example.numpy()})
    diff = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    if diff > 1e-4:
        raise RuntimeError(f"emotion head ONNX disagrees with PyTorch by {diff}")
    return path


def export_minilm_int8(out_dir: str | Path) -> tuple[Path, Path]:
    """all-MiniLM-L6-v2 as an int8 ONNX sentence encoder and its tokenizer (reused when already there)."""
    from export.text_encoder import export_text_encoder, load_minilm, quantize_text_encoder

    out = Path(out_dir)
    encoder, tokenizer = out / "text_encoder.onnx", out / "text_encoder_tokenizer.json"
    if encoder.is_file() and tokenizer.is_file():
        return encoder, tokenizer
    out.mkdir(parents=True, exist_ok=True)
    minilm = load_minilm()
    fp32 = out / "text_encoder.fp32.onnx"
    export_text_encoder(minilm, fp32)
    quantize_text_encoder(minilm, fp32, encoder)
    fp32.unlink()
    minilm.save_tokenizer(tokenizer)
    return encoder, tokenizer


def macro_f1(truth: np.ndarray, predicted: np.ndarray, n_labels: int = len(EMOTIONS)) -> float:
    """Unweighted mean of the per-label F1 over labels that occur in ``truth`` or ``predicted``."""
    scores = []
    for label in range(n_labels):
        tp = int(np.sum((predicted == label) & (truth == label)))
        fp = int(np.sum((predicted == label) & (truth != label)))
        fn = int(np.sum((predicted != label) & (truth == label)))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def train(
    train_x: np.ndarray, train_y: np.ndarray, train_i: np.ndarray, cfg: HeadConfig
) -> EmotionHead:
    """Full-batch AdamW on cross-entropy (class-balanced) plus intensity MSE."""
    torch.manual_seed(cfg.seed)
    head = EmotionHead(cfg)
    x, y, i = torch.from_numpy(train_x), torch.from_numpy(train_y), torch.from_numpy(train_i)
    counts = torch.bincount(y, minlength=len(EMOTIONS)).float().clamp(min=1)
    weights = counts.sum() / (len(EMOTIONS) * counts)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for epoch in range(cfg.epochs):
        for batch in torch.randperm(len(y)).split(512):
            logits, intensity = head(x[batch])
            loss = F.cross_entropy(logits, y[batch], weight=weights) + F.mse_loss(intensity, i[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        log.debug("epoch %d loss %.4f", epoch, loss.item())
    return head.eval()


def _lines(config_kwargs: dict) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Unique reply lines per split (train, test_heldout), a line seen in training kept out of the test set."""
    from export.corpus import CorpusConfig, build_corpus

    corpus = build_corpus(CorpusConfig(**config_kwargs))
    seen: dict[str, dict[str, tuple[int, float]]] = {"train": {}, "test_heldout": {}}
    for ex in corpus.examples():
        if ex.split in seen:
            seen[ex.split].setdefault(ex.reply, (EMOTIONS.index(ex.emotion), float(ex.intensity)))
    for line in list(seen["test_heldout"]):
        if line in seen["train"]:
            del seen["test_heldout"][line]
    out = {}
    for split, lines in seen.items():
        texts = list(lines)
        out[split] = (
            texts,
            np.array([lines[t][0] for t in texts], dtype=np.int64),
            np.array([lines[t][1] for t in texts], dtype=np.float32),
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.emotion_classifier", description=__doc__)
    p.add_argument("--out", default=str(shared_head_path()), help="head ONNX file (default: %(default)s)")
    p.add_argument("--personas", type=int, default=120, help="procedural personas in the corpus")
    p.add_argument("--examples", type=int, default=120, help="examples per procedural persona")
    p.add_argument("--epochs", type=int, default=60)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from export.text_encoder import load_minilm

    data = _lines({"n_procedural_personas": args.personas, "examples_per_persona": args.examples})
    encoder = load_minilm()
    embedded = {split: encoder.encode_texts(texts).numpy() for split, (texts, _, _) in data.items()}
    cfg = HeadConfig(embed_dim=encoder.dim, epochs=args.epochs)
    head = train(embedded["train"], data["train"][1], data["train"][2], cfg)
    with torch.no_grad():
        logits, intensity = head(torch.from_numpy(embedded["test_heldout"]))
    truth = data["test_heldout"][1]
    report = {
        "train_lines": len(data["train"][0]),
        "heldout_lines": len(truth),
        "heldout_macro_f1": macro_f1(truth, logits.argmax(dim=1).numpy()),
        "heldout_accuracy": float(np.mean(logits.argmax(dim=1).numpy() == truth)),
        "heldout_intensity_mae": float(np.mean(np.abs(intensity.numpy() - data["test_heldout"][2]))),
        "encoder": "all-MiniLM-L6-v2 (fp32 while training; served int8)",
        "config": {"hidden": cfg.hidden, "epochs": cfg.epochs, "personas": args.personas, "examples": args.examples},
    }
    out = export_head(head, args.out, cfg.embed_dim)
    Path(out).with_name("emotion_head.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
