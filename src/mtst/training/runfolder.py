"""What a run folder may hold and how it may change: the marker of what mtst wrote, ``--overwrite`` that deletes
only that, the settings a resume may change, and each task's mean loss over a logging interval.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mtst.config import MTSTConfig
from mtst.diskio import read_json, stale_temp_owner, write_json
from mtst.version import __version__

CURVES_FILE = "curves.png"  # written last: a run folder that holds it is finished

logger = logging.getLogger(__name__)

RUN_MARKER = "mtst_run.json"  # "mtst train wrote this folder": --overwrite refuses a folder without it
RUN_FORMAT = "mtst-run"

# Settings a resume may change: how long to train, the learning rates, and when to log, evaluate, save or stop.
# Everything else (the model, the tasks and their data, batch sizes, sampling, seed, freezing, schedule shape)
# made the checkpoint what it is, and a resume refuses a change to it.
RESUMABLE = (
    "train.max_steps",
    "train.epochs",
    "train.lr",
    "train.head_lr",
    "train.eval_every",
    "train.save_every",
    "train.log_every",
    "train.early_stopping_patience",
    "train.eval_batch_size",
    "train.max_grad_norm",
    "train.cache_dir",
)
_WHY = {
    "train.batch_size": "the batches per epoch, and so the data order and the task sampling, follow it",
    "train.grad_accum": "the batches per step, and so the schedule, follow it",
    "train.seed": "the data order and the sampled tasks follow it",
    "train.metric_for_best": "the best score so far was measured with the old metric",
}


def write_marker(out: Path, own: Iterable[str]) -> None:
    """Record that mtst writes this run folder, and the names it writes there."""
    write_json(out / RUN_MARKER, {"format": RUN_FORMAT, "mtst_version": __version__, "writes": sorted(own)})


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def run_inputs(config: MTSTConfig, config_file: str | Path | None = None) -> list[tuple[str, Path]]:
    """``(what, path)`` of every local file or folder a run reads: its task file, data, init_from, backbone, cache."""
    found = [("task file", Path(config_file))] if config_file is not None else []
    for t in config.tasks:
        for key in ("train", "dev", "test", "init_from"):
            value = getattr(t, key)
            if isinstance(value, str) and not value.startswith("hf:"):
                found.append((f"task {t.name!r} {key}", Path(value).expanduser()))
    for what, value in (("backbone", config.model.backbone), ("cache_dir", config.train.cache_dir)):
        if value and Path(value).expanduser().exists():
            found.append((what, Path(value).expanduser()))
    return found


def check_overwrite(out: Path, inputs: Iterable[tuple[str, Path]], own: Iterable[str]) -> None:
    """Refuse ``--overwrite`` of a folder that holds the run's inputs, was not written by mtst, or holds other files."""
    for what, path in inputs:
        if _inside(path, out):
            raise FileExistsError(
                f"--overwrite would delete the run's {what} {path}, which is inside {out}. "
                "Choose another --output folder."
            )
    if not (out / RUN_MARKER).exists() and not _legacy_run(out):
        raise FileExistsError(
            f"Refusing to overwrite {out}: mtst did not write it (no {RUN_MARKER} marker), so its files may be "
            "someone's data. Choose another --output folder, or empty this one yourself."
        )
    own = set(own) | (set(read_json(out / RUN_MARKER).get("writes", [])) if (out / RUN_MARKER).exists() else set())
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir() if not _is_own(p.name, own))
    if foreign:
        raise FileExistsError(
            f"Refusing to overwrite {out}: it holds files mtst did not write ({', '.join(foreign[:10])}"
            f"{', ...' if len(foreign) > 10 else ''}). Move them out, or choose another --output folder."
        )


def _legacy_run(out: Path) -> bool:
    """A run folder from before the marker: its config as run, its metrics and a checkpoint (other files: refused)."""
    return all((out / f).exists() for f in ("config.yaml", "metrics.jsonl", "checkpoint/trainer_state.json"))


def _is_own(name: str, own: set[str]) -> bool:
    return name in own or name == RUN_MARKER or stale_temp_owner(name) is not None


