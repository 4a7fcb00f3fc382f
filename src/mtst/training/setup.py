"""Set-up of a run from its config: the model (labels inferred from train files, heads from ``init_from``) and
each task's encoded train / dev data. Both training engines start here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mtst.batching import EncodedData
from mtst.config import MTSTConfig, TaskConfig
from mtst.labels import LabelSet
from mtst.model import MultiTaskModel, read_saved_head, state_mismatch
from mtst.tasks import read_splits, task_class


def infer_labels(task: TaskConfig) -> LabelSet | None:
    """The label set read from the task's train file (``None`` for a type without labels)."""
    cls = task_class(task.type)
    if not cls.needs_labels:
        return None
    if task.train is None:
        raise ValueError(f"task {task.name!r} needs its label set: give 'labels:' in the config or a 'train:' file.")
    return cls.infer_labels(cls.read_examples(task, task.train, "train"))  # the same reader training uses


def build_model(config: MTSTConfig, *, device: str | torch.device | None = None) -> MultiTaskModel:
    """The encoder and a head per task: labels from the config, an ``init_from`` model, or the train file."""
    starts = {t.name: read_saved_head(t.init_from, t) for t in config.tasks if t.init_from}
    labels: dict[str, Any] = {}
    for t in config.tasks:
        if t.labels is None:
            labels[t.name] = starts[t.name][0] if t.name in starts else infer_labels(t)
    model = MultiTaskModel.from_config(config, labels=labels, device=device)
    for name, (_, state) in starts.items():
        mismatch = state_mismatch(model.heads[name].state_dict(), state)
        if mismatch:
            raise ValueError(
                f"task {name!r}: the head in {config.task(name).init_from} does not fit this task's head "
                f"({mismatch}): use the head, hidden_size and crf of the model it was saved with."
            )
        model.heads[name].load_state_dict(state)
    return model


@dataclass
class RunData:
    """Each task's examples and their encodings, for training and for the dev evaluations."""

    train: dict[str, EncodedData] = field(default_factory=dict)
    dev: dict[str, EncodedData] = field(default_factory=dict)
    train_examples: dict[str, list[Any]] = field(default_factory=dict)
    dev_examples: dict[str, list[Any]] = field(default_factory=dict)


def load_run_data(config: MTSTConfig, model: MultiTaskModel) -> RunData:
    """Read every task's train and dev split and encode them with the model's tokenizer."""
    tok, max_len = model.encoder.tokenizer, model.encoder.max_length
    data = RunData()
    for tcfg in config.tasks:
        task = model.tasks[tcfg.name]
        splits = read_splits(tcfg, seed=config.train.seed, splits=("train", "dev"))
        if splits.train is None:
            raise ValueError(f"task {tcfg.name!r} has no 'train:' data to train on.")
        data.train_examples[tcfg.name] = splits.train
        data.train[tcfg.name] = task.encode(splits.train, tok, max_len)
        if splits.dev is not None:
            data.dev_examples[tcfg.name] = splits.dev
            data.dev[tcfg.name] = task.encode(splits.dev, tok, max_len)
    return data
