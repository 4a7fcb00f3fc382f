"""Raw readers: TSV / CSV tables, JSON Lines, CoNLL, and Hugging Face datasets (hub or ``save_to_disk``).

Every error names what is wrong and where: the file and line (or the dataset, split and row). Bad content is a
``DataError`` (a ``ValueError``) whose ``path`` and ``line`` say where; a missing file is a ``FileNotFoundError``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtst.bio import check_bio_tag
from mtst.data.errors import DataError, first_bad_utf8_line
from mtst.data.examples import TokenExample


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a data file.")


def _undecodable(path: Path, e: UnicodeDecodeError) -> DataError:
    line, offset = first_bad_utf8_line(path)
    return DataError(
        f"{path}, line {line}: not valid UTF-8 ({e.reason} at byte {offset} of the line); save the file as UTF-8.",
        path=path,
        line=line,
    )


def _error(path: Path, line: int, message: str) -> DataError:
    return DataError(f"{path}, line {line}: {message}", path=path, line=line)


def _check_tag(tag: str, path: Path, line: int) -> None:
    try:
        check_bio_tag(tag, f"{path}, line {line}")
    except ValueError as e:
        raise DataError(str(e), path=path, line=line) from None


def read_table_columns(
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
                names = ", ".join(columns)
                raise DataError(
                    f"{path} is empty: expected a header line naming the columns {names}.", path=path, line=1
                )
            header = [h.strip() for h in header]
            missing = [c for c in columns if c not in header]
            if missing:
                hint = ""
                if len(header) == 1 and any(sep in header[0] for sep in ",\t;|"):
                    hint = f" (one column only: is the delimiter {delimiter!r} right for this file?)"
                names = ", ".join(map(repr, missing))
                raise _error(path, 1, f"no column {names} in the header; the header has: {', '.join(header)}{hint}.")
            wanted = list(columns) + [c for c in optional if c in header and c not in columns]
            index = {c: header.index(c) for c in wanted}
            start = reader.line_num + 1
            for fields in reader:
                if fields:  # csv yields [] for a blank line: skip it
                    if len(fields) != len(header):
                        hint = " (a tab inside a text?)" if delimiter == "\t" else " (an unquoted delimiter?)"
                        raise _error(
                            path, start, f"expected {len(header)} fields as in the header, got {len(fields)}{hint}."
                        )
                    rows.append((start, {c: fields[i] for c, i in index.items()}))
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise _undecodable(path, e) from e
    except csv.Error as e:
        raise _error(path, max(1, reader.line_num), f"{e}.") from e
    return rows, wanted


def read_table(
    path: str | Path, *, columns: Sequence[str], delimiter: str | None = None
) -> list[tuple[int, dict[str, str]]]:
    """Read a TSV (unquoted, tab) or CSV (quoted, comma) file with a header into ``(line, {column: value})`` pairs.

    Only ``columns`` are kept. The delimiter follows the suffix (``.csv``: comma, else tab) unless given.
    """
    return read_table_columns(Path(path), columns, (), delimiter)[0]


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
                    raise _error(path, lineno, f"malformed JSON: {e.msg} at column {e.colno}{hint}.") from e
                except (ValueError, RecursionError) as e:  # a number too long to convert, nesting too deep
                    raise _error(path, lineno, f"unreadable JSON: {str(e) or type(e).__name__}.") from e
                if not isinstance(obj, dict):
                    raise _error(path, lineno, f"expected a JSON object, got {type(obj).__name__}.")
                rows.append((lineno, obj))
    except UnicodeDecodeError as e:
        raise _undecodable(path, e) from e
    if not rows:
        raise DataError(f"{path} is empty: expected one JSON object per line.", path=path, line=1)
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
                    raise _error(
                        path, lineno, f"expected a token and a tag separated by a tab or spaces, got {line!r}."
                    )
                _check_tag(fields[-1], path, lineno)
                if not tokens:
                    start = lineno
                tokens.append(fields[0])
                tags.append(fields[-1])
    except UnicodeDecodeError as e:
        raise _undecodable(path, e) from e
    flush()
    if not examples:
        raise DataError(
            f"{path} is empty: expected 'token<TAB>tag' lines with a blank line between sentences.", path=path, line=1
        )
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


def data_format(path_or_spec: str | Path) -> str:
    if str(path_or_spec).startswith("hf:") or Path(path_or_spec).is_dir():
        return "hf"
    suffix = Path(path_or_spec).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    return "csv" if suffix == ".csv" else "tsv"


def hf_rows(
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
