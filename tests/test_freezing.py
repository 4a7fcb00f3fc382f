import pytest
import torch
from torch import nn

from mtst.config import TaskConfig
from mtst.freezing import (
    FREEZE_POLICIES,
    apply_freeze,
    backbone_layers,
    embeddings_module,
    parse_freeze,
)
from mtst.model import MultiTaskModel
from mtst.optim import layerwise_param_groups
from mtst.tasks import build_task

EMB = "encoder.backbone.embeddings."
LAYER0 = "encoder.backbone.encoder.layer.0."
LAYER1 = "encoder.backbone.encoder.layer.1."
POOLER = "encoder.backbone.pooler."
HEADS = "heads."


@pytest.fixture
def model(tiny_encoder):
    torch.manual_seed(0)
    tasks = [
        build_task(TaskConfig(name="topic", type="classification"), ["a", "b"]),
        build_task(TaskConfig(name="ner", type="token_classification"), ["O", "B-X", "I-X"]),
        build_task(TaskConfig(name="sim", type="similarity")),
    ]
    return MultiTaskModel(tiny_encoder, tasks)


def _part(name: str) -> str:
    for prefix in (EMB, LAYER0, LAYER1, POOLER, HEADS):
        if name.startswith(prefix):
            return prefix
    raise AssertionError(f"unexpected parameter {name}")


def _trainable_parts(model) -> dict[str, bool]:
    """Each part -> whether its parameters train; fails if a part is partly frozen."""
    parts: dict[str, set[bool]] = {}
    for name, p in model.named_parameters():
        parts.setdefault(_part(name), set()).add(p.requires_grad)
    assert all(len(flags) == 1 for flags in parts.values()), parts
    return {part: flags.pop() for part, flags in parts.items()}


EXPECTED = {  # policy -> trainable parts
    "none": {EMB, LAYER0, LAYER1, POOLER, HEADS},
    "backbone": {HEADS},
    "all": set(),
    "embeddings": {LAYER0, LAYER1, POOLER, HEADS},
    "all_but_last:0": {HEADS},
    "all_but_last:1": {LAYER1, POOLER, HEADS},
    "all_but_last:2": {LAYER0, LAYER1, POOLER, HEADS},
    "all_but_last:5": {LAYER0, LAYER1, POOLER, HEADS},  # more than the layers: every layer trains
}


@pytest.mark.parametrize("policy", list(EXPECTED))
def test_policy_sets_requires_grad(model, policy):
    counts = apply_freeze(model, policy)
    trainable = {part for part, flag in _trainable_parts(model).items() if flag}
    assert trainable == EXPECTED[policy]
    total = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts == {"trainable": n_trainable, "frozen": total - n_trainable}


def test_reapplying_unfreezes_first(model):
    apply_freeze(model, "all")
    assert not any(p.requires_grad for p in model.parameters())
    counts = apply_freeze(model, None)
    assert all(p.requires_grad for p in model.parameters())
    assert counts["frozen"] == 0


def test_mapping_form_equals_string_form(model):
    apply_freeze(model, {"all_but_last": 1})
    assert {part for part, flag in _trainable_parts(model).items() if flag} == EXPECTED["all_but_last:1"]


def test_frozen_heads(model):
    apply_freeze(model, "embeddings", frozen_heads=["topic"])
    params = dict(model.named_parameters())
    assert not any(p.requires_grad for n, p in params.items() if n.startswith("heads.topic."))
    assert all(p.requires_grad for n, p in params.items() if n.startswith("heads.ner."))
    assert not any(p.requires_grad for n, p in params.items() if n.startswith(EMB))
    apply_freeze(model, "none", frozen_heads="ner")  # a single name works too
    assert not any(p.requires_grad for n, p in params.items() if n.startswith("heads.ner."))
    assert all(p.requires_grad for n, p in params.items() if n.startswith("heads.topic."))


def test_frozen_heads_errors_leave_model_unchanged(model):
    apply_freeze(model, "backbone")
    with pytest.raises(ValueError, match="unknown head 'topc'. This model's heads are: topic, ner"):
        apply_freeze(model, "none", frozen_heads=["topc"])
    with pytest.raises(ValueError, match="unknown head 'sim' \\(that task has no head"):
        apply_freeze(model, "none", frozen_heads=["sim"])
    assert {part for part, flag in _trainable_parts(model).items() if flag} == {HEADS}


