"""Re-quantise a bundle's graphs: dynamic int8 MatMuls to fp32, fp16-stored weights, or weight-only int8.

The shipped bundle's decoder is dynamically quantised (``DynamicQuantizeLinear`` + ``MatMulInteger``): the best
size and CPU speed, with two costs measured on 2026-12-04 (docs/benchmarks.md, "Decoder precision"):

- **Rows of a batch move each other's logits**: the activation scale is one per tensor over the whole batch, so a
  reply's tokens can depend on which other NPCs share its steps (0.16 in logits on the shipped bundle).
- **On CUDA those two operators have no kernels** and run on the CPU provider with copies around each.

This tool rewrites each such MatMul from the weights the bundle already has, without the training checkpoint:

- ``fp32``: the weights dequantised, ``(q - zero_point) * scale``, a plain ``MatMul`` on the layer's float
  input. The same weights, no activation quantisation: rows are independent and every MatMul runs on CUDA; the
  graph is about twice the int8 size.
- ``fp16-weights``: the same, with the weights stored as fp16 and cast to fp32 when ONNX Runtime loads the graph
  (it folds the casts): fp32 arithmetic and independent rows at about the int8 file size.
- ``nbits8``: the dequantised weights quantised again per block of 32 along the input dimension, symmetric
  int8, into ONNX Runtime's ``MatMulNBits`` (``accuracy_level`` 4: int8 compute on CPUs that have it). About the
  int8 size, with kernels on both providers.

Usage: ``python -m export.requantize BUNDLE --out DIR --to fp32|fp16-weights|nbits8 [--graphs decoder ...]``.
The output is a complete bundle with its manifest's checksums, ``graph_precision`` and name updated; evaluate it
with ``npc-runtime eval --model DIR`` before serving it.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from npc_runtime.errors import NpcRuntimeError

__all__ = ["MODES", "dequantize_matmuls", "to_nbits", "requantize_bundle", "main"]

log = logging.getLogger(__name__)

MODES = ("fp32", "fp16-weights", "nbits8")
NBITS_BLOCK = 32


def dequantize_matmuls(model: onnx.ModelProto, fp16_weights: bool = False) -> tuple[onnx.ModelProto, int]:
    """``model`` with each dynamically quantised MatMul (``DynamicQuantizeLinear`` → ``MatMulInteger`` → ``Cast``
    → ``Mul`` by the two scales) replaced by a float ``MatMul`` on dequantised weights; returns it and the count.
    ``fp16_weights`` stores those weights as fp16 behind a ``Cast`` to fp32, which ONNX Runtime folds into fp32
    weights when it loads the graph: half the file, fp32 arithmetic."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    weights = []
    casts: list[onnx.NodeProto] = []
    for node in [n for n in graph.node if n.op_type == "MatMulInteger"]:
        quantize = producer.get(node.input[0])
        cast = consumers.get(node.output[0], [None])[0]
        rescale = consumers.get(cast.output[0], [None])[0] if cast is not None else None
        scales = producer.get(rescale.input[1]) if rescale is not None and len(rescale.input) > 1 else None
        if (quantize is None or quantize.op_type != "DynamicQuantizeLinear" or cast is None or cast.op_type != "Cast"
                or rescale is None or rescale.op_type != "Mul" or scales is None or scales.op_type != "Mul"
                or node.input[1] not in inits or len(node.input) < 4 or node.input[3] not in inits):  # fmt: skip
            raise ValueError(f"{node.name}: not the dynamic-quantisation pattern this tool rewrites")
        weight_scale = [name for name in scales.input if name in inits]
        if len(weight_scale) != 1:
            raise ValueError(f"{node.name}: cannot tell the weight scale among {list(scales.input)}")
        q = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = numpy_helper.to_array(inits[node.input[3]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[weight_scale[0]]).astype(np.float32)
        name = f"{node.input[1]}_dequantized"
        weight = (q - zero) * scale
        if fp16_weights:
            weights.append(numpy_helper.from_array(weight.astype(np.float16), f"{name}_fp16"))
            casts.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT,
                                          name=f"{node.name}_weight_fp32"))
        else:
            weights.append(numpy_helper.from_array(weight.astype(np.float32), name))
        replaced[id(node)] = helper.make_node("MatMul", [quantize.input[0], name], [rescale.output[0]],
                                              name=f"{node.name}_fp32")
        dropped.update((id(cast), id(rescale), id(scales)))
    nodes = casts + [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    outputs = {out.name for out in graph.output}
    while True:  # the quantise nodes and anything else left without a reader
        read = {name for node in nodes for name in node.input} | outputs
        alive = [node for node in nodes if any(out in read for out in node.output)]
        if len(alive) == len(nodes):
            break
        nodes = alive
    read = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in read] + weights
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model, len(replaced)


