"""Shared fixtures for the export tests: tiny tokenizer and tiny models, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from export.role_model import RoleModel
from export.tiny import TINY_VOCAB_SIZE, build_tiny_bundle, tiny_config, tiny_corpus
from export.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    return train_tokenizer(tiny_corpus(), TINY_VOCAB_SIZE, path)


def _make_model(fusion: str = "concat", seed: int = 0, **overrides: object) -> RoleModel:
    cfg = tiny_config(TINY_VOCAB_SIZE, fusion)
    if overrides:
        cfg = type(cfg).from_dict({**cfg.to_dict(), **overrides})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RoleModel(cfg).eval()


@pytest.fixture
def make_model() -> Callable[..., RoleModel]:
    """Factory of tiny role models: make_model(fusion="concat", seed=0, **config_overrides)."""
    return _make_model


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", seed=0)