def _loss(model):
    out = model(model.encoder.tokenize(["the cat sat", "a dog"]))
    return sum((o.float() ** 2).mean() + o.float().sum() for o in out.values())


@pytest.mark.parametrize(
    ("policy", "frozen_heads"),
    [("none", ()), ("backbone", ()), ("embeddings", ("ner",)), ("all_but_last:1", ()), ("all_but_last:0", ("topic",))],
)
def test_frozen_parameters_do_not_change_under_training(model, policy, frozen_heads):
    apply_freeze(model, policy, frozen_heads=frozen_heads)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = layerwise_param_groups(model, lr=1e-2, layerwise_lr_decay=0.8)
    optimizer = torch.optim.AdamW(groups)
    got_grad: set[str] = set()
    for _ in range(3):
        optimizer.zero_grad()
        _loss(model).backward()
        got_grad |= {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        optimizer.step()
    changed_parts = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[name]), f"frozen {name} changed"
            assert p.grad is None
        elif name in got_grad:
            assert not torch.equal(p, before[name]), f"trainable {name} did not change"
            changed_parts.add(_part(name) if not name.startswith(HEADS) else name.split(".")[1])
    expected_parts = {
        _part(n) if not n.startswith(HEADS) else n.split(".")[1]
        for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith(POOLER)  # the encoder pools token states: the pooler gets no gradient
    }
    assert changed_parts == expected_parts


def _group_of_each_param(groups):
    where: dict[int, list[str]] = {}
    for g in groups:
        for p in g["params"]:
            where.setdefault(id(p), []).append(g["name"])
    return where


@pytest.mark.parametrize("decay", [None, 0.7])
@pytest.mark.parametrize("policy", list(EXPECTED))
def test_every_trainable_param_in_exactly_one_group(model, policy, decay):
    apply_freeze(model, policy, frozen_heads=["ner"] if policy == "none" else ())
    groups = layerwise_param_groups(model, lr=1e-3, layerwise_lr_decay=decay)
    where = _group_of_each_param(groups)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert len(where.get(id(p), [])) == 1, f"{name} in groups {where.get(id(p))}"
        else:
            assert id(p) not in where, f"frozen {name} in group {where[id(p)]}"
    assert all(g["params"] for g in groups)
    assert len({g["name"] for g in groups}) == len(groups)
    if policy == "all":
        assert groups == []


def test_layerwise_learning_rates(model):
    groups = layerwise_param_groups(model, lr=1e-3, head_lr=1e-2, layerwise_lr_decay=0.5, weight_decay=0.05)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == pytest.approx(
        {
            "backbone.embeddings": 2.5e-4,
            "backbone.embeddings.no_decay": 2.5e-4,
            "backbone.layer.0": 5e-4,
            "backbone.layer.0.no_decay": 5e-4,
            "backbone.layer.1": 1e-3,
            "backbone.layer.1.no_decay": 1e-3,
            "backbone.pooler": 1e-3,
            "backbone.pooler.no_decay": 1e-3,
            "heads.topic": 1e-2,
            "heads.topic.no_decay": 1e-2,
            "heads.ner": 1e-2,
            "heads.ner.no_decay": 1e-2,
        }
    )
    for g in groups:
        no_decay = g["name"].endswith(".no_decay")
        assert g["weight_decay"] == (0.0 if no_decay else 0.05)
        assert all((p.ndim < 2) == no_decay for p in g["params"])
    layer0 = {id(p) for p in model.encoder.backbone.encoder.layer[0].parameters()}
    in_layer0 = {id(p) for g in groups if g["name"].startswith("backbone.layer.0") for p in g["params"]}
    assert in_layer0 == layer0


def test_no_decay_means_one_backbone_group_at_lr(model):
    apply_freeze(model, "embeddings")
    groups = layerwise_param_groups(model, lr=2e-5)
    assert {g["name"]: g["lr"] for g in groups} == {
        "backbone": 2e-5,
        "backbone.no_decay": 2e-5,
        "heads.topic": 2e-5,
        "heads.topic.no_decay": 2e-5,
        "heads.ner": 2e-5,
        "heads.ner.no_decay": 2e-5,
    }


def test_decay_of_one_gives_equal_rates(model):
    groups = layerwise_param_groups(model, lr=3e-5, layerwise_lr_decay=1.0)
    assert {g["lr"] for g in groups} == {3e-5}


