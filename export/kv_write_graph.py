"""The runtime's KV-write graph: one new position per row, written in place into a device-resident KV cache.

:class:`npc_runtime.device_kv.DeviceKVCache` keeps every KV tensor of the running batch in one buffer
``(T, S, H, C, Dh)`` in the execution provider's memory. After each decoder step the T new positions
``(T, n, H, 1, Dh)`` go to column ``lengths[r]`` of rows ``r < n``. That is a ``ScatterElements`` along axis 3
whose indices are the row lengths broadcast to the updates' shape; the runtime binds its output to the input's own
memory, so nothing but the new positions is written. The graph is generic in every dimension, so one small file
serves every bundle: ``npc_runtime/data/kv_write.onnx``, written by ``python -m export.kv_write_graph`` (the
runtime never imports ``onnx``; a test checks that the shipped file is what this module builds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
from onnx import TensorProto, helper

__all__ = ["build", "SHIPPED", "main"]

SHIPPED = Path(__file__).resolve().parent.parent / "npc_runtime" / "data" / "kv_write.onnx"
OPSET = 17


def build() -> onnx.ModelProto:
    """The graph: ``cache (T,S,H,C,Dh)``, ``updates (T,n,H,1,Dh)``, ``lengths (n,) int64`` -> ``written``."""
    nodes = [
        helper.make_node("Shape", ["updates"], ["updates_shape"]),
        helper.make_node(
            "Constant", [], ["row_shape"],
            value=helper.make_tensor("row_shape_value", TensorProto.INT64, [5], [1, -1, 1, 1, 1]),
        ),
        helper.make_node("Reshape", ["lengths", "row_shape"], ["row_lengths"]),
        helper.make_node("Expand", ["row_lengths", "updates_shape"], ["columns"]),
        helper.make_node("ScatterElements", ["cache", "columns", "updates"], ["written"], axis=3),
    ]
    graph = helper.make_graph(
        nodes,
        "kv_write",
        [
            helper.make_tensor_value_info("cache", TensorProto.FLOAT, ["T", "S", "H", "C", "Dh"]),
            helper.make_tensor_value_info("updates", TensorProto.FLOAT, ["T", "n", "H", 1, "Dh"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["n"]),
        ],
        [helper.make_tensor_value_info("written", TensorProto.FLOAT, ["T", "S", "H", "C", "Dh"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9,
                              producer_name="npc-runtime")
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.kv_write_graph",
        description="Write the runtime's KV-write graph (npc_runtime/data/kv_write.onnx).",
    )
    parser.add_argument("--out", type=Path, default=SHIPPED, help=f"where to write it (default: {SHIPPED})")
    args = parser.parse_args(argv)
    args.out.write_bytes(build().SerializeToString())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
