"""Pooling: turn token states into one sentence embedding.

Pure functions of (token states, attention mask); the table ``POOLING_MODES`` is the
single place that lists the valid modes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["POOLING_MODES", "check_pooling", "pool", "mean_pool", "cls_pool", "max_pool"]


def mean_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the non-padding token states (mask-aware), as sentence-transformers does."""
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)  # [batch, seq, 1]
    summed = (token_states * mask).sum(dim=1)  # [batch, hidden]
    counts = mask.sum(dim=1).clamp(min=1e-9)  # [batch, 1]
    return summed / counts


def cls_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """State of the first token ([CLS] for BERT-like models; right padding assumed)."""
    return token_states[:, 0]  # [batch, hidden]


def max_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Coordinate-wise maximum over the non-padding token states (mask-aware)."""
    mask = attention_mask.unsqueeze(-1).bool()  # [batch, seq, 1]
    return token_states.masked_fill(~mask, float("-inf")).max(dim=1).values  # [batch, hidden]


POOLING_MODES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "max": max_pool,
}


def check_pooling(mode: str) -> str:
    """Return ``mode`` if it is a valid pooling mode, else raise a ``ValueError`` listing the valid ones."""
    if mode not in POOLING_MODES:
        raise ValueError(f"Unknown pooling mode {mode!r}. Valid pooling modes are: {', '.join(POOLING_MODES)}.")
    return mode


def pool(mode: str, token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Pool ``token_states`` [batch, seq, hidden] into [batch, hidden] with the named mode."""
    return POOLING_MODES[check_pooling(mode)](token_states, attention_mask)
