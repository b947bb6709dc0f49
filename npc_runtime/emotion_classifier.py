"""The runtime's emotion classifier: a finished reply's emotion from its text, for bundles without an emotion head.

Two ONNX graphs, no torch: a MiniLM sentence encoder (the role model's ``text_encoder`` graph) and a small head that
maps its ``sentence_embedding`` to emotion logits and an intensity. An imported ``causal-lm`` bundle carries both
(manifest assets ``emotion_encoder``, ``emotion_tokenizer``, ``emotion_head``); otherwise the head shipped with the
package (``models/emotion/``) is used on top of the default role-model bundle's text encoder. ``export/
emotion_classifier.py`` trains the head.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle, default_bundle_dir
from .emotion import EMOTIONS, summarise
from .errors import BundleError
from .ort_backend import OrtGraph, RuntimeOptions
from .sentence_encoder import SentenceEncoder

__all__ = [
    "EMOTION_HEAD_GRAPH",
    "EMOTION_HEAD_FILE",
    "EmotionFiles",
    "EmotionClassifier",
    "shared_head_path",
    "find_emotion_files",
]

log = logging.getLogger(__name__)

#: Input and output names of the head graph. E_txt: sentence-embedding width, E: emotion labels.
EMOTION_HEAD_GRAPH: dict[str, tuple[str, ...]] = {
    "inputs": ("sentence_embedding",),  # float32 (B, E_txt), unit vectors from the text encoder
    "outputs": ("emotion_logits", "emotion_intensity"),  # float32 (B, E), float32 (B,) in 0..1
}
EMOTION_HEAD_FILE = "emotion_head.onnx"
_MAX_TOKENS = 128  # replies are short; longer ones are cut


def shared_head_path() -> Path:
    """The head shipped with the package (trained on real MiniLM embeddings of the corpus replies)."""
    return Path(__file__).resolve().parent / "models" / "emotion" / EMOTION_HEAD_FILE


@dataclass(frozen=True)
class EmotionFiles:
    """Where the classifier's three files are."""

    encoder: Path
    tokenizer: Path
    head: Path


def find_emotion_files(bundle: Bundle) -> EmotionFiles | None:
    """The bundle's own classifier, else the shared head on the default bundle's encoder; None when neither exists."""
    assets = bundle.manifest.get("assets", {})
    if all(key in assets for key in ("emotion_encoder", "emotion_tokenizer", "emotion_head")):
        return EmotionFiles(
            bundle.file("emotion_encoder"), bundle.file("emotion_tokenizer"), bundle.file("emotion_head")
        )
    default = default_bundle_dir()
    shared = EmotionFiles(default / "text_encoder.onnx", default / "text_encoder_tokenizer.json", shared_head_path())
    if all(path.is_file() for path in (shared.encoder, shared.tokenizer, shared.head)):
        return shared
    return None


class EmotionClassifier:
    """Sentence encoder plus head: texts to emotion logits ``(B, E)`` and intensities ``(B,)``."""

    def __init__(
        self, files: EmotionFiles, options: RuntimeOptions, providers: Sequence[str], labels: Sequence[str] = EMOTIONS
    ) -> None:
        for path in (files.encoder, files.tokenizer, files.head):
            if not path.is_file():
                raise BundleError(f"emotion classifier file missing: {path}", str(path))
        self.files = files
        self.labels = tuple(labels)
        self.encoder = SentenceEncoder(files.encoder, files.tokenizer, _MAX_TOKENS, options, providers)
        self.head = OrtGraph(
            files.head, EMOTION_HEAD_GRAPH["inputs"], EMOTION_HEAD_GRAPH["outputs"], options, providers
        )

    def classify(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Emotion logits ``(B, E)`` and intensity ``(B,)`` of ``texts``."""
        out = self.head.run({"sentence_embedding": self.encoder.encode(texts)})
        return out["emotion_logits"].astype(np.float32), out["emotion_intensity"].astype(np.float32)

    def emotion(self, text: str) -> dict[str, Any]:
        """The protocol's emotion map for one reply."""
        logits, intensity = self.classify([text])
        return summarise(logits[0].tolist(), float(intensity[0]), self.labels)
