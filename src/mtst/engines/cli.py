"""Command-line pieces for ``mtst encode --output DIR`` and ``mtst cache build``: options and the calls behind them.

Only typer is imported at module level: ``mtst.cli`` imports these option types when it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

EngineOpt = Annotated[
    str, typer.Option(help="With --output DIR: local (this process) or ray (a Ray Data actor pool, mtst[ray]).")
]
WorkersOpt = Annotated[
    int | None, typer.Option(min=1, help="--engine ray: actors, one encoder each (default: one per Ray CPU).")
]
RayAddressOpt = Annotated[
    str | None, typer.Option("--ray-address", help="--engine ray: join this cluster (default: start a local Ray).")
]
CpusPerWorkerOpt = Annotated[
    float, typer.Option(min=0.01, help="--engine ray: CPUs per actor (its torch threads: the whole number).")
]
GpusPerWorkerOpt = Annotated[
    float, typer.Option(min=0, help="--engine ray: GPUs per actor (0: actors encode on CPU; Ray hides the GPUs).")
]
DtypeOpt = Annotated[
    str, typer.Option(help="With --output DIR: stored type, float32, float16 or int8 (with a per-row scale).")
]
TextColumnOpt = Annotated[str, typer.Option(help="Column (Parquet, CSV, TSV) or key (JSONL) holding the text.")]
IdColumnOpt = Annotated[
    str | None, typer.Option(help="With --output DIR: column or key of the row ids (default: the row number).")
]
FormatOpt = Annotated[
    str, typer.Option("--format", help="Input format: auto (by extension), parquet, jsonl, csv, tsv or text.")
]
ShardRowsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="With --output DIR: rows per shard (default 50,000); a rerun skips finished shards."),
]


def folder_only_options(
    *,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    dtype: str,
    id_column: str | None,
    shard_rows: int | None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
) -> list[str]:
    """The options given that only apply to ``--output DIR`` (empty if none)."""
    given = {
        "--engine": engine != "local",
        "--workers": workers is not None,
        "--ray-address": ray_address is not None,
        "--dtype": dtype != "float32",
        "--id-column": id_column is not None,
        "--shard-rows": shard_rows is not None,
        "--cpus-per-worker": cpus_per_worker != 1.0,
        "--gpus-per-worker": gpus_per_worker != 0.0,
    }
    return [name for name, set_ in given.items() if set_]


def columnar_input(input: Path | None) -> bool:
    """True if ``input`` is a Parquet, JSONL, CSV or TSV file, a folder or a glob (not one plain text file)."""
    from mtst.engines.readers import format_of

    if input is None:
        return False
    return input.is_dir() or any(c in str(input) for c in "*?[") or format_of(input) != "text"


def encode_to_folder(
    input: Path,
    output: Path,
    *,
    model: str,
    pooling: str | None,
    normalize: bool | None,
    max_length: int | None,
    batch_size: int,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    dtype: str,
    text_column: str,
    id_column: str | None,
    input_format: str,
    shard_rows: int | None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    overwrite: bool,
) -> str:
    """Run ``encode_corpus`` with the command's options; return the line to print."""
    from mtst.engines.corpus import DEFAULT_SHARD_ROWS, encode_corpus

    result = encode_corpus(
        input,
        output,
        model=model,
        engine=engine,
        dtype=dtype,
        text_column=text_column,
        id_column=id_column,
        input_format=input_format,
        shard_rows=shard_rows or DEFAULT_SHARD_ROWS,
        batch_size=batch_size,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        workers=workers,
        ray_address=ray_address,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
        overwrite=overwrite,
    )
    where = f"{result.workers} Ray actor(s)" if result.engine == "ray" else "the local engine"
    return (
        f"{result.rows} x {result.dim} {dtype} embeddings in {result.shards} shard(s) in {result.output} "
        f"({result.written} written now, {result.skipped} already done) in {result.seconds:.1f}s with {where}."
    )


def read_texts(input: Path, *, text_column: str = "text", input_format: str = "auto") -> list[str]:
    """Every text of a file, folder or glob in any input format (for ``mtst cache build``)."""
    from mtst.engines.readers import iter_texts

    return list(iter_texts(input, text_column=text_column, input_format=input_format))