def clear_run_folder(out: Path, own: Iterable[str]) -> None:
    """Delete what mtst wrote in a run folder (after ``check_overwrite``), and nothing else."""
    own = set(own)
    for entry in out.iterdir():
        if _is_own(entry.name, own):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


# ---------------------------------------------------------------------------------------------------------- resume
def _flat(config: MTSTConfig) -> dict[str, Any]:
    data = config.to_dict()
    flat = {f"{section}.{k}": v for section in ("model", "train") for k, v in data[section].items()}
    for t in data["tasks"]:
        flat.update({f"tasks.{t['name']}.{k}": v for k, v in t.items()})
    flat["tasks"] = [t["name"] for t in data["tasks"]]
    return flat


def saved_config(out: Path) -> MTSTConfig | None:
    """The config a run folder records as run (``config.yaml``), or ``None`` where there is none."""
    path = out / "config.yaml"
    if not path.exists():
        return None
    try:
        return MTSTConfig.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, AttributeError, yaml.YAMLError) as e:  # another version's keys, a damaged file
        logger.warning("Resume: %s (the config as run) is unreadable (%s); settings are not compared.", path, e)
        return None


def resume_changes(saved: MTSTConfig, new: MTSTConfig, out: Path) -> dict[str, list[Any]]:
    """``{key: [run's value, new value]}`` of the settings that differ; refuses any a resume may not change."""
    old, now = _flat(saved), _flat(new)
    changed = {k: [old.get(k), now.get(k)] for k in sorted(set(old) | set(now)) if old.get(k) != now.get(k)}
    refused = [k for k in changed if k not in RESUMABLE]
    if refused:
        lines = [f"{k}: {changed[k][0]!r} in the run, {changed[k][1]!r} now" for k in refused]
        why = "; ".join(f"{k}: {_WHY[k]}" for k in refused if k in _WHY)
        raise ValueError(
            f"Cannot resume {out} with changed settings ({'; '.join(lines)}). The checkpoint was made with the "
            f"run's values{f' ({why})' if why else ''}. Resume with them (see {out / 'config.yaml'}), or train "
            f"into a new --output folder. A resume may change only: {', '.join(RESUMABLE)}."
        )
    return changed


class LossInterval:
    """Each task's losses since the last logged step: ``record`` returns their means and batch counts."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: Mapping[str, float], batches: Mapping[str, int] | None = None) -> None:
        """Add one step: each task's mean loss in it and how many of its batches that mean covers."""
        for task, loss in losses.items():
            n = int((batches or {}).get(task, 1))
            self.sums[task] = self.sums.get(task, 0.0) + loss * n
            self.counts[task] = self.counts.get(task, 0) + n

    def flush(self) -> tuple[dict[str, float], dict[str, int]]:
        """``({task: mean loss}, {task: batches})`` of every task that trained since the last flush; then reset."""
        means = {t: self.sums[t] / self.counts[t] for t in self.sums}
        counts = dict(self.counts)
        self.sums, self.counts = {}, {}
        return means, counts


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the message says where the last checkpoint is and how to resume from it."""

    def __init__(self, out: Path, step: int, config_file: str | Path | None) -> None:
        state = out / "checkpoint" / "trainer_state.json"  # what is on disk, whenever the interrupt came
        checkpoint_step = int(read_json(state).get("step", 0)) if state.exists() else None
        self.step, self.checkpoint_step = step, checkpoint_step
        command = f"mtst train {config_file or 'TASK_FILE'} --output {out} --resume"
        if checkpoint_step is None:
            message = (
                f"Training interrupted at step {step}, before its first checkpoint: nothing to resume. "
                f"Start again with mtst train {config_file or 'TASK_FILE'} --output {out} --overwrite."
            )
        else:
            message = (
                f"Training interrupted at step {step}. The last checkpoint is at step {checkpoint_step} in "
                f"{out / 'checkpoint'}: resume with `{command}` (Python: train(config, {str(out)!r}, resume=True))."
            )
        super().__init__(message)
