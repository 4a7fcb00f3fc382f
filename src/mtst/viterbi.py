"""Viterbi decoding of a linear-chain CRF in numpy: the same paths as ``torchcrf.CRF.decode``, without torch ops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn


@dataclass(frozen=True)
class CRFParams:
    """A CRF's scores as arrays: ``start``, ``end`` ``[n_tags]``; ``transitions`` ``[n_tags (from), n_tags (to)]``."""

    start: np.ndarray
    transitions: np.ndarray
    end: np.ndarray

    @classmethod
    def from_module(cls, crf: nn.Module) -> CRFParams:
        """The scores of a ``torchcrf.CRF`` as float arrays (a copy, detached from autograd)."""
        start, trans, end = (
            p.detach().cpu().numpy().copy() for p in (crf.start_transitions, crf.transitions, crf.end_transitions)
        )
        return cls(start, trans, end)


def viterbi_paths(params: CRFParams, emissions: np.ndarray, mask: np.ndarray) -> list[list[int]]:
    """``torchcrf.CRF.decode(emissions, mask=mask)`` (``batch_first``) in numpy, one path per row ([] for no words).

    ``emissions`` ``[batch, seq, n_tags]``, ``mask`` ``[batch, seq]``. The same float arithmetic in the same order
    and the same ties (the first maximum), so the same paths; but numpy on these tiny ``[batch, n_tags, n_tags]``
    arrays, not several torch ops per word position, each of which can wait on the intra-op thread pool (slow on
    a busy machine). Rows without words are skipped.
    """
    dtype = np.promote_types(params.transitions.dtype, emissions.dtype)
    start, trans, end = (np.asarray(p, dtype=dtype) for p in (params.start, params.transitions, params.end))
    em = np.asarray(emissions, dtype=dtype)  # [batch, seq, n_tags]
    mk = np.asarray(mask).astype(bool)  # [batch, seq]
    rows = mk.any(axis=1)
    paths: list[list[int]] = [[] for _ in range(len(mk))]
    if not rows.any():
        return paths
    sel = np.flatnonzero(rows)
    em, mk = em[sel], mk[sel]
    if not mk[:, 0].all():
        raise ValueError("mask of the first timestep must all be on")  # as torchcrf.CRF.decode
    score = start + em[:, 0]  # [rows, n_tags]
    history = []
    for i in range(1, em.shape[1]):
        next_score = score[:, :, None] + trans + em[:, i][:, None, :]  # [rows, n_tags (from), n_tags (to)]
        indices = next_score.argmax(axis=1)  # [rows, n_tags]
        next_score = np.take_along_axis(next_score, indices[:, None, :], axis=1)[:, 0]
        score = np.where(mk[:, i][:, None], next_score, score)
        history.append(indices)
    score = score + end
    seq_ends = mk.sum(axis=1) - 1
    # [rows, seq - 1, n_tags] as nested lists: the backtracking below is plain Python indexing
    hist = np.stack(history, axis=1).tolist() if history else [[] for _ in sel]
    for r, row in enumerate(sel.tolist()):
        best = [int(score[r].argmax())]
        for step in reversed(hist[r][: seq_ends[r]]):
            best.append(step[best[-1]])
        best.reverse()
        paths[row] = best
    return paths
