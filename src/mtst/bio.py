"""BIO tags in one place: checks, repair, entity spans, and entity dicts with character offsets.

BIO convention. A tag is ``O``, ``B-X`` or ``I-X`` (BIOES / IOBES tags are not accepted). An ``I-X`` that does
not continue an entity of type X (at the start of a sentence, after ``O``, or after ``B-Y``/``I-Y`` of another
type) starts a new entity: it is read as ``B-X``. This is the conlleval / seqeval (default mode) convention, so
training targets and evaluation agree. ``normalize_bio`` applies it; the token readers do so by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_bio_tag(tag: str, where: str) -> None:
    """Raise a ``ValueError`` naming ``where`` unless ``tag`` is ``O``, ``B-X`` or ``I-X``."""
    if isinstance(tag, str) and (tag == "O" or (len(tag) > 2 and tag[:2] in ("B-", "I-"))):
        return
    raise ValueError(f"{where}: invalid tag {tag!r}; expected BIO tags: 'O', 'B-TYPE' or 'I-TYPE'.")


def normalize_bio(tags: Sequence[str]) -> list[str]:
    """Repair BIO tags: an I-X that does not continue an X entity (after O, at the start, after another type) -> B-X.

    This is the conlleval / seqeval convention (see the module docstring). Other tags are returned unchanged.
    """
    out: list[str] = []
    previous_type = None  # entity type of the previous tag, None after O
    for i, tag in enumerate(tags):
        check_bio_tag(tag, f"tag {i}")
        kind, entity = (tag, None) if tag == "O" else (tag[0], tag[2:])
        out.append(f"B-{entity}" if kind == "I" and entity != previous_type else tag)
        previous_type = entity
    return out


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first_word, last_word_exclusive)`` for each entity in a BIO tag sequence.

    An ``I-X`` that follows ``O`` or another type starts a new entity (the conlleval / seqeval convention).
    """
    spans: list[tuple[str, int, int]] = []
    kind, start = None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and label == kind
        if kind is not None and not continues:
            spans.append((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = label, i
    return spans


def entities_from_words(
    text: str, words: Sequence[tuple[int, int]], tagged: Sequence[tuple[str, float]]
) -> list[dict[str, Any]]:
    """Entity dicts ``{"text", "label", "start", "end", "score"}`` from word offsets and ``(tag, prob)`` pairs.

    ``text[start:end]`` is the entity as written; ``score`` is the mean tag probability of its words.
    """
    out = []
    for label, first, last in bio_spans([t for t, _ in tagged]):
        start, end = words[first][0], words[last - 1][1]
        score = sum(p for _, p in tagged[first:last]) / (last - first)
        out.append({"text": text[start:end], "label": label, "start": start, "end": end, "score": round(score, 4)})
    return out
