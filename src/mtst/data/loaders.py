"""Examples from data files: sentence rows (classification, regression, pairs) and tagged sentences (NER).

Tags are BIO (see ``mtst.bio``); ``load_token_examples`` repairs an I-X that starts an entity to B-X by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from mtst.bio import check_bio_tag, normalize_bio
from mtst.data.errors import DataError, DataTypeError, data_error
from mtst.data.examples import SentenceExample, TokenExample
from mtst.data.readers import data_format, hf_rows, read_conll, read_jsonl, read_table_columns

LABEL_TYPES = ("class", "number")


def _check_keys(row: dict, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        keys = ", ".join(row) or "no keys"
        raise data_error(source, f"no key {', '.join(map(repr, missing))}; the object has: {keys}.")


def _check_utf8(value: str, what: str, source: str) -> str:
    """Refuse a string UTF-8 cannot hold (a lone surrogate such as JSON's ``"\\ud800"``): no tokenizer takes it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise data_error(
            source, f"{what} holds {value[e.start : e.end]!r}, a lone surrogate that is not text."
        ) from None
    return value


def _text(value: Any, column: str, source: str) -> str:
    if value is None:
        raise data_error(source, f"missing value in column {column!r}.")
    if not isinstance(value, str):
        raise data_error(
            source, f"column {column!r} must hold text, got {type(value).__name__} {value!r}.", DataTypeError
        )
    if not value.strip():
        raise data_error(source, f"empty text in column {column!r}.")
    return _check_utf8(value, f"column {column!r}", source)


def _label(value: Any, column: str, label_type: str, names: list[str] | None, source: str) -> str | float:
    if label_type == "number":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise data_error(source, f"{column!r} must be a number, got {value!r}.")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise data_error(source, f"{column!r} must be a number, got {value!r}.") from None
        if not math.isfinite(number):
            raise data_error(source, f"{column!r} must be a finite number, got {value!r}.")
        return number
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        return names[value]  # a HF ClassLabel id
    if isinstance(value, (dict, list)):
        raise data_error(source, f"{column!r} must be a class name, got {value!r}.")
    label = str(value).strip()
    if not label:
        raise data_error(source, f"empty label in column {column!r}.")
    return _check_utf8(label, f"column {column!r}", source)


def load_sentence_examples(
    path_or_spec: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    pair_column: str | None = None,
    label_type: Literal["class", "number"] = "class",
    split: str = "train",
    require_labels: bool = True,
) -> list[SentenceExample]:
    """Load classification, regression or sentence-pair rows from TSV, CSV, JSONL or a Hugging Face dataset.

    Class labels come back as ``str`` (JSON ints too; HF ``ClassLabel`` ids as their names), numbers as ``float``.
    With ``require_labels=False`` the label column may be absent or empty (label ``None``). Empty texts are errors.
    """
    if label_type not in LABEL_TYPES:
        raise ValueError(f"label_type must be one of: {', '.join(LABEL_TYPES)}; got {label_type!r}.")
    fmt = data_format(path_or_spec)
    columns = [text_column] + ([pair_column] if pair_column else [])
    want_label = label_column is not None
    if want_label and require_labels:
        columns.append(label_column)
    optional = [label_column] if want_label and not require_labels else []
    names: dict[str, list[str] | None] = {}
    if fmt == "hf":
        rows, names = hf_rows(path_or_spec, split, columns, optional)
    elif fmt == "jsonl":
        rows = [(f"{path_or_spec}:{n}", obj) for n, obj in read_jsonl(path_or_spec)]
        for source, obj in rows:
            _check_keys(obj, columns, source)
    else:
        table, _ = read_table_columns(Path(path_or_spec), columns, optional, None)
        rows = [(f"{path_or_spec}:{n}", row) for n, row in table]

    examples = []
    for source, row in rows:
        text = _text(row.get(text_column), text_column, source)
        pair = _text(row.get(pair_column), pair_column, source) if pair_column else None
        value = row.get(label_column) if want_label else None
        if value is None or (isinstance(value, str) and not value.strip() and not require_labels):
            if require_labels and want_label:
                raise data_error(source, f"missing label in column {label_column!r}.")
            label = None
        else:
            label = _label(value, label_column, label_type, names.get(label_column), source)
        examples.append(SentenceExample(text=text, label=label, text_pair=pair, source=source))
    if not examples:
        raise DataError(
            f"{path_or_spec}: no examples (only a header?).", path=path_or_spec, line=2 if fmt != "hf" else None
        )
    return examples


def load_token_examples(
    path_or_spec: str | Path,
    *,
    tokens_column: str = "tokens",
    tags_column: str = "ner_tags",
    split: str = "train",
    repair_bio: bool = True,
) -> list[TokenExample]:
    """Load NER sentences from CoNLL (``.conll``/``.txt``/``.bio``/other), JSONL or a Hugging Face dataset.

    JSONL and HF rows hold a list of tokens and a list of tags (HF ``ClassLabel`` ids become names). Tags must be
    BIO; with ``repair_bio`` an I-X that starts an entity becomes B-X (see ``normalize_bio``). Empty sentences are
    skipped.
    """
    fmt = data_format(path_or_spec)
    if fmt not in ("hf", "jsonl"):
        examples = read_conll(path_or_spec)
    else:
        columns = [tokens_column, tags_column]
        if fmt == "hf":
            rows, names = hf_rows(path_or_spec, split, columns)
        else:
            rows, names = [(f"{path_or_spec}:{n}", obj) for n, obj in read_jsonl(path_or_spec)], {}
        tag_names = names.get(tags_column)
        examples = []
        for source, row in rows:
            _check_keys(row, columns, source)
            tokens, tags = row[tokens_column], row[tags_column]
            for column, value in ((tokens_column, tokens), (tags_column, tags)):
                if not isinstance(value, list):
                    raise data_error(source, f"{column!r} must be a list, got {type(value).__name__} {value!r}.")
            if len(tokens) != len(tags):
                raise data_error(
                    source, f"{len(tokens)} tokens but {len(tags)} tags in {tokens_column!r} / {tags_column!r}."
                )
            if tag_names is not None:
                tags = [tag_names[t] if isinstance(t, int) and 0 <= t < len(tag_names) else t for t in tags]
            if not all(isinstance(t, str) for t in tokens):
                raise data_error(source, f"tokens in {tokens_column!r} must be strings, got {tokens!r}.")
            for i, token in enumerate(tokens):
                if not token.strip():  # as in CoNLL, where a token cannot be empty: a word needs a character
                    raise data_error(source, f"token {i} in {tokens_column!r} is empty or only whitespace: {token!r}.")
                _check_utf8(token, f"token {i} in {tokens_column!r}", source)
            for tag in tags:
                if not isinstance(tag, str):
                    raise data_error(source, f"tags must be names such as 'B-PER', got {tag!r} in {tags_column!r}.")
                try:
                    check_bio_tag(tag, source)
                except ValueError as e:
                    raise data_error(source, str(e)[len(source) + 2 :]) from None
            if tokens:
                examples.append(TokenExample(tokens=list(tokens), tags=list(tags), source=source))
        if not examples:
            raise DataError(f"{path_or_spec}: no sentences.", path=path_or_spec, line=1 if fmt != "hf" else None)
    if repair_bio:
        examples = [TokenExample(tokens=ex.tokens, tags=normalize_bio(ex.tags), source=ex.source) for ex in examples]
    return examples
