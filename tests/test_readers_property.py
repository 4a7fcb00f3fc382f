"""Property-based tests of the data readers (TSV, CSV, JSONL, CoNLL) with hypothesis.

Whatever the bytes, a reader either returns the examples that were written (texts, labels, tokens, tags and the
line each starts on) or raises mtst's ``DataError`` naming the file and a line of it; never anything else.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mtst.data.errors import DataError
from mtst.data.loaders import load_sentence_examples, load_token_examples
from mtst.data.readers import read_conll, read_jsonl, read_table

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# pieces that make near-valid files: column names, separators, quotes, line ends, a BOM, bytes that are not
# UTF-8, JSON syntax, BIO tags, CoNLL markers
FRAGMENTS = [
    b"text", b"label", b"score", b"tokens", b"ner_tags", b"\t", b",", b";", b" ", b'"', b"'", b"\n", b"\r", b"\r\n",
    b"\n\n", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xe9", b"\x00", "é".encode(), "😀".encode(), b"{", b"}", b"[",
    b"]", b":", b'"text"', b'"label"', b'"tokens"', b'"ner_tags"', b"null", b"1e999", b"-1", b"0.5", b"nan", b"O",
    b"B-PER", b"I-LOC", b"PER", b"-DOCSTART-", b"\\ud800", b"\\u00e9", b"[[[[", b"9" * 40, b"x",
]  # fmt: skip
raw_files = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join))

# one line of text a TSV cell can hold: no tab or line end, not blank (a blank text is an error by design)
# (U+FEFF is left out: at the very start of a file it is a byte-order mark, which the readers drop)
cell = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\r\n\ufeff"), min_size=1, max_size=20
)
cell = cell.filter(lambda t: t.strip())
free_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff"), min_size=1, max_size=20
).filter(lambda t: t.strip())
label = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='\t\r\n,"'), min_size=1, max_size=8)
label = label.map(str.strip).filter(bool)
token = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="\ufeff"), max_size=8
)
token = token.filter(bool)
token = token.filter(lambda t: t.split() == [t] and t != "-DOCSTART-" and not t.startswith("-DOCSTART-"))
tag = st.one_of(
    st.just("O"), st.builds(lambda b, kind: f"{b}-{kind}", st.sampled_from("BI"), st.sampled_from(["PER", "LOC"]))
)


def _check_error(err: DataError, path: Path, data: bytes) -> None:
    """The error names this file and a line inside it (the one after the last, for "nothing here")."""
    assert err.path == str(path) and str(path) in str(err)
    n_lines = len(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
    assert isinstance(err.line, int) and 1 <= err.line <= n_lines + 1, (err.line, n_lines, str(err))


def _read_any(path: Path, data: bytes, read) -> list | None:
    path.write_bytes(data)
    try:
        return read(path)
    except DataError as err:
        _check_error(err, path, data)
        return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readers")


# ---------------------------------------------------------------------------------------------- any bytes at all
@SETTINGS
@given(data=raw_files, suffix=st.sampled_from([".tsv", ".csv"]))
@example(data=b"text\tlabel\n\xff\tx\n", suffix=".tsv")
@example(data=b'text,label\n"open quote,x\n', suffix=".csv")
def test_any_bytes_as_a_table(folder, data, suffix):
    path = folder / f"any{suffix}"
    for read in (
        lambda p: load_sentence_examples(p),
        lambda p: load_sentence_examples(p, label_column="score", label_type="number"),
        lambda p: read_table(p, columns=["text"]),
    ):
        rows = _read_any(path, data, read)
        if rows is not None and rows and hasattr(rows[0], "text"):
            assert all(r.text.strip() for r in rows)


@SETTINGS
@given(data=raw_files)
@example(data=b'{"text": "a", "label": 1}\n[[[[' + b"[" * 100_000 + b"\n")
@example(data=b'{"text": "\\ud800", "label": "x"}\n')
@example(data=b'{"text": "a", "label": ' + b"9" * 5000 + b"}\n")
@example(data=b'{"text": "a", "score": ' + b"9" * 400 + b"}\n")
@example(data=b'{"tokens": ["a", ""], "ner_tags": ["O", "O"]}\n')
def test_any_bytes_as_json_lines(folder, data):
    path = folder / "any.jsonl"
    _read_any(path, data, read_jsonl)
    _read_any(path, data, lambda p: load_sentence_examples(p))
    _read_any(path, data, lambda p: load_sentence_examples(p, label_column="score", label_type="number"))
    _read_any(path, data, lambda p: load_token_examples(p))


@SETTINGS
@given(data=raw_files)
@example(data=b"EU\tB-ORG\nrejects\tPER\n")
def test_any_bytes_as_conll(folder, data):
    path = folder / "any.conll"
    _read_any(path, data, read_conll)
    _read_any(path, data, lambda p: load_token_examples(p))


# ---------------------------------------------------------------------------------------- valid files read back
blank_runs = st.lists(st.sampled_from(["", "", "   ", "\t"]), max_size=2)


@SETTINGS
@given(
    rows=st.lists(st.tuples(cell, label, st.lists(st.booleans(), max_size=2)), min_size=1, max_size=12),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    extra_first=st.booleans(),
)
def test_a_tsv_file_reads_back(folder, rows, newline, bom, extra_first):
    """TSV: texts with quotes and any other character, blank lines anywhere, a BOM, columns in any order."""
    lines = ["id\ttext\tlabel" if extra_first else "text\tlabel"]
    starts = []
    for i, (text, lab, blanks) in enumerate(rows):
        lines += ["" for _ in blanks]  # blank lines are skipped
        starts.append(len(lines) + 1)
        lines.append(f"{i}\t{text}\t{lab}" if extra_first else f"{text}\t{lab}")
    path = folder / "valid.tsv"
    path.write_bytes(("\ufeff" if bom else "").encode() + (newline.join(lines) + newline).encode("utf-8"))
    examples = load_sentence_examples(path)
    assert [(e.text, e.label) for e in examples] == [(t, lab) for t, lab, _ in rows]
    assert [e.source for e in examples] == [f"{path}:{n}" for n in starts]


@SETTINGS
@given(
    rows=st.lists(st.tuples(free_text, st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=12),
    lineterminator=st.sampled_from(["\n", "\r\n"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
)
def test_a_csv_file_reads_back(folder, rows, lineterminator, quoting):
    """CSV: quoted fields with commas, quotes and line breaks inside; each example keeps the line it starts on."""
    buf = io.StringIO(newline="")
    if quoting == csv.QUOTE_MINIMAL:  # Python's writer quotes only the line end's own characters: a lone \r in
        lineterminator = "\r\n"  # a field under "\n" goes out unquoted, and any reader then sees a line end
    writer = csv.writer(buf, lineterminator=lineterminator, quoting=quoting)
    writer.writerow(["text", "score"])
    starts = []
    for text, score in rows:
        starts.append(buf.getvalue().replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1)
        writer.writerow([text, repr(score)])
    path = folder / "valid.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    examples = load_sentence_examples(path, label_column="score", label_type="number")
    assert [(e.text, e.label) for e in examples] == [(t, s) for t, s in rows]
    assert [e.source for e in examples] == [f"{path}:{n}" for n in starts]


@SETTINGS
@given(
    rows=st.lists(st.tuples(free_text, label), min_size=1, max_size=10),
    blanks=st.lists(st.booleans(), min_size=10, max_size=10),
    ensure_ascii=st.booleans(),
)
def test_a_json_lines_file_reads_back(folder, rows, blanks, ensure_ascii):
    lines, starts = [], []
    for (text, lab), blank in zip(rows, blanks, strict=False):
        if blank:
            lines.append("")
        starts.append(len(lines) + 1)
        lines.append(json.dumps({"label": lab, "text": text, "other": [1, None]}, ensure_ascii=ensure_ascii))
    path = folder / "valid.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples = load_sentence_examples(path)
    assert [(e.text, e.label) for e in examples] == rows
    assert [e.source for e in examples] == [f"{path}:{n}" for n in starts]


@SETTINGS
@given(
    sentences=st.lists(st.lists(st.tuples(token, tag), min_size=1, max_size=6), min_size=1, max_size=6),
    gaps=st.lists(st.sampled_from(["\n", "\n\n", "\n   \n", "\n-DOCSTART- -X- O O\n\n"]), min_size=6, max_size=6),
    sep=st.sampled_from(["\t", " ", "  ", "\tNN\t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_a_conll_file_reads_back(folder, sentences, gaps, sep, newline):
    """CoNLL: blank-line runs and -DOCSTART- between sentences, tab or space separators, middle columns."""
    text, starts = "", []
    for sentence, gap in zip(sentences, gaps, strict=False):
        starts.append(text.count("\n") + 1)
        text += "".join(f"{tok}{sep}{t}\n" for tok, t in sentence) + gap
    path = folder / "valid.conll"
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    examples = read_conll(path)
    assert [list(zip(e.tokens, e.tags, strict=True)) for e in examples] == sentences
    assert [e.source for e in examples] == [f"{path}:{n}" for n in starts]


@SETTINGS
@given(rows=st.lists(st.tuples(st.lists(token, max_size=5), st.lists(tag, max_size=5)), min_size=1, max_size=8))
def test_token_and_tag_counts_in_json_lines(folder, rows):
    """Rows whose token and tag lists differ in length are refused at their line; the others read back."""
    path = folder / "tokens.jsonl"
    path.write_text("".join(json.dumps({"tokens": a, "ner_tags": b}) + "\n" for a, b in rows), encoding="utf-8")
    bad = [i + 1 for i, (a, b) in enumerate(rows) if len(a) != len(b)]
    if bad:
        with pytest.raises(DataError, match=rf"tokens\.jsonl:{bad[0]}: \d+ tokens but \d+ tags") as err:
            load_token_examples(path, repair_bio=False)
        assert err.value.line == bad[0]
    elif not any(a for a, _ in rows):
        with pytest.raises(DataError, match="no sentences"):
            load_token_examples(path, repair_bio=False)
    else:
        examples = load_token_examples(path, repair_bio=False)
        assert [(e.tokens, e.tags) for e in examples] == [(a, b) for a, b in rows if a]


@SETTINGS
@given(
    rows=st.lists(st.tuples(cell, label), min_size=1, max_size=6),
    encoding=st.sampled_from(["latin-1", "utf-16", "cp1252", "utf-8-sig"]),
)
def test_other_encodings_read_or_name_the_first_bad_line(folder, rows, encoding):
    lines = ["text\tlabel"] + [f"{t}\t{lab}" for t, lab in rows]
    try:
        encoded = [(ln + "\n").encode(encoding) for ln in lines]
    except UnicodeEncodeError:
        return  # the text cannot be written in that encoding at all
    if encoding in ("utf-16", "utf-8-sig"):  # one BOM, at the start of the file
        encoded = [("\n".join(lines) + "\n").encode(encoding)]
    path = folder / "enc.tsv"
    path.write_bytes(b"".join(encoded))

    def first_bad():
        for n, raw in enumerate(b"".join(encoded).split(b"\n"), start=1):
            try:
                raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError:
                return n
        return None

    bad = first_bad()
    if bad is None:
        examples = load_sentence_examples(path)
        if encoding == "utf-8-sig" or b"".join(encoded).isascii():  # else the bytes may be other, valid UTF-8
            assert [(e.text, e.label) for e in examples] == rows
    else:
        with pytest.raises(DataError, match=rf"enc\.tsv, line {bad}: not valid UTF-8") as err:
            load_sentence_examples(path)
        assert err.value.line == bad


@SETTINGS
@given(rows=st.lists(st.tuples(cell, label), min_size=1, max_size=5), sep=st.sampled_from([",", ";", "|"]))
def test_a_wrong_separator_is_named_at_the_header(folder, rows, sep):
    path = folder / "wrongsep.tsv"
    path.write_text(f"text{sep}label\n" + "".join(f"{t}{sep}{lab}\n" for t, lab in rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"wrongsep\.tsv, line 1: no column 'text'.*is the delimiter") as err:
        load_sentence_examples(path)
    assert err.value.line == 1


def test_data_errors_are_value_errors():
    """Code that catches ValueError (the CLI, older callers) still catches mtst's data errors."""
    assert issubclass(DataError, ValueError)
