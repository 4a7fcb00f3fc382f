"""Data paths saved with a model: relative to the model folder where they share its project, else file names only.

A model folder gets copied, pushed to the hub and unpacked on other machines, where an absolute path from the
machine it was trained on means nothing (and could name some other file). ``portable_task_paths`` rewrites each
task's ``train`` / ``dev`` / ``test`` / ``init_from`` when the model is saved:

- inside the project that holds the model folder (their common folder is at least two levels below the root
  and is not the home folder or above it): a path relative to the model folder, e.g. ``../../data/dev.tsv``;
- elsewhere (``/mnt/datasets/...`` beside ``/home/me/runs/...``): the file name only, listed under
  ``names_only`` in ``mtst_config.json``; ``mtst evaluate --model DIR`` then needs a config naming that data.

``hf:`` dataset specs are kept as they are. ``resolve_task_paths`` undoes the first rewrite when the model loads
(names-only paths become ``None``, so nothing reads a same-named file from the working directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PATH_KEYS = ("train", "dev", "test", "init_from")  # task keys that hold data (or model) paths


def _in_shared_project(data: Path, model_dir: Path) -> bool:
    """True if ``data`` and ``model_dir`` share a project folder: not the root, a top-level folder or the home."""
    try:
        common = Path(os.path.commonpath([data, model_dir]))
    except ValueError:  # different drives (Windows)
        return False
    home = Path.home().resolve()
    return len(common.parts) > 2 and common != home and common not in home.parents


def portable_task_paths(
    tasks: Sequence[Mapping[str, Any]], model_dir: str | Path
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Task dicts with portable paths (see the module's doc), and ``{task: [keys kept as file names only]}``."""
    model_dir = Path(model_dir).resolve()
    out: list[dict[str, Any]] = []
    names_only: dict[str, list[str]] = {}
    for task in tasks:
        task = dict(task)
        for key in PATH_KEYS:
            value = task.get(key)
            if not isinstance(value, str) or not value or value.startswith("hf:"):
                continue
            path = Path(value).expanduser().resolve()
            if _in_shared_project(path, model_dir):
                task[key] = Path(os.path.relpath(path, model_dir)).as_posix()
            else:
                task[key] = path.name
                names_only.setdefault(str(task["name"]), []).append(key)
        out.append(task)
    return out, names_only


def resolve_task_paths(
    tasks: Sequence[Mapping[str, Any]], model_dir: str | Path, names_only: Mapping[str, Sequence[str]] | None
) -> list[dict[str, Any]]:
    """Task dicts as saved, with relative paths made absolute from ``model_dir`` and names-only paths ``None``."""
    model_dir = Path(model_dir)
    names_only = names_only or {}
    out = []
    for task in tasks:
        task = dict(task)
        for key in PATH_KEYS:
            value = task.get(key)
            if key in names_only.get(str(task.get("name")), ()):
                task[key] = None
            elif isinstance(value, str) and value and not value.startswith("hf:") and not Path(value).is_absolute():
                task[key] = str((model_dir / value).resolve())
        out.append(task)
    return out


def names_only_notes(
    tasks: Sequence[Mapping[str, Any]], names_only: Mapping[str, Sequence[str]] | None, split: str
) -> list[str]:
    """One line per task whose ``split`` data (or the ``train`` file its dev split is held out of) was saved by name."""
    notes = []
    for task in tasks:
        dropped = set((names_only or {}).get(str(task.get("name")), ()))
        key = "train" if split == "dev" and task.get("dev_fraction") and "train" in dropped else split
        if key in dropped:
            notes.append(
                f"task {task['name']!r}: its {key} data ({task.get(key)}) lay outside the model's project when it "
                "was saved, so only the file name was kept; pass a config that names it (mtst evaluate --model DIR "
                "CONFIG)."
            )
    return notes
