"""Evaluate a multi-task model on each task's labelled data: the metrics of its task type."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtst.alignment import IGNORE_INDEX
from mtst.batching import EncodedData, LengthGroupedBatches, collate, encode_examples
from mtst.config import MTSTConfig, TrainConfig
from mtst.model import MultiTaskModel
from mtst.taskdata import load_task_splits

# The metric each task type is judged by (early stopping, "best" checkpoint, summaries).
MAIN_METRIC = {
    "classification": "accuracy",
    "regression": "spearman",
    "similarity": "spearman",
    "token_classification": "entity_f1",
}


def _batches(data: EncodedData, batch_size: int):
    return LengthGroupedBatches(data.lengths(), batch_size, seed=0, shuffle=False).plan(0)


def evaluate_task(
    model: MultiTaskModel,
    name: str,
    data: EncodedData,
    *,
    batch_size: int = 64,
    autocast: bool = False,
    cached: Any = None,
) -> dict[str, float]:
    """Metrics of task ``name`` on encoded labelled data, from batches sorted by length.

    With ``cached`` (a ``headtraining.CachedData`` of the same examples) the head runs on cached vectors.
    """
    from mtst.headtraining import cached_batch

    task = model.tasks[name]
    pad_id = model.encoder.tokenizer.pad_token_id or 0
    device = model.encoder.device
    preds: list[Any] = [None] * len(data)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        for index in _batches(data, batch_size):
            if cached is not None:
                x, targets, _ = cached_batch(cached, index, device)
                out = model.heads[name](x)
            else:
                features, targets = collate(task, data, index, pad_id)
                features = {k: v.to(device) for k, v in features.items()}
                out = model(features, tasks=[name])[name]
            for i, p in zip(index, _decode(model, name, out, targets), strict=True):
                preds[i] = p
    model.train(was_training)
    golds = data.targets
    if task.type == "classification":
        return task.evaluate([task.labels.name(p) for p in preds], [task.labels.name(g) for g in golds])
    if task.type == "token_classification":
        pred_tags, gold_tags = [], []
        for p, labels, n in zip(preds, golds, data.n_words, strict=True):
            gold = [task.labels.name(t) for t in labels if t != IGNORE_INDEX]
            # words cut off by max_length count as predicted "O" against their full gold tags
            pred_tags.append(p + ["O"] * (n - len(p)))
            gold_tags.append(gold + ["O"] * (n - len(gold)))
        return task.evaluate(pred_tags, gold_tags)
    return task.evaluate(preds, golds)


def _decode(model: MultiTaskModel, name: str, out: torch.Tensor, targets: Any) -> list[Any]:
    task = model.tasks[name]
    if task.type == "classification":
        return out.argmax(dim=-1).tolist()
    if task.type == "regression":
        return [d["score"] for d in task.decode(out)]
    if task.type == "similarity":
        a, b = out.float().chunk(2, dim=0)
        return torch.nn.functional.cosine_similarity(a, b, dim=-1).tolist()
    first = targets != IGNORE_INDEX  # [batch, seq]: labels sit on each word's first sub-word
    return [[tag for tag, _ in words] for words in task.decode(model.heads[name], out, first.to(out.device))]


def evaluate(
    model: MultiTaskModel,
    data: dict[str, EncodedData],
    *,
    batch_size: int = 64,
    autocast: bool = False,
    cached: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics for every task that has data: ``{task: {metric: value}}`` (from cached vectors where given)."""
    cached = cached or {}
    return {
        name: evaluate_task(model, name, d, batch_size=batch_size, autocast=autocast, cached=cached.get(name))
        for name, d in data.items()
        if d is not None and len(d)
    }


def score(metrics: dict[str, dict[str, float]], model: MultiTaskModel, metric_for_best: str | None) -> float:
    """One number to compare evaluations: ``task.metric`` if given, else the mean of each task's main metric."""
    if metric_for_best:
        task, _, metric = metric_for_best.partition(".")
        if task not in metrics or metric not in metrics[task]:
            raise ValueError(f"train.metric_for_best {metric_for_best!r} was not measured; measured: {metrics}.")
        return float(metrics[task][metric])
    values = [m[MAIN_METRIC[model.tasks[t].type]] for t, m in metrics.items()]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def evaluate_model(
    model: MultiTaskModel, config: MTSTConfig | None = None, *, split: str = "dev", batch_size: int = 64
) -> dict[str, dict[str, float]]:
    """Metrics of every task of ``model`` on its ``dev`` or ``test`` data.

    Data files come from ``config`` (matched by task name) or, without one, from the paths saved with the model.
    A dev set held out of train (``dev_fraction``) is rebuilt with the config's seed.
    """
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}.")
    seed = (config.train if config is not None else TrainConfig()).seed
    tok, max_len = model.encoder.tokenizer, model.encoder.max_length
    data: dict[str, EncodedData] = {}
    for name, task in model.tasks.items():
        tcfg = task.config
        if config is not None and name in {t.name for t in config.tasks}:
            tcfg = config.task(name)
        splits = load_task_splits(tcfg, seed=seed, splits=(split,))
        examples = getattr(splits, split)
        if examples is not None:
            data[name] = encode_examples(task, examples, tok, max_len)
    if not data:
        raise ValueError(f"No task of this model has {split} data; pass a config that names {split} files.")
    return evaluate(model, data, batch_size=batch_size)
