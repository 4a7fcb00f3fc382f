"""Command-line pieces for ``mtst encode --output DIR`` and ``mtst cache build``: options and the calls behind them.

Only typer is imported at module level: ``mtst.cli`` imports these option types when it starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

INPUT_HELP = "A text file (one text a line); with --output DIR also Parquet, JSONL, CSV, TSV, a folder, a quoted glob."
OUTPUT_HELP = "A .npy file, or a folder for Parquet shards and a manifest (resumable)."
CORPUS_HELP = "Text (one a line), Parquet, JSONL, CSV or TSV: a file, a folder or a quoted glob."
EngineOpt = Annotated[
    str, typer.Option(help="With --output DIR: local (this process) or ray (a Ray Data actor pool, mtst\\[ray]).")
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


# Options of `mtst encode` that only a folder output uses, with their defaults.
_FOLDER_ONLY = {
    "engine": "local",
    "workers": None,
    "ray_address": None,
    "dtype": "float32",
    "text_column": "text",
    "id_column": None,
    "input_format": "auto",
    "shard_rows": None,
    "cpus_per_worker": 1.0,
    "gpus_per_worker": 0.0,
}


def _flag(name: str) -> str:
    return "--format" if name == "input_format" else "--" + name.replace("_", "-")


def npy_problem(params: Mapping[str, Any]) -> str | None:
    """Why ``mtst encode`` with these parsed options cannot write a ``.npy`` file or a preview, or None."""
    from mtst.engines.readers import format_of

    given = [_flag(k) for k, default in _FOLDER_ONLY.items() if params.get(k, default) != default]
    source = params.get("input_file")
    columnar = source is not None and (
        source.is_dir() or any(c in str(source) for c in "*?[") or format_of(source) != "text"
    )
    if given or columnar:
        what = ", ".join(given) if given else f"--input {source} (not one plain text file)"
        return f"{what} needs --output DIR (Parquet shards), not a .npy file or a preview."
    return None


def encode_to_folder(params: Mapping[str, Any]) -> str:
    """Run ``encode_corpus`` with the parsed options of ``mtst encode`` (``ctx.params``); return the line to print."""
    from mtst.engines.corpus import DEFAULT_SHARD_ROWS, encode_corpus

    output = params["output"]
    if params.get("texts") or params.get("input_file") is None:
        raise ValueError(
            f"--output must end in .npy with texts as arguments, got {output}; --output DIR needs --input."
        )
    p = {k: params.get(k, default) for k, default in _FOLDER_ONLY.items()}
    result = encode_corpus(
        params["input_file"],
        output,
        model=params["model"],
        engine=p["engine"],
        dtype=p["dtype"],
        text_column=p["text_column"],
        id_column=p["id_column"],
        input_format=p["input_format"],
        shard_rows=p["shard_rows"] or DEFAULT_SHARD_ROWS,
        batch_size=params["batch_size"],
        pooling=params.get("pooling"),
        normalize=params.get("normalize"),
        max_length=params.get("max_length"),
        workers=p["workers"],
        cpus_per_worker=p["cpus_per_worker"],
        gpus_per_worker=p["gpus_per_worker"],
        ray_address=p["ray_address"],
        overwrite=bool(params.get("overwrite")),
    )
    where = f"{result.workers} Ray actor(s)" if result.engine == "ray" else "the local engine"
    return (
        f"{result.rows} x {result.dim} {p['dtype']} embeddings in {result.shards} shard(s) in {result.output} "
        f"({result.written} written now, {result.skipped} already done) in {result.seconds:.1f}s with {where}."
    )


def read_texts(input: Path, *, text_column: str = "text", input_format: str = "auto") -> list[str]:
    """Every text of a file, folder or glob in any input format (for ``mtst cache build``)."""
    from mtst.engines.readers import iter_texts

    return list(iter_texts(input, text_column=text_column, input_format=input_format))
