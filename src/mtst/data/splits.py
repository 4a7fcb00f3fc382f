"""A task's train / dev / test examples as its config describes them: files, subsampling, a seeded hold-out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from mtst.config import TaskConfig

SPLITS = ("train", "dev", "test")
# reads one split of a task: (source: a file or "hf:" spec, split name) -> examples
Reader = Callable[[str, str], Sequence[Any]]


@dataclass
class TaskSplits:
    """The examples of one task, per split (``None`` where the config gives no data)."""

    train: list[Any] | None = None
    dev: list[Any] | None = None
    test: list[Any] | None = None


def load_task_splits(task: TaskConfig, read: Reader, *, seed: int, splits: tuple[str, ...] = SPLITS) -> TaskSplits:
    """Load the splits a task names with ``read``; apply ``dev_fraction`` (a hold-out) and ``max_train_examples``.

    Both use a generator seeded with ``seed``, so a run is reproducible. The hold-out is taken before
    subsampling, so the dev set does not depend on ``max_train_examples``.
    """
    out = TaskSplits()
    need_train = "train" in splits or (task.dev_fraction is not None and "dev" in splits)
    if task.train is not None and need_train:
        train = list(read(task.train, "train"))
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
            setattr(out, split, list(read(source, split)))
    if "dev" not in splits:
        out.dev = None
    return out
