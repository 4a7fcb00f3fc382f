"""What every task type provides: data reading and encoding, head, loss, decoding, metrics and its main metric.

A task type is a ``Task`` subclass registered by name (``mtst.tasks.register_task``). Code outside
``mtst.tasks`` asks the task and never branches on its type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from mtst.batching import EncodedData
from mtst.labels import LabelSet
from mtst.padding import features_for

if TYPE_CHECKING:  # pragma: no cover
    from mtst.config import TaskConfig


@dataclass
class PredictBatch:
    """What decoding one batch of raw texts needs besides the model outputs (one entry per row)."""

    texts: list[str]
    word_ids: list[list[int | None]]  # per text, the word of each token (None on special tokens)
    offsets: list[list[tuple[int, int]]]  # per text, each token's character span in the text
    word_tags: bool = False  # token tasks: also return every word's tag
    min_entity_score: float = 0.0  # token tasks: drop entities scored below this


class Task:
    """Base class of the task types; subclasses set the class variables and override what differs."""

    type: ClassVar[str]
    losses: ClassVar[tuple[str, ...]]  # valid loss names; the first is the default
    main_metric: ClassVar[str]  # the metric this type is judged by (best model, early stopping, summaries)
    metric_names: ClassVar[tuple[str, ...]] = ()  # what ``metrics`` reports, checked in metric_for_best; (): unsaid
    needs_labels: ClassVar[bool] = False
    has_head: ClassVar[bool] = True  # False: the task trains the shared embedding itself (no head)
    cache_kind: ClassVar[str] = "sentence"  # which frozen-backbone vectors its head reads: "sentence" or "token"
    hub_task: ClassVar[str] = "other"  # the Hugging Face hub task type its results are listed under (model cards)

    def __init__(self, config: TaskConfig, labels: LabelSet | None = None) -> None:
        if config.type != self.type:
            raise ValueError(f"task {config.name!r} has type {config.type}, not {self.type}.")
        if self.needs_labels and labels is None:
            raise ValueError(
                f"task {config.name!r} needs its label set: give 'labels:' in the config or a 'train:' file."
            )
        self.config = config
        self.labels = labels
        if labels is not None and config.class_weights is not None and len(config.class_weights) != len(labels):
            raise ValueError(
                f"task {config.name!r}: class_weights has {len(config.class_weights)} values "
                f"for {len(labels)} labels ({', '.join(labels.names)})."
            )

    def __repr__(self) -> str:
        labels = f", labels={len(self.labels)}" if self.labels is not None else ""
        return f"{type(self).__name__}({self.name!r}{labels})"

    @property
    def name(self) -> str:
        return self.config.name

    # ------------------------------------------------------------------ config and data
    @classmethod
    def validate_config(cls, config: TaskConfig) -> None:
        """Refuse config keys that mean nothing for this type (called by ``TaskConfig``)."""
        where = f"task {config.name!r}"
        if config.crf:
            raise ValueError(f"{where}: crf: true applies only to type token_classification, not {cls.type}.")

    @classmethod
    def read_examples(cls, config: TaskConfig, source: str, split: str) -> list[Any]:
        """Read one split of a task from a file or ``hf:`` spec, with the task's columns."""
        raise NotImplementedError

    @classmethod
    def infer_labels(cls, examples: Sequence[Any]) -> LabelSet | None:
        """The label set of a data set (``None`` for a type without labels)."""
        return None

    def encode(self, examples: Sequence[Any], tokenizer: Any, max_length: int) -> EncodedData:
        """Tokenize examples once and map their labels to training targets (errors name file and line)."""
        raise NotImplementedError

    def collate(self, data: EncodedData, index: Sequence[int], pad_id: int) -> tuple[dict[str, torch.Tensor], Any]:
        """Padded features and targets of one batch."""
        rows = [data.input_ids[i] for i in index]
        return features_for(rows, pad_id), self.targets_tensor([data.targets[i] for i in index])

    def targets_tensor(self, targets: list[Any]) -> torch.Tensor:
        """One batch's targets as a tensor."""
        return torch.tensor(targets, dtype=torch.float32)

    # ------------------------------------------------------------------ model
    def build_head(self, dim: int) -> nn.Module | None:
        """A fresh head for an encoder of width ``dim`` (``None``: the task uses the embedding itself)."""
        return None

    def forward(self, head: nn.Module | None, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        """This task's output from the backbone's outputs (``sentence_embedding``, ``token_embeddings``)."""
        return head(encoded["sentence_embedding"])

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: Any) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ frozen-backbone cache
    def cache_inputs(self, examples: Sequence[Any]) -> list[Any]:
        """What the embedding cache encodes for these examples (texts, or word lists for token states)."""
        return [ex.text for ex in examples]

    def cached_batch(
        self, inputs: Any, data: EncodedData, index: Sequence[int], device: torch.device
    ) -> tuple[torch.Tensor, Any]:
        """(head input, targets) for a batch of cached rows: sentence embeddings ``[batch, dim]``."""
        x = torch.from_numpy(np.ascontiguousarray(inputs[np.asarray(index)])).float().to(device)  # [batch, dim]
        return x, self.targets_tensor([data.targets[i] for i in index]).to(device)

    # ------------------------------------------------------------------ decoding and metrics
    def crf_params(self, head: nn.Module | None) -> Any:
        """Decoding parameters kept beside the head's output (a CRF's scores), or ``None``."""
        return None

    def predict(self, output: torch.Tensor, batch: PredictBatch, *, crf: Any = None) -> list[dict[str, Any]]:
        """Per row, the keys this task adds to that text's prediction (``{name: prediction}``)."""
        raise NotImplementedError

    def eval_predictions(self, output: torch.Tensor, targets: Any, *, crf: Any = None) -> list[Any]:
        """Per row, the prediction ``metrics`` compares with the row's target."""
        raise NotImplementedError

    def metrics(self, preds: Sequence[Any], data: EncodedData) -> dict[str, float]:
        """Metrics of this type for predictions against the encoded data's targets."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Config plus label names: all that ``task_from_dict`` needs to rebuild the task."""
        conf = asdict(self.config)  # data paths stay: `mtst evaluate --model DIR` finds the dev/test files
        conf["labels"] = self.labels.names if self.labels is not None else None
        return conf
