"""The run folder: ``train()`` drives an engine and writes metrics.jsonl, the best model, checkpoints and curves.

``output_dir/model`` holds the best model (the last one if no task has dev data), ``checkpoint/`` the state to
resume from, ``metrics.jsonl`` every logged loss and evaluation, ``curves.png`` their plot.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mtst.config import MTSTConfig, save_config
from mtst.diskio import clean_stale_temps, write_text
from mtst.evaluation import SPLIT_SEED
from mtst.plotting import plot_training_curves
from mtst.training.heads import HeadTrainer, uses_cache
from mtst.training.loop import StepRecord, Trainer
from mtst.training.preflight import check_training_run
from mtst.training.runfolder import CURVES_FILE, LossInterval, TrainingInterrupted, clear_run_folder, write_marker

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
RUN_FILES = (CHECKPOINT_DIR, MODEL_DIR, METRICS_FILE, "config.yaml", CURVES_FILE)  # what --overwrite may delete


def build_trainer(config: MTSTConfig, *, device: str | None = None) -> Trainer | HeadTrainer:
    """The engine a config asks for: heads from cached embeddings (frozen backbone, ``use_cache``) or the full loop."""
    return HeadTrainer(config, device=device) if uses_cache(config) else Trainer(config, device=device)


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:  # the last line of a run killed mid-append
        return False
    return True


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records past ``step`` (from the part of a killed run that the checkpoint does not hold), atomically."""
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and _parses(ln)]
        kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        write_text(path, "".join(ln + "\n" for ln in kept))


def train(
    config: MTSTConfig,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[StepRecord], None] | None = None,
    device: str | None = None,
    config_file: str | Path | None = None,
) -> dict[str, Any]:
    """Train the config's tasks on one shared backbone; write the best model, metrics and curves to ``output_dir``.

    ``output_dir/model`` holds the best model (the last one if no task has dev data), ``checkpoint/`` the
    state to ``resume`` from, ``metrics.jsonl`` every logged loss and evaluation, ``curves.png`` their plot.
    Everything that can be checked is checked before the model loads (``training.preflight``). ``overwrite``
    deletes only what mtst wrote; ``resume`` may change the settings in ``runfolder.RESUMABLE`` (recorded in
    ``config.yaml`` and ``metrics.jsonl``). ``config_file``: the task file, named in errors and never deleted.
    """
    out = Path(output_dir)
    ckpt = out / CHECKPOINT_DIR
    if resume and os.environ.get("RANK", "0") == "0":  # one process (of `accelerate launch`) cleans up
        clean_stale_temps(out)  # what a killed run left; a checkpoint it was replacing is put back
    changes = check_training_run(
        config, out, overwrite=overwrite, resume=resume, own=RUN_FILES, config_file=config_file
    )
    trainer = build_trainer(config, device=device)
    t = config.train
    metrics_file = out / METRICS_FILE
    if trainer.is_main_process and not resume:
        if out.exists() and overwrite:
            clear_run_folder(out, RUN_FILES)
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, RUN_FILES)
        save_config(config, out / "config.yaml")
    trainer.wait_for_everyone()
    if resume:
        trainer.restore(ckpt)
        if trainer.is_main_process:
            _truncate_metrics(metrics_file, trainer.state.step)
            if changes:
                save_config(config, out / "config.yaml")  # the config as run, from here on
                _append_jsonl(metrics_file, {"step": trainer.state.step, "resumed_with": changes})
                said = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
                logger.warning("Resuming %s at step %d with %s.", out, trainer.state.step, said)
    # the seed that held the dev_fraction rows out: `mtst evaluate` rebuilds the same split from it
    model_extra = {**trainer.model.extra, SPLIT_SEED: t.seed}
    save_every = t.save_every
    last_metrics: dict[str, dict[str, float]] | None = None
    interval = LossInterval()  # each task's losses since the last loss record
    bar = tqdm(
        total=trainer.total_steps,
        initial=trainer.state.step,
        desc="Training",
        disable=not (progress and trainer.is_main_process),
    )
    try:
        for record in trainer.steps():
            bar.update(1)
            bar.set_postfix(task=record.task, loss=f"{record.loss:.4f}")
            main = trainer.is_main_process
            interval.add(record.losses, record.batches)
            due = (save_every and record.step % save_every == 0) or (save_every is None and record.metrics is not None)
            checkpoint = bool(due or record.step == trainer.total_steps or record.stop)
            # a loss record closes each interval, and one falls on every checkpoint: a resume logs what a run would
            if main and (record.step % t.log_every == 0 or record.step == 1 or checkpoint):
                means, batches = interval.flush()
                _append_jsonl(
                    metrics_file,
                    {"step": record.step, "epoch": round(record.epoch, 4), "lr": record.lr, "loss": means,
                     "batches": batches},
                )  # fmt: skip
            if record.metrics is not None:
                last_metrics = record.metrics
                if main:
                    _append_jsonl(metrics_file, {"step": record.step, "eval": record.metrics, "score": record.score})
                    if record.is_best:  # its dev metrics go into the model card
                        best = {**model_extra, "dev_metrics": record.metrics, "best_step": record.step}
                        trainer.model.save(out / MODEL_DIR, extra=best)
            if checkpoint:
                trainer.save(ckpt)
            if on_step is not None:
                on_step(record)
    except KeyboardInterrupt:
        bar.close()
        raise TrainingInterrupted(out, trainer.state.step, config_file) from None
    bar.close()
    if trainer.is_main_process:
        if not trainer.dev_data:
            trainer.model.save(out / MODEL_DIR, extra=model_extra)
        plot_training_curves(metrics_file, out / CURVES_FILE)
    trainer.wait_for_everyone()
    return {
        "steps": trainer.state.step,
        "best_step": trainer.state.best_step,
        "best_score": trainer.state.best_score,
        "final_metrics": last_metrics,
        "model_dir": str(out / MODEL_DIR),
    }
