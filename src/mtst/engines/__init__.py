"""Large-corpus encoding: Parquet / JSONL / CSV / TSV / text in, Parquet shards with a manifest out.

``encode_corpus`` runs in this process by default (``engine="local"``) or on a Ray cluster
(``engine="ray"``, the ``mtst[ray]`` extra); both write the same resumable layout, read back with
``read_embeddings``.
"""

from mtst.engines.corpus import DEFAULT_SHARD_ROWS, ENGINES, EncodeResult, encode_corpus
from mtst.engines.manifest import MANIFEST, read_manifest
from mtst.engines.readers import FORMATS, iter_texts, plan_input
from mtst.engines.shards import DTYPES, read_embeddings, shard_paths, vectors_of

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
