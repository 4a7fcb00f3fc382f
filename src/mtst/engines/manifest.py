"""The output folder's manifest (model fingerprint, settings, inputs, shard plan) and its safety checks.

A folder holds only ``_manifest.json``, finished ``part-NNNNN.parquet`` shards and, after a crash, hidden
temporary shards (removed on the next run). A rerun with the same model, settings and input resumes; any
difference is refused with the fields that differ, so two runs never mix in one folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mtst.diskio import read_json, write_json
from mtst.engines.readers import Plan
from mtst.engines.shards import SHARD_RE, TEMP_RE, shard_name, shard_rows
from mtst.version import __version__

MANIFEST = "_manifest.json"
FORMAT = "mtst-embeddings"
VERSION = 1
# What must match for a rerun to resume: the model and every setting that changes a stored number or row.
_COMPARED = ("format", "version", "model", "settings", "inputs", "rows")


def model_fingerprint(encoder: Any) -> str:
    """SHA-256 of the model: its weights (names and bytes) and vocabulary; two encoders share it only if equal.

    The one place engines fingerprint a model. Encoders that fingerprint themselves (``fingerprint()``: the
    torch encoder, by this same recipe, and an ONNX export, from its graph's checksum) are asked; for any
    other encoder with a torch ``backbone`` the weights are hashed here.
    """
    own = getattr(encoder, "fingerprint", None)
    if callable(own):
        return str(own())
    h = hashlib.sha256()
    for name, tensor in sorted(encoder.backbone.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(sorted(encoder.tokenizer.get_vocab().items())).encode())
    return h.hexdigest()


def build_manifest(encoder: Any, plan: Plan, settings: dict[str, Any], *, fingerprint: str) -> dict[str, Any]:
    """The manifest of a run: the model (fingerprint, pooling, normalization, max length, dim), settings, plan."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "mtst_version": __version__,
        "model": {
            "fingerprint": fingerprint,
            "pooling": encoder.pooling,
            "normalize": encoder.normalize,
            "max_length": encoder.max_length,
            "dim": encoder.dim,
        },
        "model_source": str(getattr(encoder, "source", "")),
        "settings": settings,
        "inputs": [{"path": f.path, "format": f.format, "rows": f.rows, "bytes": f.size} for f in plan.inputs],
        "rows": plan.rows,
        "shards": [
            {"name": shard_name(fr.index), "input": fr.path, "start": fr.start, "stop": fr.stop}
            for fr in plan.fragments
        ],
    }


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an output folder."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no {MANIFEST}: it is not an mtst embeddings folder.")
    return read_json(path)


def _ours(name: str) -> bool:
    return name == MANIFEST or bool(SHARD_RE.match(name) or TEMP_RE.match(name))


def check_output_folder(folder: Path) -> None:
    """Refuse a file, or a folder holding anything mtst did not write there."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"--output {folder} is a file; give a folder for the Parquet shards.")
    if not folder.exists():
        return
    foreign = sorted(p.name for p in folder.iterdir() if not _ours(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"--output {folder} holds files that mtst did not write ({shown}); "
            "choose an empty or new folder: nothing there is overwritten."
        )
    if any(SHARD_RE.match(p.name) for p in folder.iterdir()) and not (folder / MANIFEST).exists():
        raise FileExistsError(f"{folder} holds shards but no {MANIFEST}; choose a new folder.")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for key in _COMPARED:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed = [k for k in sorted(a | b) if a.get(k) != b.get(k)]
            out += [f"{key}.{k}: {a.get(k)!r} in the folder, {b.get(k)!r} now" for k in changed]
        elif key == "inputs" and a != b:
            out.append(f"inputs: {_describe(a)} in the folder, {_describe(b)} now")
        elif a != b:
            out.append(f"{key}: {a!r} in the folder, {b!r} now")
    return out


def _describe(inputs: Any) -> str:
    if not isinstance(inputs, list):
        return repr(inputs)
    rows, size = sum(f.get("rows", 0) for f in inputs), sum(f.get("bytes", 0) for f in inputs)
    return f"{len(inputs)} file(s), {rows} rows, {size} bytes"


def prepare_output(folder: Path, manifest: dict[str, Any], *, overwrite: bool = False) -> set[int]:
    """Create the folder and its manifest, or check the existing one; return the indices of finished shards.

    Leftover temporary shards of a killed run are removed. ``overwrite`` deletes the earlier run's shards
    and manifest first (only files mtst wrote: ``check_output_folder`` ran before).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        if TEMP_RE.match(p.name) or (overwrite and _ours(p.name)):
            p.unlink()
    path = folder / MANIFEST
    if not path.exists():
        write_json(path, manifest)
        return set()
    old = read_json(path)
    problems = _differences(old, manifest)
    if problems:
        raise ValueError(
            f"{folder} holds embeddings of another model, settings or input, so this run would mix them:\n  "
            + "\n  ".join(problems)
            + "\nWrite to a new folder, or pass --overwrite (overwrite=True) to replace that run's shards."
        )
    planned = {s["name"]: s["stop"] - s["start"] for s in manifest["shards"]}
    done = set()
    for p in folder.iterdir():
        m = SHARD_RE.match(p.name)
        if m is None:
            continue
        if p.name not in planned or shard_rows(p) != planned[p.name]:
            raise ValueError(f"{p} does not match the plan in {MANIFEST}; delete it (or the folder) and rerun.")
        done.add(int(m.group(1)))
    return done


@contextlib.contextmanager
def output_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder for one run; a second run into it is refused at once."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise OSError(f"Another mtst run is writing to {folder}; wait for it, or choose another folder.") from e
        yield
    finally:
        os.close(fd)
