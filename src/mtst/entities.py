"""Entity spans from word-level BIO tags, with character offsets into the original text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
