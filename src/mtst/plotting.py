"""Figures: a labelled similarity heatmap and training curves (matplotlib ``Figure`` objects, no pyplot state)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_similarity_heatmap(texts: Sequence[str], sim: np.ndarray, path: str | Path) -> Path:
    """Save a heatmap of the cosine matrix ``sim`` with each text as a row and column label."""
    labels = [textwrap.shorten(t, width=40, placeholder="…") or "(empty)" for t in texts]
    n = len(texts)
    size = max(4.0, 0.6 * n + 3)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    im = ax.imshow(sim, vmin=min(0.0, float(sim.min())), vmax=1.0, cmap="viridis")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{sim[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if sim[i, j] < 0.6 else "black",
                )
    fig.colorbar(im, ax=ax, label="cosine similarity")
    ax.set_title("Cosine similarity")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_training_curves(metrics_file: str | Path, path: str | Path) -> Path | None:
    """Plot each task's training loss and dev metrics against steps from a run's ``metrics.jsonl``."""
    metrics_file = Path(metrics_file)
    if not metrics_file.exists():
        return None
    losses: dict[str, list[tuple[int, float]]] = {}
    evals: dict[str, list[tuple[int, float]]] = {}
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        for task, value in (rec.get("loss") or {}).items():
            losses.setdefault(task, []).append((rec["step"], value))
        for task, values in (rec.get("eval") or {}).items():
            for metric, value in values.items():
                evals.setdefault(f"{task}.{metric}", []).append((rec["step"], value))
    fig = Figure(figsize=(12, 4.5))
    ax_loss, ax_eval = fig.subplots(1, 2)
    for task, points in losses.items():
        ax_loss.plot(*zip(*points, strict=True), label=task, alpha=0.8)
    ax_loss.set(xlabel="step", ylabel="training loss", title="Loss")
    for name, points in evals.items():
        ax_eval.plot(*zip(*points, strict=True), marker="o", label=name)
    ax_eval.set(xlabel="step", ylabel="dev metric", title="Dev metrics")
    for ax in (ax_loss, ax_eval):
        if ax.has_data():
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
