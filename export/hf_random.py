"""Random-weight Hugging Face checkpoints (Llama, Qwen2, GPT-2 families) saved as a studio would: for tests, benchmarks.

No model can be downloaded here, so ``import-hf`` is tested and benchmarked on checkpoints built by
:func:`random_checkpoint`: a small byte-level BPE trained on game-like lines and the bundled persona cards, wrapped as a fast tokenizer with the
family's special tokens and chat template (GPT-2 has none), and a model of the family's architecture with random
weights, ``save_pretrained`` into a directory. ``size="tiny"`` is two layers of width 64; ``size="qwen2.5-0.5b"``
has Qwen2.5-0.5B's shape (24 layers, width 896, 151,936 vocabulary) for realistic timings.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["FAMILIES", "SIZES", "random_checkpoint", "family_tokens"]

FAMILIES = ("llama", "qwen2", "gpt2")
SIZES = ("tiny", "qwen2.5-0.5b")

# A Llama-3-style and a ChatML-style chat template, written for these test checkpoints.
_LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_LINES = (
    "You are Brenna, the blacksmith. Stay in character at all times.",
    "Do you sell swords? Aye, forged this very morning. Mind the edge.",
    "Where is the old mill, friend? Down the road, past the chapel.",
    "What you know: name: Brenna | wares: longsword 40, dagger 12",
    "The scene now: time_of_day: night | weather: rain | location: forge",
    "Hello there! Evening, traveller. Twelve silver, and cheap at that.",
    "The king is ill, they say. No rams here, friend. Grüß dich, Schmied.",
    "Player: NPC: User: system user assistant",
)


def family_tokens(family: str) -> dict[str, object]:
    """Special tokens, their roles and the chat template of a family's test checkpoint."""
    if family == "llama":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        return {"specials": specials, "bos": specials[0], "eos": "<|eot_id|>", "pad": specials[1],
                "generation_eos": [specials[1], "<|eot_id|>"], "template": _LLAMA_TEMPLATE}  # fmt: skip
    if family == "qwen2":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        return {"specials": specials, "bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>",
                "generation_eos": ["<|im_end|>", "<|endoftext|>"], "template": _CHATML_TEMPLATE}  # fmt: skip
    if family == "gpt2":
        return {"specials": ["<|endoftext|>"], "bos": "<|endoftext|>", "eos": "<|endoftext|>", "pad": None,
                "generation_eos": ["<|endoftext|>"], "template": None}  # fmt: skip
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


def _train_tokenizer(specials: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from export.tiny import tiny_corpus
    from npc_runtime.personas import PersonaPack, default_pack_dir

    cards = [text for card in PersonaPack.load(default_pack_dir()) for text in (card.card_text(), card.knowledge_text())]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(_LINES) * 4 + cards * 2 + tiny_corpus(200), trainer=trainer)
    return tokenizer


def _config(family: str, size: str, vocab: int, ids: dict[str, int | None]):
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    if size == "qwen2.5-0.5b":
        if family != "qwen2":
            raise ValueError("size 'qwen2.5-0.5b' exists for the qwen2 family only")
        return Qwen2Config(
            vocab_size=151_936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
            num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32_768, rope_theta=1_000_000.0,
            tie_word_embeddings=True, rms_norm_eps=1e-6, bos_token_id=ids["bos"], eos_token_id=ids["eos"],
        )  # fmt: skip
    if size != "tiny":
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    # A wide initialiser makes the random logits decisive, so greedy parity is never decided by a near-tie.
    common = {"vocab_size": vocab, "bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "initializer_range": 0.2}
    if family == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=1024, **common)
    shape = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 1024}  # fmt: skip
    if family == "llama":
        return LlamaConfig(tie_word_embeddings=False, **shape, **common)
    return Qwen2Config(tie_word_embeddings=True, **shape, **common)


def random_checkpoint(
    family: str, out_dir: str | Path, seed: int = 0, size: str = "tiny", vocab_size: int = 1024
) -> Path:
    """Save a random ``family`` checkpoint (weights, config, generation config, tokenizer) to ``out_dir``."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    tokens = family_tokens(family)
    backend = _train_tokenizer(list(tokens["specials"]), vocab_size)  # type: ignore[arg-type]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=tokens["bos"],
        eos_token=tokens["eos"],
        pad_token=tokens["pad"],
        model_max_length=1024 if size == "tiny" else 32_768,
    )
    if tokens["template"]:
        tokenizer.chat_template = tokens["template"]
    ids = {"bos": backend.token_to_id(tokens["bos"]) if tokens["bos"] else None,
           "eos": [backend.token_to_id(t) for t in tokens["generation_eos"]]}  # fmt: skip
    config = _config(family, size, backend.get_vocab_size(), ids)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.eos_token_id = ids["eos"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
