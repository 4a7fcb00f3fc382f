import json

import numpy as np
import pytest
import torch
from toydata import write_toy_data

from mtst.config import MTSTConfig
from mtst.model import MultiTaskModel
from mtst.optim import lr_factor
from mtst.training import HeadTrainer, Trainer, build_trainer, train


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("toy"))


def make_config(backbone, data, tasks=("topic", "ner", "sim"), **train_kw):
    all_tasks = {
        "topic": {"name": "topic", "type": "classification", "train": "cls.tsv", "dev_fraction": 0.25},
        "ner": {"name": "ner", "type": "token_classification", "train": "ner.conll", "dev": "ner.conll"},
        "sim": {
            "name": "sim",
            "type": "similarity",
            "train": "sim.tsv",
            "dev": "sim.tsv",
            "text_column": "sentence1",
            "pair_column": "sentence2",
            "label_column": "score",
            "loss": "cosent",
            "score_max": 5.0,
        },
    }
    train_cfg = {"max_steps": 12, "batch_size": 16, "lr": 1e-3, "eval_every": 6, "log_every": 1, "seed": 3}
    train_cfg.update(train_kw)
    return MTSTConfig.from_dict(
        {
            "model": {"backbone": str(backbone), "max_length": 32},
            "tasks": [all_tasks[t] for t in tasks],
            "train": train_cfg,
        },
        base_dir=data,
    )


def test_lr_schedule():
    f = lambda s, sch: lr_factor(s, warmup_steps=2, total_steps=10, schedule=sch)  # noqa: E731
    assert f(0, "linear") == 0.5 and f(1, "linear") == 1.0
    assert f(2, "linear") == 1.0 and f(6, "linear") == pytest.approx(0.5) and f(10, "linear") == 0.0
    assert f(6, "cosine") == pytest.approx(0.5) and f(10, "cosine") == pytest.approx(0.0)
    assert f(9, "constant") == 1.0


def test_train_writes_run_folder(tiny_model_dir, toy, tmp_path):
    out = tmp_path / "run"
    result = train(make_config(tiny_model_dir, toy), out, progress=False)
    assert result["steps"] == 12
    for name in (
        "model/mtst_config.json",
        "checkpoint/trainer_state.json",
        "metrics.jsonl",
        "curves.png",
        "config.yaml",
    ):
        assert (out / name).exists(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in evals] == [6, 12]
    assert set(evals[-1]["eval"]) == {"topic", "ner", "sim"}
    model = MultiTaskModel.load(out / "model")
    assert set(model.predict(["the cat in paris"])[0]) == {"topic", "ner"}


def test_output_folder_is_protected(tiny_model_dir, toy, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        train(make_config(tiny_model_dir, toy), out, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        train(make_config(tiny_model_dir, toy), tmp_path / "fresh", resume=True, progress=False)


class Killed(Exception):
    pass


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "checkpoint" / "model" / "heads.safetensors")), load_file(
        str(folder / "checkpoint" / "model" / "encoder" / "model.safetensors")
    )


def test_resume_after_kill_matches_uninterrupted_run(tiny_model_dir, toy, tmp_path):
    cfg = make_config(tiny_model_dir, toy, save_every=4, eval_every=4)
    full = train(cfg, tmp_path / "full", progress=False)

    def kill_at_7(record):
        if record.step == 7:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed", progress=False, on_step=kill_at_7)
    state = json.loads((tmp_path / "killed" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4  # the last checkpoint before the kill
    resumed = train(cfg, tmp_path / "killed", resume=True, progress=False)
    assert resumed["final_metrics"] == full["final_metrics"]
    (h1, e1), (h2, e2) = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    for k in h1:
        torch.testing.assert_close(h1[k], h2[k], rtol=0, atol=0)
    for k in e1:
        torch.testing.assert_close(e1[k], e2[k], rtol=0, atol=0)
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) + 3  # one loss + eval record pair per eval


def test_nan_loss_stops_and_keeps_checkpoint(tiny_model_dir, toy, tmp_path, monkeypatch):
    from mtst.tasks import ClassificationTask

    original = ClassificationTask.loss
    calls = {"n": 0}

    def flaky(self, head, output, targets):
        calls["n"] += 1
        loss = original(self, head, output, targets)
        return loss * float("nan") if calls["n"] >= 5 else loss

    monkeypatch.setattr(ClassificationTask, "loss", flaky)
    cfg = make_config(tiny_model_dir, toy, tasks=("topic",), save_every=2, eval_every=100)
    with pytest.raises(FloatingPointError, match="The loss of task 'topic' is nan at step 5"):
        train(cfg, tmp_path / "run", progress=False)
    state = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4
    assert MultiTaskModel.load(tmp_path / "run" / "checkpoint" / "model")


def _losses(records, task):
    return [r.losses[task] for r in records if task in r.losses]


def test_ner_loss_falls(tiny_model_dir, toy):
    for crf in (False, True):
        cfg = make_config(tiny_model_dir, toy, tasks=("ner",), max_steps=30, eval_every=30, lr=3e-3, warmup=0)
        cfg = MTSTConfig.from_dict({**cfg.to_dict(), "tasks": [{**cfg.to_dict()["tasks"][0], "crf": crf}]})
        records = list(Trainer(cfg).steps())
        losses = _losses(records, "ner")
        assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), (crf, losses)
        assert records[-1].metrics["ner"]["entity_f1"] > 0.9


