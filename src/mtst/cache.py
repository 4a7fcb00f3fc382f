"""Embeddings of a frozen backbone, kept on disk: encode a data set once, train heads from it many times.

Layout: ``DIR/<key>/`` per (backbone fingerprint, pooling, max length, normalization, kind, dtype), holding
``meta.json``, an ``index.json`` of shards, and per shard ``NNNNN.keys.npy`` (text hashes), ``NNNNN.rows.npy``
(float32 or float16 vectors; for token states all tokens stacked) and, for token states, ``NNNNN.offsets.npy``.
Shards are written to temporary names and renamed, then the index is replaced atomically, so a crash
mid-write leaves the cache as it was. The index records each shard's size and SHA-256: a truncated or
corrupted shard is reported, dropped and re-encoded on demand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtst.diskio import read_json, write_json
from mtst.encoder import SentenceEncoder

logger = logging.getLogger(__name__)

KINDS = ("sentence", "token")
DTYPES = ("float32", "float16")
CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "mtst" / "embeddings"


def text_key(text: str | Sequence[str]) -> bytes:
    """16-byte hash of a text (or of a pre-split word list, for token states)."""
    raw = text if isinstance(text, str) else "\x1f".join(text) + "\x1e"
    return hashlib.blake2b(raw.encode("utf-8"), digest_size=16).digest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _live_tensors(encoder: SentenceEncoder) -> list[Any] | None:
    """The backbone's own tensors (not detached copies); ``None`` when their changes cannot be tracked."""
    backbone = getattr(encoder, "backbone", None)
    if backbone is None:
        return None
    tensors = list(backbone.state_dict(keep_vars=True).values())
    return None if any(t.is_inference() for t in tensors) else tensors  # inference tensors keep no version counter


def check_cache_root(root: Path) -> Path:
    """Refuse a cache folder that is a file, or lies under one (the error names it, not a sub-path of it)."""
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                where = "" if path == root else f" cannot be created: {path}"
                raise NotADirectoryError(
                    f"The cache folder {root}{where} is a file, not a folder: pass a folder as --cache-dir "
                    "(train.cache_dir in a task file)."
                )
            return root
    return root


