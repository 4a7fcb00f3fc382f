"""Resumable training checkpoints: model, optimizer, scheduler, sampler, data order and RNG state.

Tensors go to safetensors files and everything else to JSON, so loading a checkpoint unpickles nothing.
The folder is written atomically: a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from mtst.diskio import atomic_folder, read_json, write_json
from mtst.model import MultiTaskModel, keep_quiet_about_names_only
from mtst.tensorfiles import DamagedFileError, load_tensors

MODEL_DIR = "model"
STATE_FILE = "trainer_state.json"


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                meta["state"].setdefault(str(idx), {})[key] = value
    return tensors, meta


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["state"].items()}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    kind, keys, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def save_checkpoint(
    folder: str | Path,
    *,
    model: MultiTaskModel,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    state: dict[str, Any],
    extra: nn.Module | None = None,
) -> Path:
    """Write everything a run needs to continue exactly where it stopped (replaces an older checkpoint).

    ``optimizer=None`` (head training from the cache, which restarts on resume) writes no optimizer or scheduler.
    """
    with atomic_folder(folder, overwrite=True, what="checkpoint") as tmp:
        keep_quiet_about_names_only(tmp / MODEL_DIR)
        model.save(tmp / MODEL_DIR)
        if optimizer is not None:
            tensors, meta = _split_optimizer_state(optimizer.state_dict())
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            write_json(tmp / "optimizer.json", meta)
            write_json(tmp / "scheduler.json", scheduler.state_dict())
        rng_tensors, rng_meta = _rng_state()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        write_json(tmp / "rng.json", rng_meta)
        if extra is not None:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in extra.state_dict().items()},
                str(tmp / "extra.safetensors"),
            )
        write_json(tmp / STATE_FILE, state)
    return Path(folder)


def load_checkpoint(
    folder: str | Path,
    *,
    model: MultiTaskModel,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    extra: nn.Module | None = None,
) -> dict[str, Any]:
    """Restore a checkpoint into live objects; returns the trainer state saved with it."""
    folder = Path(folder)
    needed = (MODEL_DIR, "rng.json", STATE_FILE)
    if optimizer is not None:
        needed += ("optimizer.safetensors", "optimizer.json", "scheduler.json")
    for name in needed:
        if not (folder / name).exists():
            raise FileNotFoundError(f"Checkpoint {folder} is incomplete: {name} is missing.")
    redo = (
        f"The checkpoint in {folder} is damaged: resume from a copy of it, or train again without --resume "
        "(into a new --output folder, or with --overwrite)."
    )

    def tensors(name: str) -> dict[str, torch.Tensor]:
        return load_tensors(folder / name, redo)

    def meta(name: str) -> Any:
        try:
            return read_json(folder / name)
        except ValueError as e:
            raise DamagedFileError(f"{e} {redo}", path=folder / name) from None

    try:
        saved = MultiTaskModel.load(folder / MODEL_DIR, device="cpu")
    except (DamagedFileError, OSError, ValueError) as e:
        if "damaged" not in str(e) and "malformed JSON" not in str(e):
            raise
        raise DamagedFileError(f"{e} ({redo})", path=folder / MODEL_DIR) from None
    if list(saved.tasks) != list(model.tasks):
        raise ValueError(f"Checkpoint {folder} has tasks {list(saved.tasks)}, the config has {list(model.tasks)}.")
    model.load_state_dict(saved.state_dict())
    if optimizer is not None:
        optimizer.load_state_dict(_join_optimizer_state(tensors("optimizer.safetensors"), meta("optimizer.json")))
        scheduler.load_state_dict(meta("scheduler.json"))
    if extra is not None and (folder / "extra.safetensors").exists():
        extra.load_state_dict(tensors("extra.safetensors"))
    _set_rng_state(tensors("rng.safetensors"), meta("rng.json"))
    return meta(STATE_FILE)