def test_contrastive_pairs_move_closer(tiny_model_dir, toy):
    cfg = MTSTConfig.from_dict(
        {
            "model": {"backbone": str(tiny_model_dir), "max_length": 32},
            "tasks": [
                {
                    "name": "pairs",
                    "type": "similarity",
                    "train": "pairs.tsv",
                    "text_column": "anchor",
                    "pair_column": "positive",
                    "label_column": None,
                }
            ],
            "train": {"max_steps": 25, "batch_size": 16, "lr": 2e-3, "warmup": 0, "seed": 1},
        },
        base_dir=toy,
    )
    trainer = Trainer(cfg)
    anchors = ["cat dog mat", "paris london music"]
    positives = ["dog dog cat s", "london music paris s"]
    before = np.diag(trainer.model.encoder.similarity(anchors, positives)).copy()
    cross_before = trainer.model.encoder.similarity(anchors, positives)[[0, 1], [1, 0]].copy()
    records = list(trainer.steps())
    losses = _losses(records, "pairs")
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    after = np.diag(trainer.model.encoder.similarity(anchors, positives))
    cross_after = trainer.model.encoder.similarity(anchors, positives)[[0, 1], [1, 0]]
    assert (after - cross_after).mean() > (before - cross_before).mean() + 0.05


def test_frozen_backbone_does_not_move(tiny_model_dir, toy):
    trainer = Trainer(make_config(tiny_model_dir, toy, tasks=("topic", "ner"), freeze="backbone", max_steps=6))
    before = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    heads_before = {k: v.clone() for k, v in trainer.model.heads.state_dict().items()}
    list(trainer.steps())
    for k, v in trainer.model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, heads_before[k]) for k, v in trainer.model.heads.state_dict().items())


def test_uncertainty_weighting_learns_log_vars(tiny_model_dir, toy):
    trainer = Trainer(make_config(tiny_model_dir, toy, tasks=("topic", "ner"), loss_weighting="uncertainty"))
    list(trainer.steps())
    assert any(float(p.detach()) != 0.0 for p in trainer.loss_weights.log_vars.values())


def test_everything_frozen_is_an_error(tiny_model_dir, toy):
    with pytest.raises(ValueError, match="Nothing to train"):
        Trainer(make_config(tiny_model_dir, toy, tasks=("topic",), freeze="all"))


def test_frozen_backbone_trains_heads_from_cache(tiny_model_dir, toy, tmp_path):
    kw = {"freeze": "backbone", "max_steps": 15, "cache_dir": str(tmp_path / "cache"), "lr": 1e-2, "head_lr": 1e-2}
    both = build_trainer(make_config(tiny_model_dir, toy, tasks=("topic", "ner"), **kw))
    assert isinstance(both, HeadTrainer)
    records = list(both.steps())
    assert records[-1].step == 30 and set(records[-1].metrics) == {"topic", "ner"}
    # heads are independent: training one alone gives the same weights with the same seed
    alone = build_trainer(make_config(tiny_model_dir, toy, tasks=("ner",), **kw))
    list(alone.steps())
    for k, v in alone.model.heads["ner"].state_dict().items():
        torch.testing.assert_close(v, both.model.heads["ner"].state_dict()[k], rtol=0, atol=0)
    # cache-based metrics equal a full forward pass through the frozen backbone
    from mtst.evaluation import evaluate

    full = evaluate(both.model, both.dev_data)
    for task, values in records[-1].metrics.items():
        assert full[task] == pytest.approx(values, abs=1e-6)


def _with_task_keys(config, **keys):
    d = config.to_dict()
    d["tasks"] = [{**t, **keys.get(t["name"], {})} for t in d["tasks"]]
    return MTSTConfig.from_dict(d)


@pytest.mark.parametrize("use_cache", [True, False])
def test_init_from_head_is_kept_under_frozen_backbone(tiny_model_dir, toy, tmp_path, use_cache):
    """A head started from a saved model starts from its weights in both engines (head_lr 0: nothing moves)."""
    kw = {"freeze": "backbone", "cache_dir": str(tmp_path / "cache"), "use_cache": use_cache}
    first = build_trainer(make_config(tiny_model_dir, toy, tasks=("topic", "ner"), max_steps=10, head_lr=1e-2, **kw))
    list(first.steps())
    saved = first.model.save(tmp_path / "first")
    cfg = make_config(tiny_model_dir, toy, tasks=("topic", "ner"), max_steps=3, head_lr=0.0, **kw)
    cfg = _with_task_keys(cfg, topic={"init_from": str(saved)}, ner={"init_from": str(saved)})
    second = build_trainer(cfg)
    assert isinstance(second, HeadTrainer) == use_cache
    records = list(second.steps())
    for name in ("topic", "ner"):
        for key, value in first.model.heads[name].state_dict().items():
            torch.testing.assert_close(second.model.heads[name].state_dict()[key], value, rtol=0, atol=0)
    assert records[-1].metrics == first.evaluate()


def test_frozen_backbone_rejects_headless_task(tiny_model_dir, toy, tmp_path):
    with pytest.raises(ValueError, match="has no head: with train.freeze: backbone"):
        build_trainer(make_config(tiny_model_dir, toy, tasks=("sim",), freeze="backbone", cache_dir=str(tmp_path)))


def test_two_trainers_with_different_precision_in_one_process(tiny_model_dir, toy):
    first = Trainer(make_config(tiny_model_dir, toy, tasks=("topic",), precision="bf16", max_steps=1))
    list(first.steps())
    second = Trainer(make_config(tiny_model_dir, toy, tasks=("topic",), precision="fp32", grad_accum=2, max_steps=1))
    assert second.accelerator.mixed_precision == "no" and second.accelerator.gradient_accumulation_steps == 2
    list(second.steps())
