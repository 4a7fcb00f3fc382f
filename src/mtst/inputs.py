"""What ``encode`` and ``predict`` accept as texts: a string, or a sequence of strings (a list, a pandas Series,
a NumPy array, a pyarrow ``Array`` / ``ChunkedArray`` or a list of pyarrow ``StringScalar``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _as_str(value: Any) -> Any:
    """A pyarrow scalar as its Python value (``StringScalar`` -> ``str``); anything else unchanged."""
    if not isinstance(value, str) and callable(getattr(value, "as_py", None)):
        return value.as_py()
    return value


def text_list(texts: Any) -> tuple[list[str], bool]:
    """``(texts as a list of str, whether a single string was given)``; a ``TypeError`` names what is not text."""
    texts = _as_str(texts)
    if isinstance(texts, str):
        return [texts], True
    if callable(getattr(texts, "to_pylist", None)):  # pyarrow Array / ChunkedArray: one conversion, no scalars
        texts = texts.to_pylist()
    if texts is None or isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a string or a sequence of strings, got {type(texts).__name__}.")
    items = [_as_str(t) for t in texts]
    for i, t in enumerate(items):
        if not isinstance(t, str):
            what = "None" if t is None else type(t).__name__
            raise TypeError(f"texts[{i}] is {what}, not str: every text must be a string.")
    return items, False


def check_max_length(max_length: Any) -> None:
    """Refuse a ``max_length`` that is given but not an integer >= 2 (``None`` means the model's own)."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
        raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}.")
