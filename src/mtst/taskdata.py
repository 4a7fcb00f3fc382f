"""Each task's train / dev / test examples as its config describes them: files, columns, subsampling, hold-out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtst.config import TaskConfig
from mtst.data import SentenceExample, TokenExample, load_sentence_examples, load_token_examples

Examples = list[SentenceExample] | list[TokenExample]
SPLITS = ("train", "dev", "test")


@dataclass
class TaskSplits:
    """The examples of one task, per split (``None`` where the config gives no data)."""

    train: Examples | None = None
    dev: Examples | None = None
    test: Examples | None = None


def load_split(task: TaskConfig, source: str, split: str) -> Examples:
    """Read one split of a task from a file or ``hf:`` spec, with the task's columns."""
    if task.type == "token_classification":
        return load_token_examples(source, tokens_column=task.tokens_column, tags_column=task.label_column, split=split)
    return load_sentence_examples(
        source,
        text_column=task.text_column,
        label_column=task.label_column,
        pair_column=task.pair_column,
        label_type="class" if task.type == "classification" else "number",
        split=split,
        require_labels=task.type != "similarity",
    )


def load_task_splits(task: TaskConfig, *, seed: int, splits: tuple[str, ...] = SPLITS) -> TaskSplits:
    """Load the splits a task names; apply ``dev_fraction`` (held out of train) and ``max_train_examples``.

    Both use a generator seeded with ``seed``, so a run is reproducible. The hold-out is taken before
    subsampling, so the dev set does not depend on ``max_train_examples``.
    """
    out = TaskSplits()
    need_train = "train" in splits or (task.dev_fraction is not None and "dev" in splits)
    if task.train is not None and need_train:
        train = load_split(task, task.train, "train")
        rng = np.random.default_rng([seed, 7])
        if task.dev_fraction is not None:
            order = rng.permutation(len(train))
            n_dev = max(1, int(round(len(train) * task.dev_fraction)))
            if n_dev >= len(train):
                raise ValueError(f"task {task.name!r}: dev_fraction {task.dev_fraction} leaves no training data.")
            out.dev = [train[i] for i in sorted(order[:n_dev])]
            train = [train[i] for i in sorted(order[n_dev:])]
        if task.max_train_examples is not None and len(train) > task.max_train_examples:
            keep = np.sort(rng.choice(len(train), size=task.max_train_examples, replace=False))
            train = [train[i] for i in keep]
        out.train = train if "train" in splits else None
    for split in ("dev", "test"):
        source = getattr(task, split)
        if split in splits and source is not None:
            setattr(out, split, load_split(task, source, split))
    if "dev" not in splits:
        out.dev = None
    return out
