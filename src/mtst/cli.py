"""The ``mtst`` command line: the Typer app and its subcommands, each thin (parse, then call the library).

Shared options and helpers are in ``mtst.common_cli``, table printing in ``mtst.tables_cli``; ``cache``, ``demo``,
``serve``, ``export`` and the corpus options of ``encode`` live in their own ``*_cli`` modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import mtst.engines.cli as corpus_cli
from mtst.cache_cli import cache_app
from mtst.common_cli import (
    ModelOpt,
    Overrides,
    PoolingOpt,
    PrecisionOpt,
    check_encoder_options,
    checked,
    collect_texts,
    configure_output,
    console,
    err_console,
    fail,
    load_encoder,
    usage_error,
)
from mtst.demo_cli import demo
from mtst.export_cli import export_cmd
from mtst.serve.cli import serve_cmd
from mtst.tables_cli import echo_json_lines, print_embeddings, print_metrics, print_pairs, print_predictions
from mtst.version import __version__

app = typer.Typer(
    name="mtst",
    help="Multi-task sentence transformers: encode and compare sentences; train, evaluate, export and serve "
    "task heads on one shared backbone. Exit codes: 0 success, 1 failure while running, 2 usage error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mtst {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print mtst's version and exit."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More messages: -v info, -vv debug.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Errors only, and no progress bars.")] = False,
) -> None:
    """Options for every command (give them before the command: mtst -q encode ...)."""
    ctx.call_on_close(configure_output(verbose, quiet))


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Preview as JSON: one {text, embedding} object per line (all values).")
    ] = False,
) -> None:
    """Turn texts into fixed-length embeddings: print a preview, save an \\[n, dim] .npy file, or write Parquet shards.

    Previews and .npy files run in --precision (default auto); --output DIR writes resumable Parquet shards.
    """
    from mtst.preflight import check_text_file
    from mtst.textfiles import check_npy_output, encode_file, save_embeddings

    check_encoder_options(pooling, max_length, precision)
    if as_json and output is not None:
        usage_error("--json prints the embeddings; it does not go with --output.")
    if output is not None and output.suffix != ".npy":  # a folder: Parquet shards (mtst.engines)
        if precision:
            usage_error("--precision applies to previews and .npy output; --output DIR encodes in fp32.")
        if texts or input_file is None:
            usage_error(f"--output must end in .npy with texts as arguments, got {output}; --output DIR needs --input.")
        try:
            console.print(corpus_cli.encode_to_folder(ctx.params))
        except (OSError, ValueError, ImportError) as e:
            fail(str(e))
        return
    if problem := corpus_cli.npy_problem(ctx.params):
        usage_error(problem)
    if output is not None:
        checked(check_npy_output, output, overwrite=overwrite)  # before the model loads
    if input_file is not None and output is not None and not texts:
        checked(check_text_file, input_file)
        encoder = load_encoder(model, pooling, normalize, max_length, precision)
        try:
            n, dim = encode_file(encoder, input_file, output, batch_size=batch_size, overwrite=overwrite)
        except (OSError, ValueError) as e:
            fail(str(e))
        console.print(f"Wrote {n} x {dim} float32 embeddings to {output}")
        return
    items = collect_texts(texts, input_file)
    encoder = load_encoder(model, pooling, normalize, max_length, precision)
    emb = checked(encoder.encode, items, batch_size=batch_size)
    if output is not None:
        checked(save_embeddings, output, emb, overwrite=overwrite)
        console.print(f"Wrote {emb.shape[0]} x {emb.shape[1]} float32 embeddings to {output}")
        return
    if as_json:
        echo_json_lines({"text": t, "embedding": e.tolist()} for t, e in zip(items, emb, strict=True))
        return
    print_embeddings(items, emb)


@app.command()
def similarity(
    texts: Annotated[list[str] | None, typer.Argument(help="Two or more texts to compare.")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help="A file with one text per line.")] = None,
    model: ModelOpt = "default",
    pooling: PoolingOpt = None,
    plot: Annotated[Path | None, typer.Option(help="Save a labelled heatmap (PNG) here.")] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Show only the N most similar pairs.")] = None,
    precision: PrecisionOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One {score, i, j, a, b} object per pair and line, most similar first.")
    ] = False,
) -> None:
    """Print the cosine similarity of every pair of texts, most similar first."""
    from mtst.similarity import ranked_pairs

    check_encoder_options(pooling, None, precision)
    items = collect_texts(texts, input_file)
    if len(items) < 2:
        usage_error("similarity needs at least two texts.")
    encoder = load_encoder(model, pooling, precision=precision)
    sim = checked(encoder.similarity, items)
    if as_json:
        pairs = ranked_pairs(sim)
        echo_json_lines({"score": s, "i": i, "j": j, "a": items[i], "b": items[j]} for i, j, s in pairs[:top])
    else:
        print_pairs(items, sim, top)
    if plot is not None:
        from mtst.plotting import plot_similarity_heatmap

        console.print(f"Heatmap saved to {plot_similarity_heatmap(items, sim, plot)}")


@app.command()
def predict(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to run every task on.")] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="An mtst model folder (written by save/train or export), a hub id, or 'default'."
        ),
    ] = "default",
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help="A file with one text per line.")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Only these tasks (repeatable).")] = None,
    as_json: JsonOpt = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    min_entity_score: Annotated[float, typer.Option(help="Hide entities scored below this.")] = 0.0,
    precision: PrecisionOpt = None,
) -> None:
    """Predict every task of a multi-task model for each text, from one backbone pass."""
    from mtst.model import MultiTaskModel
    from mtst.preflight import check_predict

    check_encoder_options(None, None, precision)
    items = collect_texts(texts, input_file)
    try:
        check_predict(model, task)
        mt = MultiTaskModel.load(model)
        kwargs = {"batch_size": batch_size, "min_entity_score": min_entity_score, "precision": precision}
        preds = mt.predict(items, tasks=task, **kwargs)
    except (OSError, ValueError) as e:
        fail(str(e))
    if as_json:
        echo_json_lines({"text": text, **pred} for text, pred in zip(items, preds, strict=True))
        return
    print_predictions(items, preds)


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
    from mtst.progress import progress_bars_disabled
    from mtst.training import train as run_training

    try:
        cfg = load_config(config, overrides or [])
        bar = not progress_bars_disabled()
        result = run_training(cfg, output, overwrite=overwrite, resume=resume, config_file=config, progress=bar)
    except (OSError, ValueError, FloatingPointError) as e:
        fail(str(e))
    except KeyboardInterrupt as e:  # Ctrl-C: say where the last checkpoint is and how to resume
        err_console.print(f"[bold yellow]interrupted:[/] {e or 'training stopped.'}", highlight=False)
        raise typer.Exit(code=130) from None
    if result["final_metrics"]:
        print_metrics(result["final_metrics"], title=f"Dev metrics at step {result['steps']}")
    console.print(f"Model saved to {result['model_dir']} (best step: {result['best_step']}).")


@app.command()
def evaluate(
    model: Annotated[str, typer.Option("--model", "-m", help="An mtst model folder, or a hub id.")],
    config: Annotated[
        Path | None,
        typer.Argument(help="A task file naming dev/test data (default: the data paths saved with the model)."),
    ] = None,
    split: Annotated[str, typer.Option(help="dev or test.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    overrides: Overrides = None,
    precision: Annotated[
        str, typer.Option(help="Compute precision: fp32 (default, comparable across machines), bf16 or auto.")
    ] = "fp32",
) -> None:
    """Print each task's metrics on its dev or test data."""
    import json

    from mtst.config import load_config
    from mtst.evaluation import evaluate_model
    from mtst.model import MultiTaskModel
    from mtst.preflight import SPLITS, check_evaluation

    if split not in SPLITS:
        usage_error(f"split must be 'dev' or 'test', got {split!r}.")
    precision = check_encoder_options(None, None, precision) or "fp32"  # a bad value exits 2, before any load
    try:
        cfg = load_config(config, overrides or []) if config is not None else None
        check_evaluation(model, cfg, split)  # before the model loads
        for note in _saved_data_notes(model, split) if cfg is None else []:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        metrics = evaluate_model(MultiTaskModel.load(model), cfg, split=split, precision=precision)
    except (OSError, ValueError) as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        print_metrics(metrics, title=f"{split} metrics")


def _saved_data_notes(model: str, split: str) -> list[str]:
    """What of ``split``'s data a model folder saved by file name only (nothing for a hub id or a bad folder)."""
    from mtst.datapaths import names_only_notes
    from mtst.model import NAMES_ONLY, read_model_config

    try:
        conf = read_model_config(model)
    except (OSError, ValueError):
        return []  # loading says what is wrong
    return names_only_notes(conf.get("tasks", []), conf.get(NAMES_ONLY), split)


app.add_typer(cache_app, name="cache")
app.command()(demo)
app.command("serve")(serve_cmd)
app.command("export")(export_cmd)


def main() -> None:  # pragma: no cover
    app(prog_name="mtst")


if __name__ == "__main__":  # pragma: no cover
    main()
