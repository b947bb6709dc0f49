"""The running batch's KV cache in the execution provider's memory, bound to the decoder with IOBinding.

With the CPU provider the decoder reads :class:`~npc_runtime.kv_cache.SlotKVCache`'s numpy buffers in place. With
the CUDA provider those same buffers would travel to the GPU for every step and the new positions back: about
1.75 MB per row at a 216-token prompt, so about 110 MB a step at 64 NPCs, which is why the host cache kept the
GPU at 1.3-1.5k tokens/s (``docs/benchmarks.md``, "CUDA"). :class:`DeviceKVCache` keeps them on the device:

- All ``T`` KV tensors live in one device buffer ``(T, S, H, C, Dh)`` float32: ``S`` row slots, ``C`` cached
  columns. The live rows are dense at the front, so tensor ``t``'s ``(n, H, C, Dh)`` past is one contiguous block
  that is bound to the decoder's input by its address, without a copy.
- The decoder writes its new positions, bound by address too, into a staging buffer laid out ``(T, n, H, 1, Dh)``.
  A tiny graph (``data/kv_write.onnx``, a ScatterElements made by ``export/kv_write_graph.py``) then writes them
  at each row's own column, its output bound to the cache's own memory, so the cache is updated in place.
- Only the step's small inputs (ids, positions, attention mask) go to the device and only the logits come back.
- Appending prefilled rows, moving the last row into a finished row's slot and growing the buffer are row copies
  with ``cudaMemcpy2D`` (CUDA's runtime library, loaded with ``ctypes``: ONNX Runtime's CUDA provider has loaded it
  already). :class:`HostMemory` does the same copies in host memory, so the whole path, bindings and in-place
  write included, also runs on the CPU provider: the tests check it there against :class:`SlotKVCache`.

The cache offers the scheduler the same calls as ``SlotKVCache``: ``append``, ``remove``, ``clear``, ``len``,
``attention_mask``; the engine's ``decode_step`` calls :meth:`bind` before the decoder and :meth:`commit` after.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InferenceError
from .kv_cache import SlotRows
from .ort_backend import OrtGraph, RuntimeOptions, _ort

__all__ = ["KV_WRITE_GRAPH", "HostMemory", "CudaMemory", "KVWriter", "DeviceKVCache"]

log = logging.getLogger(__name__)

#: The in-place write of one new position per row (see ``export/kv_write_graph.py``).
KV_WRITE_GRAPH = Path(__file__).resolve().parent / "data" / "kv_write.onnx"
FLOAT = 4  # bytes of a float32
_MEMCPY_DEFAULT = 4  # cudaMemcpyDefault: the direction follows from the addresses (unified addressing)


class HostMemory:
    """Host memory with the device memory's calls, for the CPU provider: the device cache's logic without a GPU."""

    device_type = "cpu"
    device_id = 0

    def alloc(self, nbytes: int) -> tuple[Any, int]:
        """A zeroed block of ``nbytes``: the object that owns it and its address."""
        block = np.zeros(max(nbytes, 1), dtype=np.uint8)
        return block, block.ctypes.data

    def copy2d(self, dst: int, dpitch: int, src: int, spitch: int, width: int, height: int) -> None:
        """``height`` runs of ``width`` bytes, ``spitch`` apart at ``src`` and ``dpitch`` apart at ``dst``."""
        for row in range(height):
            ctypes.memmove(dst + row * dpitch, src + row * spitch, width)

    def sync(self) -> None:
        """Wait for the copies (host copies are done when they return)."""


def _load_cudart() -> ctypes.CDLL:
    """CUDA's runtime library: by name, or the copy ONNX Runtime's CUDA provider has loaded into this process."""
    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                path = line.split()[-1]
                if "libcudart.so" in Path(path).name:
                    return ctypes.CDLL(path)
    except OSError:
        pass
    raise InferenceError("the device KV cache needs CUDA's runtime library (libcudart), which is not loadable here")


class CudaMemory:
    """GPU memory from ONNX Runtime's CUDA allocator, zeroed and copied with CUDA's runtime library."""

    device_type = "cuda"

    def __init__(self, device_id: int = 0) -> None:
        self.device_id = device_id
        self.cudart = _load_cudart()
        self.cudart.cudaGetErrorString.restype = ctypes.c_char_p
        self._check(self.cudart.cudaSetDevice(ctypes.c_int(device_id)), "cudaSetDevice")

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            reason = self.cudart.cudaGetErrorString(ctypes.c_int(status)).decode(errors="replace")
            raise InferenceError(f"device KV cache: {what} failed: {reason} (CUDA error {status})")

    def alloc(self, nbytes: int) -> tuple[Any, int]:
        try:
            value = _ort().OrtValue.ortvalue_from_shape_and_type([max(nbytes, 1)], np.uint8, "cuda", self.device_id)
        except Exception as exc:  # onnxruntime's own error types
            raise InferenceError(f"device KV cache: cannot allocate {nbytes / 2**20:.1f} MiB on the GPU: {exc}") \
                from exc
        ptr = int(value.data_ptr())
        # Masked columns must hold numbers: attention gives them weight 0, and 0 * NaN is NaN.
        self._check(self.cudart.cudaMemset(ctypes.c_void_p(ptr), 0, ctypes.c_size_t(max(nbytes, 1))), "cudaMemset")
        return value, ptr

    def copy2d(self, dst: int, dpitch: int, src: int, spitch: int, width: int, height: int) -> None:
        status = self.cudart.cudaMemcpy2D(
            ctypes.c_void_p(dst), ctypes.c_size_t(dpitch), ctypes.c_void_p(src), ctypes.c_size_t(spitch),
            ctypes.c_size_t(width), ctypes.c_size_t(height), ctypes.c_int(_MEMCPY_DEFAULT),
        )
        self._check(status, "cudaMemcpy2D")

    def sync(self) -> None:
        # ONNX Runtime runs its kernels on its own stream: wait until the copies on the default stream are done.
        self._check(self.cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize")


class KVWriter:
    """The in-place write of the staged new positions into the cache (``data/kv_write.onnx``)."""

    def __init__(self, options: RuntimeOptions, providers: Sequence[str]) -> None:
        self.graph = OrtGraph(KV_WRITE_GRAPH, ("cache", "updates", "lengths"), ("written",), options, providers)

    def write(self, memory: HostMemory | CudaMemory, cache: tuple[int, list[int]], updates: tuple[int, list[int]],
              lengths: np.ndarray) -> None:
        """Write ``updates`` (address, shape) at column ``lengths[r]`` of row ``r`` of ``cache`` (address, shape)."""
        binding = self.graph.session.io_binding()
        where = (memory.device_type, memory.device_id, np.float32)
        binding.bind_input("cache", *where, cache[1], cache[0])
        binding.bind_input("updates", *where, updates[1], updates[0])
        binding.bind_cpu_input("lengths", np.ascontiguousarray(lengths, dtype=np.int64))
        binding.bind_output("written", *where, cache[1], cache[0])
        self.graph.run_bound(binding)


class DeviceKVCache(SlotRows):
    """The running batch's KV tensors in device memory; same calls and slot policy as
    :class:`~npc_runtime.kv_cache.SlotKVCache`."""

    def __init__(self, memory: HostMemory | CudaMemory, writer: KVWriter, n_tensors: int, heads: int,
                 head_dim: int, grow: int = 32, max_length: int | None = None) -> None:
        self.memory, self.writer = memory, writer
        super().__init__(n_tensors, heads, head_dim, grow, max_length)

    def clear(self) -> None:
        super().clear()
        self.slots = self.capacity = 0
        self._buffer: Any = None
        self._ptr = 0
        self._staging: Any = None
        self._staging_ptr = 0

    @property
    def nbytes(self) -> int:
        return self.n_tensors * self.slots * self.heads * self.capacity * self.head_dim * FLOAT

    def _tensor_ptr(self, t: int, ptr: int | None = None, slots: int | None = None, capacity: int | None = None) -> int:
        slots = self.slots if slots is None else slots
        capacity = self.capacity if capacity is None else capacity
        return (self._ptr if ptr is None else ptr) + t * slots * self.heads * capacity * self.head_dim * FLOAT

    def _realloc(self, slots: int, capacity: int) -> None:
        mem, heads, dh = self.memory, self.heads, self.head_dim
        buffer, ptr = mem.alloc(self.n_tensors * slots * heads * capacity * dh * FLOAT)
        keep = min(capacity, self.capacity)
        if self.n and keep:
            for t in range(self.n_tensors):  # each (row, head) run of ``keep`` columns, to its new pitch
                mem.copy2d(self._tensor_ptr(t, ptr, slots, capacity), capacity * dh * FLOAT,
                           self._tensor_ptr(t), self.capacity * dh * FLOAT, keep * dh * FLOAT, self.n * heads)
        if slots != self.slots:
            self._staging, self._staging_ptr = mem.alloc(self.n_tensors * slots * heads * dh * FLOAT)
        mem.sync()
        self._buffer, self._ptr, self.slots, self.capacity = buffer, ptr, slots, capacity

    def append(self, kv: Sequence[np.ndarray], mask: np.ndarray) -> None:
        """Add prefilled rows: ``kv`` per tensor ``(B, H, S, Dh)`` left padded as ``mask (B, S)`` says."""
        batch, width = mask.shape
        lengths = mask.sum(axis=1).astype(np.int64)
        self._reserve(self.n + batch, int(lengths.max(initial=0)) + 1)
        heads, dh, capacity = self.heads, self.head_dim, self.capacity
        row_bytes = heads * capacity * dh * FLOAT
        for t, tensor in enumerate(kv):
            host = np.ascontiguousarray(tensor, dtype=np.float32)
            base = self._tensor_ptr(t)
            for row in range(batch):
                n = int(lengths[row])
                if n:  # each head's last n positions, to the row's first n columns
                    src = host.ctypes.data + (row * heads * width + width - n) * dh * FLOAT
                    self.memory.copy2d(base + (self.n + row) * row_bytes, capacity * dh * FLOAT,
                                       src, width * dh * FLOAT, n * dh * FLOAT, heads)
        self.memory.sync()
        self.lengths = np.concatenate([self.lengths, lengths])
        self.n += batch

    def bind(self, binding: Any, past_names: Sequence[str], new_names: Sequence[str]) -> None:
        """Bind the live rows' past to the decoder's inputs and its new positions to the staging buffer."""
        mem, n, heads, dh = self.memory, self.n, self.heads, self.head_dim
        for t, name in enumerate(past_names):
            binding.bind_input(name, mem.device_type, mem.device_id, np.float32, [n, heads, self.capacity, dh],
                               self._tensor_ptr(t))
        for t, name in enumerate(new_names):
            binding.bind_output(name, mem.device_type, mem.device_id, np.float32, [n, heads, 1, dh],
                                self._staging_ptr + t * n * heads * dh * FLOAT)

    def commit(self) -> None:
        """Write the staged new positions at each row's length (after the decoder step that :meth:`bind` set up)."""
        self._reserve(self.n, int(self.lengths.max(initial=0)) + 1)
        shape = [self.n_tensors, self.slots, self.heads, self.capacity, self.head_dim]
        staged = [self.n_tensors, self.n, self.heads, 1, self.head_dim]
        self.writer.write(self.memory, (self._ptr, shape), (self._staging_ptr, staged), self.lengths)
        self.lengths += 1

    def write(self, kv: Sequence[np.ndarray]) -> None:
        """Append one new position per row from host arrays ``(n, H, 1, Dh)`` per tensor, as ``SlotKVCache.write``
        does (for tools and checks; the decoder writes its staging buffer itself)."""
        block = self.n * self.heads * self.head_dim * FLOAT
        hosts = [np.ascontiguousarray(tensor, dtype=np.float32) for tensor in kv]
        for t, host in enumerate(hosts):
            if block:
                self.memory.copy2d(self._staging_ptr + t * block, block, host.ctypes.data, block, block, 1)
        self.memory.sync()
        self.commit()

    def to_host(self) -> list[np.ndarray]:
        """A host copy of each tensor's live rows, ``(n, H, capacity, Dh)`` (for checks and tools)."""
        out = []
        for t in range(self.n_tensors):
            array = np.empty((self.n, self.heads, self.capacity, self.head_dim), dtype=np.float32)
            if array.size:
                self.memory.copy2d(array.ctypes.data, array.nbytes, self._tensor_ptr(t), array.nbytes, array.nbytes, 1)
            out.append(array)
        self.memory.sync()
        return out

    def _move_row(self, dst: int, src: int) -> None:
        # row ``src`` of every tensor to row ``dst``: one whole row per tensor, a tensor apart
        row_bytes = self.heads * self.capacity * self.head_dim * FLOAT
        tensor_bytes = self.slots * row_bytes
        self.memory.copy2d(self._ptr + dst * row_bytes, tensor_bytes, self._ptr + src * row_bytes, tensor_bytes,
                           row_bytes, self.n_tensors)

    def _moved(self) -> None:
        self.memory.sync()
