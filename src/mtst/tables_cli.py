"""How the ``mtst`` subcommands print results: Rich tables of embeddings, similar pairs, predictions and metrics,
or JSON lines (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import typer
from rich.table import Table

from mtst.common_cli import console


def print_embeddings(texts: list[str], emb) -> None:
    """A table of each text's first values and norm, under the array's shape and dtype."""
    table = Table(title=f"Embeddings: shape {tuple(emb.shape)}, {emb.dtype}")
    table.add_column("#", justify="right")
    table.add_column("text", overflow="fold", max_width=50)
    table.add_column("first values")
    table.add_column("norm", justify="right")
    for i, (t, e) in enumerate(zip(texts, emb, strict=True)):
        table.add_row(str(i), t, " ".join(f"{v:+.4f}" for v in e[:5]) + " …", f"{float((e**2).sum()) ** 0.5:.3f}")
    console.print(table)


def print_pairs(texts: list[str], sim, top: int | None = None) -> None:
    """Every pair of texts by cosine similarity, most similar first (the ``top`` first only, if given)."""
    from mtst.similarity import ranked_pairs

    pairs = ranked_pairs(sim)
    table = Table(title="Cosine similarity, most similar first")
    table.add_column("score", justify="right")
    table.add_column("text A", overflow="fold", max_width=45)
    table.add_column("text B", overflow="fold", max_width=45)
    for i, j, score in pairs[:top] if top else pairs:
        table.add_row(f"{score:.4f}", texts[i], texts[j])
    console.print(table)


def format_prediction(pred) -> str:
    """One task's prediction as a table cell: a label and its score, a score, or the entities."""
    if isinstance(pred, list):  # entities
        return ", ".join(f"{e['text']} [{e['label']}] {e['score']:.2f}" for e in pred) or "—"
    if "label" in pred:
        return f"{pred['label']} ({pred['score']:.2f})"
    return f"{pred['score']:.3f}"


def print_predictions(texts: list[str], preds: list[dict]) -> None:
    """A table with a row per text and a column per task."""
    names = list(preds[0]) if preds else []
    table = Table(title="Predictions")
    table.add_column("text", overflow="fold", max_width=40)
    for name in names:
        table.add_column(name, overflow="fold")
    for text, pred in zip(texts, preds, strict=True):
        table.add_row(text, *(format_prediction(pred[n]) for n in names))
    console.print(table)


def print_metrics(metrics: dict, title: str) -> None:
    """A table of ``{task: {metric: value}}``."""
    table = Table(title=title)
    for col in ("task", "metric", "value"):
        table.add_column(col)
    for task_name, values in metrics.items():
        for metric, value in values.items():
            table.add_row(task_name, metric, f"{value:.4f}")
    console.print(table)


def echo_json_lines(rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line on stdout, no markup (for jq and scripts)."""
    for row in rows:
        typer.echo(json.dumps(row, ensure_ascii=False))
