"""Issue 18, training runs: resume with changed settings, --overwrite safety, checks before the model loads,
leftovers of killed writes, Ctrl-C, and the loss each task logs per interval. Tiny backbone, a few steps each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from toydata import write_toy_data
from typer.testing import CliRunner

from mtst.cli import app
from mtst.config import load_config

runner = CliRunner()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("toy"))


class _NoModelLoads:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        raise RuntimeError("the backbone was loaded before the run was checked")


@pytest.fixture
def no_model_load(monkeypatch):
    import mtst.encoder

    monkeypatch.setattr(mtst.encoder, "AutoModel", _NoModelLoads)


def write_task_file(folder, backbone, data, *, tasks=("topic",), **train):
    """A YAML task file in ``folder`` (data paths absolute) and its path."""
    all_tasks = {
        "topic": {"name": "topic", "type": "classification", "train": str(data / "cls.tsv"), "dev_fraction": 0.25},
        "ner": {"name": "ner", "type": "token_classification", "train": str(data / "ner.conll"),
                "dev": str(data / "ner.conll")},
        "sim": {
            "name": "sim", "type": "similarity", "train": str(data / "sim.tsv"), "dev": str(data / "sim.tsv"),
            "text_column": "sentence1",
            "pair_column": "sentence2", "label_column": "score", "loss": "cosent", "score_max": 5.0,
        },
    }  # fmt: skip
    settings = {"max_steps": 4, "batch_size": 16, "lr": 1e-3, "head_lr": 1e-2, "warmup": 0, "schedule": "constant"}
    settings.update({"save_every": 2, "eval_every": 100, "log_every": 1, "seed": 3, **train})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"backbone": str(backbone), "max_length": 32},
                "tasks": [all_tasks[t] for t in tasks],
                "train": settings,
            }
        )  # fmt: skip
    )
    return path


def _train(cfg, out, *extra):
    return runner.invoke(app, ["train", str(cfg), "--output", str(out), *extra])


class _Said(str):
    """What the CLI printed, without whitespace: rich wraps long lines. ``x in said`` drops x's whitespace too."""

    def __contains__(self, needle: object) -> bool:
        return "".join(str(needle).split()) in str(self)


def _clean_exit(res, code: int | None = None) -> str:
    # an error the CLI reports itself (1 or 2: another issue splits failures from usage errors), or ``code``
    assert (res.exit_code == code) if code is not None else (res.exit_code in (1, 2)), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return _Said("".join(res.output.split()))


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# 3 and 13 -----------------------------------------------------------------------------------------------------
def test_resume_applies_new_rates_and_steps_and_records_them(tiny_model_dir, toy, tmp_path, monkeypatch):
    from mtst.training import run

    cfg = write_task_file(tmp_path, tiny_model_dir, toy)
    out = tmp_path / "run"
    assert _train(cfg, out).exit_code == 0
    trainers = []
    real = run.build_trainer
    monkeypatch.setattr(run, "build_trainer", lambda *a, **k: trainers.append(real(*a, **k)) or trainers[-1])
    changed = ["--set", "train.max_steps=6", "--set", "train.lr=5e-4", "--set", "train.head_lr=2e-2"]
    res = _train(cfg, out, "--resume", *changed)
    assert res.exit_code == 0, res.output
    groups = {g["name"]: g["lr"] for g in trainers[-1].optimizer.param_groups}
    assert groups["backbone"] == 5e-4 and groups["heads.topic"] == 2e-2  # the new rates are the ones in use
    assert trainers[-1].state.step == 6
    as_run = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert (as_run["max_steps"], as_run["lr"], as_run["head_lr"]) == (6, 5e-4, 2e-2)
    records = _records(out)
    (resumed,) = [r for r in records if "resumed_with" in r]
    assert resumed == {
        "step": 4,
        "resumed_with": {"train.head_lr": [0.01, 0.02], "train.lr": [0.001, 0.0005], "train.max_steps": [4, 6]},
    }
    assert [r["lr"] for r in records if "loss" in r and r["step"] > 4] == [5e-4, 5e-4]


def test_resume_refuses_a_setting_the_checkpoint_depends_on(tiny_model_dir, toy, tmp_path):
    cfg = write_task_file(tmp_path, tiny_model_dir, toy)
    out = tmp_path / "run"
    assert _train(cfg, out).exit_code == 0
    before = (out / "config.yaml").read_text()
    out_text = _clean_exit(_train(cfg, out, "--resume", "--set", "train.batch_size=8", "--set", "train.max_steps=6"))
    assert "train.batch_size: 16 in the run, 8 now" in out_text and "new --output folder" in out_text
    assert "train.max_steps" in out_text  # listed among what a resume may change
    assert "sampler" not in out_text
    assert (out / "config.yaml").read_text() == before
    # a run folder without config.yaml (as older runs were): the checkpoint's batches name batch_size too
    (out / "config.yaml").unlink()
    from mtst.training import train

    with pytest.raises(ValueError, match="batch_size") as err:
        train(load_config(cfg, ["train.batch_size=8", "train.max_steps=6"]), out, resume=True, progress=False)
    assert "fresh sampler" not in str(err.value) and "new --output folder" in str(err.value)


