"""The in-process engine, and the work every engine does per fragment: read it, encode it, write its shard."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtst.encoder import SentenceEncoder
from mtst.engines.readers import Fragment, read_fragment
from mtst.engines.shards import embedding_table, write_shard

# Texts encoded per call inside a fragment: the progress bar moves this often, and padding stays low
# (``encode`` sorts each call's texts by length).
CHUNK_ROWS = 4096
# Compute precision of every engine: fp32, so that workers with and without native bf16 write the same numbers
# (``encode``'s own default, "auto", would pick bf16 on some machines of a cluster and fp32 on others).
PRECISION = "fp32"


@dataclass(frozen=True)
class ModelSpec:
    """What a worker passes to ``SentenceEncoder.from_pretrained`` to load the model."""

    name_or_path: str
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None

    @classmethod
    def of(cls, encoder: SentenceEncoder) -> ModelSpec:
        """The spec that reloads ``encoder`` elsewhere (its source, with its own pooling and limits)."""
        source = getattr(encoder, "source", None)
        if not source:
            raise ValueError("This encoder was not loaded with from_pretrained: pass its model path or name instead.")
        path = Path(source).expanduser()
        name = str(path.resolve()) if path.exists() else source  # workers may run in another folder
        return cls(name, encoder.pooling, encoder.normalize, encoder.max_length)


def load_encoder(spec: ModelSpec, *, device: str | None = None) -> SentenceEncoder:
    """The one place engines load a model, in the driver and in every worker alike.

    It goes through ``SentenceEncoder.from_pretrained``, so a model format it learns to read (an ONNX export,
    for instance) reaches every engine with no change here.
    """
    return SentenceEncoder.from_pretrained(
        spec.name_or_path, pooling=spec.pooling, normalize=spec.normalize, max_length=spec.max_length, device=device
    )


@dataclass(frozen=True)
class ShardSettings:
    """Where and how workers write shards (the same for every fragment of a run)."""

    folder: str
    dtype: str
    text_column: str
    id_column: str | None
    batch_size: int


def encode_fragment(
    encoder: SentenceEncoder,
    fragment: Fragment,
    settings: ShardSettings,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Read one fragment, encode it ``CHUNK_ROWS`` texts at a time, write its shard atomically; return its rows."""
    texts, ids = read_fragment(fragment, text_column=settings.text_column, id_column=settings.id_column)
    vectors = np.empty((len(texts), encoder.dim), dtype=np.float32)  # [rows, dim]
    for start in range(0, len(texts), CHUNK_ROWS):
        chunk = texts[start : start + CHUNK_ROWS]
        vectors[start : start + len(chunk)] = encoder.encode(
            chunk, batch_size=settings.batch_size, show_progress_bar=False, precision=PRECISION
        )
        if on_rows is not None:
            on_rows(len(chunk))
    write_shard(Path(settings.folder), fragment.index, embedding_table(ids, vectors, settings.dtype))
    return len(texts)


def run_local(
    encoder: SentenceEncoder,
    fragments: Sequence[Fragment],
    settings: ShardSettings,
    on_rows: Callable[[int], None] | None = None,
) -> None:
    """Encode the fragments one after another in this process (torch uses this machine's cores)."""
    for fragment in fragments:
        encode_fragment(encoder, fragment, settings, on_rows)
