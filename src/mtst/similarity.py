"""Cosine similarity between embeddings, and the ranking of pairs that the CLI prints."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def cosine_similarity(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    """Cosine similarity matrix ``[n, m]`` between embeddings ``[n, dim]`` and ``[m, dim]``."""
    a = torch.as_tensor(a, dtype=torch.float32)
    b = torch.as_tensor(b, dtype=torch.float32)
    if a.ndim == 1:
        a = a.unsqueeze(0)
    if b.ndim == 1:
        b = b.unsqueeze(0)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"Embedding sizes differ: {a.shape[-1]} vs {b.shape[-1]}.")
    return (F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T).numpy()  # [n, m]


def ranked_pairs(sim: np.ndarray) -> list[tuple[int, int, float]]:
    """All pairs ``(i, j, score)`` with ``i < j`` of a square similarity matrix, most similar first."""
    n = sim.shape[0]
    if sim.shape != (n, n):
        raise ValueError(f"Expected a square similarity matrix, got shape {sim.shape}.")
    rows, cols = np.triu_indices(n, k=1)
    order = np.argsort(-sim[rows, cols], kind="stable")
    return [(int(rows[k]), int(cols[k]), float(sim[rows[k], cols[k]])) for k in order]
