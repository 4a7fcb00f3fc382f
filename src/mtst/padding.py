"""Right-padding of token-id rows into the tensors a backbone takes (shared by encoding and training)."""

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
