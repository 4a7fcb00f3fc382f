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


def assert_same_folders(a, b):
    """Every file of two run folders (checkpoints, models, metrics) holds the same values, bit for bit."""
    from safetensors.torch import load_file

    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for name in names:
        fa, fb = a / name, b / name
        if name.suffix == ".safetensors":
            ta, tb = load_file(str(fa)), load_file(str(fb))
            assert ta.keys() == tb.keys(), name
            for k in ta:
                torch.testing.assert_close(ta[k], tb[k], rtol=0, atol=0, msg=f"{name}: {k}")
        elif name.suffix == ".json":
            assert json.loads(fa.read_text()) == json.loads(fb.read_text()), name
        elif name.suffix == ".jsonl":
            assert [json.loads(x) for x in fa.read_text().splitlines()] == [
                json.loads(x) for x in fb.read_text().splitlines()
            ], name
        elif name.suffix not in (".png", ".yaml", ".txt", ".lock"):  # the plot; the config, paths included
            assert fa.read_bytes() == fb.read_bytes(), name


def test_a_run_killed_after_its_last_checkpoint_resumes_to_finish(tiny_model_dir, toy, tmp_path):
    """A kill between the last checkpoint and the end (the plot, the last model) is resumable; a finished run is not."""
    cfg = make_config(tiny_model_dir, toy, tasks=("topic",), max_steps=4, save_every=2, eval_every=2)
    out = tmp_path / "run"

    def kill_at_end(record):
        if record.step == 4:  # on_step runs after the step's checkpoint is written
            raise Killed

    with pytest.raises(Killed):
        train(cfg, out, progress=False, on_step=kill_at_end)
    assert not (out / "curves.png").exists()
    result = train(cfg, out, resume=True, progress=False)
    assert result["steps"] == 4 and (out / "curves.png").is_file() and (out / "model" / "heads.safetensors").is_file()
    with pytest.raises(ValueError, match="at step 4 already. Raise max_steps"):
        train(cfg, out, resume=True, progress=False)


