"""Sentence-pair similarity: no head; the pooled embeddings are trained contrastively (MNRL, CoSENT, cosine MSE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mtst import losses, metrics
from mtst.batching import EncodedData
from mtst.data.examples import SentenceExample
from mtst.data.loaders import load_sentence_examples
from mtst.padding import features_for
from mtst.tasks.base import PredictBatch, Task
from mtst.tasks.regression import scaled_scores


class SimilarityTask(Task):
    """Sentence pairs: no head; the pooled embeddings are trained contrastively (MNRL, CoSENT or cosine MSE)."""

    type = "similarity"
    hub_task = "sentence-similarity"
    losses = ("mnrl", "cosent", "cosine_mse")
    main_metric = "spearman"
    metric_names = ("pearson", "spearman")
    has_head = False

    @classmethod
    def validate_config(cls, config: Any) -> None:
        super().validate_config(config)
        if config.init_from is not None:
            raise ValueError(
                f"task {config.name!r}: init_from starts a head from a saved model, and a similarity task has no head."
            )

    @classmethod
    def read_examples(cls, config: Any, source: str, split: str) -> list[SentenceExample]:
        return load_sentence_examples(
            source,
            text_column=config.text_column,
            label_column=config.label_column,
            pair_column=config.pair_column,
            label_type="number",
            split=split,
            require_labels=False,
        )

    def encode(self, examples: Sequence[SentenceExample], tokenizer: Any, max_length: int) -> EncodedData:
        name, c = self.name, self.config

        def ids(texts: list[str]) -> list[list[int]]:
            return tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]

        targets = scaled_scores(examples, c.score_max)
        for ex in examples:
            if ex.text_pair is None:
                raise ValueError(f"{ex.source}: task {name!r} needs sentence pairs; set pair_column in the config.")
        if c.resolved_loss != "mnrl" and any(t is None for t in targets):
            raise ValueError(f"task {name!r}: loss {c.resolved_loss} needs a score for every pair (label_column).")
        return EncodedData(ids([ex.text for ex in examples]), targets, pair_ids=ids([ex.text_pair for ex in examples]))

    def collate(self, data: EncodedData, index: Sequence[int], pad_id: int) -> tuple[dict[str, torch.Tensor], Any]:
        """First sentences then second ones (``[2 * batch, seq]``), so one backbone pass embeds both sides."""
        rows = [data.input_ids[i] for i in index] + [data.pair_ids[i] for i in index]
        scores = [data.targets[i] for i in index]
        targets = None if any(s is None for s in scores) else torch.tensor(scores, dtype=torch.float32)
        return features_for(rows, pad_id), targets

    def forward(self, head: nn.Module | None, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        return encoded["sentence_embedding"]

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        """``output`` holds the first sentences' embeddings, then the second ones' ``[2 * batch, dim]``."""
        a, b = output.chunk(2, dim=0)
        kind = self.config.resolved_loss
        if kind == "mnrl":
            return losses.multiple_negatives_ranking(a, b, scale=self.config.scale)
        if targets is None:
            raise ValueError(f"task {self.name!r}: loss {kind} needs a score for every pair.")
        if kind == "cosent":
            return losses.cosent(a, b, targets, scale=self.config.scale)
        return losses.cosine_mse(a, b, targets)

    def predict(self, output: torch.Tensor, batch: PredictBatch, *, crf: Any = None) -> list[dict[str, Any]]:
        return [{} for _ in batch.texts]  # no head: nothing to predict per text (use encode / similarity)

    def eval_predictions(self, output: torch.Tensor, targets: Any, *, crf: Any = None) -> list[float]:
        a, b = output.float().chunk(2, dim=0)
        return torch.nn.functional.cosine_similarity(a, b, dim=-1).tolist()

    def metrics(self, preds: Sequence[float], data: EncodedData) -> dict[str, float]:
        return metrics.correlation_metrics(preds, data.targets)
