"""A sentence encoder graph (MiniLM in the shipped bundles) with its tokenizer: texts to ``(B, E)`` embeddings.

Used by the role-model engine (persona cards, player lines) and by the emotion classifier of imported models.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .bundle import ROLE_MODEL_GRAPHS
from .errors import BundleError
from .ort_backend import OrtGraph, RuntimeOptions

__all__ = ["SentenceEncoder"]

_GRAPH = ROLE_MODEL_GRAPHS["text_encoder"]


class SentenceEncoder:
    """Tokenizes a batch (truncated to ``max_tokens``, padded to its longest text) and runs the encoder graph."""

    def __init__(
        self,
        graph: Path,
        tokenizer: Path,
        max_tokens: int,
        options: RuntimeOptions,
        providers: Sequence[str],
    ) -> None:
        self.graph = OrtGraph(graph, _GRAPH["inputs"], _GRAPH["outputs"], options, providers)
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise BundleError(f"cannot read tokenizer {tokenizer}: {exc}", str(tokenizer)) from exc
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence embeddings ``(B, E)``; an empty text is encoded as "..."."""
        encodings = self.tokenizer.encode_batch([t if t.strip() else "..." for t in texts])
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)  # (B, L)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        out = self.graph.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        return out["sentence_embedding"].astype(np.float32)