@pytest.mark.parametrize(
    "extra", [{}, {"loss_weighting": "uncertainty", "grad_accum": 2}], ids=["plain", "uncertainty_grad_accum"]
)
def test_resume_after_kill_matches_uninterrupted_run(tiny_model_dir, toy, tmp_path, extra):
    """Weights, optimizer, scheduler, sampler and data order, RNG, best step and score, loss weights, model/ and
    every logged loss of a killed-and-resumed run equal those of an uninterrupted one."""
    cfg = make_config(tiny_model_dir, toy, save_every=4, eval_every=4, **extra)
    full = train(cfg, tmp_path / "full", progress=False)

    def kill_at_7(record):
        if record.step == 7:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed", progress=False, on_step=kill_at_7)
    state = json.loads((tmp_path / "killed" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4  # the last checkpoint before the kill
    resumed = train(cfg, tmp_path / "killed", resume=True, progress=False)
    assert {k: v for k, v in resumed.items() if k != "model_dir"} == {k: v for k, v in full.items() if k != "model_dir"}
    assert full["best_step"] in (4, 8, 12) and full["best_score"] is not None
    for sub in ("checkpoint", "model"):
        assert_same_folders(tmp_path / "full" / sub, tmp_path / "killed" / sub)
    records = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    assert_same_folders(tmp_path / "full", tmp_path / "killed")  # metrics.jsonl: the same loss values, in order
    if extra:
        from safetensors.torch import load_file

        saved = load_file(str(tmp_path / "killed" / "checkpoint" / "extra.safetensors"))
        assert saved.keys() == {"log_vars.topic", "log_vars.ner", "log_vars.sim"}
        assert all(float(v) != 0.0 for v in saved.values())  # learned, and kept by the checkpoint
        again = Trainer(cfg)
        again.restore(tmp_path / "killed" / "checkpoint")
        for name, value in again.loss_weights.log_vars.items():
            assert float(value) == float(saved[f"log_vars.{name}"])


@pytest.fixture
def captured(monkeypatch):
    """Keeps the engine that ``train()`` builds (``captured["trainer"]``), to look at it during the run."""
    import mtst.training.run as run_module

    box = {}
    build = run_module.build_trainer

    def keep(config, **kw):
        box["trainer"] = build(config, **kw)
        if "evaluations" in box:  # scripted dev metrics, one per evaluation
            box["trainer"].evaluate = lambda: next(box["evaluations"])
        return box["trainer"]

    monkeypatch.setattr(run_module, "build_trainer", keep)
    return box


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_model_equals(folder, state):
    loaded = MultiTaskModel.load(folder).state_dict()
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0, msg=k)


def test_nan_loss_stops_and_keeps_checkpoint(tiny_model_dir, toy, tmp_path, monkeypatch, captured):
    from mtst.tasks import ClassificationTask

    original = ClassificationTask.loss
    calls = {"n": 0}

    def flaky(self, head, output, targets):
        calls["n"] += 1
        loss = original(self, head, output, targets)
        return loss * float("nan") if calls["n"] >= 5 else loss

    monkeypatch.setattr(ClassificationTask, "loss", flaky)
    cfg = make_config(tiny_model_dir, toy, tasks=("topic",), save_every=2, eval_every=100)
    at_step_4 = {}

    def keep_step_4(record):
        if record.step == 4:
            at_step_4.update(_snapshot(captured["trainer"].model))

    with pytest.raises(FloatingPointError, match="The loss of task 'topic' is nan at step 5"):
        train(cfg, tmp_path / "run", progress=False, on_step=keep_step_4)
    state = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4
    assert_model_equals(tmp_path / "run" / "checkpoint" / "model", at_step_4)  # the weights of step 4, not NaN


def test_checkpoint_interrupted_mid_save_keeps_the_previous_one(tiny_model_dir, toy, tmp_path, monkeypatch):
    import mtst.checkpoint as checkpoint

    cfg = make_config(tiny_model_dir, toy, tasks=("topic",), save_every=2, eval_every=100, max_steps=6)
    real_write = checkpoint.write_json
    saves = {"n": 0}

    def write_json(path, data):
        if path.name == "trainer_state.json":  # the last file of a checkpoint
            saves["n"] += 1
            if saves["n"] == 2:
                raise KeyboardInterrupt("killed while saving the step-4 checkpoint")
        return real_write(path, data)

    monkeypatch.setattr(checkpoint, "write_json", write_json)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", progress=False)
    ckpt = tmp_path / "run" / "checkpoint"
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == 2
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []  # no half-written folder
    monkeypatch.setattr(checkpoint, "write_json", real_write)
    result = train(cfg, tmp_path / "run", resume=True, progress=False)  # the step-2 checkpoint is whole
    assert result["steps"] == 6


def test_best_model_metric_for_best_and_early_stopping(tiny_model_dir, toy, tmp_path, captured):
    """Scripted dev metrics: the best evaluation by ``metric_for_best`` (or the mean of the main metrics) is the
    model kept; ``early_stopping_patience`` evaluations without a strict improvement stop the run."""
    script = [
        {"topic": {"accuracy": 0.5}, "ner": {"entity_f1": 0.1}},
        {"topic": {"accuracy": 0.8}, "ner": {"entity_f1": 0.2}},  # best topic.accuracy
        {"topic": {"accuracy": 0.7}, "ner": {"entity_f1": 0.9}},  # best mean of main metrics
        {"topic": {"accuracy": 0.8}, "ner": {"entity_f1": 0.3}},  # a tie is no improvement
        {"topic": {"accuracy": 0.99}, "ner": {"entity_f1": 0.0}},
        {"topic": {"accuracy": 1.0}, "ner": {"entity_f1": 1.0}},  # never reached: the run stopped
    ]
    expected = {  # metric_for_best -> (scores logged, best step, last step)
        "topic.accuracy": ([0.5, 0.8, 0.7, 0.8], 4, 8),
        None: ([0.3, 0.5, 0.8, 0.55, 0.495], 6, 10),
    }
    for metric, (scores, best_step, last_step) in expected.items():
        cfg = make_config(
            tiny_model_dir, toy, tasks=("topic", "ner"), max_steps=40, eval_every=2, save_every=100,
            metric_for_best=metric, early_stopping_patience=2,
        )  # fmt: skip
        captured["evaluations"] = iter(script)  # every evaluation of the run is scripted
        best = {}
        out = tmp_path / f"run-{metric}"

        def keep_best(record, best=best):
            if record.is_best:
                best.update(_snapshot(captured["trainer"].model))

        result = train(cfg, out, progress=False, on_step=keep_best)
        logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["score"] for r in logged if "eval" in r] == pytest.approx(scores)
        assert (result["steps"], result["best_step"]) == (last_step, best_step)
        assert result["best_score"] == pytest.approx(max(scores))
        assert_model_equals(out / "model", best)
        final = _snapshot(captured["trainer"].model)
        assert any(not torch.equal(best[k], final[k]) for k in best)  # training went on after the best step


