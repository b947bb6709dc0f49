"""The running batch's KV cache, in two forms the scheduler drives the same way.

:class:`SlotKVCache` serves role-model decoders, which return the keys and values of their new positions only.
Each of the decoder's KV tensors lives in one preallocated buffer ``(slots, H, capacity, Dh)``; row ``r`` of the
batch holds its ``lengths[r]`` cached positions in columns ``[0, lengths[r])`` and the rest is masked. A step
reads ``buffer[:n]`` (a contiguous view, so ONNX Runtime gets it without a copy) and the new position is written
in place at each row's own column. Nothing is copied per step; the buffers grow in chunks of ``grow`` columns, and
a finished row is replaced by the last row (one row copied) so the live rows stay dense at the front.

:class:`ConcatKVCache` serves decoders that return ``present = cat(past, new)`` (imported Hugging Face models):
left-padded arrays that the engine replaces every step.

Both offer ``append(kv, mask)`` for a prefilled group of rows, ``remove(rows) -> order`` (the old row index now at
each position, which the scheduler applies to its own row list), ``clear()`` and ``len()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["SlotRows", "SlotKVCache", "ConcatKVCache"]


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


class SlotRows:
    """The slot policy of a cache whose live rows stay dense at the front of preallocated slots: how it grows
    (rows double, columns in chunks of ``grow`` up to ``max_length``), the attention mask over the capacity, and
    removing rows by moving the last live row into each freed slot, giving memory back when long rows leave.

    Subclasses hold ``n``, ``lengths``, ``grow``, ``max_length``, ``slots`` and ``capacity``, and move the data:
    ``_realloc(slots, capacity)`` keeps the live rows' contents, ``_move_row(dst, src)`` copies row ``src``'s
    ``lengths[src]`` positions of every tensor to row ``dst``, and ``_moved()`` runs once after a removal's moves.
    """

    n: int
    lengths: np.ndarray
    grow: int
    max_length: int | None
    slots: int
    capacity: int

    def __init__(self, n_tensors: int, heads: int, head_dim: int, grow: int, max_length: int | None) -> None:
        if n_tensors < 1 or heads < 1 or head_dim < 1 or grow < 1:
            raise ValueError("n_tensors, heads, head_dim and grow must be >= 1")
        self.n_tensors, self.heads, self.head_dim = n_tensors, heads, head_dim
        self.grow = grow
        self.max_length = max_length
        self.clear()

    def clear(self) -> None:
        """Drop every row (subclasses also drop their memory)."""
        self.n = 0
        self.lengths = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    def _realloc(self, slots: int, capacity: int) -> None:
        raise NotImplementedError

    def _move_row(self, dst: int, src: int) -> None:
        raise NotImplementedError

    def _moved(self) -> None:
        """After a removal moved rows (a device cache waits for its copies here)."""

    def _reserve(self, rows: int, columns: int) -> None:
        """Make room for ``rows`` rows of ``columns`` positions, keeping the live rows' contents."""
        slots, capacity = self.slots, self.capacity
        if rows <= slots and columns <= capacity:
            return
        new_slots = max(rows, 2 * slots, 4) if rows > slots else slots
        new_capacity = max(capacity, _round_up(columns, self.grow))
        if self.max_length is not None:
            new_capacity = max(columns, min(new_capacity, self.max_length))
        self._realloc(new_slots, new_capacity)

    def attention_mask(self, new: int = 1) -> np.ndarray:
        """``(n, capacity + new)`` int64: 1 on each row's cached columns and on the ``new`` positions."""
        cached = np.arange(self.capacity)[None, :] < self.lengths[:, None]
        return np.concatenate([cached, np.ones((self.n, new), dtype=bool)], axis=1).astype(np.int64)

    def remove(self, rows: Iterable[int]) -> list[int]:
        """Drop ``rows``; the last live row moves into each freed one. Returns the old index at each position."""
        order = list(range(self.n))
        moved = False
        for row in sorted(set(rows), reverse=True):
            last = len(order) - 1
            if row != last:
                self._move_row(row, last)
                self.lengths[row] = self.lengths[last]
                order[row] = order[last]
                moved = True
            order.pop()
        if moved:
            self._moved()
        self.n = len(order)
        self.lengths = self.lengths[: self.n].copy()
        longest = int(self.lengths.max(initial=0)) + 1
        if self.n and self.capacity - _round_up(longest, self.grow) >= 4 * self.grow:
            # long rows left while short ones go on: give the memory back. An empty cache keeps its buffers for
            # the next prompts, which need about as much.
            self._realloc(self.slots, _round_up(longest, self.grow))
        return order