# 8 (a checkpoint's files) -------------------------------------------------------------------------------------
def test_resume_from_a_damaged_checkpoint_names_the_file(tiny_model_dir, toy, tmp_path):
    cfg = write_task_file(tmp_path, tiny_model_dir, toy)
    out = tmp_path / "run"
    assert _train(cfg, out).exit_code == 0
    for name in ("optimizer.safetensors", "model/heads.safetensors", "rng.safetensors"):
        damaged = out / "checkpoint" / name
        intact = damaged.read_bytes()
        damaged.write_bytes(intact[:30])
        text = _clean_exit(_train(cfg, out, "--resume", "--set", "train.max_steps=6"))
        assert f"{damaged} is damaged or truncated" in text and "The checkpoint in" in text, name
        damaged.write_bytes(intact)
    assert _train(cfg, out, "--resume", "--set", "train.max_steps=6").exit_code == 0


# 5 ------------------------------------------------------------------------------------------------------------
def test_overwrite_never_deletes_the_runs_inputs_or_other_files(tiny_model_dir, toy, tmp_path):
    dd = tmp_path / "dd"
    shutil.copytree(toy, dd)
    cfg = write_task_file(dd, tiny_model_dir, dd)
    (dd / "mine.txt").write_text("the user's notes")
    before = sorted(p.name for p in dd.iterdir())
    out_text = _clean_exit(_train(cfg, dd, "--overwrite"))
    assert "inside" in out_text and "Choose another --output folder" in out_text
    assert sorted(p.name for p in dd.iterdir()) == before

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert "mtst did not write it" in _clean_exit(_train(cfg, other, "--overwrite"))
    assert (other / "notes.txt").read_text() == "keep me"

    run = tmp_path / "run"
    assert _train(cfg, run).exit_code == 0
    (run / "notes.txt").write_text("keep me too")
    assert "holds files mtst did not write (notes.txt)" in _clean_exit(_train(cfg, run, "--overwrite"))
    (run / "notes.txt").unlink()
    first = (run / "metrics.jsonl").stat().st_mtime_ns
    assert _train(cfg, run, "--overwrite").exit_code == 0  # a folder of mtst's own is replaced
    assert (run / "metrics.jsonl").stat().st_mtime_ns != first and (run / "model" / "mtst_config.json").exists()
    (run / "mtst_run.json").unlink()  # a run folder written before the marker existed is mtst's too
    assert _train(cfg, run, "--overwrite").exit_code == 0 and (run / "mtst_run.json").exists()


# 16 -----------------------------------------------------------------------------------------------------------
def test_training_refuses_bad_settings_before_the_model_loads(tiny_model_dir, toy, tmp_path, no_model_load):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    bad_dev = tmp_path / "dev.tsv"
    bad_dev.write_text("text\tlabel\nthe cat\tanimal\nparis\n")
    cache_file = tmp_path / "cachefile"
    cache_file.write_text("")
    cfg = write_task_file(tmp_path / "cfg", tiny_model_dir, toy)
    cases = [
        (["--set", "train.metric_for_best=topic.f2"], "task 'topic' (classification) reports accuracy, macro_f1"),
        (["--set", f"tasks.topic.train={tmp_path / 'nope.tsv'}"], "nope.tsv does not exist"),
        (["--set", f"tasks.topic.train={empty}"], "empty.tsv is empty"),
        (["--set", "tasks.topic.dev_fraction=null", "--set", f"tasks.topic.dev={bad_dev}"], "dev.tsv, line 3:"),
        (["--set", "train.freeze=backbone", "--set", f"train.cache_dir={cache_file}"], "cachefile is a file"),
        (["--set", "train.cache_dtype=float64"], "train.cache_dtype: 'float64' is not valid"),
        (["--set", f"tasks.topic.init_from={tmp_path / 'nomodel'}"], "nomodel does not exist"),
        (["--set", f"model.backbone={tmp_path / 'nobackbone'}"], "nobackbone does not exist"),
        (["--set", "model.max_length=100"], "model.max_length=100 exceeds the backbone's limit of 64 positions"),
        (["--resume"], "holds no checkpoint"),
    ]
    for i, (args, expected) in enumerate(cases):
        out = tmp_path / f"run{i}"
        assert expected in _clean_exit(_train(cfg, out, *args)), args
        assert not out.exists(), args


