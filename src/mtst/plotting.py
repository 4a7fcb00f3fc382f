"""Figures: a labelled similarity heatmap and training curves (matplotlib ``Figure`` objects, no pyplot state)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mtst.diskio import atomic_file


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


def read_curves(metrics_file: str | Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, dict[str, list]]]:
    """From a run's ``metrics.jsonl``: ``{task: [(step, mean loss)]}`` and ``{task: {metric: [(step, value)]}}``."""
    losses: dict[str, list[tuple[int, float]]] = {}
    evals: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for line in Path(metrics_file).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        for task, value in (rec.get("loss") or {}).items():
            losses.setdefault(task, []).append((rec["step"], value))
        for task, values in (rec.get("eval") or {}).items():
            for metric, value in values.items():
                evals.setdefault(task, {}).setdefault(metric, []).append((rec["step"], value))
    return losses, evals


def training_curves_figure(metrics_file: str | Path) -> Figure:
    """Training loss of every task (its mean over each logging interval), then one panel of dev metrics per task."""
    losses, evals = read_curves(metrics_file)
    n = 1 + len(evals)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(4.8 * cols, 3.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for task, points in losses.items():
        axes[0].plot(*zip(*points, strict=True), label=task, alpha=0.85, marker="." if len(points) < 30 else None)
    axes[0].set(xlabel="step", ylabel="mean loss over the interval", title="Training loss")
    for ax, (task, metrics) in zip(axes[1:], evals.items(), strict=False):
        for metric, points in metrics.items():
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=metric)
        ax.set(xlabel="step", ylabel="dev metric", title=f"{task} (dev)")
    for ax in axes[:n]:
        if ax.has_data():
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_training_curves(metrics_file: str | Path, path: str | Path) -> Path | None:
    """Save ``training_curves_figure`` of a run's ``metrics.jsonl`` as a PNG (atomically); ``None`` without one."""
    if not Path(metrics_file).exists():
        return None
    fig = training_curves_figure(metrics_file)
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
    return path
