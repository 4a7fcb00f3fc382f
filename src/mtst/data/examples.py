"""The examples readers produce: one sentence (with a label or a pair) or one tagged word sequence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SentenceExample:
    """One row of a classification, regression or similarity data set."""

    text: str
    label: str | float | None = None  # class name, or number (regression / similarity score); None if unlabeled
    text_pair: str | None = None  # second sentence, for similarity tasks
    source: str = ""  # "path:line" of the row, for error messages


@dataclass(frozen=True)
class TokenExample:
    """One sentence of a token classification (NER) data set: words and their BIO tags."""

    tokens: list[str]
    tags: list[str]
    source: str = ""  # "path:line" where the sentence starts
