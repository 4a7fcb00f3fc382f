"""Label vocabularies: ``LabelSet`` (names <-> ids), with errors that list the known labels.

BIO tags themselves (checks, repair, spans) live in ``mtst.bio``.
"""

from __future__ import annotations

import difflib
import operator
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from mtst.bio import check_bio_tag


def _natural_order(labels: Iterable[str]) -> list[str]:
    """Sorted unique labels; all-integer labels ("2", "10") sort by value."""
    unique = set(labels)
    for label in unique:
        if not isinstance(label, str):
            raise TypeError(f"Labels must be strings, got {type(label).__name__} {label!r}.")
    if unique and all(label.lstrip("+-").isdecimal() for label in unique):
        return sorted(unique, key=int)
    return sorted(unique)


class LabelSet:
    """An ordered label vocabulary: names <-> ids, with errors that list the known labels."""

    def __init__(self, labels: Sequence[str]) -> None:
        names = list(labels)
        if not names:
            raise ValueError("A label set needs at least one label.")
        for label in names:
            if not isinstance(label, str):
                raise TypeError(f"Labels must be strings, got {type(label).__name__} {label!r}.")
        duplicates = sorted(label for label, n in Counter(names).items() if n > 1)
        if duplicates:
            raise ValueError(f"Duplicate labels: {', '.join(duplicates)}.")
        self.names: list[str] = names
        self._ids = {label: i for i, label in enumerate(names)}

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, label: object) -> bool:
        return label in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self.names == other.names

    def __repr__(self) -> str:
        return f"LabelSet({self.names!r})"

    def id(self, label: str, *, source: str = "", task: str = "") -> int:
        """The id of ``label``; an unknown one is a ``ValueError`` naming the source, the task and the known labels."""
        i = self._ids.get(label)
        if i is not None:
            return i
        where = f"{source}: " if source else ""
        for_task = f" for task {task!r}" if task else ""
        known = ", ".join(self.names[:50]) + (f", ... ({len(self.names) - 50} more)" if len(self.names) > 50 else "")
        same_case = [n for n in self.names if n.lower() == str(label).strip().lower()]
        close = same_case or difflib.get_close_matches(str(label), self.names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}unknown label {label!r}{for_task}; known labels: {known}.{hint}")

    def name(self, i: int) -> str:
        """The label name of id ``i``."""
        if isinstance(i, bool) or not 0 <= operator.index(i) < len(self.names):
            raise ValueError(f"Label id {i!r} out of range: this label set has ids 0..{len(self.names) - 1}.")
        return self.names[i]

    def to_list(self) -> list[str]:
        """The names in id order (``LabelSet(labels.to_list())`` rebuilds it), for saving as JSON."""
        return list(self.names)

    @classmethod
    def infer(cls, labels: Iterable[str]) -> LabelSet:
        """The sorted unique labels of a data set (integer-like labels in numeric order)."""
        return cls(_natural_order(labels))

    @classmethod
    def infer_bio(cls, tag_sequences: Iterable[Sequence[str]]) -> LabelSet:
        """BIO tag set of a data set: ``O``, then ``B-X``, ``I-X`` for each entity type X in sorted order."""
        types = set()
        for tags in tag_sequences:
            for tag in tags:
                check_bio_tag(tag, "infer_bio")
                if tag != "O":
                    types.add(tag[2:])
        return cls(["O"] + [f"{p}-{t}" for t in sorted(types) for p in ("B", "I")])
