"""Checks a training run makes before it loads a model or writes a file: the config's tasks, every local data file
(read with its task's reader, so a bad line is named at once), ``init_from`` heads, the backbone folder, the cache
folder and the output folder (``--overwrite`` safety, or what a ``--resume`` would change).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mtst.cache import DEFAULT_CACHE_DIR, check_cache_root
from mtst.config import MTSTConfig
from mtst.diskio import check_writable_folder, read_json
from mtst.model import read_saved_head
from mtst.stfolder import default_model_path, read_sentence_transformers_config
from mtst.tasks import read_splits
from mtst.training.heads import uses_cache
from mtst.training.runfolder import CURVES_FILE, check_overwrite, resume_changes, run_inputs, saved_config

STATE_FILE = "trainer_state.json"


def _local(source: str | None) -> bool:
    return source is not None and not str(source).startswith("hf:")


def check_data(config: MTSTConfig) -> None:
    """Read every task's local train and dev data as training will (``hf:`` datasets are read when training)."""
    for t in config.tasks:
        if t.train is None:
            raise ValueError(f"task {t.name!r} has no 'train:' data to train on.")
        if _local(t.train) and (t.dev is None or _local(t.dev)):
            read_splits(t, seed=config.train.seed, splits=("train", "dev"))


def check_backbone(name: str, max_length: int | None) -> None:
    """A local backbone (or "default") must be a model folder whose positions hold ``max_length`` tokens.

    Hub ids are checked when they load.
    """
    path = default_model_path() if name == "default" else Path(name).expanduser()
    if name != "default" and not (path.exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1):
        return
    if not path.is_dir():
        raise FileNotFoundError(f"model.backbone {path} does not exist, or is not a folder.")
    if not any((path / f).exists() for f in ("config.json", "modules.json")):
        raise FileNotFoundError(f"model.backbone {path} is not a model folder: it has no config.json or modules.json.")
    config = path / read_sentence_transformers_config(path).get("backbone_subdir", "") / "config.json"
    limit = read_json(config).get("max_position_embeddings") if config.exists() else None
    if max_length is not None and isinstance(limit, int) and max_length > limit:
        raise ValueError(
            f"model.max_length={max_length} exceeds the backbone's limit of {limit} positions "
            f"(max_position_embeddings in {config})."
        )


def check_training_run(
    config: MTSTConfig,
    output_dir: str | Path,
    *,
    overwrite: bool,
    resume: bool,
    own: Iterable[str],
    config_file: str | Path | None = None,
) -> dict[str, list[Any]]:
    """Refuse a run that cannot succeed, before any work; on resume, return the settings it changes (``RESUMABLE``).

    ``own`` names the files a run folder holds (``--overwrite`` deletes those only); ``config_file``, the task file
    the config came from, is named in errors and protected from ``--overwrite`` too.
    """
    where = str(config_file) if config_file is not None else "the config"
    if not config.tasks:
        raise ValueError(f"{where}: tasks is empty: list at least one task (its name, type and train file).")
    out = Path(output_dir)
    changes: dict[str, list[Any]] = {}
    if resume:
        state_file = out / "checkpoint" / STATE_FILE
        if not state_file.exists():
            raise FileNotFoundError(f"Cannot resume: {state_file.parent} holds no checkpoint. Start without --resume.")
        step = int(read_json(state_file).get("step", 0))
        saved = saved_config(out)
        changes = resume_changes(saved, config, out) if saved is not None else {}
        max_steps = config.train.max_steps
        unfinished = max_steps == step and not (out / CURVES_FILE).exists()  # killed after its last checkpoint
        if max_steps is not None and max_steps <= step and not unfinished:
            raise ValueError(
                f"Cannot resume: train.max_steps is {config.train.max_steps}, and the checkpoint in {out} is at step "
                f"{step} already. Raise max_steps to train on."
            )
    else:
        check_writable_folder(out, overwrite=overwrite, what="training run")
        if overwrite and out.is_dir() and any(out.iterdir()):
            check_overwrite(out, run_inputs(config, config_file), own)
    check_backbone(config.model.backbone, config.model.max_length)
    for t in config.tasks:
        if t.init_from:
            read_saved_head(t.init_from, t)
    if uses_cache(config):
        check_cache_root(Path(config.train.cache_dir or DEFAULT_CACHE_DIR))
    check_data(config)
    return changes
