"""Task types: for each, its head, loss, decoding, metrics and label handling, chosen from ``TASKS`` by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from mtst import losses, metrics
from mtst.config import TASK_TYPES, TaskConfig
from mtst.data import LabelSet
from mtst.heads import ClassificationHead, RegressionHead, TokenClassificationHead


class Task:
    """Base class: what every task type provides. Subclasses are listed in ``TASKS``."""

    type: ClassVar[str]
    level: ClassVar[str]  # "sentence" (head on the pooled embedding), "token" (head on token states), "pair"
    needs_labels: ClassVar[bool] = False

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

    @property
    def name(self) -> str:
        return self.config.name

    def build_head(self, dim: int) -> nn.Module | None:
        """A fresh head for an encoder of width ``dim`` (``None``: the task uses the embedding itself)."""
        return None

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: Any) -> torch.Tensor:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Config plus label names: all that ``from_dict`` needs to rebuild the task."""
        from dataclasses import asdict

        conf = asdict(self.config)  # data paths stay: `mtst evaluate --model DIR` finds the dev/test files
        conf["labels"] = self.labels.names if self.labels is not None else None
        return conf


class ClassificationTask(Task):
    """One label per sentence: cross-entropy on a linear or MLP head over the pooled embedding."""

    type = "classification"
    level = "sentence"
    needs_labels = True

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

    def evaluate(self, preds: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
        return metrics.classification_metrics(preds, golds, self.labels.names)


class RegressionTask(Task):
    """One number per sentence (e.g. a sentiment score in 0..1): MSE or BCE on a head over the pooled embedding."""

    type = "regression"
    level = "sentence"

    def build_head(self, dim: int) -> nn.Module:
        return RegressionHead(dim, hidden_size=self.config.hidden_size, dropout=self.config.dropout)

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return losses.regression_loss(output, targets, kind=self.config.resolved_loss, output=self.config.output)

    def decode(self, output: torch.Tensor) -> list[dict[str, float]]:
        scores = torch.sigmoid(output.float()) if self.config.output == "sigmoid" else output.float()
        return [{"score": float(s)} for s in scores]

    def evaluate(self, preds: Sequence[float], golds: Sequence[float]) -> dict[str, float]:
        return metrics.correlation_metrics(preds, golds)


class TokenClassificationTask(Task):
    """BIO tags per word (named entities): the tag sits on each word's first sub-word; optional CRF."""

    type = "token_classification"
    level = "token"
    needs_labels = True

    def build_head(self, dim: int) -> nn.Module:
        c = self.config
        return TokenClassificationHead(dim, len(self.labels), hidden_size=c.hidden_size, dropout=c.dropout, crf=c.crf)

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if getattr(head, "crf", None) is not None:
            return losses.crf_nll(head.crf, output, targets)
        return losses.cross_entropy(output, targets)

    def decode(
        self, head: nn.Module, output: torch.Tensor, first_subword: torch.Tensor
    ) -> list[list[tuple[str, float]]]:
        """Emissions ``[batch, seq, n_tags]`` to one ``(tag, probability)`` per word, per row.

        With a CRF the tags are the Viterbi path; the score is the tag's softmax probability at that word.
        """
        word_scores, _, word_mask = losses.gather_words(output.float(), first_subword)  # [batch, words, n_tags]
        probs = word_scores.softmax(dim=-1)
        if getattr(head, "crf", None) is not None and word_mask.any():
            tag_ids = _viterbi_paths(head.crf, word_scores, word_mask)
        else:
            best = probs.argmax(dim=-1)
            tag_ids = [best[i, : int(n)].tolist() for i, n in enumerate(word_mask.sum(dim=1))]
        # Python-level lookups on a numpy copy: indexing the tensor makes a 0-d tensor per word.
        probs_np = probs.cpu().numpy()  # [batch, words, n_tags]
        name = self.labels.name
        out = []
        for i, ids in enumerate(tag_ids):
            tag_probs = probs_np[i, np.arange(len(ids)), ids].tolist() if ids else []
            out.append([(name(t), p) for t, p in zip(ids, tag_probs, strict=True)])
        return out

    def evaluate(self, preds: Sequence[Sequence[str]], golds: Sequence[Sequence[str]]) -> dict[str, float]:
        return metrics.entity_metrics(preds, golds)


def _viterbi_paths(crf: nn.Module, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """``torchcrf.CRF.decode(emissions, mask=mask)`` (``batch_first``) in numpy, one path per row ([] for no words).

    The same float arithmetic in the same order and the same ties (the first maximum), so the same paths; but
    numpy on these tiny ``[batch, n_tags, n_tags]`` arrays, not several torch ops per word position, each of
    which can wait on the intra-op thread pool (slow on a busy machine). Rows without words are skipped.
    """
    dtype = torch.promote_types(crf.transitions.dtype, emissions.dtype)
    start, trans, end = (
        p.detach().to(dtype).cpu().numpy() for p in (crf.start_transitions, crf.transitions, crf.end_transitions)
    )
    em = emissions.detach().to(dtype).cpu().numpy()  # [batch, seq, n_tags]
    mk = mask.detach().cpu().numpy().astype(bool)  # [batch, seq]
    rows = mk.any(axis=1)
    paths: list[list[int]] = [[] for _ in range(len(mk))]
    if not rows.any():
        return paths
    sel = np.flatnonzero(rows)
    em, mk = em[sel], mk[sel]
    if not mk[:, 0].all():
        raise ValueError("mask of the first timestep must all be on")  # as torchcrf.CRF.decode
    score = start + em[:, 0]  # [rows, n_tags]
    history = []
    for i in range(1, em.shape[1]):
        next_score = score[:, :, None] + trans + em[:, i][:, None, :]  # [rows, n_tags (from), n_tags (to)]
        indices = next_score.argmax(axis=1)  # [rows, n_tags]
        next_score = np.take_along_axis(next_score, indices[:, None, :], axis=1)[:, 0]
        score = np.where(mk[:, i][:, None], next_score, score)
        history.append(indices)
    score = score + end
    seq_ends = mk.sum(axis=1) - 1
    # [rows, seq - 1, n_tags] as nested lists: the backtracking below is plain Python indexing
    hist = np.stack(history, axis=1).tolist() if history else [[] for _ in sel]
    for r, row in enumerate(sel.tolist()):
        best = [int(score[r].argmax())]
        for step in reversed(hist[r][: seq_ends[r]]):
            best.append(step[best[-1]])
        best.reverse()
        paths[row] = best
    return paths


class SimilarityTask(Task):
    """Sentence pairs: no head; the pooled embeddings are trained contrastively (MNRL, CoSENT or cosine MSE)."""

    type = "similarity"
    level = "pair"

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

    def evaluate(self, preds: Sequence[float], golds: Sequence[float]) -> dict[str, float]:
        return metrics.correlation_metrics(preds, golds)


TASKS: dict[str, type[Task]] = {
    cls.type: cls for cls in (ClassificationTask, RegressionTask, TokenClassificationTask, SimilarityTask)
}
assert tuple(TASKS) == TASK_TYPES  # the config's list of valid types and this table stay in step


def build_task(config: TaskConfig, labels: LabelSet | Sequence[str] | None = None) -> Task:
    """Instantiate the task type named by ``config.type``."""
    if labels is not None and not isinstance(labels, LabelSet):
        labels = LabelSet(list(labels))
    if labels is None and config.labels is not None:
        labels = LabelSet(list(config.labels))
    return TASKS[config.type](config, labels)


def task_from_dict(data: dict[str, Any]) -> Task:
    """Rebuild a task saved with ``Task.to_dict``."""
    return build_task(TaskConfig(**data))