def test_temperature_sampling_in_the_trainer(tiny_model_dir, toy):
    """The tasks the trainer trains on follow the sampling strategy: topic has 48 batches an epoch, ner 2."""
    drawn = {}
    for sampling, temperature in (("proportional", 2.0), ("temperature", 4.0), ("temperature", 1e6)):
        cfg = make_config(
            tiny_model_dir, toy, tasks=("topic", "ner"), max_steps=40, eval_every=1000, freeze="backbone",
            use_cache=False, sampling=sampling, temperature=temperature,
        )  # fmt: skip
        cfg = _with_task_keys(cfg, topic={"batch_size": 2, "dev_fraction": None}, ner={"batch_size": 40, "dev": None})
        trainer = Trainer(cfg)
        assert {n: b.batches_per_epoch for n, b in trainer.batches.items()} == {"topic": 48, "ner": 2}
        drawn[(sampling, temperature)] = [r.task for r in trainer.steps()].count("ner") / 40
    # p(ner) = 2^(1/T) / (48^(1/T) + 2^(1/T)) = 1 / (24^(1/T) + 1): 0.04 proportional (T = 1), 0.31 at T = 4,
    # 0.5 at T = 1e6; 40 seeded draws each
    assert drawn[("proportional", 2.0)] < 0.12
    assert 0.18 < drawn[("temperature", 4.0)] < 0.45
    assert 0.35 < drawn[("temperature", 1e6)] < 0.65


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


def test_frozen_backbone_does_not_move(tiny_model_dir, toy, tmp_path):
    """The full loop (no cache) runs the backbone every step and still leaves its weights as they were."""
    cache = tmp_path / "cache"
    cfg = make_config(
        tiny_model_dir, toy, tasks=("topic", "ner"), freeze="backbone", max_steps=6, use_cache=False,
        cache_dir=str(cache),
    )  # fmt: skip
    trainer = build_trainer(cfg)
    assert isinstance(trainer, Trainer)
    before = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    heads_before = {k: v.clone() for k, v in trainer.model.heads.state_dict().items()}
    calls = []
    hook = trainer.model.encoder.backbone.register_forward_hook(lambda *a: calls.append(1))
    list(trainer.steps())
    hook.remove()
    assert len(calls) >= 6  # one backbone pass per training step (plus the evaluation)
    for k, v in trainer.model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    heads = trainer.model.heads.state_dict()
    assert all(not torch.equal(v, heads_before[k]) for k, v in heads.items() if "crf" not in k)
    assert not cache.exists()  # nothing was cached: not in tmp_path, not in the home folder


