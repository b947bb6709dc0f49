"""Turn a training run into a model bundle (``npc-runtime export``): ONNX graphs, parity, int8 and its measured cost.

Steps: rebuild the model from the run's checkpoint; export the sentence encoder and the role model's graphs with
``export.bundle_writer.write_bundle`` (fp32 parity with PyTorch is checked there: greedy tokens identical, max
logit difference stored in the manifest); then, with ``--quantize int8``, quantise graph by graph and measure what
int8 costs on validation turns run through the bundle exactly as served (reply loss, emotion accuracy, facts
copied into greedy replies, greedy-token agreement, sentence-encoder cosine). A graph whose int8 version costs more
than the thresholds stays fp32, and the manifest says so under ``quality``. The sentence encoder must be int8 to
fit the size budget, so it has a cosine floor instead. See "Bundle" in ``docs/model.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npc_runtime.errors import BundleError, NpcRuntimeError

from .requantize import ACTIVATION_SCALES

__all__ = ["BundleConfig", "QualityReport", "make_bundle", "evaluate_bundle", "rewrite_manifest", "main"]

log = logging.getLogger(__name__)

#: The spelling constraint's word list in a bundle (``npc_runtime.spelling``).
LEXICON_FILE = "lexicon.txt"
#: Graphs int8 may touch, in the order they are tried; the vision encoder is a handful of convs and stays fp32.
_QUANTISABLE = ("text_encoder", "prefix_encoder", "decoder")


@dataclass(frozen=True)
class BundleConfig:
    """How a run becomes a bundle, and how much int8 may cost before a graph stays fp32."""

    name: str = "default"
    quantize: str | None = "int8"
    max_new_tokens: int = 48
    eval_examples: int = 128
    max_reply_loss_delta: float = 0.05  # nats per reply token, int8 minus fp32
    max_fact_recall_drop: float = 0.03  # share of required facts copied into greedy replies
    min_text_cosine: float = 0.98  # int8 vs fp32 sentence embeddings, worst case over the eval texts
    max_bundle_mb: float = 50.0
    #: int8 activations: a scale per row (replies independent of their batch) or one per tensor (ONNX Runtime's
    #: dynamic quantisation as it comes: about a tenth more tokens/s on 2 CPU cores; docs/benchmarks.md).
    activation_scales: str = "row"

    def __post_init__(self) -> None:
        if self.quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', got {self.quantize!r}")
        if self.activation_scales not in ACTIVATION_SCALES:
            raise ValueError(f"activation_scales must be one of {ACTIVATION_SCALES}, got {self.activation_scales!r}")
        if not self.name:
            raise ValueError("name must not be empty")
        for name in ("max_new_tokens", "eval_examples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("max_reply_loss_delta", "max_fact_recall_drop", "max_bundle_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not -1.0 <= self.min_text_cosine <= 1.0:
            raise ValueError(f"min_text_cosine must be in [-1, 1], got {self.min_text_cosine!r}")


@dataclass(frozen=True)
class QualityReport:
    """What the bundle does on validation turns, served through ONNX Runtime."""

    examples: int
    reply_loss: float  # mean NLL per reply token (teacher forced), nats
    emotion_accuracy: float
    fact_recall: float  # required facts found in the greedy reply, over turns that need facts
    greedy_tokens: tuple[tuple[int, ...], ...]
    replies: tuple[str, ...]

    def summary(self) -> dict[str, float]:
        return {
            "examples": self.examples,
            "reply_loss": round(self.reply_loss, 4),
            "emotion_accuracy": round(self.emotion_accuracy, 4),
            "fact_recall": round(self.fact_recall, 4),
        }


def _eval_examples(data_config: Any, count: int, seed: int = 0) -> tuple[list[Any], str, set[str]]:
    """A fixed sample of validation turns, the corpus digest (to compare with the run's) and the corpus's
    lexicon (:func:`corpus_lexicon`)."""
    from export.corpus import build_corpus

    corpus = build_corpus(data_config.corpus_config())
    val = list(corpus.splits["val"])
    random.Random(seed).shuffle(val)
    return val[:count], corpus.digest(), corpus_lexicon(corpus.splits["train"])


def corpus_lexicon(examples: Sequence[Any]) -> set[str]:
    """The words the spelling constraint lets a reply use besides its request's own (``npc_runtime.spelling``):
    every word the NPC says in the training turns (replies and the NPC's lines of the history). Player lines are
    left out: their modern and jailbreak words ("wifi", "instructions") are what no reply may say. The fact swap's
    invented names are not in it either: the corpus as built, before any swap, is what the model should speak."""
    from npc_runtime.spelling import lexicon_words

    return lexicon_words(text for ex in examples for text in (ex.reply, *(npc for _player, npc in ex.history)))


def add_lexicon(bundle_dir: str | Path, words: Sequence[str] | set[str]) -> Path:
    """Write ``words`` as the bundle's lexicon (``lexicon.txt``, manifest ``assets["lexicon"]``) and refresh the
    manifest's checksums."""
    from npc_runtime.bundle import MANIFEST_NAME
    from npc_runtime.spelling import write_lexicon

    out = Path(bundle_dir)
    write_lexicon(words, out / LEXICON_FILE)
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    files = {**manifest["files"], LEXICON_FILE: {}}
    rewrite_manifest(out, {"assets": {**manifest.get("assets", {}), "lexicon": LEXICON_FILE}, "files": files})
    return out / LEXICON_FILE


def add_intent_reader(bundle_dir: str | Path, reader_file: str | Path) -> Path:
    """Copy a run's intent reader (``npc_runtime.intent_hint``) into the bundle as ``assets["intent_reader"]``
    and refresh the manifest's checksums; the engine then gives every player line its hint."""
    from export.dataset import INTENT_READER_FILE
    from npc_runtime.bundle import MANIFEST_NAME
    from npc_runtime.intent_hint import load_reader

    out = Path(bundle_dir)
    load_reader(reader_file)  # a broken reader fails the export, not the first request
    shutil.copyfile(reader_file, out / INTENT_READER_FILE)
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    files = {**manifest["files"], INTENT_READER_FILE: {}}
    assets = {**manifest.get("assets", {}), "intent_reader": INTENT_READER_FILE}
    rewrite_manifest(out, {"assets": assets, "files": files})
    return out / INTENT_READER_FILE


def scene_words() -> dict[str, dict[str, list[str]]]:
    """The manifest's ``scene_words`` (``npc_runtime.grounding``): per context key the sample game sends, the
    elements the corpus's replies name and the words that name them, each element's own name first (the words
    the evaluation's grounding metric accepts, ``export.eval_metrics.ELEMENT_ALIASES``). The place is listed, and
    the runtime steers it only in a reply to a question about the place (``grounding.HINTED_KEYS``): place names
    are also the card's places in directions, which the scene must not overrule. The empty-handed player is left
    out (``grounding.NOT_A_TARGET``)."""
    from sample_game.world import CREATURES, LOCATIONS, NOTHING, PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS

    from .eval_metrics import ELEMENT_ALIASES

    def words(element: str) -> list[str]:
        return [element, *sorted(set(ELEMENT_ALIASES[element]) - {element})]

    return {
        "time_of_day": {t: words(t) for t in TIMES_OF_DAY},
        "weather": {w: words(w) for w in WEATHERS},
        "nearby": {c: words(c) for c in CREATURES},
        "player_item": {i: words(i) for i in PLAYER_ITEMS if i != NOTHING},
        "location": {place: words(place) for place in LOCATIONS},
    }


def scene_requirements(words: dict[str, Any]) -> list[str]:
    """The runtime features (``npc_runtime.bundle.RUNTIME_FEATURES``) a manifest with these ``scene_words`` needs."""
    from npc_runtime.bundle import HINTED_SCENE_STEERING
    from npc_runtime.grounding import HINTED_KEYS

    return [HINTED_SCENE_STEERING] if any(key in words for key in HINTED_KEYS) else []


def add_scene_words(bundle_dir: str | Path) -> None:
    """Write :func:`scene_words` into the bundle's manifest, and add the runtime features they need to its
    ``requires`` (the graphs are untouched)."""
    from npc_runtime.bundle import MANIFEST_NAME

    out = Path(bundle_dir)
    words = scene_words()
    before = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8")).get("requires", [])
    requires = sorted({*before, *scene_requirements(words)})
    rewrite_manifest(out, {"scene_words": words, **({"requires": requires} if requires else {})})


def evaluate_bundle(bundle_dir: str | Path, examples: Sequence[Any], max_new_tokens: int = 48) -> QualityReport:
    """Teacher-forced reply loss, emotion accuracy and greedy replies of ``examples`` through the bundle's graphs."""
    from npc_runtime import prompt
    from npc_runtime.bundle import load_bundle
    from npc_runtime.emotion import EMOTIONS
    from npc_runtime.engine import Prepared, RoleModelEngine
    from npc_runtime.images import preprocess
    from npc_runtime.ort_backend import RuntimeOptions

    engine = RoleModelEngine(load_bundle(bundle_dir, verify=False), RuntimeOptions(device="cpu"))
    k = engine.prefix_tokens
    heads, head_dim = int(engine.bundle.model["n_heads"]), int(engine.bundle.model["head_dim"])
    empty_kv = np.zeros((1, heads, 0, head_dim), dtype=np.float32)  # P = 0: the whole turn is one prefill
    nll_sum, nll_count, emotion_hits, facts_needed, facts_found = 0.0, 0, 0, 0, 0
    all_tokens, replies = [], []
    for ex in examples:
        context = ex.scene.to_context()
        knowledge = engine.knowledge_of(ex.card)
        persona = engine.encode_texts([ex.card.card_text()])  # (1, E)
        utterance = engine.encode_texts([ex.player])  # (1, E)
        hint = engine.looked_up(engine.intent_hints(utterance)[0], knowledge, context, ex.player)
        pixels = preprocess(ex.render(), engine.image_size, engine.image_mean, engine.image_std)[None]
        visual = engine.graphs["vision_encoder"].run({"image": pixels})["visual_features"]  # (1, N, D)
        prefix = engine.graphs["prefix_encoder"].run({
            "persona_embedding": persona, "utterance_embedding": utterance,
            "visual_features": visual, "image_present": np.ones(1, dtype=np.float32),
        })["prefix_embeds"][0]  # (K, D)

        # Teacher forcing: the whole turn in one prefill, loss on the reply tokens and <eos>. Like training, drop
        # the oldest history until the prompt fits the serving budget and prompt plus reply fit the positions.
        history = list(ex.history)
        while True:
            prompt_ids = engine.tokenizer.encode(
                prompt.build_decoder_text(knowledge, context, history, ex.player, hint=hint), add_special_tokens=False
            ).ids
            full_text = prompt.build_decoder_text(knowledge, context, history, ex.player, reply=ex.reply, hint=hint)
            reply_ids = engine.tokenizer.encode(full_text, add_special_tokens=False).ids[len(prompt_ids):]
            fits = len(prompt_ids) <= engine.max_prompt_tokens - k - 1
            if (fits and k + 1 + len(prompt_ids) + len(reply_ids) <= engine.max_positions) or not history:
                break
            history.pop(0)
        reply_ids = reply_ids[: max(1, engine.max_positions - k - 1 - len(prompt_ids))]
        ids, mask = prompt.layout_ids(prompt_ids + reply_ids, k, engine.token_id["prefix"], engine.token_id["bos"])
        length = len(ids)
        embeds = np.zeros((1, length, engine.d_model), dtype=np.float32)
        embeds[0, :k] = prefix
        feeds = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "prefix_embeds": embeds,
            "prefix_mask": np.asarray([mask], dtype=np.float32),
            "attention_mask": np.ones((1, length), dtype=np.int64),
            "position_ids": np.arange(length, dtype=np.int64)[None],
        }
        feeds.update({name: empty_kv for name in engine.past_names})
        if engine.keeps_last:
            feeds["logits_to_keep"] = np.array(length, dtype=np.int64)  # teacher forcing needs every position
        out = engine.graphs["decoder"].run(feeds, ["logits", "emotion_logits"])
        prompt_len = length - len(reply_ids)
        logits = out["logits"][0, prompt_len - 1 : length - 1].astype(np.float64)  # (R, V)
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        nll_sum -= float(log_probs[np.arange(len(reply_ids)), reply_ids].sum())
        nll_count += len(reply_ids)
        emotion_hits += int(EMOTIONS[int(out["emotion_logits"][0, prompt_len - 1].argmax())] == ex.emotion)

        # Greedy reply as the server would decode it (structure tokens banned).
        prompt_layout, prompt_mask = prompt.layout_ids(prompt_ids, k, engine.token_id["prefix"], engine.token_id["bos"])
        prepared = Prepared(prompt_layout, np.asarray(prompt_mask, dtype=np.float32), prefix)
        result = engine.prefill([prepared])
        logits_step, kv, attn = result.logits, result.kv, result.mask
        tokens: list[int] = []
        position = len(prompt_layout)
        for _ in range(max_new_tokens):
            scores = logits_step[0].astype(np.float64)
            scores[engine.banned_ids] = -np.inf
            token = int(np.argmax(scores))
            if token == engine.eos_id or position >= engine.max_positions:
                break
            tokens.append(token)
            logits_step, kv, attn = engine.step(np.array([token]), np.array([position]), kv, attn)
            position += 1
        reply = engine.decode(tokens)
        all_tokens.append(tuple(tokens))
        replies.append(reply)
        for fact in ex.required_facts:
            facts_needed += 1
            facts_found += int(fact.lower() in reply.lower())
    n = max(1, len(examples))
    return QualityReport(
        examples=len(examples),
        reply_loss=nll_sum / max(1, nll_count),
        emotion_accuracy=emotion_hits / n,
        fact_recall=facts_found / max(1, facts_needed),
        greedy_tokens=tuple(all_tokens),
        replies=tuple(replies),
    )


def _agreement(a: QualityReport, b: QualityReport) -> float:
    """Share of turns whose greedy replies are token-for-token identical."""
    return sum(x == y for x, y in zip(a.greedy_tokens, b.greedy_tokens)) / max(1, a.examples)


def _text_cosine(bundle_dir: Path, fp32_text_encoder: Path, texts: Sequence[str]) -> dict[str, float]:
    """Worst and mean cosine between the bundle's (int8) sentence embeddings and the fp32 graph's."""
    from export.onnx_export import GRAPH_FILES, text_embeddings

    with tempfile.TemporaryDirectory(prefix="fp32-text-") as tmp:
        shutil.copyfile(fp32_text_encoder, Path(tmp) / GRAPH_FILES["text_encoder"])
        shutil.copyfile(bundle_dir / "text_encoder_tokenizer.json", Path(tmp) / "text_encoder_tokenizer.json")
        want = text_embeddings(tmp, texts)
    got = text_embeddings(bundle_dir, texts)
    cosine = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    return {"min": round(float(cosine.min()), 4), "mean": round(float(cosine.mean()), 4), "texts": len(texts)}


def _matmuls_named(onnx_path: Path, marks: Sequence[str]) -> list[str]:
    """Names of the graph's MatMul nodes whose name contains one of ``marks``."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and any(m in n.name for m in marks)]


def _layer_matmuls(onnx_path: Path, layers: Sequence[int] | range) -> list[str]:
    """Names of the weight MatMuls (attention projections and MLP) of the role model's decoder ``layers``."""
    parts = ("attn/qkv", "attn/out", "mlp/fc", "mlp/proj")
    return _matmuls_named(onnx_path, [f"/blocks.{i}/{part}/" for i in layers for part in parts])


def _ffn_matmuls(onnx_path: Path, layer: int) -> list[str]:
    """Names of the feed-forward MatMuls of one BERT layer (Hugging Face export naming)."""
    return _matmuls_named(onnx_path, [f"/layer.{layer}/intermediate/", f"/layer.{layer}/output/dense/"])


def _quantize_text_encoder(out: Path, fp32_path: Path, texts: Sequence[str], min_cosine: float,
                           rowwise: bool = True) -> dict[str, Any]:
    """int8 sentence encoder whose worst cosine to fp32 over ``texts`` is at least ``min_cosine``.

    Plain per-channel int8 of every MatMul and the word-embedding table lost ~0.03 cosine on short lines with one
    activation scale per tensor (the feed-forward activations have outliers); the scale per activation row
    (``rowwise_activations``) loses less. Where the floor does not hold, the feed-forward MatMuls of a growing set of
    layers (middle layers first: measured to matter most) stay fp32 until it does; each layer kept costs ~3.5 MB.
    Raises RuntimeError when even all six do not reach it.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.onnx_export import GRAPH_FILES
    from export.requantize import rowwise_activations
    from export.text_encoder import INT8_OP_TYPES

    target = out / GRAPH_FILES["text_encoder"]
    layer_order = (1, 2, 3, 4, 0, 5)
    tried = []
    for count in range(len(layer_order) + 1):
        kept = sorted(layer_order[:count])
        exclude = [name for layer in kept for name in _ffn_matmuls(fp32_path, layer)]
        if count and not exclude:
            break  # not a BERT with this naming: nothing more to keep
        quantize_dynamic(str(fp32_path), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(INT8_OP_TYPES), per_channel=True, nodes_to_exclude=exclude)  # fmt: skip
        if rowwise:
            onnx.save(rowwise_activations(onnx.load(str(target)))[0], str(target))  # a scale per activation row
        cosine = _text_cosine(out, fp32_path, texts)
        tried.append({"fp32_ffn_layers": kept, "min": cosine["min"]})
        if cosine["min"] >= min_cosine:
            return {**cosine, "fp32_ffn_layers": kept, "tried": tried, "mb": round(target.stat().st_size / 1e6, 1)}
    raise RuntimeError(f"int8 sentence encoder stays below cosine {min_cosine} to fp32: {tried}")


def rewrite_manifest(out: Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into bundle.json and refresh every file's checksum and size (graphs changed in place)."""
    from npc_runtime.bundle import MANIFEST_NAME, sha256_file

    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest.update(updates)
    manifest["files"] = {
        name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size} for name in manifest["files"]
    }
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / MANIFEST_NAME)


