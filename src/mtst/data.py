"""Data readers (TSV / CSV / JSONL / CoNLL / Hugging Face datasets), label vocabularies and BIO checks.

Every error names what is wrong and where: the file and line (or the dataset, split and row).

BIO convention (see ``mtst.labels``): an ``I-X`` that does not continue an X entity (after ``O``, at the start of
a sentence, or after another type) starts a new entity, i.e. is read as ``B-X`` (conlleval / seqeval).
``load_token_examples`` repairs such tags by default (``repair_bio=True``).

``LabelSet`` / ``normalize_bio`` live in ``mtst.labels`` and the token-label alignment (``words_from_text``,
``encode_words``) in ``mtst.alignment``; all are re-exported here, so ``from mtst.data import LabelSet`` works.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mtst.alignment import IGNORE_INDEX, encode_words, words_from_text
from mtst.labels import LabelSet, check_bio_tag, normalize_bio

__all__ = [
    "IGNORE_INDEX",
    "LabelSet",
    "SentenceExample",
    "check_bio_tag",
    "TokenExample",
    "encode_words",
    "load_sentence_examples",
    "load_token_examples",
    "normalize_bio",
    "read_conll",
    "read_hf",
    "read_jsonl",
    "read_table",
    "words_from_text",
]

LABEL_TYPES = ("class", "number")


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


# ---------------------------------------------------------------------------------------------- readers


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a data file.")


def _undecodable(path: Path, e: UnicodeDecodeError) -> ValueError:
    return ValueError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}); save the file as UTF-8.")


def _read_table(
    path: Path, columns: Sequence[str], optional: Sequence[str], delimiter: str | None
) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Rows with the ``columns`` (required) and those of ``optional`` the header has; also the columns read."""
    _check_file(path)
    if delimiter is None:
        delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    # TSV files are unquoted: a '"' is an ordinary character. CSV files use the usual quoting rules.
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty: expected a header line naming the columns {', '.join(columns)}.")
            header = [h.strip() for h in header]
            missing = [c for c in columns if c not in header]
            if missing:
                hint = ""
                if len(header) == 1 and any(sep in header[0] for sep in ",\t;|"):
                    hint = f" (one column only: is the delimiter {delimiter!r} right for this file?)"
                raise ValueError(
                    f"{path}, line 1: no column {', '.join(map(repr, missing))} in the header; "
                    f"the header has: {', '.join(header)}{hint}."
                )
            wanted = list(columns) + [c for c in optional if c in header and c not in columns]
            index = {c: header.index(c) for c in wanted}
            start = reader.line_num + 1
            for fields in reader:
                if fields:  # csv yields [] for a blank line: skip it
                    if len(fields) != len(header):
                        hint = " (a tab inside a text?)" if delimiter == "\t" else " (an unquoted delimiter?)"
                        raise ValueError(
                            f"{path}, line {start}: expected {len(header)} fields as in the header, "
                            f"got {len(fields)}{hint}."
                        )
                    rows.append((start, {c: fields[i] for c, i in index.items()}))
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise _undecodable(path, e) from e
    except csv.Error as e:
        raise ValueError(f"{path}, line {reader.line_num}: {e}.") from e
    return rows, wanted


def read_table(
    path: str | Path, *, columns: Sequence[str], delimiter: str | None = None
) -> list[tuple[int, dict[str, str]]]:
    """Read a TSV (unquoted, tab) or CSV (quoted, comma) file with a header into ``(line, {column: value})`` pairs.

    Only ``columns`` are kept. The delimiter follows the suffix (``.csv``: comma, else tab) unless given.
    """
    return _read_table(Path(path), columns, (), delimiter)[0]


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """Read a JSON Lines file (one JSON object a line, blank lines skipped) into ``(line, object)`` pairs."""
    path = Path(path)
    _check_file(path)
    rows: list[tuple[int, dict]] = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    hint = " (this looks like a JSON array: write one object per line)" if line.strip() == "[" else ""
                    raise ValueError(
                        f"{path}, line {lineno}: malformed JSON: {e.msg} at column {e.colno}{hint}."
                    ) from e
                if not isinstance(obj, dict):
                    raise ValueError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}.")
                rows.append((lineno, obj))
    except UnicodeDecodeError as e:
        raise _undecodable(path, e) from e
    if not rows:
        raise ValueError(f"{path} is empty: expected one JSON object per line.")
    return rows