def to_nbits(model: onnx.ModelProto, block_size: int = NBITS_BLOCK, accuracy_level: int = 4) -> onnx.ModelProto:
    """Float MatMuls with constant weights as symmetric 8-bit ``MatMulNBits`` (weight-only, blockwise)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=block_size, is_symmetric=True,
                                     accuracy_level=accuracy_level)
    quantizer.process()
    return quantizer.model.model


def requantize_bundle(src: str | Path, out: str | Path, mode: str, graphs: Sequence[str] = ("decoder",)) -> Path:
    """Copy the bundle at ``src`` to ``out`` with ``graphs`` rewritten to ``mode``; returns ``out``."""
    from npc_runtime.bundle import load_bundle

    from .make_bundle import rewrite_manifest

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    src, out = Path(src), Path(out)
    bundle = load_bundle(src)
    missing = [name for name in graphs if name not in bundle.graphs]
    if missing:
        raise ValueError(f"{src} has no graph {missing} (it has {sorted(bundle.graphs)})")
    if out.resolve() == src.resolve():
        raise ValueError("--out must be another folder than the bundle")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    precision = dict(bundle.manifest.get("graph_precision", {}))
    for name in graphs:
        path = out / bundle.graphs[name].path.name
        model, count = dequantize_matmuls(onnx.load(str(path)), fp16_weights=mode == "fp16-weights")
        if not count and mode != "nbits8":
            raise ValueError(f"graph {name!r} has no dynamically quantised MatMuls: it is fp32 already")
        if mode == "nbits8":
            model = to_nbits(model)
        onnx.save(model, str(path))
        precision[name] = mode
        log.info("%s: %d dynamic int8 MatMuls rewritten as %s (%.1f MB)", name, count, mode, path.stat().st_size / 1e6)
    kinds = set(precision.values())
    rewrite_manifest(out, {"graph_precision": precision, "precision": kinds.pop() if len(kinds) == 1 else "mixed",
                           "name": f"{bundle.name}-{mode}"})  # checksums and sizes refreshed
    load_bundle(out)  # checksums and graph names hold
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.requantize",
        description="Rewrite a bundle's dynamic int8 MatMuls as fp32, as fp16-stored weights computed in fp32, or "
        "as weight-only int8 (MatMulNBits): rows of a batch no longer move each other's logits, and the MatMuls run "
        "on CUDA.",
    )
    parser.add_argument("bundle", type=Path, help="the bundle folder to read (it is not changed)")
    parser.add_argument("--out", type=Path, required=True, help="the new bundle's folder (replaced if it exists)")
    parser.add_argument("--to", choices=MODES, default="fp32", help="the new precision (default: %(default)s)")
    parser.add_argument("--graphs", nargs="+", default=["decoder"], help="graphs to rewrite (default: decoder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    try:
        path = requantize_bundle(args.bundle, args.out, args.to, args.graphs)
    except (ValueError, OSError, NpcRuntimeError) as exc:
        parser.exit(1, f"python -m export.requantize: {exc}\n")
    total = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6
    print(f"wrote {path} ({total:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