def _clear_bundle_dir(out: Path, dry_run: bool = False) -> None:
    """Remove an earlier bundle at ``out`` (stale files must not linger); refuse any other non-empty folder."""
    from npc_runtime.bundle import MANIFEST_NAME

    if not out.exists():
        return
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).exists()):
        raise ValueError(f"{out} exists and is not a model bundle; refusing to overwrite it")
    if not dry_run:
        shutil.rmtree(out)


def _write_model_card(out: Path) -> None:
    """``MODEL_CARD.md`` beside the manifest: what the bundle is, how it was made and what int8 cost."""
    manifest = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    quality, training = manifest.get("quality", {}), manifest.get("training", {})
    lines = [
        f"# Model bundle `{manifest['name']}`",
        "",
        manifest.get("description", ""),
        "",
        "Generated by `npc-runtime export` (export/make_bundle.py); do not edit by hand. Rebuild with `make model`.",
        "",
        f"- created: {manifest.get('created')}; precision per graph: {manifest.get('graph_precision')}",
        f"- model: {manifest.get('model')}",
        f"- training: {training}",
        f"- fp32 parity with PyTorch: {manifest.get('parity', {}).get('max_abs_diff')}, greedy tokens match: "
        f"{manifest.get('parity', {}).get('greedy_tokens_match')}",
        "",
        "## Quality on validation turns (served through ONNX Runtime)",
        "",
        "| variant | reply loss (nats/token) | emotion accuracy | facts copied | greedy replies equal to fp32 |",
        "|---|---|---|---|---|",
    ]
    for key, label in (("fp32", "fp32"), ("int8_text_encoder_only", "int8 text encoder"), ("int8_all", "all int8")):
        q = quality.get(key)
        if q:
            agree = q.get("greedy_agreement_with_fp32", 1.0 if key == "fp32" else "")
            lines.append(f"| {label} | {q['reply_loss']} | {q['emotion_accuracy']} | {q['fact_recall']} | {agree} |")
    if "int8_activation_scales" in quality:
        lines += ["", f"int8 activations: one scale per {quality['int8_activation_scales']}."]
    if "text_encoder_int8_cosine" in quality:
        lines += ["", f"int8 sentence encoder vs fp32, cosine: {quality['text_encoder_int8_cosine']}."]
    if "decoder_int8_cost" in quality:
        lines += [f"int8 decoder and prefix encoder cost: {quality['decoder_int8_cost']} "
                  f"(thresholds {quality.get('thresholds')})."]  # fmt: skip
    (out / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _recipe(train_config: dict[str, Any], prompt_voice: bool, swaps: dict[str, Any] | None = None,
            copy_head: bool | None = None, copy_induction: bool = False, spaced_quotes: bool = False) -> str:
    """The train command of a run: its preset, plus --steps, --lr, --seed, --fusion, --no-voice, --spaced-quotes,
    --copy-head, --copy-induction, --init-from and the flag of each ``export.train.DATA_OPTIONS`` entry
    (--emotion-labels, --voice-swap, --fact-swap, --invent-facts, --intent-hint, --branch-floor, ...) where the run
    changed the preset's (``prompt_voice``, ``copy_head``, ``copy_induction`` and ``swaps``, which carries the data
    options, are the checkpoint's model and data settings: runs from before these options record no choice)."""
    from export.dataset import HINT_OPTIONS, VERSIONED_OPTIONS
    from export.train import DATA_OPTIONS, SWAP_OPTIONS, preset_configs

    preset = train_config.get("preset")
    words = ["npc-runtime train", f"--preset {preset}"]
    try:
        preset_model, preset_data, preset_train = preset_configs(preset)
    except ValueError:
        preset_model = preset_data = preset_train = None
    steps, fusion = train_config.get("steps"), train_config.get("fusion")
    if steps is not None and (preset_train is None or steps != preset_train.steps):
        words.append(f"--steps {steps}")
    for key in ("lr", "seed"):
        value = train_config.get(key)
        if value is not None and preset_train is not None and value != getattr(preset_train, key):
            words.append(f"--{key} {value:g}")
    if fusion is not None and (preset_model is None or fusion != preset_model.fusion):
        words.append(f"--fusion {fusion}")
    if preset_model is not None and preset_model.prompt_voice and not prompt_voice:
        words.append("--no-voice")
    if preset_model is not None and spaced_quotes != preset_model.spaced_quotes:
        words.append("--spaced-quotes" if spaced_quotes else "--no-spaced-quotes")
    if preset_model is not None and copy_head is not None and copy_head != preset_model.copy_head:
        words.append("--copy-head" if copy_head else "--no-copy-head")
    if preset_model is None and copy_induction:
        words.append("--copy-induction")
    elif preset_model is not None and copy_induction != preset_model.copy_induction and copy_head is not False:
        words.append("--copy-induction" if copy_induction else "--no-copy-induction")
    if train_config.get("init_from"):
        words.append(f"--init-from {train_config['init_from']}")
    values = swaps or {}
    for key in DATA_OPTIONS:
        value = values.get(key, 0.0 if key in SWAP_OPTIONS else None)  # a share not recorded was 0
        if preset_data is None or value is None or value == getattr(preset_data, key):
            continue
        if key in HINT_OPTIONS and not values.get("intent_hint"):
            continue  # without hints the folds, the lookup and the reader's make-up change nothing
        flag = "--" + key.replace("_", "-")
        if key in VERSIONED_OPTIONS:  # a version; version 1 runs may record true
            words.append(f"{flag} {int(value)}" if value else "--no-" + flag[2:])
        elif isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words.append(f"{flag} {float(value):g}" if key in SWAP_OPTIONS else f"{flag} {value}")
    return " ".join(words) + " && npc-runtime export"


def _training_record(run_dir: Path, extra: dict[str, Any], prompt_voice: bool,
                     copy_head: bool | None = None, copy_induction: bool = False,
                     spaced_quotes: bool = False) -> dict[str, Any]:
    from export.dataset import DataConfig
    from export.train import DATA_OPTIONS, SWAP_OPTIONS

    data_config = extra.get("data_config", {})
    swaps: dict[str, Any] = {key: float(data_config.get(key, 0.0)) for key in SWAP_OPTIONS}
    if data_config:  # what the run set, with what runs of before an option had (DataConfig.from_dict)
        saved = DataConfig.from_dict(data_config)
        swaps.update({key: getattr(saved, key) for key in DATA_OPTIONS})
    history = extra.get("history") or []
    train_config = extra.get("train_config", {})
    record = {
        "steps": extra.get("step"),
        "target_steps": train_config.get("steps"),
        "preset": train_config.get("preset"),
        "batch_size": train_config.get("batch_size"),
        "world_size": extra.get("world_size", 1),
        "corpus_digest": extra.get("corpus_digest"),
        "final": history[-1] if history else None,
        "recipe": _recipe(train_config, prompt_voice, swaps, copy_head, copy_induction, spaced_quotes),
    }
    if data_config:
        # What `npc-runtime eval` rebuilds: the corpus this run was trained on.
        record["corpus_config"] = asdict(DataConfig.from_dict(data_config).corpus_config())
    summary = run_dir / "summary.json"
    if summary.exists():
        data = json.loads(summary.read_text(encoding="utf-8"))
        record["wall_s"] = data.get("wall_s")
        record["data_prep_s"] = data.get("data_prep_s")
    if extra.get("total_wall_s") is not None:
        record["total_wall_s"] = extra["total_wall_s"]
    if record["steps"] is not None and record["target_steps"] is not None and record["steps"] < record["target_steps"]:
        record["stopped_early"] = True
        log.warning("the run in %s stopped at step %d of %d (its time budget); `npc-runtime train --out %s --resume` "
                    "finishes it", run_dir, record["steps"], record["target_steps"], run_dir)  # fmt: skip
    return record


def make_bundle(run_dir: str | Path, out_dir: str | Path, config: BundleConfig | None = None) -> dict[str, Any]:
    """Build the bundle of the run in ``run_dir`` into ``out_dir``; returns the manifest's ``quality`` section."""
    from export.bundle_writer import BundleLimits, write_bundle
    from export.dataset import DataConfig, make_text_encoder
    from export.onnx_export import GRAPH_FILES, check_parity, quantize_graphs
    from export.role_model import load_checkpoint
    from export.text_encoder import export_text_encoder
    from export.train import CHECKPOINT_NAME
    from npc_runtime.bundle import load_bundle

    config = config or BundleConfig()
    run = Path(run_dir)
    out = Path(out_dir)
    _clear_bundle_dir(out, dry_run=True)  # fail before the slow work, not after
    model, extra = load_checkpoint(run / CHECKPOINT_NAME)
    data_config = DataConfig.from_dict(extra["data_config"])
    tokenizer_path = run / extra["tokenizer"]
    examples, digest, lexicon = _eval_examples(data_config, config.eval_examples)
    if digest != extra.get("corpus_digest"):
        log.warning("the corpus code changed since training (digest %s, run %s): quality is measured on today's "
                    "corpus", digest[:12], str(extra.get("corpus_digest"))[:12])  # fmt: skip

    # Built beside the target and moved into place only when it is complete and accepted: a failed export (parity,
    # size, a crash) never leaves a half-written bundle where the last good one was.
    build = out.parent / f".{out.name}.partial"
    shutil.rmtree(build, ignore_errors=True)
    build.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="make-bundle-") as work_str:
            work = Path(work_str)
            encoder = make_text_encoder(data_config.text_encoder, data_config.text_embed_dim)
            text_onnx = work / "text_encoder.onnx"
            text_export = export_text_encoder(encoder, text_onnx)
            text_tokenizer = encoder.save_tokenizer(work / "text_encoder_tokenizer.json")
            limits = BundleLimits(max_prompt_tokens=model.cfg.max_positions - config.max_new_tokens,
                                  max_new_tokens=config.max_new_tokens)  # fmt: skip
            description = (
                f"Role model trained from scratch on the Emberfall corpus (preset {extra.get('train_config', {}).get('preset')}, "
                f"{extra.get('step')} steps); persona by MiniLM card embedding"
                + (" and the card's traits, mood and speaking style as prompt text" if model.cfg.prompt_voice else "")
                + ", screenshot by a small CNN"
                + ("; the player's line with an intent reader's hint" if extra.get("intent_reader") else "")
                + (" and the card or scene fact it turns on" if extra.get("intent_reader")
                   and extra.get("data_config", {}).get("hint_lookup") else "")  # fmt: skip
                + ("; a copy head points at facts in the prompt" if model.cfg.copy_head else "")
                + (", and at the piece that followed the piece just copied" if model.cfg.copy_induction else "")
                + (f"; warm-started from {extra['train_config']['init_from']}"
                   if extra.get("train_config", {}).get("init_from") else "") + "."
            )
            write_bundle(model, tokenizer_path, text_onnx, text_tokenizer, build, name=config.name, description=description,
                         quantize=None, limits=limits)  # fmt: skip
            add_lexicon(build, lexicon)
            add_scene_words(build)
            if extra.get("intent_reader"):
                add_intent_reader(build, run / extra["intent_reader"])
            fp32_dir = work / "fp32"
            fp32_dir.mkdir()
            for name in GRAPH_FILES:
                shutil.copyfile(build / GRAPH_FILES[name], fp32_dir / GRAPH_FILES[name])
            fp32 = evaluate_bundle(build, examples, config.max_new_tokens)
            log.info("fp32 bundle quality: %s", fp32.summary())
            quality: dict[str, Any] = {"fp32": fp32.summary(), "text_encoder_export": text_export}
            graph_precision = {name: "fp32" for name in GRAPH_FILES}
            updates: dict[str, Any] = {}

            if config.quantize == "int8":
                texts = sorted({ex.card.card_text() for ex in examples} | {ex.player for ex in examples})
                rowwise = config.activation_scales == "row"
                cosine = _quantize_text_encoder(build, fp32_dir / GRAPH_FILES["text_encoder"], texts,
                                                config.min_text_cosine, rowwise)  # fmt: skip
                quality["text_encoder_int8_cosine"] = cosine
                graph_precision["text_encoder"] = "int8"
                text_only = evaluate_bundle(build, examples, config.max_new_tokens)
                # The whole decoder in int8 first; where that costs too much, its first layers stay fp32, one more
                # at a time (the first layer's errors pass through every later one). The prefix encoder is int8
                # throughout.
                quantize_graphs(build, names=["prefix_encoder"], rowwise=rowwise)
                fp32_decoder = fp32_dir / GRAPH_FILES["decoder"]
                for fp32_layers in range(model.cfg.n_layers):
                    shutil.copyfile(fp32_decoder, build / GRAPH_FILES["decoder"])
                    kept = _layer_matmuls(fp32_decoder, range(fp32_layers))
                    quantize_graphs(build, names=["decoder"], keep_fp32=kept, rowwise=rowwise)
                    all_int8 = evaluate_bundle(build, examples, config.max_new_tokens)
                    verdict = {
                        "reply_loss_delta": round(all_int8.reply_loss - text_only.reply_loss, 4),
                        "fact_recall_drop": round(text_only.fact_recall - all_int8.fact_recall, 4),
                        "emotion_accuracy_drop": round(text_only.emotion_accuracy - all_int8.emotion_accuracy, 4),
                        "greedy_agreement": round(_agreement(text_only, all_int8), 4),
                        "fp32_layers": fp32_layers,
                    }
                    keep = (verdict["reply_loss_delta"] <= config.max_reply_loss_delta
                            and verdict["fact_recall_drop"] <= config.max_fact_recall_drop)  # fmt: skip
                    if keep:
                        break
                    log.info("int8 decoder with %d fp32 layers costs too much (%s): one more in fp32",
                             fp32_layers, verdict)  # fmt: skip
                quality["int8_text_encoder_only"] = {**text_only.summary(), "greedy_agreement_with_fp32": round(_agreement(fp32, text_only), 4)}
                quality["int8_all"] = {**all_int8.summary(), "greedy_agreement_with_fp32": round(_agreement(fp32, all_int8), 4)}
                quality["decoder_int8_cost"] = verdict
                if keep:
                    graph_precision["prefix_encoder"] = graph_precision["decoder"] = "int8"
                    updates["parity"] = {**json.loads((build / "bundle.json").read_text(encoding="utf-8"))["parity"],
                                         "int8": check_parity(model, build, strict=False, tolerance=None)}  # fmt: skip
                else:
                    log.warning("int8 decoder/prefix cost too much (%s): keeping them fp32", verdict)
                    for name in ("prefix_encoder", "decoder"):
                        shutil.copyfile(fp32_dir / GRAPH_FILES[name], build / GRAPH_FILES[name])
                quality["int8_activation_scales"] = config.activation_scales
                quality["thresholds"] = {
                    "max_reply_loss_delta": config.max_reply_loss_delta,
                    "max_fact_recall_drop": config.max_fact_recall_drop,
                    "min_text_cosine": config.min_text_cosine,
                }
            precisions = set(graph_precision.values())
            updates.update({
                "precision": precisions.pop() if len(precisions) == 1 else "mixed",
                "graph_precision": graph_precision,
                "quality": quality,
                "training": _training_record(run, extra, model.cfg.prompt_voice, model.cfg.copy_head,
                                             model.cfg.copy_induction, model.cfg.spaced_quotes),
                "samples": [
                    {"persona": ex.persona_id, "player": ex.player, "reply": reply}
                    for ex, reply in list(zip(examples, fp32.replies))[:6]
                ],
            })
            rewrite_manifest(build, updates)
            _write_model_card(build)

        total_mb = sum(p.stat().st_size for p in build.iterdir() if p.is_file()) / 1e6
        if total_mb > config.max_bundle_mb:
            raise BundleError(f"bundle {out} would be {total_mb:.1f} MB, over the {config.max_bundle_mb:g} MB budget "
                              f"(graphs {graph_precision}: int8 did not hold quality where a graph is fp32; "
                              "--max-bundle-mb raises the budget)")
        load_bundle(build)  # the runtime must accept what we wrote
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)  # a failed export leaves the earlier bundle as it was
        raise
    _clear_bundle_dir(out)
    build.rename(out)
    log.info("bundle %s: %.1f MB, graphs %s, quality %s", out, total_mb, graph_precision, quality)
    return {**quality, "bundle_mb": round(total_mb, 2), "graph_precision": graph_precision}


