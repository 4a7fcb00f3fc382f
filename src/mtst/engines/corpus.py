"""``encode_corpus``: a corpus in (file, folder or glob), Parquet shards and a manifest out, resumable."""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mtst.encoder import SentenceEncoder
from mtst.engines.local import PRECISION, ModelSpec, ShardSettings, load_encoder, run_local
from mtst.engines.manifest import build_manifest, check_output_folder, model_fingerprint, output_lock, prepare_output
from mtst.engines.rayengine import run_ray
from mtst.engines.readers import find_input_files, plan_input
from mtst.engines.shards import check_dtype

ENGINES = ("local", "ray")
DEFAULT_SHARD_ROWS = 50_000


@dataclass(frozen=True)
class EncodeResult:
    """What a run did: rows and shards in the folder, shards written now and skipped as already done."""

    output: Path
    rows: int
    dim: int
    shards: int
    written: int
    skipped: int
    seconds: float
    engine: str
    workers: int


def encode_corpus(
    input: str | Path,
    output: str | Path,
    *,
    model: str | Path | SentenceEncoder = "default",
    engine: str = "local",
    dtype: str = "float32",
    text_column: str = "text",
    id_column: str | None = None,
    input_format: str = "auto",
    shard_rows: int = DEFAULT_SHARD_ROWS,
    batch_size: int = 32,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    ray_address: str | None = None,
    overwrite: bool = False,
    show_progress_bar: bool = True,
) -> EncodeResult:
    """Encode every text of ``input`` into Parquet shards under ``output`` (one shard per input fragment).

    A rerun into the same folder skips finished shards; one with another model, settings or input is
    refused. ``engine="ray"`` spreads fragments over a Ray actor pool (``workers`` actors); ``"local"``
    runs in this process. ``model`` is a name or folder for ``SentenceEncoder.from_pretrained`` (an ``mtst
    export`` folder loads as its ONNX encoder), or a loaded encoder (pooling, normalize, max length from it).
    Every engine computes in fp32.
    """
    start_time = time.perf_counter()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    check_dtype(dtype)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    if engine == "local" and (workers not in (None, 1) or ray_address or cpus_per_worker != 1 or gpus_per_worker):
        raise ValueError(
            "--workers, --ray-address, --cpus-per-worker and --gpus-per-worker need --engine ray; "
            "the local engine is this one process."
        )
    folder = Path(output)
    _check_not_inside(input, folder)
    plan = plan_input(
        input, text_column=text_column, id_column=id_column, shard_rows=shard_rows, input_format=input_format
    )
    check_output_folder(folder)
    if not isinstance(model, (str, Path)):  # a loaded encoder (torch or ONNX export)
        if pooling is not None or normalize is not None or max_length is not None:
            raise ValueError("pooling, normalize and max_length apply to a model name or path, not a loaded encoder.")
        encoder = model
        spec = ModelSpec.of(encoder) if engine == "ray" else None
    else:
        spec = ModelSpec(str(model), pooling, normalize, max_length)
        encoder = load_encoder(spec)
        spec = ModelSpec.of(encoder)
    fingerprint = model_fingerprint(encoder)
    settings = {
        "dtype": dtype,
        "text_column": text_column,
        "id_column": id_column,
        "shard_rows": shard_rows,
        "input_format": input_format,
        "precision": PRECISION,
    }
    manifest = build_manifest(encoder, plan, settings, fingerprint=fingerprint)
    dim = encoder.dim
    if engine == "ray" and isinstance(model, (str, Path)):
        encoder = None  # the actors hold their own copies: free the driver's
    shard_settings = ShardSettings(str(folder.resolve()), dtype, text_column, id_column, batch_size)
    with output_lock(folder):
        done = prepare_output(folder, manifest, overwrite=overwrite)
        pending = [f for f in plan.fragments if f.index not in done]
        done_rows = sum(f.rows for f in plan.fragments if f.index in done)
        with tqdm(
            total=plan.rows, initial=done_rows, desc="Encoding", unit="text", disable=not show_progress_bar
        ) as bar:
            used = 1
            if pending and engine == "local":
                run_local(encoder, pending, shard_settings, bar.update)
            elif pending:
                used = run_ray(
                    spec,
                    fingerprint,
                    pending,
                    shard_settings,
                    workers=workers,
                    cpus_per_worker=cpus_per_worker,
                    gpus_per_worker=gpus_per_worker,
                    address=ray_address,
                    on_rows=bar.update,
                )
    return EncodeResult(
        output=folder,
        rows=plan.rows,
        dim=dim,
        shards=len(plan.fragments),
        written=len(pending),
        skipped=len(done),
        seconds=time.perf_counter() - start_time,
        engine=engine,
        workers=used,
    )


def _check_not_inside(input: str | Path, folder: Path) -> None:
    """Refuse an output folder inside an input folder: a rerun would read the shards as input."""
    text = str(input)
    if any(c in text for c in "*?["):  # a shard the glob would match (fnmatch's * also crosses folders)
        shard = str(folder.resolve() / "part-00000.parquet")
        clash = fnmatch.fnmatch(shard, os.path.abspath(text)) or any(
            folder.resolve() in p.resolve().parents for p, _ in find_input_files(input)
        )
    else:
        root = Path(input).resolve()
        clash = root.is_dir() and (folder.resolve() == root or root in folder.resolve().parents)
    if clash:
        raise ValueError(f"--output {folder} lies inside the input {input}; write the shards somewhere else.")
