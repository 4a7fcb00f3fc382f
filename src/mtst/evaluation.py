"""Evaluate a multi-task model on each task's labelled data: the metrics of its task type.

Evaluation runs batches through a *runner*, a function from a batch's row indices to (the task's output,
the batch's targets): the model on token ids by default, or a head on cached vectors (``training.heads``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mtst.batching import EncodedData
from mtst.config import MTSTConfig, TrainConfig
from mtst.model import MultiTaskModel
from mtst.padding import sorted_batches
from mtst.precision import check_precision, resolve_precision
from mtst.tasks import Task, read_splits

SPLIT_SEED = "split_seed"  # key of a saved model's ``extra``: the seed its run held dev_fraction rows out with

# a batch's row indices -> (the task's output, the batch's targets)
Runner = Callable[[np.ndarray], tuple[torch.Tensor, Any]]


def model_runner(model: MultiTaskModel, name: str, data: EncodedData) -> Runner:
    """Run the whole model (backbone and head) on batches of task ``name``'s token ids."""
    task, device = model.tasks[name], model.encoder.device
    pad_id = model.encoder.tokenizer.pad_token_id or 0

    def run(index: np.ndarray) -> tuple[torch.Tensor, Any]:
        features, targets = task.collate(data, index, pad_id)
        features = {k: v.to(device) for k, v in features.items()}
        return model(features, tasks=[name])[name], targets

    return run


def evaluate_task(
    model: MultiTaskModel,
    name: str,
    data: EncodedData,
    *,
    batch_size: int = 64,
    autocast: bool = False,
    runner: Runner | None = None,
) -> dict[str, float]:
    """Metrics of task ``name`` on encoded labelled data, from batches sorted by length (``runner``: see module)."""
    task: Task = model.tasks[name]
    run = runner or model_runner(model, name, data)
    crf = task.crf_params(model.head(name))
    device = model.encoder.device
    preds: list[Any] = [None] * len(data)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        for index in sorted_batches(data.lengths(), batch_size):
            out, targets = run(index)
            for i, p in zip(index, task.eval_predictions(out, targets, crf=crf), strict=True):
                preds[i] = p
    model.train(was_training)
    return task.metrics(preds, data)


def evaluate(
    model: MultiTaskModel,
    data: Mapping[str, EncodedData],
    *,
    batch_size: int = 64,
    autocast: bool = False,
    runners: Mapping[str, Runner] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics for every task that has data: ``{task: {metric: value}}`` (through ``runners`` where given)."""
    runners = runners or {}
    return {
        name: evaluate_task(model, name, d, batch_size=batch_size, autocast=autocast, runner=runners.get(name))
        for name, d in data.items()
        if d is not None and len(d)
    }


def score(metrics: dict[str, dict[str, float]], tasks: Mapping[str, Task], metric_for_best: str | None) -> float:
    """One number to compare evaluations: ``task.metric`` if given, else the mean of each task's main metric."""
    if metric_for_best:
        task, _, metric = metric_for_best.partition(".")
        if task not in metrics or metric not in metrics[task]:
            raise ValueError(f"train.metric_for_best {metric_for_best!r} was not measured; measured: {metrics}.")
        return float(metrics[task][metric])
    values = [m[tasks[t].main_metric] for t, m in metrics.items()]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def check_config_tasks(model_tasks: Sequence[str], config: MTSTConfig | None) -> None:
    """Refuse a config that names a task the model does not have (evaluating it would silently score others)."""
    unknown = [t.name for t in config.tasks if t.name not in model_tasks] if config is not None else []
    if unknown:
        raise ValueError(
            f"The config names task(s) {', '.join(unknown)} that this model does not have; its tasks are: "
            f"{', '.join(model_tasks)}. Name the model's tasks in the config (matched by name)."
        )


def evaluate_model(
    model: MultiTaskModel,
    config: MTSTConfig | None = None,
    *,
    split: str = "dev",
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, dict[str, float]]:
    """Metrics of every task of ``model`` on its ``dev`` or ``test`` data.

    Data files come from ``config`` (matched by task name) or, without one, from the paths saved with the model.
    A dev set held out of train (``dev_fraction``) is rebuilt with the config's seed or, without a config, with
    the seed the model was trained with (saved as ``extra["split_seed"]``; the default seed for older models).
    ``precision``: fp32 (the default: figures comparable across machines), bf16 or auto (``mtst.precision``);
    an ONNX export runs its own graph and refuses bf16.
    """
    check_precision(precision)
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}.")
    check_config_tasks(list(model.tasks), config)
    seed = config.train.seed if config is not None else int(model.extra.get(SPLIT_SEED, TrainConfig().seed))
    tok, max_len = model.encoder.tokenizer, model.encoder.max_length
    data: dict[str, EncodedData] = {}
    for name, task in model.tasks.items():
        tcfg = task.config
        if config is not None and name in {t.name for t in config.tasks}:
            tcfg = config.task(name)
        splits = read_splits(tcfg, seed=seed, splits=(split,))
        examples = getattr(splits, split)
        if examples is not None:
            data[name] = task.encode(examples, tok, max_len)
    if not data:
        raise ValueError(f"No task of this model has {split} data; pass a config that names {split} files.")
    torch_model = getattr(model, "backend", "torch") == "torch"
    bf16 = torch_model and resolve_precision(precision, model.encoder.device) == "bf16"
    with model.inference(precision):
        return evaluate(model, data, batch_size=batch_size, autocast=bf16)