def _quantiser_noise_filter(record: logging.LogRecord) -> bool:
    """False for the quantisation tool's root-logger chatter: its INFO lines and its pre-processing advice."""
    if record.name != "root":
        return True
    return record.levelno >= logging.WARNING and "pre-processing before quantization" not in record.getMessage()


#: The run folder the recipe trains (``npc-runtime train``'s default ``--out``, ``make model``): the one run whose
#: export writes the shipped bundle unless told otherwise.
RECIPE_RUN = Path("runs/default")


def default_out(run: Path) -> Path:
    """Where ``npc-runtime export`` writes without ``--out``: the shipped bundle for the recipe's run
    (:data:`RECIPE_RUN`), ``RUN/bundle`` for any other, so that exporting a trial run never overwrites it."""
    from npc_runtime.bundle import default_bundle_dir

    return default_bundle_dir() if run.resolve() == RECIPE_RUN.resolve() else run / "bundle"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="npc-runtime export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/default"), help="training run folder (default: runs/default)")
    parser.add_argument("--out", type=Path, default=None, help="bundle directory (default: the shipped default bundle for runs/default, "
                        "RUN/bundle for any other run)")
    parser.add_argument("--name", default="default", help="bundle name in the manifest")
    parser.add_argument("--quantize", choices=("int8", "none"), default="int8", help="int8 where quality holds (default)")
    parser.add_argument("--activation-scales", choices=ACTIVATION_SCALES, default="row",
                        help="int8 activations scaled per row (a reply does not depend on the others in its batch; "
                        "default) or per tensor (about a tenth more tokens/s on a CPU)")
    parser.add_argument("--eval-examples", type=int, default=128, help="validation turns for the quality check")
    parser.add_argument("--max-bundle-mb", type=float, default=BundleConfig.max_bundle_mb,
                        help="refuse to write a bundle bigger than this (default: %(default)s, the shipped budget)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # ONNX Runtime's quantisation tool logs every tensor it skips, at INFO, on the root logger: hundreds of lines
    # that bury the export's own. Its warnings still show, except its advice to pre-process the graph, repeated at
    # every quantisation (the quality gates below measure what int8 costs instead).
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quantiser_noise_filter)
    try:
        config = BundleConfig(name=args.name, quantize=None if args.quantize == "none" else "int8",
                              eval_examples=args.eval_examples, max_bundle_mb=args.max_bundle_mb,
                              activation_scales=args.activation_scales)  # fmt: skip
        out = args.out or default_out(args.run)
        log.info("writing the bundle to %s", out)
        report = make_bundle(args.run, out, config)
    except (NpcRuntimeError, ValueError) as exc:
        print(f"npc-runtime export: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
