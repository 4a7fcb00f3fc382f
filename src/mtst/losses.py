"""Losses: pure functions of (outputs, targets). No model objects are stored in a loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # label the losses skip: sub-words past the first, special tokens, padding (torch's default)


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, *, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over the last dimension; positions labelled ``IGNORE_INDEX`` are skipped."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        weight=class_weights,
        ignore_index=IGNORE_INDEX,
    )


def regression_loss(raw: torch.Tensor, targets: torch.Tensor, *, kind: str, output: str) -> torch.Tensor:
    """MSE on the (sigmoid or linear) score, or BCE on the logit (targets in 0..1)."""
    raw, targets = raw.float(), targets.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(raw, targets)
    score = torch.sigmoid(raw) if output == "sigmoid" else raw
    return F.mse_loss(score, targets)


def gather_words(
    emissions: torch.Tensor, first_subword: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compact per-token scores to per-word scores (one row per word's first sub-word).

    Returns (word_scores [batch, words, n_tags], token positions [batch, words], word mask [batch, words]).
    """
    n_words = first_subword.sum(dim=1)  # [batch]
    width = max(int(n_words.max()), 1) if n_words.numel() else 1
    # A stable sort moves each row's first-sub-word positions to the front, in order.
    positions = torch.argsort((~first_subword).to(torch.int8), dim=1, stable=True)[:, :width]  # [batch, words]
    word_mask = torch.arange(width, device=emissions.device).unsqueeze(0) < n_words.unsqueeze(1)  # [batch, words]
    index = positions.unsqueeze(-1).expand(-1, -1, emissions.shape[-1])
    return emissions.gather(1, index), positions, word_mask


def crf_nll(crf: nn.Module, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the gold word tags under a CRF (labels on first sub-words only)."""
    first = labels != IGNORE_INDEX  # [batch, seq]
    keep = first.any(dim=1)  # sentences with no word (all truncated away) carry no signal
    word_scores, positions, word_mask = gather_words(emissions[keep], first[keep])
    tags = labels[keep].gather(1, positions).clamp(min=0)  # [batch, words]
    return -crf(word_scores.float(), tags, mask=word_mask, reduction="mean")


def _cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.float(), b.float(), dim=-1)  # [batch]


def multiple_negatives_ranking(anchors: torch.Tensor, positives: torch.Tensor, *, scale: float = 20.0) -> torch.Tensor:
    """In-batch negatives (InfoNCE): each anchor must pick its own positive among all positives in the batch."""
    sims = F.normalize(anchors.float(), dim=-1) @ F.normalize(positives.float(), dim=-1).T * scale  # [batch, batch]
    return F.cross_entropy(sims, torch.arange(len(anchors), device=anchors.device))


def cosent(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor, *, scale: float = 20.0) -> torch.Tensor:
    """CoSENT: every pair with a higher gold score should have a higher cosine than every lower-scored pair."""
    cos = _cosine_rows(a, b) * scale  # [batch]
    diff = cos.unsqueeze(0) - cos.unsqueeze(1)  # [batch, batch]: cos_j - cos_i
    lower_first = scores.unsqueeze(1) > scores.unsqueeze(0)  # i should rank above j
    diff = diff.masked_fill(~lower_first, float("-inf")).flatten()
    return torch.logsumexp(torch.cat([torch.zeros(1, device=diff.device), diff]), dim=0)


def cosine_mse(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """MSE between the cosine of each pair and its gold score (scaled to 0..1)."""
    return F.mse_loss(_cosine_rows(a, b), scores.float())


LOSS_WEIGHTING = ("static", "uncertainty")


class LossWeights(nn.Module):
    """Per-task loss weights: static (from the config) or learned uncertainty weights (Kendall et al., 2018).

    With uncertainty weighting each task has a learned log-variance ``s``; its loss becomes ``exp(-s) * L + s``.
    """

    def __init__(self, static: dict[str, float], *, learned: bool) -> None:
        super().__init__()
        self.static = dict(static)
        self.learned = learned
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in static}) if learned else None

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        if self.log_vars is None:
            return self.static[task] * loss
        s = self.log_vars[task]
        return torch.exp(-s) * loss + s
