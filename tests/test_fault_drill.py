"""Fault drill: a training run killed with SIGKILL at random points, 5 times, resumed after each.

The resumed run ends exactly where an uninterrupted one does (every metrics.jsonl record, the checkpoint's and the
best model's weights, bit for bit), no temporary file is left, and after every kill the checkpoint a resume would
use loads. Each run is its own process running ``mtst.training.train`` (what ``mtst train`` calls) on the tiny
backbone, forked from a server that imported mtst once (``multiprocessing`` forkserver), so a run starts in
milliseconds rather than the seconds an import of torch takes. ``MTST_DRILL_REPORT=path`` writes the drill's
figures (where each kill landed) there as JSON.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from toydata import write_toy_data
from tqdm.auto import tqdm

from mtst.diskio import stale_temp_owner

KILLS = 5
STEPS = 40


def _task_file(folder: Path, backbone: Path, data: Path) -> Path:
    config = {
        "model": {"backbone": str(backbone), "max_length": 32},
        "tasks": [
            {"name": "topic", "type": "classification", "train": str(data / "cls.tsv"), "dev_fraction": 0.25},
            {"name": "ner", "type": "token_classification", "train": str(data / "ner.conll"),
             "dev": str(data / "ner.conll")},
        ],
        "train": {"max_steps": STEPS, "batch_size": 8, "lr": 1e-3, "head_lr": 1e-2, "save_every": 2,
                  "eval_every": 10, "log_every": 5, "seed": 7},
    }  # fmt: skip
    path = folder / "drill.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_training(cfg: str, out: str, mode: str) -> None:
    """A child process: train as ``mtst train CFG --output OUT [--resume|--overwrite]`` does."""
    import torch

    from mtst.config import load_config
    from mtst.training import train

    torch.set_num_threads(1)
    tqdm.set_lock(threading.RLock())  # not tqdm's multiprocessing lock: a killed child would leak its semaphore
    train(load_config(cfg), out, resume=mode == "resume", overwrite=mode == "overwrite", progress=False)


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "transformers", "mtst.training", "mtst.config"])
    return ctx


def _run(ctx, cfg: Path, out: Path, mode: str = "fresh") -> int:
    proc = ctx.Process(target=run_training, args=(str(cfg), str(out), mode))
    proc.start()
    proc.join(300)
    return proc.exitcode


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if stale_temp_owner(p.name) is not None or p.name.endswith(".tmp"))


def _checkpoint_loads(out: Path) -> int | None:
    """Load everything of the checkpoint a resume would use (the one a killed replace left aside, if need be)."""
    from mtst.model import MultiTaskModel

    ckpt = out / "checkpoint"
    if not ckpt.exists():
        aside = [p for p in out.iterdir() if p.name.startswith(".checkpoint.old-")]
        if not aside:
            return None  # killed before the first checkpoint
        ckpt = aside[0]
    for name in ("trainer_state.json", "optimizer.json", "scheduler.json", "rng.json"):
        json.loads((ckpt / name).read_text())
    for name in ("optimizer.safetensors", "rng.safetensors", "extra.safetensors"):
        load_file(str(ckpt / name))
    MultiTaskModel.load(ckpt / "model", device="cpu")
    return json.loads((ckpt / "trainer_state.json").read_text())["step"]


def _weights(folder: Path) -> dict[str, object]:
    return {
        **{f"heads.{k}": v for k, v in load_file(str(folder / "heads.safetensors")).items()},
        **{f"encoder.{k}": v for k, v in load_file(str(folder / "encoder" / "model.safetensors")).items()},
    }


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _kill_during_training(ctx, cfg: Path, out: Path, mode: str, delay: float) -> dict:
    """Start a run; once it trains (metrics.jsonl changes), wait ``delay`` s and SIGKILL it (unless it ended)."""
    metrics = out / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns if metrics.exists() else None
    proc = ctx.Process(target=run_training, args=(str(cfg), str(out), mode))
    proc.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.is_alive():
        if metrics.exists() and metrics.stat().st_mtime_ns != before:
            break
        time.sleep(0.005)
    time.sleep(delay)
    finished = not proc.is_alive()
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    return {"killed": not finished, "exitcode": proc.exitcode}


def _training_seconds(ctx, cfg: Path, out: Path) -> float:
    """Run to the end; the seconds from its first metrics record to its exit (what a kill delay is a share of)."""
    metrics = out / "metrics.jsonl"
    proc = ctx.Process(target=run_training, args=(str(cfg), str(out), "fresh"))
    proc.start()
    while proc.is_alive() and not metrics.exists():
        time.sleep(0.005)
    first = time.monotonic()
    proc.join(300)
    assert proc.exitcode == 0
    return time.monotonic() - first


@pytest.mark.slow
def test_kill_9_five_times_then_resume_ends_as_an_uninterrupted_run(tiny_model_dir, tmp_path):
    data = write_toy_data(tmp_path / "data")
    cfg = _task_file(tmp_path, tiny_model_dir, data)
    full, drill = tmp_path / "full", tmp_path / "drill"
    ctx = _context()
    started = time.monotonic()
    seconds = _training_seconds(ctx, cfg, full)  # kill delays scale with it: a fast machine finishes in <1 s

    rng = random.Random(18)
    report = {"kills": [], "missed": 0, "steps": STEPS, "checkpoint_every": 2, "run_seconds": round(seconds, 2)}
    for _attempt in range(4 * KILLS):
        if len(report["kills"]) == KILLS:
            break
        checkpoint = _checkpoint_loads(drill) if drill.exists() else None
        finished = (drill / "curves.png").exists()  # a kill that came too late: start over
        mode = "resume" if checkpoint is not None and not finished else ("overwrite" if drill.exists() else "fresh")
        outcome = _kill_during_training(ctx, cfg, drill, mode, delay=rng.uniform(0.0, 0.5) * seconds)
        if not outcome["killed"]:
            assert outcome["exitcode"] == 0, outcome  # it ran to the end before the kill
            report["missed"] += 1
            continue
        assert outcome["exitcode"] == -signal.SIGKILL, outcome
        left = _leftovers(drill)
        step = _checkpoint_loads(drill)  # never unreadable (raises if it is)
        report["kills"].append({"kill": len(report["kills"]) + 1, "started_as": mode, "checkpoint_step": step,
                                "left": left})  # fmt: skip
    assert len(report["kills"]) == KILLS, report
    mode = "resume" if _checkpoint_loads(drill) is not None else "overwrite"
    assert _run(ctx, cfg, drill, mode) == 0
    report["seconds"] = round(time.monotonic() - started, 1)

    assert _records(drill) == _records(full)  # every loss and evaluation record, in order
    assert _same_weights(drill / "checkpoint" / "model", full / "checkpoint" / "model")
    assert _same_weights(drill / "model", full / "model")
    assert json.loads((drill / "checkpoint" / "trainer_state.json").read_text()) == json.loads(
        (full / "checkpoint" / "trainer_state.json").read_text()
    )
    assert _leftovers(drill) == []
    assert not [p for p in drill.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]
    if os.environ.get("MTST_DRILL_REPORT"):
        Path(os.environ["MTST_DRILL_REPORT"]).write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