def _read_entry_file(path: Path, default: Any = None) -> Any:
    """A cache entry's meta.json or index.json; a damaged one is an error that says how to clear it."""
    if default is not None and not path.exists():  # an entry whose creation was interrupted: no shards yet
        return default
    try:
        return read_json(path)
    except (ValueError, OSError) as e:
        raise ValueError(
            f"{e} The cache entry {path.parent} is damaged: run `mtst cache clear --cache-dir {path.parent.parent}` "
            "(or delete that folder); its embeddings are computed again when next needed."
        ) from e


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Exclusive lock for writers of one cache entry (readers need none: files only appear by rename)."""
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class EmbeddingCache:
    """A folder of cached embeddings; ``get`` returns cached vectors and encodes only the texts not seen yet."""

    def __init__(self, root: str | Path, *, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"cache dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
        self.root = Path(root)
        self.dtype = dtype
        # per live encoder: weak references to its tensors, their (data pointer, version counter) and the
        # fingerprint; an encoder that dies drops its entry, so a new one that reuses its id() starts afresh
        self._fingerprints: weakref.WeakKeyDictionary[SentenceEncoder, tuple[list, list, str]] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------------ keys
    def key_fields(self, encoder: SentenceEncoder, kind: str) -> dict[str, Any]:
        """Everything that changes the cached numbers; a different value means a different cache entry."""
        if kind not in KINDS:
            raise ValueError(f"cache kind must be one of {', '.join(KINDS)}, got {kind!r}.")
        return {
            "version": CACHE_VERSION,
            "backbone": self._fingerprint(encoder),
            "pooling": encoder.pooling if kind == "sentence" else None,
            "normalize": encoder.normalize if kind == "sentence" else None,
            "max_length": encoder.max_length,
            "kind": kind,
            "dtype": self.dtype,
        }

    def _fingerprint(self, encoder: SentenceEncoder) -> str:
        """The encoder's weight fingerprint, recomputed only when its weights changed since the last call.

        Every in-place write to a tensor (an optimizer step, ``load_state_dict``, ``add_`` under ``no_grad``) bumps
        its version counter and a new tensor has a new data pointer, so comparing those is enough (under 1 ms for
        MiniLM, against ~0.3 s to hash its weights). Writes through ``tensor.data`` bypass the counter: a new
        ``EmbeddingCache`` recomputes.
        """
        tensors = _live_tensors(encoder)
        if tensors is None:
            return encoder.fingerprint()
        state = [(t.data_ptr(), t._version) for t in tensors] + [len(encoder.tokenizer)]
        memo = self._fingerprints.get(encoder)
        same = (
            memo is not None
            and memo[1] == state
            and len(memo[0]) == len(tensors)
            and all(ref() is t for ref, t in zip(memo[0], tensors, strict=True))  # no tensor was replaced
        )
        if not same:
            memo = self._fingerprints[encoder] = ([weakref.ref(t) for t in tensors], state, encoder.fingerprint())
        return memo[2]

    def entry(self, encoder: SentenceEncoder, kind: str = "sentence") -> Path:
        """The folder of the entry for this encoder and kind (created with its meta.json if new)."""
        fields = self.key_fields(encoder, kind)
        key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
        folder = check_cache_root(self.root) / f"{kind}-{key}"
        meta = folder / "meta.json"
        if meta.exists():
            if _read_entry_file(meta) != {**fields, "dim": encoder.dim}:
                raise ValueError(f"{meta} does not match its key: the cache entry is inconsistent; clear it.")
        else:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OSError(f"Cannot create the cache folder {self.root}: {e.strerror}.") from e
            write_json(folder / "index.json", {"shards": []})  # the index first: meta.json marks a whole entry
            write_json(meta, {**fields, "dim": encoder.dim})
        return folder

    # ------------------------------------------------------------------ reading
    def _valid_shards(self, folder: Path, *, verify: bool = True) -> list[dict[str, Any]]:
        index = _read_entry_file(folder / "index.json", {"shards": []})
        good = []
        for shard in index["shards"]:
            problem = None
            for meta in shard["files"].values():
                path = folder / meta["name"]
                if not path.exists():
                    problem = f"{path} is missing"
                elif path.stat().st_size != meta["size"]:
                    problem = f"{path} is truncated ({path.stat().st_size} of {meta['size']} bytes)"
                elif verify and _sha256(path) != meta["sha256"]:
                    problem = f"{path} is corrupted (checksum mismatch)"
                if problem:
                    break
            if problem:
                logger.warning("Embedding cache: %s; its %d rows will be encoded again.", problem, shard["n"])
            else:
                good.append(shard)
        if len(good) != len(index["shards"]):
            with _locked(folder):
                write_json(folder / "index.json", {"shards": good})
        return good

    def _lookup(self, folder: Path, shards: list[dict[str, Any]]) -> dict[bytes, tuple[int, int]]:
        table: dict[bytes, tuple[int, int]] = {}
        for s, shard in enumerate(shards):
            keys = np.load(folder / shard["files"]["keys"]["name"], mmap_mode="r")
            for row, k in enumerate(keys):
                table.setdefault(k.tobytes(), (s, row))
        return table

    # ------------------------------------------------------------------ the main call
    def get(
        self,
        encoder: SentenceEncoder,
        texts: Sequence[str] | Sequence[Sequence[str]],
        *,
        kind: str = "sentence",
        batch_size: int = 64,
        show_progress_bar: bool | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Vectors for ``texts``, encoding (and storing) only those not cached yet.

        ``kind="sentence"``: pooled embeddings ``[n, dim]`` (as ``encoder.encode`` returns them).
        ``kind="token"``: per text, the backbone's token states ``[n_tokens, dim]``; texts may be strings or
        pre-split word lists (as NER data comes).
        """
        folder = self.entry(encoder, kind)
        shards = self._valid_shards(folder)
        table = self._lookup(folder, shards)
        keys = [text_key(t) for t in texts]
        missing = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in table}.values())
        if missing:
            self._add(
                folder,
                encoder,
                [texts[i] for i in missing],
                [keys[i] for i in missing],
                kind,
                batch_size,
                show_progress_bar,
            )
            shards = self._valid_shards(folder, verify=False)
            table = self._lookup(folder, shards)
        return self._gather(folder, shards, [table[k] for k in keys], kind)

    def _gather(self, folder: Path, shards: list[dict[str, Any]], where: list[tuple[int, int]], kind: str):
        rows = [np.load(folder / s["files"]["rows"]["name"], mmap_mode="r") for s in shards]
        if kind == "sentence":
            out = np.empty((len(where), rows[0].shape[1] if rows else 0), dtype=np.float32)
            for i, (s, r) in enumerate(where):
                out[i] = rows[s][r]
            return out
        offsets = [np.load(folder / s["files"]["offsets"]["name"], mmap_mode="r") for s in shards]
        return [np.array(rows[s][offsets[s][r] : offsets[s][r + 1]], dtype=np.float32) for s, r in where]

    # ------------------------------------------------------------------ writing
    def _add(self, folder, encoder, texts, keys, kind, batch_size, show_progress_bar) -> None:
        """Encode ``texts`` and store them as a new shard (files first, then the index entry naming them)."""
        np_dtype = np.float16 if self.dtype == "float16" else np.float32
        if kind == "sentence":
            vectors = encoder.encode(list(texts), batch_size=batch_size, show_progress_bar=show_progress_bar)
            arrays = {"rows": vectors.astype(np_dtype)}
        else:
            states = encoder.token_states(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
            lengths = np.array([len(s) for s in states], dtype=np.int64)
            arrays = {
                "rows": np.concatenate(states).astype(np_dtype) if states else np.zeros((0, encoder.dim), np_dtype),
                "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            }
        arrays["keys"] = np.frombuffer(b"".join(keys), dtype="V16")
        with _locked(folder):
            index = _read_entry_file(folder / "index.json", {"shards": []})
            number = max([int(s["id"]) for s in index["shards"]], default=-1) + 1
            files = {}
            for name, array in arrays.items():
                final = f"{number:05d}.{name}.npy"
                tmp = folder / f".{final}.{os.getpid()}.tmp"
                with open(tmp, "wb") as f:
                    np.save(f, array)
                os.replace(tmp, folder / final)
                files[name] = {
                    "name": final,
                    "size": (folder / final).stat().st_size,
                    "sha256": _sha256(folder / final),
                }
            index["shards"].append({"id": number, "n": len(keys), "files": files})
            write_json(folder / "index.json", index)

    # ------------------------------------------------------------------ management
    def info(self) -> list[dict[str, Any]]:
        """One summary per cache entry: kind, rows, bytes on disk and the key fields."""
        out = []
        if not check_cache_root(self.root).exists():
            return out
        for folder in sorted(p for p in self.root.iterdir() if (p / "meta.json").exists()):
            meta = _read_entry_file(folder / "meta.json")
            index = _read_entry_file(folder / "index.json", {"shards": []})
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            out.append(
                {
                    "entry": folder.name,
                    "rows": sum(s["n"] for s in index["shards"]),
                    "shards": len(index["shards"]),
                    "bytes": size,
                    **meta,
                }
            )
        return out

    def clear(self) -> int:
        """Delete every cache entry under the root; returns how many were removed."""
        root = check_cache_root(self.root)
        entries = [p for p in root.iterdir() if (p / "meta.json").exists()] if root.exists() else []
        for p in entries:
            shutil.rmtree(p)
        return len(entries)
