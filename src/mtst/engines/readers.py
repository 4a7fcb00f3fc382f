"""Corpus input: find the files of a path, folder or glob; split them into fragments; read one fragment.

Formats: Parquet (``text_column``, ``id_column``), JSONL (one object a line), CSV (standard quoting), TSV
(tab-separated, unquoted, as ../shared/datasets writes it) and plain text (one text a line, an empty line is
an empty text). A fragment is a range of at most ``shard_rows`` rows of one file; it becomes one output shard.
Planning reads Parquet metadata only, and scans line formats once to note the byte offset where each
fragment starts, so that a worker can seek there and read its rows without the rest of the file.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

FORMATS = ("parquet", "jsonl", "csv", "tsv", "text")
EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "text",
    ".text": "text",
}
_COLUMNAR = ("parquet", "jsonl", "csv", "tsv")


@dataclass(frozen=True)
class InputFile:
    """One input file as planned: its format, number of rows and size in bytes."""

    path: str
    format: str
    rows: int
    size: int


@dataclass(frozen=True)
class Fragment:
    """Rows ``[start, stop)`` of one input file; ``first_row`` is the global number of row ``start``."""

    index: int
    path: str
    format: str
    start: int
    stop: int
    first_row: int
    offset: int = 0  # byte offset of row `start` (line formats)
    line: int = 1  # line number of row `start` (line formats)
    header: tuple[str, ...] = ()  # CSV / TSV column names

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    """The input files and the fragments they are split into (in file order, then row order)."""

    inputs: list[InputFile]
    fragments: list[Fragment]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.inputs)


def format_of(path: Path, input_format: str = "auto") -> str:
    """The reader for ``path``: ``input_format`` unless it is ``auto``; else by extension (default: text)."""
    if input_format != "auto":
        if input_format not in FORMATS:
            raise ValueError(f"input format must be auto or one of {', '.join(FORMATS)}, got {input_format!r}.")
        return input_format
    return EXTENSIONS.get(path.suffix.lower(), "text")


def find_input_files(path: str | Path, input_format: str = "auto") -> list[tuple[Path, str]]:
    """The files of a file, folder (recursively, known extensions only) or glob, sorted, with their formats.

    Names starting with ``.`` or ``_`` (``_SUCCESS``, ``.crc``) are skipped in folders, as Spark and Arrow do.
    """
    text = str(path)
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"No files match {text}.")
    else:
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(f"Input {root} does not exist.")
        if root.is_file():
            return [(root, format_of(root, input_format))]
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
            and (input_format != "auto" or p.suffix.lower() in EXTENSIONS)
        )
        if not files:
            known = ", ".join(sorted(EXTENSIONS))
            raise FileNotFoundError(f"No input files in {root}: expected files ending in {known}.")
    return [(p, format_of(p, input_format)) for p in files]


def plan_input(
    path: str | Path,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    shard_rows: int = 50_000,
    input_format: str = "auto",
) -> Plan:
    """Split the input into fragments of at most ``shard_rows`` rows; check the columns; refuse an empty input."""
    if not isinstance(shard_rows, int) or shard_rows < 1:
        raise ValueError(f"shard_rows must be a positive integer, got {shard_rows!r}.")
    inputs: list[InputFile] = []
    fragments: list[Fragment] = []
    total = 0
    for file, fmt in find_input_files(path, input_format):
        if fmt == "text" and id_column is not None:
            raise ValueError(f"{file} is plain text (one text a line): it has no id column; drop --id-column.")
        if fmt == "parquet":
            rows, starts, header = _plan_parquet(file, text_column, id_column), [], ()
        else:
            rows, starts, header = _plan_lines(file, fmt, shard_rows, text_column, id_column)
        inputs.append(InputFile(str(file.resolve()), fmt, rows, file.stat().st_size))
        for k, start in enumerate(range(0, rows, shard_rows)):
            offset, line = starts[k] if starts else (0, 1)
            stop = min(start + shard_rows, rows)
            fragments.append(
                Fragment(len(fragments), str(file.resolve()), fmt, start, stop, total + start, offset, line, header)
            )
        total += rows
    if total == 0:
        raise ValueError(f"The input {path} is empty: its {len(inputs)} file(s) hold no texts.")
    return Plan(inputs, fragments)


# ---------------------------------------------------------------------------------------------- planning
def _missing_column(file: Path, column: str, option: str, columns: list[str]) -> ValueError:
    return ValueError(f"{file} has no column {column!r} ({option}); its columns are: {', '.join(columns)}.")


def _plan_parquet(file: Path, text_column: str, id_column: str | None) -> int:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(file)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{file}: not a readable Parquet file ({e}).") from e
    schema = pf.schema_arrow
    for column, option in ((text_column, "--text-column"), (id_column, "--id-column")):
        if column is not None and column not in schema.names:
            raise _missing_column(file, column, option, schema.names)
    kind = schema.field(text_column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise ValueError(f"{file}: column {text_column!r} holds {kind}, not strings; pick the text column.")
    return pf.metadata.num_rows


def _plan_lines(
    file: Path, fmt: str, shard_rows: int, text_column: str, id_column: str | None
) -> tuple[int, list[tuple[int, int]], tuple[str, ...]]:
    """Rows of a line-format file, the (byte offset, line) where each fragment starts, and the CSV/TSV header."""
    starts: list[tuple[int, int]] = []
    header: tuple[str, ...] = ()
    rows = 0
    with open(file, "rb") as f:
        records = _records(f, file, fmt, offset=0, line=1)
        if fmt in ("csv", "tsv"):
            first = next(records, None)
            if first is None:
                return 0, [], ()
            header = tuple(first[2])
            if header and header[0].startswith("\ufeff"):
                header = (header[0][1:], *header[1:])
            for column, option in ((text_column, "--text-column"), (id_column, "--id-column")):
                if column is not None and column not in header:
                    raise _missing_column(file, column, option, list(header))
        for offset, line, record in records:
            if rows == 0 and fmt == "jsonl":
                _json_row(file, line, record, text_column, id_column)  # check the columns once
            if rows % shard_rows == 0:
                starts.append((offset, line))
            rows += 1
    return rows, starts, header


def _records(f, file: Path, fmt: str, *, offset: int, line: int) -> Iterator[tuple[int, int, object]]:
    """Yield ``(byte offset, line number, record)`` per row from a binary file positioned at ``offset``.

    text: the line without its ending; jsonl: the raw non-blank line; csv / tsv: the list of fields.
    """
    if fmt in ("text", "jsonl"):
        for raw in f:
            if fmt == "text" or raw.strip():
                yield offset, line, raw
            offset += len(raw)
            line += 1
        return
    pos = {"offset": offset, "line": line - 1}

    def lines() -> Iterator[str]:
        for raw in f:
            pos["offset"] += len(raw)
            pos["line"] += 1
            yield _decode(raw, file, pos["line"])

    dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    reader = csv.reader(lines(), **dialect)
    start = (offset, line)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ValueError(f"{file}, line {pos['line']}: malformed {fmt.upper()} ({e}).") from e
        if fields:  # a blank line is no row
            yield start[0], start[1], fields
        start = (pos["offset"], pos["line"] + 1)


def _decode(raw: bytes, file: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{file}, line {line}: not valid UTF-8 ({e.reason} at byte {e.start}).") from e


def _json_row(file: Path, line: int, raw: bytes, text_column: str, id_column: str | None) -> tuple[str, object]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}, line {line}: malformed JSON ({e.msg} at column {e.colno}).") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{file}, line {line}: expected a JSON object, found {type(obj).__name__}.")
    for column, option in ((text_column, "--text-column"), (id_column, "--id-column")):
        if column is not None and column not in obj:
            raise ValueError(
                f"{file}, line {line}: no key {column!r} ({option}); this line has: {', '.join(obj) or 'no keys'}."
            )
    text = obj[text_column]
    if not isinstance(text, str):
        raise ValueError(f"{file}, line {line}: {text_column!r} is {type(text).__name__}, not a string.")
    return text, obj[id_column] if id_column is not None else None


# ---------------------------------------------------------------------------------------------- reading
def read_fragment(
    fragment: Fragment, *, text_column: str = "text", id_column: str | None = None
) -> tuple[list[str], pa.Array]:
    """The texts of one fragment and their ids (``id_column`` values, or global row numbers as int64)."""
    file = Path(fragment.path)
    if fragment.format == "parquet":
        texts, ids = _read_parquet(file, fragment, text_column, id_column)
    else:
        texts, ids = _read_lines(file, fragment, text_column, id_column)
    if len(texts) != fragment.rows:
        raise ValueError(f"{file} changed since it was planned: expected {fragment.rows} rows, read {len(texts)}.")
    if ids is None:
        ids = pa.array(np.arange(fragment.first_row, fragment.first_row + len(texts), dtype=np.int64))
    return texts, ids


def _read_parquet(file: Path, fragment: Fragment, text_column: str, id_column: str | None):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(file)
    bounds = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
    groups = [g for g in range(pf.num_row_groups) if bounds[g] < fragment.stop and bounds[g + 1] > fragment.start]
    columns = [text_column] + ([id_column] if id_column is not None and id_column != text_column else [])
    batches, lo = [], int(bounds[groups[0]]) if groups else 0
    for batch in pf.iter_batches(batch_size=8192, row_groups=groups, columns=columns):  # bounded memory
        hi = lo + batch.num_rows
        if hi > fragment.start:
            batches.append(batch.slice(max(0, fragment.start - lo), fragment.stop - max(lo, fragment.start)))
        lo = hi
        if hi >= fragment.stop:
            break
    table = pa.Table.from_batches(batches, schema=pf.schema_arrow.select(columns) if not batches else None)
    text = table.column(text_column)
    if text.null_count:
        row = fragment.start + int(np.flatnonzero(text.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{file}, row {row}: {text_column!r} is null; every row needs a text.")
    ids = table.column(id_column).combine_chunks() if id_column is not None else None
    return text.to_pylist(), ids


def _read_lines(file: Path, fragment: Fragment, text_column: str, id_column: str | None):
    texts: list[str] = []
    ids: list[object] = []
    with open(file, "rb") as f:
        f.seek(fragment.offset)
        for _, line, record in _records(f, file, fragment.format, offset=fragment.offset, line=fragment.line):
            if fragment.format == "text":
                if b"\x00" in record:
                    raise ValueError(f"{file}, line {line}: NUL byte; is this a binary file?")
                texts.append(_decode(record, file, line).rstrip("\r\n"))
            elif fragment.format == "jsonl":
                text, row_id = _json_row(file, line, record, text_column, id_column)
                texts.append(text)
                ids.append(row_id)
            else:
                if len(record) != len(fragment.header):
                    raise ValueError(
                        f"{file}, line {line}: {len(record)} fields, but the header has {len(fragment.header)}."
                    )
                texts.append(record[fragment.header.index(text_column)])
                if id_column is not None:
                    ids.append(record[fragment.header.index(id_column)])
            if len(texts) == fragment.rows:  # stop before reading (and checking) the next fragment's rows
                break
    if id_column is None:
        return texts, None
    try:
        return texts, pa.array(ids)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"{file}: the {id_column!r} values mix types ({e}); give every row an id of one type.") from e


def iter_texts(
    path: str | Path, *, text_column: str = "text", input_format: str = "auto", shard_rows: int = 50_000
) -> Iterator[str]:
    """Every text of the input, in order (file by file), one fragment in memory at a time."""
    plan = plan_input(path, text_column=text_column, shard_rows=shard_rows, input_format=input_format)
    for fragment in plan.fragments:
        yield from read_fragment(fragment, text_column=text_column)[0]
