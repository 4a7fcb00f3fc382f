import math

import pytest
import torch

from mtst import losses


def test_gather_words_takes_first_subwords_in_order():
    emissions = torch.arange(2 * 5 * 1, dtype=torch.float32).view(2, 5, 1)
    first = torch.tensor([[False, True, False, True, False], [False, False, True, False, False]])
    scores, positions, mask = losses.gather_words(emissions, first)
    assert positions[0].tolist() == [1, 3] and positions[1, 0].item() == 2
    assert mask.tolist() == [[True, True], [True, False]]
    assert scores[0, :, 0].tolist() == [1.0, 3.0]


def test_mnrl_prefers_matching_pairs():
    torch.manual_seed(0)
    a = torch.randn(8, 16)
    assert losses.multiple_negatives_ranking(a, a) < losses.multiple_negatives_ranking(a, torch.randn(8, 16))


def test_cosent_rewards_correct_order():
    torch.manual_seed(0)
    a = torch.randn(6, 16)
    noise = torch.randn(6, 16)
    b = torch.stack([a[i] + noise[i] * i for i in range(6)])  # pair i gets less similar as i grows
    scores_right = torch.linspace(1, 0, 6)
    assert losses.cosent(a, b, scores_right) < losses.cosent(a, b, scores_right.flip(0))


def test_cross_entropy_ignores_minus_100():
    logits = torch.tensor([[[5.0, 0.0], [0.0, 5.0]]])
    full = losses.cross_entropy(logits, torch.tensor([[0, 1]]))
    ignored = losses.cross_entropy(logits, torch.tensor([[0, -100]]))
    assert torch.isclose(full, ignored, atol=1e-5)  # both positions are confidently right


def test_crf_nll_is_finite_and_trainable():
    from torchcrf import CRF

    torch.manual_seed(0)
    crf = CRF(3, batch_first=True)
    emissions = torch.randn(2, 6, 3, requires_grad=True)
    labels = torch.tensor([[-100, 0, 1, -100, 2, -100], [-100, 1, -100, -100, -100, -100]])
    loss = losses.crf_nll(crf, emissions, labels)
    loss.backward()
    assert torch.isfinite(loss) and emissions.grad is not None
    # gradient reaches only first-sub-word positions
    assert emissions.grad[0, 0].abs().sum() == 0 and emissions.grad[0, 1].abs().sum() > 0


def test_regression_losses():
    raw, targets = torch.tensor([0.0, 10.0]), torch.tensor([0.5, 1.0])
    sig10 = 1 / (1 + math.exp(-10))
    mse = losses.regression_loss(raw, targets, kind="mse", output="sigmoid")
    assert float(mse) == pytest.approx((1 - sig10) ** 2 / 2)
    bce = losses.regression_loss(raw, targets, kind="bce", output="sigmoid")
    assert float(bce) == pytest.approx((math.log(2) + math.log1p(math.exp(-10))) / 2)
    linear = losses.regression_loss(raw, torch.tensor([1.0, 7.0]), kind="mse", output="linear")
    assert float(linear) == pytest.approx((1 + 9) / 2)


def test_cosine_mse():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 5.0], [4.0, 3.0]])  # cosines 1, 0, 24/25
    loss = losses.cosine_mse(a, b, torch.tensor([1.0, 0.5, 0.0]))
    assert float(loss) == pytest.approx((0 + 0.25 + (24 / 25) ** 2) / 3)


def test_uncertainty_weighting_formula_and_gradient():
    """exp(-s) * L + s per task (Kendall et al.): d/ds = 1 - exp(-s) * L and d/dL = exp(-s)."""
    weights = losses.LossWeights({"a": 1.0, "b": 2.0}, learned=True)
    with torch.no_grad():
        weights.log_vars["a"].fill_(0.5)
    task_loss = torch.tensor(2.0, requires_grad=True)
    out = weights("a", task_loss)
    assert float(out) == pytest.approx(math.exp(-0.5) * 2.0 + 0.5)
    out.backward()
    assert float(weights.log_vars["a"].grad) == pytest.approx(1 - math.exp(-0.5) * 2.0)
    assert float(task_loss.grad) == pytest.approx(math.exp(-0.5))
    assert weights.log_vars["b"].grad is None  # the other task's log-variance is not touched
    static = losses.LossWeights({"a": 1.0, "b": 2.0}, learned=False)
    assert float(static("b", torch.tensor(3.0))) == 6.0 and static.log_vars is None
