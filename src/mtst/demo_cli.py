"""``mtst demo``: a few built-in sentences through the shipped joint model (or ``--model``), with scores and figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mtst.common_cli import ModelOpt, PrecisionOpt, check_encoder_options, console, fail
from mtst.tables_cli import print_embeddings, print_pairs, print_predictions

# In the tasks' domains (questions, movie reviews, news-like sentences with names) and outside them on purpose.
DEMO_SENTENCES = [
    "Angela Merkel met Emmanuel Macron in Paris on Monday.",
    "Where is the Eiffel Tower?",
    "Who wrote Hamlet?",
    "How many people live in Tokyo?",
    "I loved this film: the acting was wonderful and the story moved me.",
    "The plot was dull and the ending made no sense.",
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar.",
    "The stock market fell sharply after Apple warned of weak iPhone sales.",
]

# WikiANN's short rows are often one entity from end to end (titles, list items): on a short question the
# tagger's uncertain guess is the whole text (score 0.3-0.5). The demo hides spans below this score.
DEMO_MIN_ENTITY_SCORE = 0.5
SHIPPED_FILE = "shipped.json"  # beside the shipped model: its held-out figures, each task's domain, the recipe


def demo(
    model: ModelOpt = "default",
    plot: Annotated[Path | None, typer.Option(help="Also save the similarity heatmap (PNG) here.")] = None,
    precision: PrecisionOpt = None,
) -> None:
    """Run a few built-in sentences through the default joint model: embeddings, similarities, every task's
    prediction with its score, and the model's held-out figures."""
    import time

    from mtst.serve.backend import load_backend

    precision = check_encoder_options(None, None, precision)
    start = time.perf_counter()
    try:
        backend = load_backend(model)
        encoder, multitask = backend.encoder, backend.model
        with encoder.inference(precision):  # refuses what the backend cannot run (bf16 on an ONNX export)
            encoder.precision = precision
        if multitask is not None:
            multitask.precision = precision
    except (OSError, ValueError) as e:
        fail(str(e))
    console.print(
        f"[bold]mtst demo[/] — model: {model} ({encoder.describe()}), pooling={encoder.pooling}, "
        f"normalize={encoder.normalize}, max_length={encoder.max_length}"
    )
    shipped = read_shipped(multitask)
    if multitask is not None and multitask.encoder is not encoder:
        sts = shipped.get("stsb_dev_spearman", {})
        said = (
            f" Embeddings come from all-MiniLM-L6-v2 (STS-B dev Spearman {100 * sts['all-MiniLM-L6-v2']:.1f}): the "
            f"joint model's own score {100 * sts['shipped']:.1f}, its backbone fine-tuned for the tasks below."
            if {"shipped", "all-MiniLM-L6-v2"} <= set(sts)
            else ""
        )
        console.print(f"Predictions: the shipped joint model ({multitask.encoder.describe()}).{said}")
    if multitask is not None:
        print_domains(multitask, shipped)
    emb = encoder.encode(DEMO_SENTENCES)
    print_embeddings(DEMO_SENTENCES, emb)
    sim = encoder.similarity(emb)
    print_pairs(DEMO_SENTENCES, sim, top=5)
    if plot is not None:
        from mtst.plotting import plot_similarity_heatmap

        console.print(f"Heatmap saved to {plot_similarity_heatmap(DEMO_SENTENCES, sim, plot)}")
    if multitask is not None:
        print_predictions(DEMO_SENTENCES, multitask.predict(DEMO_SENTENCES, min_entity_score=DEMO_MIN_ENTITY_SCORE))
        console.print(
            "[dim]Scores are the model's probability of its label (entities: the mean over the span's words; "
            f"spans below {DEMO_MIN_ENTITY_SCORE} are hidden, `mtst predict` shows them all). A task's label on a "
            "text outside its domain (a topic for a statement, a sentiment for news) means little.[/]"
        )
        if shipped.get("metrics"):
            print_held_out(shipped)
        elif multitask.extra.get("dev_metrics"):
            print_held_out({"metrics": {"dev": multitask.extra["dev_metrics"]}})
    console.print(f"Done in {time.perf_counter() - start:.1f}s.")


def read_shipped(multitask: Any) -> dict[str, Any]:
    """The ``shipped.json`` beside a model (held-out figures, domains, recipe), or ``{}`` where there is none."""
    folder = getattr(getattr(multitask, "encoder", None), "folder", None)
    path = Path(folder) / SHIPPED_FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def print_domains(multitask: Any, shipped: dict[str, Any]) -> None:
    """A table of each task: what it was trained on and its labels."""
    domains = shipped.get("domains", {})
    title = "Tasks of this model and what each was trained on"
    table = Table(title=title, min_width=len(title))
    for col in ("task", "trained on", "labels"):
        table.add_column(col, overflow="fold")
    for name, task in multitask.tasks.items():
        trained_on = domains.get(name) or (Path(task.config.train).name if task.config.train else "—")
        names = task.labels.names if task.labels is not None else []
        if task.type == "token_classification":  # entity types, not their B-/I- tags
            names = list(dict.fromkeys(n.split("-", 1)[-1] for n in names if n != "O"))
        labels = ", ".join(names) or "—"
        table.add_row(name, trained_on, labels)
    console.print(table)


def print_held_out(shipped: dict[str, Any]) -> None:
    """A table of the model's metrics on each held-out split, as measured when it was built."""
    metrics: dict[str, dict[str, dict[str, float]]] = shipped["metrics"]
    splits = list(metrics)
    title = "Held-out figures of this model (%)"
    table = Table(title=title, min_width=len(title), caption=shipped.get("measured"))
    for col in ("task", "metric", *splits):
        table.add_column(col, justify="right" if col in splits else "left")
    tasks = list(dict.fromkeys(t for split in splits for t in metrics[split]))
    for task in tasks:
        names = list(dict.fromkeys(m for split in splits for m in metrics[split].get(task, {})))
        for name in names:
            cells = [metrics[s].get(task, {}).get(name) for s in splits]
            table.add_row(task, name, *("—" if v is None else f"{100 * v:.1f}" for v in cells))
    console.print(table)
