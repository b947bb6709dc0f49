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

- ``int8-rows``: the same int8 weights; each activation row (one token of one sequence) gets its own scale,
  symmetric int8 (:func:`rowwise_activations`), instead of one scale over the whole batch. Rows are independent
  to the last bit, closer to fp32 than per-tensor scales, at the int8 file size; each MatMul's input needs a
  few more elementwise operators, which cost the server about a tenth of its tokens/s on 2 CPU cores
  (docs/benchmarks.md, "Replies that do not depend on their batch"). The export applies it to every int8 graph
  (``onnx_export.quantize_graphs``; ``npc-runtime export --activation-scales tensor`` does not).

Usage: ``python -m export.requantize BUNDLE --out DIR --to fp32|fp16-weights|nbits8|int8-rows [--graphs decoder
...]``.
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

__all__ = ["MODES", "ACTIVATION_SCALES", "dequantize_matmuls", "rowwise_activations", "to_nbits", "requantize_bundle",
           "main"]

log = logging.getLogger(__name__)

MODES = ("fp32", "fp16-weights", "nbits8", "int8-rows")
#: How an exported int8 graph scales its activations (``npc-runtime export`` and ``import-hf``
#: ``--activation-scales``): a scale per row (:func:`rowwise_activations`) or ONNX Runtime's one per tensor.
ACTIVATION_SCALES = ("row", "tensor")
NBITS_BLOCK = 32


def _links(graph: onnx.GraphProto) -> tuple[dict[str, onnx.NodeProto], dict[str, list[onnx.NodeProto]]]:
    """The node writing each tensor name, and the nodes reading it."""
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return producer, consumers


def _dynamic_matmuls(graph: onnx.GraphProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto, onnx.NodeProto,
                                                            onnx.NodeProto, onnx.NodeProto, str]]:
    """Each dynamically quantised MatMul of ``graph`` as (quantise, MatMulInteger, Cast, rescale Mul, scales Mul,
    weight scale name); ``ValueError`` where a MatMulInteger is not in that pattern."""
    inits = {init.name for init in graph.initializer}
    producer, consumers = _links(graph)
    found = []
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
        found.append((quantize, node, cast, rescale, scales, weight_scale[0]))
    return found


