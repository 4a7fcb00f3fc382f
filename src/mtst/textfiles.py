"""Text files in, embedding files out: read one text per line; encode a file to .npy in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mtst.diskio import atomic_file, clean_stale_temps
from mtst.encoder import SentenceEncoder
from mtst.progress import progress_bars_disabled


def _check_input(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"Input file {path} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"Input {path} is a folder; expected a text file with one text per line.")


def iter_lines(path: str | Path) -> Iterator[str]:
    """Yield the lines of a UTF-8 file without their line endings (an empty line is an empty text)."""
    path = Path(path)
    _check_input(path)
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            if "\x00" in line:
                raise ValueError(f"{path}, line {lineno}: NUL byte; is this a binary file?")
            yield line.rstrip("\r\n")


def count_lines(path: str | Path) -> int:
    """Number of texts in a one-text-per-line file (a final line without a newline counts)."""
    path = Path(path)
    _check_input(path)
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def read_lines(path: str | Path) -> list[str]:
    """All texts of a one-text-per-line file; an empty file is an error."""
    try:
        texts = list(iter_lines(path))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}).") from e
    if not texts:
        raise ValueError(f"{path} is empty: expected one text per line.")
    return texts


def check_npy_output(path: str | Path, *, overwrite: bool) -> Path:
    """Refuse an ``.npy`` output that is a folder, or that exists without ``overwrite`` (before any work starts)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"--output {path} is a folder, not a .npy file: name a file (e.g. {path / 'embeddings.npy'}), "
            "or a folder without the .npy suffix for Parquet shards."
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(f"Cannot write {path}: {path.parent} is a file, not a folder.")
    return path


def save_embeddings(path: str | Path, embeddings: np.ndarray, *, overwrite: bool = False) -> Path:
    """Save an ``[n, dim]`` array as ``.npy`` atomically, creating the folder (``check_npy_output`` rules apply)."""
    path = check_npy_output(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent, names=(path.name,))
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, embeddings)
    return path


def encode_file(
    encoder: SentenceEncoder,
    input_path: str | Path,
    output_path: str | Path,
    *,
    batch_size: int = 32,
    normalize: bool | None = None,
    chunk_size: int = 10_000,
    show_progress_bar: bool = True,
    overwrite: bool = False,
) -> tuple[int, int]:
    """Encode a one-text-per-line file into an ``.npy`` file, ``chunk_size`` texts at a time.

    Memory stays bounded by the chunk, not the file: each chunk is appended to the file with plain writes (a
    memory map of the output would keep every written page resident). One bar counts the texts of the whole
    file, moved after every batch. Returns the array's shape.
    """
    input_path = Path(input_path)
    output_path = check_npy_output(output_path, overwrite=overwrite)
    n = count_lines(input_path)
    if n == 0:
        raise ValueError(f"{input_path} is empty: expected one text per line.")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(output_path.parent, names=(output_path.name,))  # what a killed encode of this file left
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
        "fortran_order": False,
        "shape": (n, encoder.dim),
    }

    def write(f, texts: list[str], bar: tqdm) -> int:
        emb = np.empty((len(texts), encoder.dim), dtype=np.float32)  # [chunk, dim]
        for idx, vectors in encoder.iter_embeddings(texts, batch_size=batch_size, normalize=normalize):
            emb[idx] = vectors.numpy()  # [batch, dim] at the texts' places
            bar.update(len(idx))  # one bar over the whole file, moved by every batch
        f.write(emb.tobytes())
        return len(texts)

    done = 0
    chunk: list[str] = []
    hidden = not show_progress_bar or progress_bars_disabled()
    with atomic_file(output_path) as tmp:  # the temporary file is removed if anything fails
        with open(tmp, "wb") as f, tqdm(total=n, desc="Encoding", unit="text", disable=hidden) as bar:
            np.lib.format.write_array_header_1_0(f, header)
            for text in _checked_lines(input_path):
                chunk.append(text)
                if len(chunk) == chunk_size:
                    done += write(f, chunk, bar)
                    chunk = []
            if chunk:
                done += write(f, chunk, bar)
        if done != n:
            raise ValueError(f"{input_path} changed while it was read: {n} lines counted, {done} encoded.")
    return n, encoder.dim


def _checked_lines(path: Path) -> Iterator[str]:
    try:
        yield from iter_lines(path)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid UTF-8 ({e.reason}).") from e
