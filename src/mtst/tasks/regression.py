"""Sentence regression: one number per sentence (e.g. sentiment in 0..1), MSE or BCE on a head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mtst import losses, metrics
from mtst.batching import EncodedData
from mtst.data.examples import SentenceExample
from mtst.data.loaders import load_sentence_examples
from mtst.heads import RegressionHead
from mtst.tasks.base import PredictBatch, Task

REGRESSION_OUTPUTS = ("sigmoid", "linear")


class RegressionTask(Task):
    """One number per sentence (e.g. a sentiment score in 0..1): MSE or BCE on a head over the pooled embedding."""

    type = "regression"
    hub_task = "text-classification"
    losses = ("mse", "bce")
    main_metric = "spearman"
    metric_names = ("pearson", "spearman")

    @classmethod
    def read_examples(cls, config: Any, source: str, split: str) -> list[SentenceExample]:
        return load_sentence_examples(
            source, text_column=config.text_column, label_column=config.label_column, label_type="number", split=split
        )

    def encode(self, examples: Sequence[SentenceExample], tokenizer: Any, max_length: int) -> EncodedData:
        ids = tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length, padding=False)
        return EncodedData(ids["input_ids"], scaled_scores(examples, self.config.score_max))

    def build_head(self, dim: int) -> nn.Module:
        return RegressionHead(dim, hidden_size=self.config.hidden_size, dropout=self.config.dropout)

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return losses.regression_loss(output, targets, kind=self.config.resolved_loss, output=self.config.output)

    def decode(self, output: torch.Tensor) -> list[dict[str, float]]:
        """Raw head outputs ``[batch]`` to ``{"score"}`` per row (through a sigmoid when ``output: sigmoid``)."""
        scores = torch.sigmoid(output.float()) if self.config.output == "sigmoid" else output.float()
        return [{"score": float(s)} for s in scores]

    def predict(self, output: torch.Tensor, batch: PredictBatch, *, crf: Any = None) -> list[dict[str, Any]]:
        return [{self.name: pred} for pred in self.decode(output)]

    def eval_predictions(self, output: torch.Tensor, targets: Any, *, crf: Any = None) -> list[float]:
        return [d["score"] for d in self.decode(output)]

    def metrics(self, preds: Sequence[float], data: EncodedData) -> dict[str, float]:
        return metrics.correlation_metrics(preds, data.targets)


def scaled_scores(examples: Sequence[SentenceExample], score_max: float | None) -> list[float | None]:
    """Each example's number divided by ``score_max`` (None where unlabelled)."""
    scale = score_max or 1.0
    return [None if ex.label is None else float(ex.label) / scale for ex in examples]
