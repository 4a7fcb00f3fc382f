"""Safe disk writes shared by every component: JSON in and out, atomic files and folders, writable-folder checks.

Temporary names carry the writer's process id (``.NAME.PID.XXXX.tmp``, ``.NAME.old-PID``), so a later run can tell
the leftovers of a killed writer from the files of one still running, and ``clean_stale_temps`` removes them.
Everything written gets the permissions the umask gives a plain ``open``, whatever the writing library chose.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")  # .NAME.PID.XXXX.tmp
_OLD_NAME = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)$")  # .NAME.old-PID: a folder being replaced


def _default_mode(kind: str) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask (mkstemp uses 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if kind == "dir" else 0o666) & ~umask


def apply_default_modes(path: str | Path) -> None:
    """Give ``path`` (and, for a folder, everything in it) the modes the umask gives new files and folders.

    Some writers (safetensors, ``mkstemp``, ``mkdtemp``) create files readable by their owner only; a model or
    checkpoint meant to be shared must be readable as the user's umask says.
    """
    path = Path(path)
    file_mode, dir_mode = _default_mode("file"), _default_mode("dir")
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), dir_mode)
            for f in files:
                os.chmod(os.path.join(root, f), file_mode)
    os.chmod(path, dir_mode if path.is_dir() else file_mode)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def stale_temp_owner(name: str) -> int | None:
    """The process id in an mtst temporary name (``.NAME.PID.XXXX.tmp`` or ``.NAME.old-PID``); ``None`` otherwise."""
    match = _TEMP_NAME.match(name) or _OLD_NAME.match(name)
    return int(match["pid"]) if match else None


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def clean_stale_temps(folder: str | Path, *, names: tuple[str, ...] | None = None) -> list[str]:
    """Remove the temporary files and folders that killed mtst writers left in ``folder``; say what was done.

    Only names of mtst's own pattern whose process no longer runs are touched (``names``: only temporaries of
    these final names). A folder that a killed replace left only as ``.NAME.old-PID`` is put back as ``NAME``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    done = []
    for entry in sorted(folder.iterdir()):
        match = _TEMP_NAME.match(entry.name) or _OLD_NAME.match(entry.name)
        if not match or (names is not None and match["name"] not in names) or _running(int(match["pid"])):
            continue
        final = folder / match["name"]
        if _OLD_NAME.match(entry.name) and not final.exists():
            os.replace(entry, final)
            done.append(f"restored {final} from {entry.name}, left by an interrupted replace")
            continue
        if entry.is_dir():
            size = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
            shutil.rmtree(entry, ignore_errors=True)
        else:
            size = entry.stat().st_size
            entry.unlink(missing_ok=True)
        done.append(f"removed {entry} ({size / 1e6:.1f} MB), left by an interrupted write")
    for line in done:
        logger.warning("Clean-up: %s.", line)
    return done


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it replaces ``path`` (with the umask's permissions).

    On failure the temporary file is removed and ``path`` stays as it was.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode("file"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically (a crash leaves the old file or the new one, never half of it)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


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
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        apply_default_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")  # no rename swaps two folders: two renames it is
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a failure between the renames: put the old folder back
        if not path.exists():
            os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
