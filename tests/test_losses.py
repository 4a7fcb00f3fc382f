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
    raw = torch.tensor([0.0, 10.0])
    assert losses.regression_loss(raw, torch.tensor([0.5, 1.0]), kind="mse", output="sigmoid") < 1e-4
    assert losses.regression_loss(raw, torch.tensor([0.5, 1.0]), kind="bce", output="sigmoid") > 0
