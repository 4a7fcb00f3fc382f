"""Task types, one module each, chosen by name from a registry.

``TASKS`` maps a type name to its ``Task`` subclass; ``register_task`` adds one (a plug-in or a test can
register its own type). ``build_task`` instantiates one from its config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mtst.data.splits import SPLITS, TaskSplits, load_task_splits
from mtst.labels import LabelSet
from mtst.tasks.base import PredictBatch, Task
from mtst.tasks.classification import ClassificationTask
from mtst.tasks.regression import RegressionTask
from mtst.tasks.similarity import SimilarityTask
from mtst.tasks.token_classification import TokenClassificationTask

if TYPE_CHECKING:  # pragma: no cover
    from mtst.config import TaskConfig

__all__ = [
    "TASKS",
    "ClassificationTask",
    "PredictBatch",
    "RegressionTask",
    "SimilarityTask",
    "Task",
    "TokenClassificationTask",
    "build_task",
    "read_splits",
    "register_task",
    "task_class",
    "task_types",
]

TASKS: dict[str, type[Task]] = {
    cls.type: cls for cls in (ClassificationTask, RegressionTask, TokenClassificationTask, SimilarityTask)
}


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task type (usable as a class decorator); its ``type`` becomes a valid ``type:`` in configs."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task expects a Task subclass, got {cls!r}.")
    for attr in ("type", "losses", "main_metric"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__name__} must set the class variable {attr!r}.")
    TASKS[cls.type] = cls
    return cls


def task_types() -> tuple[str, ...]:
    """The registered task type names, in registration order."""
    return tuple(TASKS)


def task_class(type_name: str) -> type[Task]:
    """The ``Task`` subclass of a type name; an unknown name lists the valid ones."""
    try:
        return TASKS[type_name]
    except KeyError:
        raise ValueError(f"type {type_name!r} is not valid. Valid task types are: {', '.join(TASKS)}.") from None


def build_task(config: TaskConfig, labels: LabelSet | Sequence[str] | None = None) -> Task:
    """Instantiate the task type named by ``config.type`` with its labels (given, or the config's own)."""
    if labels is not None and not isinstance(labels, LabelSet):
        labels = LabelSet(list(labels))
    if labels is None and config.labels is not None:
        labels = LabelSet(list(config.labels))
    return task_class(config.type)(config, labels)


def read_splits(config: TaskConfig, *, seed: int, splits: tuple[str, ...] = SPLITS) -> TaskSplits:
    """A task's splits as its config names them, read by its type's reader (see ``load_task_splits``)."""
    cls = task_class(config.type)
    return load_task_splits(
        config, lambda source, split: cls.read_examples(config, source, split), seed=seed, splits=splits
    )
