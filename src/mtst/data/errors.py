"""mtst's error for bad data: a ``ValueError`` that names the file (or dataset) and the line (or row)."""

from __future__ import annotations

import re
from pathlib import Path


class DataError(ValueError):
    """Bad content in a data file; ``path`` and ``line`` (1-based, ``None`` for a whole dataset) say where."""

    def __init__(self, message: str, *, path: str | Path, line: int | None) -> None:
        super().__init__(message)
        self.path = str(path)
        self.line = line


class DataTypeError(DataError, TypeError):
    """A value of the wrong type in a data file (also a ``TypeError``, as these errors were before)."""


def data_error(source: str, message: str, cls: type[DataError] = DataError) -> DataError:
    """A ``DataError`` for ``source`` (``"path:line"``, or a dataset's ``"spec (split) row N"``) and ``message``."""
    path, sep, line = source.rpartition(":")
    if sep and line.isdigit():
        return cls(f"{source}: {message}", path=path, line=int(line))
    return cls(f"{source}: {message}", path=source, line=None)


def first_bad_utf8_line(path: str | Path) -> tuple[int, int]:
    """``(line, byte offset in it)`` of the first bytes of ``path`` that are not UTF-8 (``(0, 0)``: none).

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as the readers (universal newlines) count them; no UTF-8
    sequence holds those bytes, so splitting the raw bytes is safe.
    """
    data = Path(path).read_bytes()
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    for lineno, raw in enumerate(re.split(rb"\r\n|\r|\n", data), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return lineno, e.start
    return 0, 0
