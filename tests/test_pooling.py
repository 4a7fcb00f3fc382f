import pytest
import torch

from mtst.pooling import POOLING_MODES, check_pooling, pool


def _states():
    torch.manual_seed(0)
    states = torch.randn(2, 4, 3)  # [batch, seq, hidden]
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    return states, mask


def test_mean_ignores_padding():
    states, mask = _states()
    out = pool("mean", states, mask)
    assert torch.allclose(out[0], states[0].mean(0))
    assert torch.allclose(out[1], states[1, :2].mean(0))


def test_max_ignores_padding():
    states, mask = _states()
    states[1, 2:] = 100.0  # padding positions hold large values that must not win
    out = pool("max", states, mask)
    assert torch.allclose(out[1], states[1, :2].max(0).values)
    assert torch.allclose(out[0], states[0].max(0).values)


def test_cls_takes_first_token():
    states, mask = _states()
    assert torch.equal(pool("cls", states, mask), states[:, 0])


def test_output_shape_for_every_mode():
    states, mask = _states()
    for mode in POOLING_MODES:
        assert pool(mode, states, mask).shape == (2, 3)


def test_unknown_mode_lists_valid_ones():
    with pytest.raises(ValueError, match="Valid pooling modes are: mean, cls, max"):
        check_pooling("sum")
