"""Batches of similar length, and right-padding of token-id rows into the tensors a backbone takes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_ids(rows: Sequence[Sequence[int]], pad_id: int, *, fill: int | None = None) -> torch.Tensor:
    """Right-pad rows of ints into a ``[batch, longest]`` int64 tensor (``fill`` defaults to ``pad_id``)."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), pad_id if fill is None else fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def attention_mask(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """``[batch, longest]`` mask: 1 on real tokens, 0 on padding."""
    lens = torch.tensor([len(r) for r in rows])
    return (torch.arange(max(int(lens.max()), 1)).unsqueeze(0) < lens.unsqueeze(1)).long()


def features_for(rows: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Padded ``input_ids`` and ``attention_mask`` for token-id rows."""
    return {"input_ids": pad_ids(rows, pad_id), "attention_mask": attention_mask(rows)}


def sorted_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices cut into batches of ``batch_size``, longest first (stable: equal lengths keep their order).

    Sorting by length before batching cuts padding; longest first makes an out-of-memory error surface at once.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
