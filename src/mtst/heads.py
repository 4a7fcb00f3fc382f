"""Task heads: small ``nn.Module``s built from dimensions only (no data, no config objects)."""

from __future__ import annotations

import torch
from torch import nn
from torchcrf import CRF

HEAD_TYPES = ("linear", "mlp")  # config key `head`: a linear layer, or an MLP with one hidden layer


def _mlp(in_dim: int, out_dim: int, *, hidden_size: int | None, dropout: float) -> nn.Sequential:
    """Dropout + Linear, or Dropout + Linear + GELU + Dropout + Linear when ``hidden_size`` is given."""
    if hidden_size is None:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_dim, hidden_size),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_size, out_dim),
    )


class ClassificationHead(nn.Module):
    """Sentence embedding ``[batch, dim]`` to class logits ``[batch, n_labels]``."""

    def __init__(self, in_dim: int, n_labels: int, *, hidden_size: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = _mlp(in_dim, n_labels, hidden_size=hidden_size, dropout=dropout)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding)  # [batch, n_labels]


class RegressionHead(nn.Module):
    """Sentence embedding ``[batch, dim]`` to one raw score ``[batch]`` (the task applies a sigmoid if asked)."""

    def __init__(self, in_dim: int, *, hidden_size: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = _mlp(in_dim, 1, hidden_size=hidden_size, dropout=dropout)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding).squeeze(-1)  # [batch]


class TokenClassificationHead(nn.Module):
    """Token states ``[batch, seq, dim]`` to tag scores ``[batch, seq, n_tags]``, with an optional CRF on top."""

    def __init__(
        self, in_dim: int, n_tags: int, *, hidden_size: int | None = None, dropout: float = 0.1, crf: bool = False
    ) -> None:
        super().__init__()
        self.net = _mlp(in_dim, n_tags, hidden_size=hidden_size, dropout=dropout)
        self.crf: nn.Module | None = CRF(n_tags, batch_first=True) if crf else None

    def forward(self, token_states: torch.Tensor) -> torch.Tensor:
        return self.net(token_states)  # [batch, seq, n_tags] emissions
