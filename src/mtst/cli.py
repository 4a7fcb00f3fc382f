"""The ``mtst`` command line: thin subcommands that parse arguments and call the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import mtst.engines.cli as corpus_cli
from mtst.export_cli import export_cmd
from mtst.serve.cli import serve_cmd

app = typer.Typer(
    name="mtst",
    help="Multi-task sentence transformers: encode, compare and (soon) train sentences on one shared backbone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DEMO_SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar.",
    "The stock market fell sharply on Monday after Apple warned of weak iPhone sales.",
    "Shares dropped at the start of the week.",
    "Where is the Eiffel Tower located?",
    "Marie Curie was born in Warsaw and worked in Paris.",
    "I loved this film: the acting was wonderful.",
    "The plot was dull and the ending made no sense.",
]

# Heads on a frozen backbone tag WikiANN-style entities loosely; the demo hides the least confident spans.
DEMO_MIN_ENTITY_SCORE = 0.4

ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="'default' (embedded all-MiniLM-L6-v2), a model folder, or a hub id."),
]
PoolingOpt = Annotated[str | None, typer.Option(help="Pooling mode: mean, cls or max (default: the model's own).")]
PrecisionOpt = Annotated[
    str | None, typer.Option(help="fp32, bf16, or auto (bf16 where the CPU computes it natively). Default: fp32.")
]


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def _checked(call, *args, **kwargs):
    """``call(*args, **kwargs)``; a user mistake it raises (``OSError``, ``ValueError``) ends the command, said."""
    try:
        return call(*args, **kwargs)
    except (OSError, ValueError) as e:
        _fail(str(e))


def _load_encoder(
    model: str,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    precision: str | None = None,
):
    from mtst.encoder import SentenceEncoder
    from mtst.precision import check_precision

    try:
        precision = precision and check_precision(precision)  # before the model loads
        encoder = SentenceEncoder.from_pretrained(model, pooling=pooling, normalize=normalize, max_length=max_length)
        with encoder.inference(precision):  # refuses what this backend cannot run (bf16 on an ONNX export)
            encoder.precision = precision
    except (OSError, ValueError) as e:
        _fail(str(e))
    return encoder


def _collect_texts(texts: list[str] | None, input_file: Path | None) -> list[str]:
    from mtst.textfiles import read_lines

    if texts and input_file:
        _fail("give texts as arguments or with --input FILE, not both.")
    if input_file:
        try:
            return read_lines(input_file)
        except (OSError, ValueError) as e:
            _fail(str(e))
    if not texts:
        _fail("no texts: pass them as arguments or with --input FILE (one text per line).")
    return list(texts)


@app.command()
def encode(
    ctx: typer.Context,
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to encode.")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help=corpus_cli.INPUT_HELP)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help=corpus_cli.OUTPUT_HELP)] = None,
    model: ModelOpt = "default",
    pooling: PoolingOpt = None,
    normalize: Annotated[
        bool | None,
        typer.Option("--normalize/--no-normalize", help="L2-normalize (default: the model's own)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass.")] = 32,
    max_length: Annotated[int | None, typer.Option(help="Truncate texts to this many tokens.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output file (or folder's shards).")] = False,
    engine: corpus_cli.EngineOpt = "local",
    workers: corpus_cli.WorkersOpt = None,
    ray_address: corpus_cli.RayAddressOpt = None,
    dtype: corpus_cli.DtypeOpt = "float32",
    text_column: corpus_cli.TextColumnOpt = "text",
    id_column: corpus_cli.IdColumnOpt = None,
    input_format: corpus_cli.FormatOpt = "auto",
    shard_rows: corpus_cli.ShardRowsOpt = None,
    cpus_per_worker: corpus_cli.CpusPerWorkerOpt = 1.0,
    gpus_per_worker: corpus_cli.GpusPerWorkerOpt = 0.0,
    precision: PrecisionOpt = None,
) -> None:
    """Turn texts into fixed-length embeddings; print a preview, save an [n, dim] .npy file, or write Parquet shards."""
    from mtst.preflight import check_text_file
    from mtst.textfiles import check_npy_output, encode_file, save_embeddings

    if output is not None and output.suffix != ".npy":  # a folder: Parquet shards (mtst.engines)
        if precision:
            _fail("--precision applies to previews and .npy output; --output DIR encodes in fp32.")
        try:
            console.print(corpus_cli.encode_to_folder(ctx.params))
        except (OSError, ValueError, ImportError) as e:
            _fail(str(e))
        return
    if problem := corpus_cli.npy_problem(ctx.params):
        _fail(problem)
    if output is not None:
        _checked(check_npy_output, output, overwrite=overwrite)  # before the model loads
    if input_file is not None and output is not None and not texts:
        _checked(check_text_file, input_file)
        encoder = _load_encoder(model, pooling, normalize, max_length, precision)
        try:
            n, dim = encode_file(encoder, input_file, output, batch_size=batch_size, overwrite=overwrite)
        except (OSError, ValueError) as e:
            _fail(str(e))
        console.print(f"Wrote {n} x {dim} float32 embeddings to {output}")
        return
    items = _collect_texts(texts, input_file)
    encoder = _load_encoder(model, pooling, normalize, max_length, precision)
    emb = _checked(encoder.encode, items, batch_size=batch_size)
    if output is not None:
        _checked(save_embeddings, output, emb, overwrite=overwrite)
        console.print(f"Wrote {emb.shape[0]} x {emb.shape[1]} float32 embeddings to {output}")
        return
    _print_embeddings(items, emb)


def _print_embeddings(texts: list[str], emb) -> None:
    table = Table(title=f"Embeddings: shape {tuple(emb.shape)}, {emb.dtype}")
    table.add_column("#", justify="right")
    table.add_column("text", overflow="fold", max_width=50)
    table.add_column("first values")
    table.add_column("norm", justify="right")
    for i, (t, e) in enumerate(zip(texts, emb, strict=True)):
        table.add_row(str(i), t, " ".join(f"{v:+.4f}" for v in e[:5]) + " …", f"{float((e**2).sum()) ** 0.5:.3f}")
    console.print(table)


def _print_pairs(texts: list[str], sim, top: int | None = None) -> None:
    from mtst.similarity import ranked_pairs

    pairs = ranked_pairs(sim)
    table = Table(title="Cosine similarity, most similar first")
    table.add_column("score", justify="right")
    table.add_column("text A", overflow="fold", max_width=45)
    table.add_column("text B", overflow="fold", max_width=45)
    for i, j, score in pairs[:top] if top else pairs:
        table.add_row(f"{score:.4f}", texts[i], texts[j])
    console.print(table)


@app.command()
def similarity(
    texts: Annotated[list[str] | None, typer.Argument(help="Two or more texts to compare.")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help="A file with one text per line.")] = None,
    model: ModelOpt = "default",
    pooling: PoolingOpt = None,
    plot: Annotated[Path | None, typer.Option(help="Save a labelled heatmap (PNG) here.")] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Show only the N most similar pairs.")] = None,
    precision: PrecisionOpt = None,
) -> None:
    """Print the cosine similarity of every pair of texts, most similar first."""
    items = _collect_texts(texts, input_file)
    if len(items) < 2:
        _fail("similarity needs at least two texts.")
    encoder = _load_encoder(model, pooling, precision=precision)
    sim = _checked(encoder.similarity, items)
    _print_pairs(items, sim, top)
    if plot is not None:
        from mtst.plotting import plot_similarity_heatmap

        console.print(f"Heatmap saved to {plot_similarity_heatmap(items, sim, plot)}")


@app.command()
def predict(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to run every task on.")] = None,
    model: Annotated[Path, typer.Option("--model", "-m", help="An mtst model folder (written by save/train).")] = ...,
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help="A file with one text per line.")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Only these tasks (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    min_entity_score: Annotated[float, typer.Option(help="Hide entities scored below this.")] = 0.0,
    precision: PrecisionOpt = None,
) -> None:
    """Predict every task of a multi-task model for each text, from one backbone pass."""
    import json

    from mtst.model import MultiTaskModel
    from mtst.preflight import check_predict

    items = _collect_texts(texts, input_file)
    try:
        check_predict(model, task)
        mt = MultiTaskModel.load(model)
        kwargs = {"batch_size": batch_size, "min_entity_score": min_entity_score, "precision": precision}
        preds = mt.predict(items, tasks=task, **kwargs)
    except (OSError, ValueError) as e:
        _fail(str(e))
    if as_json:
        for text, pred in zip(items, preds, strict=True):
            typer.echo(json.dumps({"text": text, **pred}, ensure_ascii=False))
        return
    _print_predictions(items, preds)


def _format_prediction(pred) -> str:
    if isinstance(pred, list):  # entities
        return ", ".join(f"{e['text']} [{e['label']}] {e['score']:.2f}" for e in pred) or "—"
    if "label" in pred:
        return f"{pred['label']} ({pred['score']:.2f})"
    return f"{pred['score']:.3f}"


def _print_predictions(texts: list[str], preds: list[dict]) -> None:
    names = list(preds[0]) if preds else []
    table = Table(title="Predictions")
    table.add_column("text", overflow="fold", max_width=40)
    for name in names:
        table.add_column(name, overflow="fold")
    for text, pred in zip(texts, preds, strict=True):
        table.add_row(text, *(_format_prediction(pred[n]) for n in names))
    console.print(table)


Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value: key.path=value (repeatable).")
]


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="The YAML task file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the model, metrics and checkpoints.")],
    overrides: Overrides = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue from OUTPUT/checkpoint.")] = False,
) -> None:
    """Train the tasks of a config on one shared backbone (same as mtst.training.train)."""
    from mtst.config import load_config
    from mtst.training import train as run_training

    try:
        cfg = load_config(config, overrides or [])
        result = run_training(cfg, output, overwrite=overwrite, resume=resume, config_file=config)
    except (OSError, ValueError, FloatingPointError) as e:
        _fail(str(e))
    except KeyboardInterrupt as e:  # Ctrl-C: say where the last checkpoint is and how to resume
        err_console.print(f"[bold yellow]interrupted:[/] {e or 'training stopped.'}", highlight=False)
        raise typer.Exit(code=130) from None
    if result["final_metrics"]:
        _print_metrics(result["final_metrics"], title=f"Dev metrics at step {result['steps']}")
    console.print(f"Model saved to {result['model_dir']} (best step: {result['best_step']}).")


def _print_metrics(metrics: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("task", "metric", "value"):
        table.add_column(col)
    for task_name, values in metrics.items():
        for metric, value in values.items():
            table.add_row(task_name, metric, f"{value:.4f}")
    console.print(table)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option("--model", "-m", help="An mtst model folder.")],
    config: Annotated[Path | None, typer.Argument(help="A task file naming dev/test data (optional).")] = None,
    split: Annotated[str, typer.Option(help="dev or test.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    overrides: Overrides = None,
) -> None:
    """Print each task's metrics on its dev or test data."""
    import json

    from mtst.config import load_config
    from mtst.evaluation import evaluate_model
    from mtst.model import MultiTaskModel
    from mtst.preflight import check_evaluation

    try:
        cfg = load_config(config, overrides or []) if config is not None else None
        check_evaluation(model, cfg, split)  # before the model loads
        metrics = evaluate_model(MultiTaskModel.load(model), cfg, split=split)
    except (OSError, ValueError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        _print_metrics(metrics, title=f"{split} metrics")


cache_app = typer.Typer(
    help="Embeddings of a frozen backbone kept on disk: build, inspect, clear.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")
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
    from mtst.cache import EmbeddingCache
    from mtst.preflight import check_cache

    try:
        texts = corpus_cli.read_texts(input_file, text_column=text_column, input_format=input_format)
        cache = EmbeddingCache(check_cache(_cache_dir(cache_dir), dtype), dtype=dtype)
        encoder = _load_encoder(model, pooling)
        emb = cache.get(encoder, texts, batch_size=batch_size, show_progress_bar=True)
    except (OSError, ValueError) as e:
        _fail(str(e))
    console.print(f"{len(texts)} texts cached ({emb.shape[1]} dims) in {_cache_dir(cache_dir)}")


@cache_app.command("info")
def cache_info(
    cache_dir: CacheDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entry.")] = False,
) -> None:
    """List the cache entries: kind, rows, size and what they are keyed by."""
    import json

    from mtst.cache import EmbeddingCache

    entries = _checked(EmbeddingCache(_cache_dir(cache_dir)).info)
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

    console.print(f"Removed {_checked(EmbeddingCache(_cache_dir(cache_dir)).clear)} cache entries.")


@app.command()
def demo(
    model: ModelOpt = "default",
    plot: Annotated[Path | None, typer.Option(help="Also save the similarity heatmap (PNG) here.")] = None,
    precision: PrecisionOpt = None,
) -> None:
    """Encode a few built-in sentences and show their embeddings and similarities."""
    import time

    from mtst.precision import check_precision

    start = time.perf_counter()
    multitask = _load_demo_heads() if model == "default" else None
    encoder = multitask.encoder if multitask is not None else _load_encoder(model, precision=precision)
    if multitask is not None:
        multitask.precision = encoder.precision = precision and _checked(check_precision, precision)
    console.print(
        f"[bold]mtst demo[/] — backbone: {model} ({encoder.describe()}), pooling={encoder.pooling}, "
        f"normalize={encoder.normalize}, max_length={encoder.max_length}"
    )
    emb = encoder.encode(DEMO_SENTENCES)
    _print_embeddings(DEMO_SENTENCES, emb)
    sim = encoder.similarity(emb)
    _print_pairs(DEMO_SENTENCES, sim, top=6)
    if plot is not None:
        from mtst.plotting import plot_similarity_heatmap

        console.print(f"Heatmap saved to {plot_similarity_heatmap(DEMO_SENTENCES, sim, plot)}")
    if multitask is not None:
        preds = multitask.predict(DEMO_SENTENCES, min_entity_score=DEMO_MIN_ENTITY_SCORE)
        _print_predictions(DEMO_SENTENCES, preds)
        metrics = multitask.extra.get("dev_metrics")
        if metrics:
            _print_metrics(metrics, title="Dev metrics of these heads (frozen backbone)")
        console.print(
            f"[dim]{multitask.extra.get('note', '')} Entities scored below {DEMO_MIN_ENTITY_SCORE} are hidden.[/]"
        )
    console.print(f"Done in {time.perf_counter() - start:.1f}s.")


def _load_demo_heads():
    """The topic / sentiment / entity heads shipped with mtst for the default backbone, or None if absent."""
    from mtst.model import MultiTaskModel, demo_heads_path

    path = demo_heads_path()
    if not (path / "mtst_config.json").exists():
        err_console.print("[yellow]No demo heads in this install; showing embeddings only.[/]")
        return None
    return MultiTaskModel.load(path)


app.command("serve")(serve_cmd)
app.command("export")(export_cmd)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