def read_conll(path: str | Path) -> list[TokenExample]:
    """Read a CoNLL file: a token and its BIO tag a line (tab or space separated), a blank line between sentences.

    The token is the first field and the tag the last (middle columns such as POS are ignored);
    ``-DOCSTART-`` lines are skipped. Tags are returned as written (see ``normalize_bio``).
    """
    path = Path(path)
    _check_file(path)
    examples: list[TokenExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def flush() -> None:
        if tokens:
            examples.append(TokenExample(tokens=list(tokens), tags=list(tags), source=f"{path}:{start}"))
        tokens.clear()
        tags.clear()

    try:
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    flush()
                    continue
                if line.startswith("-DOCSTART-"):
                    flush()
                    continue
                fields = [x.strip() for x in line.split("\t")] if "\t" in line else line.split()
                if len(fields) < 2 or not fields[0]:
                    raise ValueError(
                        f"{path}, line {lineno}: expected a token and a tag separated by a tab or spaces, got {line!r}."
                    )
                check_bio_tag(fields[-1], f"{path}, line {lineno}")
                if not tokens:
                    start = lineno
                tokens.append(fields[0])
                tags.append(fields[-1])
    except UnicodeDecodeError as e:
        raise _undecodable(path, e) from e
    flush()
    if not examples:
        raise ValueError(f"{path} is empty: expected 'token<TAB>tag' lines with a blank line between sentences.")
    return examples


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError("Reading Hugging Face datasets needs the 'datasets' package: pip install mtst[hf]") from e
    return datasets


def _hf_dataset(spec: str | Path, split: str) -> Any:
    """The ``datasets.Dataset`` named by ``hf:NAME[:CONFIG]`` or saved in a folder with ``save_to_disk``."""
    datasets = _import_datasets()
    text = str(spec)
    if text.startswith("hf:"):
        name, _, config = text[3:].partition(":")
        if not name:
            raise ValueError(f"{text!r}: expected 'hf:NAME' or 'hf:NAME:CONFIG', e.g. 'hf:glue:sst2'.")
        return datasets.load_dataset(name, config or None, split=split)
    folder = Path(spec)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder saved with Dataset.save_to_disk, nor 'hf:NAME'.")
    if not any((folder / f).exists() for f in ("dataset_dict.json", "dataset_info.json", "state.json")):
        raise FileNotFoundError(
            f"{folder} is a folder but holds no dataset saved with save_to_disk (no dataset_dict.json or state.json)."
        )
    data = datasets.load_from_disk(str(folder))
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(f"{folder}: no split {split!r}; available splits: {', '.join(data)}.")
        data = data[split]
    return data


def read_hf(spec: str | Path, split: str) -> list[dict]:
    """Rows of a Hugging Face dataset: ``hf:NAME[:CONFIG]`` (``load_dataset``) or a ``save_to_disk`` folder.

    ``split`` picks the split of a hub dataset or a saved ``DatasetDict``; a saved single ``Dataset`` has none.
    """
    return _hf_dataset(spec, split).to_list()


def _hf_label_names(feature: Any) -> list[str] | None:
    """Names of a ``ClassLabel`` feature, or of the ``ClassLabel`` inside a list feature; else ``None``."""
    if isinstance(feature, (list, tuple)) and feature:
        feature = feature[0]
    names = getattr(feature, "names", None)
    if names is None and hasattr(feature, "feature"):
        names = getattr(feature.feature, "names", None)
    return list(names) if names is not None else None


def _format(path_or_spec: str | Path) -> str:
    if str(path_or_spec).startswith("hf:") or Path(path_or_spec).is_dir():
        return "hf"
    suffix = Path(path_or_spec).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    return "csv" if suffix == ".csv" else "tsv"


def _hf_rows(
    spec: str | Path, split: str, columns: Sequence[str], optional: Sequence[str] = ()
) -> tuple[list[tuple[str, dict]], dict[str, list[str] | None]]:
    """``(source, row)`` pairs of a HF dataset plus the ``ClassLabel`` names of the columns that have them."""
    data = _hf_dataset(spec, split)
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ValueError(
            f"{spec} ({split}): no column {', '.join(map(repr, missing))}; "
            f"the dataset has: {', '.join(data.column_names)}."
        )
    wanted = list(columns) + [c for c in optional if c in data.column_names]
    names = {c: _hf_label_names(data.features[c]) for c in wanted}
    return [(f"{spec} ({split}) row {i}", row) for i, row in enumerate(data.select_columns(wanted).to_list())], names


# ---------------------------------------------------------------------------------------------- loaders


def _check_keys(row: dict, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        keys = ", ".join(row) or "no keys"
        raise ValueError(f"{source}: no key {', '.join(map(repr, missing))}; the object has: {keys}.")


def _text(value: Any, column: str, source: str) -> str:
    if value is None:
        raise ValueError(f"{source}: missing value in column {column!r}.")
    if not isinstance(value, str):
        raise TypeError(f"{source}: column {column!r} must hold text, got {type(value).__name__} {value!r}.")
    if not value.strip():
        raise ValueError(f"{source}: empty text in column {column!r}.")
    return value


def _label(value: Any, column: str, label_type: str, names: list[str] | None, source: str) -> str | float:
    if label_type == "number":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"{source}: {column!r} must be a number, got {value!r}.")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{source}: {column!r} must be a number, got {value!r}.") from None
        if not math.isfinite(number):
            raise ValueError(f"{source}: {column!r} must be a finite number, got {value!r}.")
        return number
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        return names[value]  # a HF ClassLabel id
    if isinstance(value, (dict, list)):
        raise ValueError(f"{source}: {column!r} must be a class name, got {value!r}.")
    label = str(value).strip()
    if not label:
        raise ValueError(f"{source}: empty label in column {column!r}.")
    return label


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
    fmt = _format(path_or_spec)
    columns = [text_column] + ([pair_column] if pair_column else [])
    want_label = label_column is not None
    if want_label and require_labels:
        columns.append(label_column)
    optional = [label_column] if want_label and not require_labels else []
    names: dict[str, list[str] | None] = {}
    if fmt == "hf":
        rows, names = _hf_rows(path_or_spec, split, columns, optional)
    elif fmt == "jsonl":
        rows = [(f"{path_or_spec}:{n}", obj) for n, obj in read_jsonl(path_or_spec)]
        for source, obj in rows:
            _check_keys(obj, columns, source)
    else:
        table, _ = _read_table(Path(path_or_spec), columns, optional, None)
        rows = [(f"{path_or_spec}:{n}", row) for n, row in table]

    examples = []
    for source, row in rows:
        text = _text(row.get(text_column), text_column, source)
        pair = _text(row.get(pair_column), pair_column, source) if pair_column else None
        value = row.get(label_column) if want_label else None
        if value is None or (isinstance(value, str) and not value.strip() and not require_labels):
            if require_labels and want_label:
                raise ValueError(f"{source}: missing label in column {label_column!r}.")
            label = None
        else:
            label = _label(value, label_column, label_type, names.get(label_column), source)
        examples.append(SentenceExample(text=text, label=label, text_pair=pair, source=source))
    if not examples:
        raise ValueError(f"{path_or_spec}: no examples (only a header?).")
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
    fmt = _format(path_or_spec)
    if fmt not in ("hf", "jsonl"):
        examples = read_conll(path_or_spec)
    else:
        columns = [tokens_column, tags_column]
        if fmt == "hf":
            rows, names = _hf_rows(path_or_spec, split, columns)
        else:
            rows, names = [(f"{path_or_spec}:{n}", obj) for n, obj in read_jsonl(path_or_spec)], {}
        tag_names = names.get(tags_column)
        examples = []
        for source, row in rows:
            _check_keys(row, columns, source)
            tokens, tags = row[tokens_column], row[tags_column]
            for column, value in ((tokens_column, tokens), (tags_column, tags)):
                if not isinstance(value, list):
                    raise ValueError(f"{source}: {column!r} must be a list, got {type(value).__name__} {value!r}.")
            if len(tokens) != len(tags):
                raise ValueError(
                    f"{source}: {len(tokens)} tokens but {len(tags)} tags in {tokens_column!r} / {tags_column!r}."
                )
            if tag_names is not None:
                tags = [tag_names[t] if isinstance(t, int) and 0 <= t < len(tag_names) else t for t in tags]
            if not all(isinstance(t, str) for t in tokens):
                raise ValueError(f"{source}: tokens in {tokens_column!r} must be strings, got {tokens!r}.")
            for tag in tags:
                if not isinstance(tag, str):
                    raise ValueError(f"{source}: tags must be names such as 'B-PER', got {tag!r} in {tags_column!r}.")
                check_bio_tag(tag, source)
            if tokens:
                examples.append(TokenExample(tokens=list(tokens), tags=list(tags), source=source))
        if not examples:
            raise ValueError(f"{path_or_spec}: no sentences.")
    if repair_bio:
        examples = [TokenExample(tokens=ex.tokens, tags=normalize_bio(ex.tags), source=ex.source) for ex in examples]
    return examples
