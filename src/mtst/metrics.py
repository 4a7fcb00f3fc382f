"""Metrics per task type: accuracy and macro-F1, seqeval entity F1, Pearson and Spearman."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from seqeval.metrics import f1_score, precision_score, recall_score


def accuracy(preds: Sequence, golds: Sequence) -> float:
    """Share of predictions equal to the gold label."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} gold labels.")
    return float(np.mean([p == g for p, g in zip(preds, golds, strict=True)])) if golds else 0.0


def macro_f1(preds: Sequence, golds: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-label F1 over ``labels`` (default: labels seen in gold or predictions)."""
    labels = sorted(set(golds) | set(preds)) if labels is None else list(labels)
    preds_a, golds_a = np.asarray(preds, dtype=object), np.asarray(golds, dtype=object)
    f1s = []
    for label in labels:
        tp = np.sum((preds_a == label) & (golds_a == label))
        fp = np.sum((preds_a == label) & (golds_a != label))
        fn = np.sum((preds_a != label) & (golds_a == label))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


def classification_metrics(preds: Sequence[str], golds: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    return {"accuracy": accuracy(preds, golds), "macro_f1": macro_f1(preds, golds, labels)}


def correlation_metrics(preds: Sequence[float], golds: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation (NaN when either side is constant)."""
    p, g = np.asarray(preds, dtype=np.float64), np.asarray(golds, dtype=np.float64)
    if len(p) < 2 or np.ptp(p) == 0 or np.ptp(g) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(pearsonr(p, g)[0]), "spearman": float(spearmanr(p, g)[0])}


def entity_metrics(pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (seqeval, conlleval convention) over word-level BIO tags."""
    pred_tags, gold_tags = [list(s) for s in pred_tags], [list(s) for s in gold_tags]
    for i, (p, g) in enumerate(zip(pred_tags, gold_tags, strict=True)):
        if len(p) != len(g):
            raise ValueError(f"Sentence {i}: {len(p)} predicted tags for {len(g)} gold tags.")
    return {
        "entity_f1": float(f1_score(gold_tags, pred_tags, zero_division=0)),
        "entity_precision": float(precision_score(gold_tags, pred_tags, zero_division=0)),
        "entity_recall": float(recall_score(gold_tags, pred_tags, zero_division=0)),
    }