def dequantize_matmuls(model: onnx.ModelProto, fp16_weights: bool = False) -> tuple[onnx.ModelProto, int]:
    """``model`` with each dynamically quantised MatMul (``DynamicQuantizeLinear`` → ``MatMulInteger`` → ``Cast``
    → ``Mul`` by the two scales, or the row-wise form of :func:`rowwise_activations`) replaced by a float ``MatMul``
    on dequantised weights; returns it and the count.
    ``fp16_weights`` stores those weights as fp16 behind a ``Cast`` to fp32, which ONNX Runtime folds into fp32
    weights when it loads the graph: half the file, fp32 arithmetic."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    replaced: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    weights = []
    casts: list[onnx.NodeProto] = []
    matmuls = _dynamic_matmuls(graph)  # held: the nodes' ids below are only theirs while they are alive
    for quantize, node, cast, rescale, scales, weight_scale in matmuls:
        replaced[id(node)] = _float_matmul(inits, quantize.input[0], node.input[1], node.input[3], weight_scale,
                                           rescale.output[0], node.name, fp16_weights, weights, casts)
        dropped.update((id(cast), id(rescale), id(scales)))
    rows = _rowwise_matmuls(graph)  # held, as above
    for x, node, scaled in rows:
        replaced[id(node)] = _float_matmul(inits, x, node.input[1], node.input[5], node.input[3], scaled.output[0],
                                           node.name, fp16_weights, weights, casts)
        dropped.add(id(scaled))
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


def _float_matmul(inits: dict[str, onnx.TensorProto], x: str, weight: str, zero_point: str, scale: str, out: str,
                  name: str, fp16_weights: bool, weights: list[onnx.TensorProto],
                  casts: list[onnx.NodeProto]) -> onnx.NodeProto:
    """A float ``MatMul`` of ``x`` by the dequantised int8 ``weight`` into ``out``; the weight goes to
    ``weights`` (and, as fp16, its ``Cast`` to ``casts``)."""
    q = numpy_helper.to_array(inits[weight]).astype(np.float32)
    zero = numpy_helper.to_array(inits[zero_point]).astype(np.float32)
    dequantized = (q - zero) * numpy_helper.to_array(inits[scale]).astype(np.float32)
    stored = f"{weight}_dequantized"
    if fp16_weights:
        weights.append(numpy_helper.from_array(dequantized.astype(np.float16), f"{stored}_fp16"))
        casts.append(helper.make_node("Cast", [f"{stored}_fp16"], [stored], to=onnx.TensorProto.FLOAT,
                                      name=f"{name}_weight_fp32"))
    else:
        weights.append(numpy_helper.from_array(dequantized.astype(np.float32), stored))
    return helper.make_node("MatMul", [x, stored], [out], name=f"{name}_fp32")


def _rowwise_matmuls(graph: onnx.GraphProto) -> list[tuple[str, onnx.NodeProto, onnx.NodeProto]]:
    """Each MatMul :func:`rowwise_activations` wrote, as (its float input, ``MatMulIntegerToFloat``, the ``Mul`` by
    the row scale that gives its output)."""
    producer, consumers = _links(graph)
    found = []
    for node in graph.node:
        if node.op_type != "MatMulIntegerToFloat" or not node.name.endswith("_rows"):
            continue
        quantized = producer[node.input[0]]
        divided = producer[quantized.input[0]]
        scaled = consumers[node.output[0]][0]
        if quantized.op_type != "QuantizeLinear" or divided.op_type != "Div" or scaled.op_type != "Mul":
            raise ValueError(f"{node.name}: not the row-wise pattern this tool writes")
        found.append((divided.input[0], node, scaled))
    return found


#: The constants every row-wise quantisation shares (initializer names of :func:`rowwise_activations`).
_ROW_EPS, _ROW_INV127, _ROW_ONE, _ROW_ZERO, _ROW_AXES = ("rowwise_eps", "rowwise_inv127", "rowwise_one",
                                                         "rowwise_zero_point", "rowwise_axes")  # fmt: skip


def rowwise_activations(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``model`` with each dynamically quantised MatMul's activation quantised per row instead of per tensor;
    returns it and the count of MatMuls.

    ``DynamicQuantizeLinear`` picks one scale and zero point for its whole input, so every row of a batch (each
    token of each sequence) is rounded on a grid set by the largest values anywhere in the batch, and a row's
    output depends on what it is batched with. Here each row gets its own: ``scale = max(|row|) / 127``, rounded to
    ``row / scale + 128`` as uint8 (symmetric, so the zero point is the constant 128), and each MatMul becomes ONNX
    Runtime's ``MatMulIntegerToFloat`` on that with a unit activation scale, times the row's scale. (Left as
    ``MatMulInteger`` → ``Cast`` → ``Mul``, ONNX Runtime's own fusion would turn it into ``MatMulIntegerToFloat``
    with the first row's scale for every row.) The weights and their scales are untouched."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    matmuls = _dynamic_matmuls(graph)  # held: the nodes' ids below are only theirs while they are alive
    if not matmuls:
        return model, 0
    constants = [numpy_helper.from_array(np.array(1e-12, np.float32), _ROW_EPS),
                 numpy_helper.from_array(np.array(1.0 / 127.0, np.float32), _ROW_INV127),
                 numpy_helper.from_array(np.array(1.0, np.float32), _ROW_ONE),
                 numpy_helper.from_array(np.array(128, np.uint8), _ROW_ZERO)]  # fmt: skip
    if opset >= 18:  # ReduceMax takes its axes as an input from opset 18
        constants.append(numpy_helper.from_array(np.array([-1], np.int64), _ROW_AXES))
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for quantize in {id(q): q for q, *_ in matmuls}.values():
        x = quantize.input[0]
        stem = quantize.name or x
        absolute, peak, floor, scaled, quantized = (f"{stem}_rows_{part}"
                                                    for part in ("abs", "max", "floor", "div", "q"))  # fmt: skip
        scale = f"{stem}_rows_scale"
        reduce = (helper.make_node("ReduceMax", [absolute, _ROW_AXES], [peak], keepdims=1, name=peak) if opset >= 18
                  else helper.make_node("ReduceMax", [absolute], [peak], axes=[-1], keepdims=1, name=peak))
        replaced[id(quantize)] = [
            helper.make_node("Abs", [x], [absolute], name=absolute),
            reduce,
            helper.make_node("Max", [peak, _ROW_EPS], [floor], name=floor),  # a row of zeros stays zeros
            helper.make_node("Mul", [floor, _ROW_INV127], [scale], name=scale),
            helper.make_node("Div", [x, scale], [scaled], name=scaled),
            helper.make_node("QuantizeLinear", [scaled, _ROW_ONE, _ROW_ZERO], [quantized], name=quantized),
        ]
        for q, node, cast, rescale, scales, weight_scale in matmuls:
            if q is not quantize:
                continue
            unscaled = f"{node.name}_rows_unscaled"
            replaced[id(node)] = [
                helper.make_node("MatMulIntegerToFloat", [quantized, node.input[1], _ROW_ONE, weight_scale, _ROW_ZERO,
                                                          node.input[3]], [unscaled], domain="com.microsoft",
                                 name=f"{node.name}_rows"),
                helper.make_node("Mul", [unscaled, scale], [rescale.output[0]], name=f"{node.name}_rows_scaled"),
            ]  # fmt: skip
            dropped.update((id(cast), id(rescale), id(scales)))
    nodes = [new for node in graph.node if id(node) not in dropped for new in replaced.get(id(node), [node])]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(constants)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    return model, len(matmuls)


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
        if mode == "int8-rows":
            model, count = rowwise_activations(onnx.load(str(path)))
        else:
            model, count = dequantize_matmuls(onnx.load(str(path)), fp16_weights=mode == "fp16-weights")
        if not count and mode != "nbits8":
            raise ValueError(f"graph {name!r} has no dynamically quantised MatMuls (fp32, or rewritten already)")
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
        description="Rewrite a bundle's dynamic int8 MatMuls as fp32, as fp16-stored weights computed in fp32, as "
        "weight-only int8 (MatMulNBits), or as int8 with a scale per activation row (int8-rows): rows of a batch no "
        "longer move each other's outputs; the first three also run every MatMul on CUDA.",
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
