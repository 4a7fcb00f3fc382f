"""Checks the commands make before they load a model: inputs, outputs, cache folders, splits and task names.

A mistake found here costs nothing; found after a model load it costs seconds (tens of seconds for a real
model), and found mid-run, a run folder. Training's own checks are in ``mtst.training.preflight``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mtst.cache import DTYPES, check_cache_root
from mtst.config import MTSTConfig
from mtst.evaluation import check_config_tasks
from mtst.model import DEFAULT_MULTITASK, default_multitask_path, read_model_config
from mtst.runtime.session import is_export, read_export_config
from mtst.textfiles import count_lines

SPLITS = ("dev", "test")


def check_text_file(path: str | Path) -> Path:
    """A one-text-per-line input must exist, be a file and hold at least one line."""
    path = Path(path)
    if count_lines(path) == 0:  # also raises for a missing file or a folder
        raise ValueError(f"{path} is empty: expected one text per line.")
    return path


def _model_tasks(model_dir: str | Path) -> list[str] | None:
    """Task names saved in an mtst model folder; ``None`` where it is no such folder (loading says why)."""
    path = default_multitask_path() if str(model_dir) == DEFAULT_MULTITASK else model_dir
    try:
        conf = read_export_config(path) if is_export(path) else read_model_config(path)
        return [t["name"] for t in conf.get("tasks", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_predict(model_dir: str | Path, tasks: Sequence[str] | None) -> None:
    """``--task`` names must be tasks of the model."""
    names = _model_tasks(model_dir)
    for name in tasks or []:
        if names is not None and name not in names:
            raise ValueError(f"Unknown task {name!r}; this model's tasks are: {', '.join(names)}.")


def check_evaluation(model_dir: str | Path, config: MTSTConfig | None, split: str) -> None:
    """The split must be dev or test, and the config's tasks tasks of the model."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}.")
    names = _model_tasks(model_dir)
    if names is not None:
        check_config_tasks(names, config)


def check_cache(cache_dir: str | Path, dtype: str = "float32") -> Path:
    """A cache folder must be a folder (or creatable) and its dtype one of ``cache.DTYPES``."""
    if dtype not in DTYPES:
        raise ValueError(f"cache dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    return check_cache_root(Path(cache_dir))
