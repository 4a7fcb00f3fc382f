"""Evaluation: metrics that count what truncation cut off, and ``evaluate_model`` on the rows a run held out."""

import pytest
import torch

from mtst.config import TaskConfig
from mtst.data.examples import TokenExample
from mtst.evaluation import evaluate_task
from mtst.losses import IGNORE_INDEX
from mtst.model import MultiTaskModel
from mtst.tasks import build_task

TAGS = ["O", "B-LOC", "I-LOC"]


def oracle_runner(task, data):
    """A runner whose emissions pick the gold tag of every word that survived truncation."""

    def run(index):
        _, targets = task.collate(data, index, 0)  # [batch, seq] tag ids, -100 off first sub-words
        out = torch.nn.functional.one_hot(targets.clamp(min=0), len(TAGS)).float() * 10  # [batch, seq, n_tags]
        return out, targets

    return run


def test_entities_cut_off_by_truncation_count_as_misses(tiny_encoder):
    task = build_task(TaskConfig(name="ner", type="token_classification"), TAGS)
    model = MultiTaskModel(tiny_encoder, [task])
    examples = [
        # max_length 6 = [CLS] + 4 words + [SEP]: "london" and the last "paris" are cut off
        TokenExample(["paris"] + ["the"] * 5 + ["london", "paris"], ["B-LOC"] + ["O"] * 5 + ["B-LOC", "B-LOC"]),
        # the entity "london paris" loses its second word: the prediction "london" is wrong, and the gold is missed
        TokenExample(["the", "the", "the", "london", "paris"], ["O", "O", "O", "B-LOC", "I-LOC"]),
        TokenExample(["london"], ["B-LOC"]),
    ]
    data = task.encode(examples, tiny_encoder.tokenizer, max_length=6)
    assert [sum(t != IGNORE_INDEX for t in row) for row in data.targets] == [4, 4, 1]  # the truncation happened
    metrics = evaluate_task(model, "ner", data, runner=oracle_runner(task, data))
    # gold: 3 + 1 + 1 = 5 entities; predicted: "paris", "london" (wrong span), "london": 3, of which 2 are right
    assert metrics["entity_precision"] == pytest.approx(2 / 3)
    assert metrics["entity_recall"] == pytest.approx(2 / 5)
    assert metrics["entity_f1"] == pytest.approx(0.5)


def _topic_config(backbone, data, seed):
    from mtst.config import MTSTConfig

    return MTSTConfig.from_dict(
        {
            "model": {"backbone": str(backbone), "max_length": 32},
            "tasks": [{"name": "topic", "type": "classification", "train": "cls.tsv", "dev_fraction": 0.25}],
            "train": {"max_steps": 4, "eval_every": 4, "batch_size": 16, "lr": 1e-3, "seed": seed},
        },
        base_dir=data,
    )


def test_evaluate_model_scores_the_rows_the_run_held_out(tiny_model_dir, tmp_path, monkeypatch):
    """A model trained with seed 3 is evaluated on its own seed-3 hold-out, not on a seed-42 one (its train rows)."""
    from toydata import write_toy_data

    from mtst.evaluation import evaluate_model
    from mtst.tasks import read_splits
    from mtst.training import train

    data = write_toy_data(tmp_path / "data")
    config = _topic_config(tiny_model_dir, data, seed=3)
    result = train(config, tmp_path / "run", progress=False)
    model = MultiTaskModel.load(tmp_path / "run" / "model")
    seen = []
    encode = model.tasks["topic"].encode
    monkeypatch.setattr(model.tasks["topic"], "encode", lambda ex, *a: seen.append(ex) or encode(ex, *a))

    metrics = evaluate_model(model)
    held_out = read_splits(config.task("topic"), seed=3)
    assert [ex.source for ex in seen[-1]] == [ex.source for ex in held_out.dev]
    assert not {ex.source for ex in seen[-1]} & {ex.source for ex in held_out.train}
    assert metrics["topic"] == pytest.approx(result["final_metrics"]["topic"])
    # an explicit config still wins: its seed picks the hold-out
    evaluate_model(model, _topic_config(tiny_model_dir, data, seed=42))
    assert [ex.source for ex in seen[-1]] == [ex.source for ex in read_splits(config.task("topic"), seed=42).dev]
