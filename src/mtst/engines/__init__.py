"""Large-corpus encoding: Parquet / JSONL / CSV / TSV / text in, Parquet shards with a manifest out.

``encode_corpus`` runs in this process by default (``engine="local"``) or on a Ray cluster
(``engine="ray"``, the ``mtst[ray]`` extra); both write the same resumable layout, read back with
``read_embeddings``. Names load on first use, so ``mtst --help`` does not import torch or pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DEFAULT_SHARD_ROWS": "mtst.engines.corpus",
    "ENGINES": "mtst.engines.corpus",
    "EncodeResult": "mtst.engines.corpus",
    "encode_corpus": "mtst.engines.corpus",
    "MANIFEST": "mtst.engines.manifest",
    "read_manifest": "mtst.engines.manifest",
    "FORMATS": "mtst.engines.readers",
    "iter_texts": "mtst.engines.readers",
    "plan_input": "mtst.engines.readers",
    "DTYPES": "mtst.engines.shards",
    "read_embeddings": "mtst.engines.shards",
    "shard_paths": "mtst.engines.shards",
    "vectors_of": "mtst.engines.shards",
}
__all__ = [
    "DEFAULT_SHARD_ROWS",
    "DTYPES",
    "ENGINES",
    "FORMATS",
    "MANIFEST",
    "EncodeResult",
    "encode_corpus",
    "iter_texts",
    "plan_input",
    "read_embeddings",
    "read_manifest",
    "shard_paths",
    "vectors_of",
]

if TYPE_CHECKING:
    from mtst.engines.corpus import DEFAULT_SHARD_ROWS, ENGINES, EncodeResult, encode_corpus
    from mtst.engines.manifest import MANIFEST, read_manifest
    from mtst.engines.readers import FORMATS, iter_texts, plan_input
    from mtst.engines.shards import DTYPES, read_embeddings, shard_paths, vectors_of


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mtst.engines' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
