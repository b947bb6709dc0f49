"""Model bundles: a directory described by ``bundle.json``, read and verified before anything runs.

The manifest names the bundle's kind, every ONNX graph with its input and output names, the tokenizers, special
tokens, emotion labels, limits and a SHA-256 checksum per file. The runtime reads only the manifest and never
guesses a name. The graph specs below are the single declaration of those names; ``export/`` writes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError

__all__ = [
    "MANIFEST_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "RUNTIME_FEATURES",
    "HINTED_SCENE_STEERING",
    "ROLE_MODEL_GRAPHS",
    "decoder_kv_names",
    "role_model_kv_names",
    "ROLE_MODEL_OPTIONAL_INPUTS",
    "GraphSpec",
    "Bundle",
    "load_bundle",
    "sha256_file",
    "default_bundle_dir",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "bundle.json"
FORMAT = "npc-bundle"
FORMAT_VERSION = 1
KINDS = ("role-model", "causal-lm")
#: What this runtime does that a bundle may rely on. A manifest lists the ones it needs in ``requires``; a runtime
#: without one of them refuses the bundle, naming it, instead of serving it wrongly. (A runtime from before the
#: field ignores it: the field guards against runtimes from now on.)
#:
#: - ``hinted-scene-steering``: a scene key of ``grounding.HINTED_KEYS`` (the place) is steered only in a reply to
#:   the question its hint names ("where are we?"). A bundle whose ``scene_words`` list such a key needs it: a
#:   runtime steering the place in every reply turns a reply's directions and rumours into the scene's place.
HINTED_SCENE_STEERING = "hinted-scene-steering"
RUNTIME_FEATURES = frozenset({HINTED_SCENE_STEERING})


def decoder_kv_names(n_layers: int) -> tuple[list[str], list[str]]:
    """Past and present (past + new positions) KV tensor names of a causal-lm decoder with ``n_layers`` layers."""
    past, present = [], []
    for i in range(n_layers):
        past += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        present += [f"present.{i}.key", f"present.{i}.value"]
    return past, present


def role_model_kv_names(n_layers: int) -> tuple[list[str], list[str]]:
    """Past KV inputs and new-position KV outputs of a role-model decoder with ``n_layers`` layers.

    A role-model decoder returns the keys and values of its T new positions only, never ``past`` joined with
    them: the runtime keeps each layer's cache in one preallocated buffer and writes the new positions into it,
    so no step copies the cache (see "KV cache" in docs/architecture.md).
    """
    past, new = [], []
    for i in range(n_layers):
        past += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        new += [f"new_key_values.{i}.key", f"new_key_values.{i}.value"]
    return past, new


#: Fixed (non-KV) input and output names of each graph of a ``role-model`` bundle.
#: Shapes: B batch, T new positions, P past positions, D model width, V vocabulary, E emotion labels,
#: S image side, N visual tokens, K prefix tokens, H heads, Dh head width.
ROLE_MODEL_GRAPHS: dict[str, dict[str, tuple[str, ...]]] = {
    # MiniLM-style sentence encoder: mean-pooled, L2-normalised (B, 384) embedding.
    "text_encoder": {
        "inputs": ("input_ids", "attention_mask", "token_type_ids"),  # int64 (B, L)
        "outputs": ("sentence_embedding",),  # float32 (B, E_txt)
    },
    # Screenshot to visual tokens; cached by image content hash.
    "vision_encoder": {
        "inputs": ("image",),  # float32 (B, 3, S, S), normalised by manifest image_mean/image_std
        "outputs": ("visual_features",),  # float32 (B, N, D)
    },
    # Fuses persona, screenshot and utterance into the decoder's prefix embeddings.
    "prefix_encoder": {
        "inputs": (
            "persona_embedding",  # float32 (B, E_txt)
            "utterance_embedding",  # float32 (B, E_txt)
            "visual_features",  # float32 (B, N, D)
            "image_present",  # float32 (B,) 1.0 when a screenshot was given, else 0.0
        ),
        "outputs": ("prefix_embeds",),  # float32 (B, K, D)
    },
    # One decoder step (prefill when T > 1); KV names from role_model_kv_names() follow the fixed ones.
    "decoder": {
        "inputs": (
            "input_ids",  # int64 (B, T); prefix positions hold the <prefix> token id
            "prefix_embeds",  # float32 (B, T, D); used where prefix_mask is 1
            "prefix_mask",  # float32 (B, T); 1.0 takes prefix_embeds, 0.0 the token embedding
            "attention_mask",  # int64 (B, P + T); 0 marks padding
            "position_ids",  # int64 (B, T)
        ),
        "outputs": (
            "logits",  # float32 (B, T, V)
            "emotion_logits",  # float32 (B, T, E)
            "emotion_intensity",  # float32 (B, T) in 0..1
        ),
    },
}

#: Inputs a role-model graph declares after its fixed ones (and before the KV names); bundles exported before an
#: input existed lack it, so the runtime feeds it only when the manifest declares it.
ROLE_MODEL_OPTIONAL_INPUTS: dict[str, tuple[str, ...]] = {
    # int64 scalar N: the heads run on the last N positions only, so logits are (B, N, V). A prefill needs one
    # row of logits, not T: this saves the LM head's work and memory on every prompt position.
    "decoder": ("logits_to_keep",),
}


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph of a bundle as its manifest declares it."""

    name: str
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_bundle_dir() -> Path:
    """The default role model shipped with the package."""
    return Path(__file__).resolve().parent / "models" / "default"


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its directory, parsed manifest and graph specs."""

    root: Path
    manifest: Mapping[str, Any]
    graphs: Mapping[str, GraphSpec] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.root.name))

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.manifest["emotions"])

    @property
    def limits(self) -> Mapping[str, int]:
        return self.manifest.get("limits", {})

    @property
    def model(self) -> Mapping[str, Any]:
        return self.manifest.get("model", {})

    @property
    def special_tokens(self) -> Mapping[str, Any]:
        return self.manifest.get("special_tokens", {})

    def file(self, key: str) -> Path:
        """Path of a non-graph file named in ``manifest["tokenizers"]`` or ``manifest["assets"]``."""
        for section in ("tokenizers", "assets"):
            names = self.manifest.get(section, {})
            if key in names:
                return self.root / names[key]
        raise BundleError(f"bundle manifest names no file '{key}'", str(self.root / MANIFEST_NAME))


def _require(manifest: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = manifest.get(key)
    if not isinstance(value, kind):
        raise BundleError(f"manifest field '{key}' is missing or not a {kind.__name__}", where)
    return value


def load_bundle(root: str | Path, verify: bool = True) -> Bundle:
    """Read ``root/bundle.json``, check every named file exists and (with ``verify``) matches its checksum.

    Raises :class:`BundleError` naming the file at fault.
    """
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    where = str(manifest_path)
    if not root.is_dir():
        raise BundleError(f"model bundle directory not found: {root}", str(root))
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"model bundle has no {MANIFEST_NAME}: {manifest_path}", where) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {manifest_path}: {exc}", where) from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path} is not a JSON object", where)
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: expected format '{FORMAT}' version {FORMAT_VERSION}, "
            f"got {manifest.get('format')!r} version {manifest.get('format_version')!r}",
            where,
        )
    kind = manifest.get("kind")
    if kind not in KINDS:
        raise BundleError(f"{manifest_path}: unknown bundle kind {kind!r} (expected one of {KINDS})", where)
    requires = manifest.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(x, str) and x for x in requires):
        raise BundleError(f"{manifest_path}: 'requires' must be a list of runtime feature names", where)
    lacking = sorted(set(requires) - RUNTIME_FEATURES)
    if lacking:
        raise BundleError(
            f"{manifest_path}: the bundle needs {', '.join(map(repr, lacking))}, which this npc-runtime does not "
            "have: update npc-runtime",
            where,
        )
    _require(manifest, "emotions", list, where)
    files = _require(manifest, "files", dict, where)
    graphs_raw = _require(manifest, "graphs", dict, where)

    graphs: dict[str, GraphSpec] = {}
    for gname, spec in graphs_raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
            raise BundleError(f"{manifest_path}: graph '{gname}' has no 'file'", where)
        graphs[gname] = GraphSpec(
            name=gname,
            path=root / spec["file"],
            inputs=tuple(spec.get("inputs", ())),
            outputs=tuple(spec.get("outputs", ())),
        )
    if kind == "role-model":
        for gname, names in ROLE_MODEL_GRAPHS.items():
            if gname not in graphs:
                raise BundleError(f"{manifest_path}: role-model bundle lacks graph '{gname}'", where)
            for direction in ("inputs", "outputs"):
                missing = [n for n in names[direction] if n not in getattr(graphs[gname], direction)]
                if missing:
                    raise BundleError(
                        f"{manifest_path}: graph '{gname}' does not declare {direction} {missing}", where
                    )

    named = {spec.path.name for spec in graphs.values()}
    for section in ("tokenizers", "assets"):
        named |= set(manifest.get(section, {}).values())
    for fname in sorted(named):
        if fname not in files:
            raise BundleError(f"{manifest_path}: file '{fname}' has no checksum entry", where)
    for fname in files:
        path = root / fname
        if not path.is_file():
            raise BundleError(f"bundle file missing: {path}", str(path))
    for fname, meta in files.items():
        path = root / fname
        if verify:
            expected = meta.get("sha256") if isinstance(meta, dict) else None
            if not expected:
                raise BundleError(f"{manifest_path}: file '{fname}' has no sha256", where)
            actual = sha256_file(path)
            if actual != expected:
                raise BundleError(
                    f"bundle file corrupt: {path} (sha256 {actual[:12]}…, manifest says {expected[:12]}…)",
                    str(path),
                )
    log.debug("bundle %s (%s) verified: %d files", root, kind, len(files))
    return Bundle(root=root, manifest=manifest, graphs=graphs)
