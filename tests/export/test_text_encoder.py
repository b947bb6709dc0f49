"""Tests of the sentence encoder: pooling maths, ONNX export parity, bundle tokenizer settings, MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.text_encoder import (
    TEXT_ENCODER_MAX_TOKENS,
    export_text_encoder,
    load_minilm,
    quantize_text_encoder,
    tiny_random_encoder,
)
from npc_runtime.bundle import ROLE_MODEL_GRAPHS

SENTENCES = ["Do you sell swords?", "Have you got any blades for sale?", "The weather is nice today.", "Hi"]


@pytest.fixture(scope="module")
def tiny_encoder():
    return tiny_random_encoder(dim=32, seed=0)


def test_embeddings_are_unit_vectors_independent_of_padding(tiny_encoder) -> None:
    batch = tiny_encoder.encode_texts(SENTENCES)
    assert batch.shape == (4, 32)
    torch.testing.assert_close(batch.norm(dim=1), torch.ones(4))
    alone = torch.cat([tiny_encoder.encode_texts([s]) for s in SENTENCES])
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=1e-5)  # padding in a batch changes nothing
    assert tiny_encoder.encode_texts([]).shape == (0, 32)
    small_batches = tiny_encoder.encode_texts(SENTENCES, batch_size=3)
    torch.testing.assert_close(small_batches, batch, atol=1e-6, rtol=1e-5)


def test_tiny_encoder_is_seeded(tiny_encoder) -> None:
    again = tiny_random_encoder(dim=32, seed=0).encode_texts(SENTENCES)
    other = tiny_random_encoder(dim=32, seed=1).encode_texts(SENTENCES)
    torch.testing.assert_close(again, tiny_encoder.encode_texts(SENTENCES))
    assert not torch.allclose(other, again)
    with pytest.raises(ValueError):
        tiny_random_encoder(dim=7)


def test_bundle_tokenizer_truncates_at_256(tiny_encoder, tmp_path: Path) -> None:
    path = tiny_encoder.save_tokenizer(tmp_path / "text_encoder_tokenizer.json")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    long_text = " ".join(["word"] * 1000)
    enc = tok.encode(long_text)
    assert len(enc.ids) == TEXT_ENCODER_MAX_TOKENS
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert len(tok.encode("hi").ids) == 3  # no fixed-length padding for a single text


def test_onnx_export_matches_pytorch_on_ragged_batches(tiny_encoder, tmp_path: Path) -> None:
    path = tmp_path / "text_encoder.onnx"
    report = export_text_encoder(tiny_encoder, path)
    assert report["max_abs_diff"] < 1e-4
    graph = onnx.load(str(path)).graph
    spec = ROLE_MODEL_GRAPHS["text_encoder"]
    assert [i.name for i in graph.input] == list(spec["inputs"])
    assert [o.name for o in graph.output] == list(spec["outputs"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for texts in (SENTENCES[:1], SENTENCES, SENTENCES[::-1] + ["a much longer sentence, " * 20]):
        feeds = tiny_encoder.tokenize(texts)
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
        np.testing.assert_allclose(got, tiny_encoder.encode_texts(texts).numpy(), atol=1e-5)


@pytest.mark.slow
def test_minilm_exports_quantizes_and_understands_paraphrases(tmp_path: Path) -> None:
    encoder = load_minilm()
    assert encoder.dim == 384
    report = export_text_encoder(encoder, tmp_path / "minilm.onnx")
    assert report["max_abs_diff"] < 1e-4
    int8 = quantize_text_encoder(encoder, tmp_path / "minilm.onnx", tmp_path / "minilm.int8.onnx")
    assert int8["min_cosine"] > 0.97  # about 0.988 measured
    assert (tmp_path / "minilm.int8.onnx").stat().st_size < (tmp_path / "minilm.onnx").stat().st_size / 3
    emb = encoder.encode_texts(SENTENCES[:3])
    sims = emb @ emb.T
    assert float(sims[0, 1]) > float(sims[0, 2]) + 0.2  # paraphrase closer than an unrelated sentence