# 17 -----------------------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_resume_cleans_up_what_killed_writes_left(tiny_model_dir, toy, tmp_path, caplog):
    cfg = write_task_file(tmp_path, tiny_model_dir, toy)
    out = tmp_path / "run"
    assert _train(cfg, out).exit_code == 0
    pid = _dead_pid()
    half = out / f".checkpoint.{pid}.k3j2_x.tmp"  # a checkpoint write killed part-way
    (half / "model").mkdir(parents=True)
    (half / "model" / "heads.safetensors").write_bytes(b"\0" * 1000)
    (out / f".model.{pid}.a1b2c3.tmp").mkdir()
    live = out / f".model.{os.getppid()}.zz.tmp"  # a writer that still runs: left alone
    live.mkdir()
    with caplog.at_level("WARNING"):
        assert _train(cfg, out, "--resume", "--set", "train.max_steps=6").exit_code == 0
    assert not half.exists() and not (out / f".model.{pid}.a1b2c3.tmp").exists() and live.exists()
    assert half.name in caplog.text and "interrupted write" in caplog.text


def test_a_checkpoint_replace_killed_between_its_renames_is_restored(tiny_model_dir, toy, tmp_path, caplog):
    """A kill between "checkpoint -> .checkpoint.old-PID" and "new -> checkpoint" leaves no checkpoint folder."""
    cfg = write_task_file(tmp_path, tiny_model_dir, toy)
    out = tmp_path / "run"
    assert _train(cfg, out).exit_code == 0
    pid = _dead_pid()
    (out / "checkpoint").rename(out / f".checkpoint.old-{pid}")
    (out / f".checkpoint.{pid}.newone.tmp").mkdir()  # the complete new one, never renamed
    with caplog.at_level("WARNING"):
        res = _train(cfg, out, "--resume", "--set", "train.max_steps=6")
    assert res.exit_code == 0, res.output
    assert "restored" in caplog.text
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 6
    assert not [p.name for p in out.iterdir() if p.name.startswith(".checkpoint")]


# 19 -----------------------------------------------------------------------------------------------------------
def test_ctrl_c_says_where_the_last_checkpoint_is(tiny_model_dir, toy, tmp_path, monkeypatch):
    from mtst.training.loop import Trainer

    cfg = write_task_file(tmp_path, tiny_model_dir, toy, max_steps=6)
    out = tmp_path / "run"
    real_save = Trainer.save

    def save_then_ctrl_c(self, folder):
        real_save(self, folder)
        if self.state.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C: KeyboardInterrupt in the main thread

    monkeypatch.setattr(Trainer, "save", save_then_ctrl_c)
    # as in a terminal: a process started in the background by a non-interactive shell inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        res = _train(cfg, out)
    finally:
        signal.signal(signal.SIGINT, previous)
    text = _clean_exit(res, 130)
    assert "interrupted at step 2" in text and "The last checkpoint is at step 2" in text
    assert f"mtst train {cfg} --output {out} --resume" in text
    monkeypatch.setattr(Trainer, "save", real_save)
    assert _train(cfg, out, "--resume").exit_code == 0
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 6


# 20 -----------------------------------------------------------------------------------------------------------
def test_each_task_logs_its_mean_loss_and_batches_per_interval(tiny_model_dir, toy, tmp_path):
    from mtst.training import train

    cfg = write_task_file(
        tmp_path, tiny_model_dir, toy, tasks=("topic", "ner", "sim"), max_steps=30, log_every=10, eval_every=10,
        save_every=None, sampling="round_robin",
    )  # fmt: skip
    seen = []
    train(load_config(cfg), tmp_path / "run", progress=False, on_step=seen.append)
    logged = [r for r in _records(tmp_path / "run") if "loss" in r]
    assert [r["step"] for r in logged] == [1, 10, 20, 30]
    previous = 0
    for rec in logged:
        steps = [s for s in seen if previous < s.step <= rec["step"]]
        expected: dict[str, list[float]] = {}
        for s in steps:
            for task, loss in s.losses.items():
                expected.setdefault(task, []).append(loss)
        assert rec["batches"] == {t: len(v) for t, v in expected.items()}
        assert rec["loss"] == pytest.approx({t: sum(v) / len(v) for t, v in expected.items()})
        assert sum(rec["batches"].values()) == rec["step"] - previous
        previous = rec["step"]
    assert set(logged[-1]["loss"]) == {"topic", "ner", "sim"}  # every task that trained in the interval

    from mtst.plotting import training_curves_figure

    fig = training_curves_figure(tmp_path / "run" / "metrics.jsonl")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["Training loss", "topic (dev)", "ner (dev)", "sim (dev)"]
    assert sorted(len(line.get_xdata()) for line in panels[0].lines) == [3, 3, 4]  # topic trained at step 1
    assert all(len(line.get_xdata()) == 3 for ax in panels[1:] for line in ax.lines)  # lines over 3 evaluations
