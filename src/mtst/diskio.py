"""Safe disk writes shared by every component: JSON in and out, atomic folders, writable-folder checks."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _default_mode(kind: str) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask (mkstemp uses 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if kind == "dir" else 0o666) & ~umask


def read_json(path: str | Path) -> Any:
    """Read a JSON file, naming the file in the error if it is malformed."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (write a temporary file, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.chmod(tmp, _default_mode("file"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable_folder(path: str | Path, *, overwrite: bool, what: str = "model") -> Path:
    """Refuse to write into a non-empty folder (or onto a file) unless ``overwrite`` is set."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"Cannot save the {what} to {path}: it is a file, not a folder.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(
            f"Refusing to save the {what} into {path}: the folder is not empty. "
            "Choose a new folder, or pass overwrite=True (CLI: --overwrite) to replace its contents."
        )
    return path


@contextmanager
def atomic_folder(path: str | Path, *, overwrite: bool, what: str = "model") -> Iterator[Path]:
    """Yield a temporary sibling folder to write into; on success it replaces ``path``.

    A failure part-way leaves ``path`` exactly as it was, so nothing the user had is lost.
    """
    path = check_writable_folder(path, overwrite=overwrite, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, _default_mode("dir"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