class SlotKVCache(SlotRows):
    """Preallocated, in-place KV buffers for a decoder that outputs only its new positions' keys and values."""

    def __init__(self, n_tensors: int, heads: int, head_dim: int, dtype: np.dtype | type = np.float32,
                 grow: int = 32, max_length: int | None = None) -> None:
        self.dtype = np.dtype(dtype)
        super().__init__(n_tensors, heads, head_dim, grow, max_length)

    def clear(self) -> None:
        super().clear()
        self.buffers = [np.zeros((0, self.heads, 0, self.head_dim), dtype=self.dtype) for _ in range(self.n_tensors)]

    @property
    def slots(self) -> int:
        return self.buffers[0].shape[0]

    @property
    def capacity(self) -> int:
        return self.buffers[0].shape[2]

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    def _realloc(self, slots: int, capacity: int) -> None:
        keep = min(capacity, self.capacity)
        for i, old in enumerate(self.buffers):
            new = np.zeros((slots, self.heads, capacity, self.head_dim), dtype=self.dtype)
            new[: self.n, :, :keep] = old[: self.n, :, :keep]
            self.buffers[i] = new

    def past(self) -> list[np.ndarray]:
        """Each tensor's ``(n, H, capacity, Dh)`` view of the live rows, for the decoder's past inputs."""
        return [b[: self.n] for b in self.buffers]

    def append(self, kv: Sequence[np.ndarray], mask: np.ndarray) -> None:
        """Add prefilled rows: ``kv`` per tensor ``(B, H, S, Dh)`` left padded as ``mask (B, S)`` says."""
        batch, width = mask.shape
        lengths = mask.sum(axis=1).astype(np.int64)
        self._reserve(self.n + batch, int(lengths.max(initial=0)) + 1)
        for tensor, buffer in zip(kv, self.buffers, strict=True):
            for row in range(batch):
                n = int(lengths[row])
                buffer[self.n + row, :, :n] = tensor[row, :, width - n :]
        self.lengths = np.concatenate([self.lengths, lengths])
        self.n += batch

    def write(self, kv: Sequence[np.ndarray]) -> None:
        """Append one new position per row: ``kv`` per tensor ``(n, H, 1, Dh)``, written at each row's length."""
        self._reserve(self.n, int(self.lengths.max(initial=0)) + 1)
        rows = np.arange(self.n)
        for tensor, buffer in zip(kv, self.buffers, strict=True):
            buffer[rows, :, self.lengths, :] = tensor[:, :, 0, :]
        self.lengths += 1

    def _move_row(self, dst: int, src: int) -> None:
        n = int(self.lengths[src])
        for buffer in self.buffers:
            buffer[dst, :, :n] = buffer[src, :, :n]


def _pad_left(array: np.ndarray, axis: int, amount: int) -> np.ndarray:
    if amount == 0:
        return array
    widths = [(0, 0)] * array.ndim
    widths[axis] = (amount, 0)
    return np.pad(array, widths)


class ConcatKVCache:
    """Left-padded ``(B, H, P, Dh)`` arrays for decoders that return ``present = cat(past, new)``."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.kv: list[np.ndarray] = []
        self.mask = np.zeros((0, 0), dtype=np.int64)

    def __len__(self) -> int:
        return self.mask.shape[0]

    def append(self, kv: Sequence[np.ndarray], mask: np.ndarray) -> None:
        if not len(self):
            self.kv, self.mask = list(kv), mask
            return
        old_len, new_len = self.mask.shape[1], mask.shape[1]
        width = max(old_len, new_len)
        self.kv = [
            np.concatenate([_pad_left(a, 2, width - old_len), _pad_left(b, 2, width - new_len)], axis=0)
            for a, b in zip(self.kv, kv, strict=True)
        ]
        self.mask = np.concatenate([_pad_left(self.mask, 1, width - old_len), _pad_left(mask, 1, width - new_len)])

    def remove(self, rows: Iterable[int]) -> list[int]:
        drop = set(rows)
        keep = [i for i in range(len(self)) if i not in drop]
        if not keep:
            self.clear()
            return []
        index = np.asarray(keep)
        mask = self.mask[index]
        start = int(np.argmax(mask.any(axis=0)))  # leading columns that are padding in every row
        self.mask = mask[:, start:]
        self.kv = [kv[index][:, :, start:] for kv in self.kv]
        return keep