@pytest.mark.parametrize("decay", [0, 0.0, -0.5, 1.5, float("nan"), True])
def test_bad_layerwise_decay(model, decay):
    with pytest.raises(ValueError, match=r"train\.layerwise_lr_decay must be in \(0, 1\]"):
        layerwise_param_groups(model, lr=1e-3, layerwise_lr_decay=decay)


def test_bad_rates(model):
    with pytest.raises(ValueError, match="lr must be a number >= 0"):
        layerwise_param_groups(model, lr=-1e-3)
    with pytest.raises(ValueError, match="head_lr must be a number >= 0"):
        layerwise_param_groups(model, lr=1e-3, head_lr=-1.0)
    with pytest.raises(ValueError, match="weight_decay must be a number >= 0"):
        layerwise_param_groups(model, lr=1e-3, weight_decay=-0.1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("none", None)),
        ("none", ("none", None)),
        ("backbone", ("backbone", None)),
        ("all", ("all", None)),
        ("embeddings", ("embeddings", None)),
        ("all_but_last:2", ("all_but_last", 2)),
        (" all_but_last : 0 ", ("all_but_last", 0)),
        ({"all_but_last": 3}, ("all_but_last", 3)),
        ({"all_but_last": "3"}, ("all_but_last", 3)),
        (("all_but_last", 1), ("all_but_last", 1)),
        (("backbone", None), ("backbone", None)),
    ],
)
def test_parse_freeze_forms(value, expected):
    assert parse_freeze(value) == expected
    assert parse_freeze(parse_freeze(value)) == expected
    assert expected[0] in FREEZE_POLICIES


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("backbon", "'backbon' is not valid"),
        ("all_but_last", "needs the number of trainable top layers"),
        ("all_but_last:x", "N must be an integer, got 'x'"),
        ("all_but_last:-1", "N must be >= 0, got -1"),
        ({"all_but_last": 1.5}, "N must be an integer, got 1.5"),
        ({"all_but_last": True}, "N must be an integer, got True"),
        ({"all_but_last": -2}, "N must be >= 0"),
        ({"all_but_last": 1, "heads": 2}, "single key 'all_but_last'"),
        ({"embeddings": 1}, "single key 'all_but_last'"),
        (("backbone", 2), "Only all_but_last takes a layer count"),
        (True, "Expected a string, a mapping or null, got bool"),
        (3, "got int"),
    ],
)
def test_parse_freeze_errors(value, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_freeze(value)
    message = str(info.value)
    assert "train.freeze" in message
    assert "Valid policies are: none, backbone, all, embeddings, all_but_last" in message
    assert "'all_but_last:N' or {'all_but_last': N}" in message


def test_apply_freeze_rejects_bad_policy(model):
    with pytest.raises(ValueError, match="Valid policies are"):
        apply_freeze(model, "frozen")


def test_backbone_layers_and_embeddings_bert(model):
    backbone = model.encoder.backbone
    layers = backbone_layers(backbone)
    assert len(layers) == 2 and all(a is b for a, b in zip(layers, backbone.encoder.layer, strict=True))
    assert embeddings_module(backbone) is backbone.embeddings


def test_backbone_layers_and_embeddings_distilbert():
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=3, n_heads=2, hidden_dim=32, max_position_embeddings=16)
    backbone = DistilBertModel(config)
    layers = backbone_layers(backbone)
    assert len(layers) == 3 and layers[0] is backbone.transformer.layer[0]
    assert embeddings_module(backbone) is backbone.embeddings


class _Generic(nn.Module):
    """No .embeddings or .encoder.layer: the fallbacks must find the blocks and input embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(10, 4)
        self.heads_list = nn.ModuleList([nn.Linear(4, 4)])
        self.inner = nn.Module()
        self.inner.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

    def get_input_embeddings(self) -> nn.Module:
        return self.tok


def test_generic_fallbacks():
    backbone = _Generic()
    assert backbone_layers(backbone) == list(backbone.inner.blocks)
    assert embeddings_module(backbone) is backbone.tok


def test_no_layers_or_embeddings_error():
    with pytest.raises(ValueError, match="Cannot find the transformer layers of Linear"):
        backbone_layers(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Cannot find the embeddings of Linear"):
        embeddings_module(nn.Linear(2, 2))
