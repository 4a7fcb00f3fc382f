"""``predict`` written once for every backend: texts to one dict per text, from one forward pass per batch.

``MultiTaskModel`` (torch) and ``OnnxMultiTaskModel`` (onnxruntime) both inherit it. A subclass provides
``tasks``, ``encoder`` (an ``EncodingMixin``), ``forward(features, names)``, ``head(name)`` and
``inference(precision)``; decoding (labels, scores, CRF paths, entity spans) is each task's own ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from mtst.encoding import EncodingMixin
from mtst.inputs import text_list
from mtst.tasks import PredictBatch, Task


class PredictionMixin:
    """Task checks and ``predict``: the multi-task API shared by the torch and ONNX backends."""

    tasks: dict[str, Task]
    encoder: EncodingMixin
    precision: str | None = None  # what predict runs in when not told: None (fp32), "fp32", "bf16" or "auto"

    def forward(self, features: dict[str, torch.Tensor], tasks: Sequence[str] | None = None) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def head(self, name: str) -> Any:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def inference(self, precision: str | None = None) -> AbstractContextManager[None]:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def _check_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        if tasks is None:
            return list(self.tasks)
        if isinstance(tasks, str):
            tasks = [tasks]
        for name in tasks:
            if name not in self.tasks:
                raise ValueError(f"Unknown task {name!r}; this model's tasks are: {', '.join(self.tasks)}.")
        return list(tasks)

    def predict(
        self,
        texts: str | Sequence[str],
        *,
        tasks: Sequence[str] | None = None,
        batch_size: int = 32,
        word_tags: bool = False,
        min_entity_score: float = 0.0,
        show_progress_bar: bool | None = None,
        precision: str | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per text with every task's prediction, from one backbone pass per batch.

        Classification: ``{"label", "score"}``; regression: ``{"score"}``; token classification: a list of
        ``{"text", "label", "start", "end", "score"}`` entities with character offsets into the text (and,
        with ``word_tags=True``, ``"<task>_words"``: ``[{"text", "tag", "start", "end", "score"}]``).
        Similarity tasks have no head and are skipped. Words past ``max_length`` tokens get no tag.
        Entities whose score (mean tag probability) is below ``min_entity_score`` are left out. A progress bar
        shows past 8 batches unless ``show_progress_bar`` says otherwise. ``precision``: ``"fp32"``, ``"bf16"``
        or ``"auto"`` (see ``mtst.precision``); the default is the model's ``precision`` attribute (fp32 if unset).
        """
        items, _ = text_list(texts)  # a str, a sequence of str, a pyarrow string array; else TypeError
        names = [n for n in self._check_tasks(tasks) if self.tasks[n].has_head]
        with self.inference(self.precision if precision is None else precision):  # refuses a wrong one at once
            if not items or not names:
                return [{} for _ in items]
            encoder = self.encoder
            enc = encoder.tokenizer(
                items, truncation=True, max_length=encoder.max_length, return_offsets_mapping=True, padding=False
            )
            ids, offsets = enc["input_ids"], enc["offset_mapping"]
            word_ids = [enc.word_ids(i) for i in range(len(items))]
            crf = {name: self.tasks[name].crf_params(self.head(name)) for name in names}
            results: list[dict[str, Any]] = [{} for _ in items]
            plan = encoder.batches(ids, batch_size, desc="Predicting", show_progress_bar=show_progress_bar)
            for idx, features in plan:
                outputs = self.forward(features, names)
                batch = PredictBatch(
                    texts=[items[i] for i in idx],
                    word_ids=[word_ids[i] for i in idx],
                    offsets=[offsets[i] for i in idx],
                    word_tags=word_tags,
                    min_entity_score=min_entity_score,
                )
                for name in names:
                    for i, row in zip(idx, self.tasks[name].predict(outputs[name], batch, crf=crf[name]), strict=True):
                        results[i].update(row)
        return results