def test_uncertainty_weighting_learns_log_vars(tiny_model_dir, toy):
    """Each drawn task's log-variance moves against the gradient of exp(-s) * L + s (here 1 - L < 0: s rises)."""
    trainer = Trainer(make_config(tiny_model_dir, toy, tasks=("topic", "ner"), loss_weighting="uncertainty"))
    records = list(trainer.steps())
    for name, s in trainer.loss_weights.log_vars.items():
        losses = _losses(records, name)
        assert losses, name
        if min(losses) > 1.0:  # every gradient step pushed s up (Adam: the sign of the gradient sets the direction)
            assert float(s) > 0.0, (name, losses)
        assert float(s) != 0.0, name


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


def _scripted_batches(trainer, batches):
    trainer.batches = {name: iter([np.array(b) for b in batches]) for name in trainer.batches}


def test_gradient_accumulation_equals_one_large_batch(tiny_model_dir, toy):
    """2 accumulated batches of 8 give the step of 1 batch of 16 (the same rows); then bf16 in the same process."""
    rows = np.random.default_rng(0).permutation(72)[:64].reshape(8, 8).tolist()  # topic: 72 train rows
    kw = {"tasks": ("topic",), "max_steps": 4, "eval_every": 1000, "lr": 1e-3, "warmup": 0}
    runs = {}
    for accum, batch_size in ((2, 8), (1, 16)):
        cfg = _with_task_keys(
            make_config(tiny_model_dir, toy, grad_accum=accum, batch_size=batch_size, **kw), topic={"dropout": 0.0}
        )
        trainer = Trainer(cfg)
        start = _snapshot(trainer.model)
        _scripted_batches(trainer, rows if accum == 2 else [a + b for a, b in zip(rows[::2], rows[1::2], strict=True)])
        runs[accum] = ([r.loss for r in trainer.steps()], _snapshot(trainer.model))
    (loss_a, w_a), (loss_b, w_b) = runs[2], runs[1]
    assert loss_a == pytest.approx(loss_b, rel=1e-5)  # the logged loss is the mean over the accumulated batches
    assert any(not torch.equal(w_b[k], start[k]) for k in start if k.startswith("encoder"))  # the backbone trained
    for k in w_a:
        torch.testing.assert_close(w_a[k], w_b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_bf16_runs_the_backbone_in_bf16_and_stays_near_fp32(tiny_model_dir, toy):
    """precision: bf16 autocasts the forward pass (bf16 activations); one step stays close to the fp32 step."""
    runs = {}
    for precision in ("bf16", "fp32"):  # two Trainers with other precisions in one process
        cfg = make_config(tiny_model_dir, toy, tasks=("topic",), precision=precision, max_steps=1, eval_every=1000)
        trainer = Trainer(cfg)
        dtypes = set()
        query = trainer.model.encoder.backbone.encoder.layer[0].attention.self.query
        hook = query.register_forward_hook(lambda m, a, out, seen=dtypes: seen.add(out.dtype))
        records = list(trainer.steps())
        hook.remove()
        runs[precision] = (dtypes, records[0].loss, records[0].metrics)
    assert runs["bf16"][0] == {torch.bfloat16} and runs["fp32"][0] == {torch.float32}
    bf16_loss, fp32_loss = runs["bf16"][1], runs["fp32"][1]
    assert bf16_loss != fp32_loss and abs(bf16_loss - fp32_loss) < 0.05 * fp32_loss
    assert runs["bf16"][2]["topic"]["accuracy"] == pytest.approx(runs["fp32"][2]["topic"]["accuracy"], abs=0.1)


def test_names_only_data_is_said_once_naming_the_model_folder(tiny_model_dir, toy, tmp_path, caplog, monkeypatch):
    import logging

    monkeypatch.setattr("mtst.datapaths._in_shared_project", lambda data, model_dir: False)  # data elsewhere
    cfg = make_config(tiny_model_dir, toy, tasks=("topic",), max_steps=4, save_every=1, eval_every=2)
    with caplog.at_level(logging.WARNING, logger="mtst.model"):
        train(cfg, tmp_path / "run", progress=False)
    said = [r.getMessage() for r in caplog.records if "saved by file name only" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(str(tmp_path / "run" / "model")), said  # not each checkpoint's
