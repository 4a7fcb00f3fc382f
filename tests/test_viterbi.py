"""The numpy Viterbi decoder against ``torchcrf.CRF.decode``: random and tie-heavy scores, ragged masks, empty rows."""

import numpy as np
import pytest
import torch
from torchcrf import CRF

from mtst.viterbi import CRFParams, viterbi_paths


def random_crf(n_tags: int, rng: np.random.Generator, *, integer: bool, dtype: torch.dtype) -> CRF:
    """A CRF with random start, end and transition scores (small integers: many exact ties)."""
    crf = CRF(n_tags, batch_first=True).to(dtype)
    with torch.no_grad():
        for p in (crf.start_transitions, crf.transitions, crf.end_transitions):
            values = rng.integers(-2, 3, p.shape) if integer else rng.normal(size=p.shape) * 2
            p.copy_(torch.as_tensor(values, dtype=dtype))
    return crf


def ragged_mask(rng: np.random.Generator, batch: int, seq: int) -> np.ndarray:
    """``[batch, seq]`` word masks: a prefix of each row, of random length (0 = a row without words)."""
    lengths = rng.integers(0, seq + 1, batch)
    lengths[:3] = [seq, 1, 0]  # always a full row, a one-word row and an empty one
    return np.arange(seq)[None, :] < lengths[:, None]


@pytest.mark.parametrize("integer", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", range(4))
def test_viterbi_matches_torchcrf_decode(integer, dtype, seed):
    rng = np.random.default_rng(seed)
    n_tags, batch, seq = int(rng.integers(2, 8)), 24, int(rng.integers(1, 14))
    crf = random_crf(n_tags, rng, integer=integer, dtype=dtype)
    emissions = rng.integers(-2, 3, (batch, seq, n_tags)) if integer else rng.normal(size=(batch, seq, n_tags))
    emissions = torch.as_tensor(emissions, dtype=dtype)  # [batch, seq, n_tags]
    mask = ragged_mask(rng, batch, seq)

    params = CRFParams.from_module(crf)
    assert params.transitions.dtype == (np.float64 if dtype == torch.float64 else np.float32)
    ours = viterbi_paths(params, emissions.numpy(), mask)

    rows = np.flatnonzero(mask.any(axis=1))
    theirs = crf.decode(emissions[rows], mask=torch.from_numpy(mask[rows]))  # torchcrf refuses empty rows
    assert [ours[r] for r in rows] == theirs
    assert all(ours[r] == [] for r in np.flatnonzero(~mask.any(axis=1)))
    assert [len(p) for p in ours] == mask.sum(axis=1).tolist()


def test_transitions_change_the_path():
    """Not a disguised argmax: a transition ban turns the emissions' best tags into another path."""
    crf = CRF(3, batch_first=True)
    with torch.no_grad():
        crf.start_transitions.zero_()
        crf.end_transitions.zero_()
        crf.transitions.zero_()
        crf.transitions[0, 2] = -100.0  # tag 0 is never followed by tag 2
    emissions = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 1.5]]])  # argmax: 0 then 2
    mask = np.ones((1, 2), dtype=bool)
    ours = viterbi_paths(CRFParams.from_module(crf), emissions.numpy(), mask)
    assert ours == crf.decode(emissions) == [[0, 1]]


def test_all_rows_empty_and_bad_mask():
    params = CRFParams.from_module(CRF(3, batch_first=True))
    assert viterbi_paths(params, np.zeros((2, 4, 3), np.float32), np.zeros((2, 4), bool)) == [[], []]
    with pytest.raises(ValueError, match="mask of the first timestep must all be on"):
        viterbi_paths(params, np.zeros((1, 3, 3), np.float32), np.array([[False, True, True]]))
