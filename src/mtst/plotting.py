"""Figures: a labelled similarity heatmap (matplotlib, headless backend)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_similarity_heatmap(texts: Sequence[str], sim: np.ndarray, path: str | Path) -> Path:
    """Save a heatmap of the cosine matrix ``sim`` with each text as a row and column label."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = [textwrap.shorten(t, width=40, placeholder="…") or "(empty)" for t in texts]
    n = len(texts)
    size = max(4.0, 0.6 * n + 3)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
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
    plt.close(fig)
    return path


def plot_training_curves(metrics_file: str | Path, path: str | Path) -> Path | None:
    """Plot each task's training loss and dev metrics against steps from a run's ``metrics.jsonl``."""
    import json

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

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
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(12, 4.5))
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
    plt.close(fig)
    return path
