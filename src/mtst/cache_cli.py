"""``mtst cache build|info|clear``: the embeddings of a frozen backbone kept on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import mtst.engines.cli as corpus_cli
from mtst.common_cli import (
    ModelOpt,
    PoolingOpt,
    check_encoder_options,
    checked,
    console,
    fail,
    load_encoder,
    usage_error,
)

cache_app = typer.Typer(
    help="Embeddings of a frozen backbone kept on disk: build, inspect, clear.", no_args_is_help=True
)
CacheDirOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="Cache folder (default: ~/.cache/mtst/embeddings).")
]


def _cache_dir(cache_dir: Path | None) -> Path:
    from mtst.cache import DEFAULT_CACHE_DIR

    return cache_dir or DEFAULT_CACHE_DIR


@cache_app.command("build")
def cache_build(
    input_file: Annotated[Path, typer.Option("--input", "-i", help=corpus_cli.CORPUS_HELP)],
    model: ModelOpt = "default",
    pooling: PoolingOpt = None,
    cache_dir: CacheDirOpt = None,
    dtype: Annotated[str, typer.Option(help="float32 or float16.")] = "float32",
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    text_column: corpus_cli.TextColumnOpt = "text",
    input_format: corpus_cli.FormatOpt = "auto",
) -> None:
    """Encode the texts of a corpus into the cache (only those not cached yet)."""
    from mtst.cache import DTYPES, EmbeddingCache
    from mtst.preflight import check_cache

    if dtype not in DTYPES:
        usage_error(f"cache dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    check_encoder_options(pooling, None, None)
    try:
        texts = corpus_cli.read_texts(input_file, text_column=text_column, input_format=input_format)
        cache = EmbeddingCache(check_cache(_cache_dir(cache_dir), dtype), dtype=dtype)
        encoder = load_encoder(model, pooling)
        emb = cache.get(encoder, texts, batch_size=batch_size, show_progress_bar=True)
    except (OSError, ValueError) as e:
        fail(str(e))
    console.print(f"{len(texts)} texts cached ({emb.shape[1]} dims) in {_cache_dir(cache_dir)}")


@cache_app.command("info")
def cache_info(
    cache_dir: CacheDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entry.")] = False,
) -> None:
    """List the cache entries: kind, rows, size and what they are keyed by."""
    import json

    from mtst.cache import EmbeddingCache

    entries = checked(EmbeddingCache(_cache_dir(cache_dir)).info)
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e))
        return
    if not entries:
        console.print(f"No cache entries in {_cache_dir(cache_dir)}.")
        return
    table = Table(title=f"Embedding cache: {_cache_dir(cache_dir)}")
    for col in ("entry", "kind", "rows", "MB", "dtype", "pooling", "normalize", "max_length", "backbone"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e["entry"],
            e["kind"],
            str(e["rows"]),
            f"{e['bytes'] / 1e6:.1f}",
            e["dtype"],
            str(e["pooling"]),
            str(e["normalize"]),
            str(e["max_length"]),
            e["backbone"][:12],
        )
    console.print(table)


@cache_app.command("clear")
def cache_clear(cache_dir: CacheDirOpt = None) -> None:
    """Delete every cache entry in the cache folder."""
    from mtst.cache import EmbeddingCache

    console.print(f"Removed {checked(EmbeddingCache(_cache_dir(cache_dir)).clear)} cache entries.")
