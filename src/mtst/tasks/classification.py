"""Sentence classification: one label per sentence, cross-entropy on a head over the pooled embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mtst import losses, metrics
from mtst.batching import EncodedData
from mtst.data.examples import SentenceExample
from mtst.data.loaders import load_sentence_examples
from mtst.heads import ClassificationHead
from mtst.labels import LabelSet
from mtst.tasks.base import PredictBatch, Task


class ClassificationTask(Task):
    """One label per sentence: cross-entropy on a linear or MLP head over the pooled embedding."""

    type = "classification"
    hub_task = "text-classification"
    losses = ("cross_entropy",)
    main_metric = "accuracy"
    metric_names = ("accuracy", "macro_f1")
    needs_labels = True

    @classmethod
    def read_examples(cls, config: Any, source: str, split: str) -> list[SentenceExample]:
        return load_sentence_examples(
            source, text_column=config.text_column, label_column=config.label_column, label_type="class", split=split
        )

    @classmethod
    def infer_labels(cls, examples: Sequence[SentenceExample]) -> LabelSet:
        """The sorted unique classes (integer-like ones in numeric order)."""
        return LabelSet.infer(str(ex.label) for ex in examples)

    def encode(self, examples: Sequence[SentenceExample], tokenizer: Any, max_length: int) -> EncodedData:
        ids = tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length, padding=False)
        targets = [self.labels.id(str(ex.label), source=ex.source, task=self.name) for ex in examples]
        return EncodedData(ids["input_ids"], targets)

    def targets_tensor(self, targets: list[Any]) -> torch.Tensor:
        return torch.tensor(targets, dtype=torch.long)

    def build_head(self, dim: int) -> nn.Module:
        c = self.config
        return ClassificationHead(dim, len(self.labels), hidden_size=c.hidden_size, dropout=c.dropout)

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weights = self.config.class_weights
        w = torch.tensor(weights, dtype=torch.float32, device=output.device) if weights is not None else None
        return losses.cross_entropy(output, targets, class_weights=w)

    def decode(self, output: torch.Tensor) -> list[dict[str, Any]]:
        """Logits ``[batch, n_labels]`` to ``{"label", "score"}`` per row (score: the label's probability)."""
        probs = output.float().softmax(dim=-1)
        score, idx = probs.max(dim=-1)
        # .tolist() once: iterating a tensor makes a 0-d tensor per element, slow for a large batch.
        return [{"label": self.labels.name(i), "score": s} for i, s in zip(idx.tolist(), score.tolist(), strict=True)]

    def predict(self, output: torch.Tensor, batch: PredictBatch, *, crf: Any = None) -> list[dict[str, Any]]:
        return [{self.name: pred} for pred in self.decode(output)]

    def eval_predictions(self, output: torch.Tensor, targets: Any, *, crf: Any = None) -> list[int]:
        return output.argmax(dim=-1).tolist()

    def metrics(self, preds: Sequence[int], data: EncodedData) -> dict[str, float]:
        name = self.labels.name
        return metrics.classification_metrics(
            [name(p) for p in preds], [name(g) for g in data.targets], self.labels.names
        )
