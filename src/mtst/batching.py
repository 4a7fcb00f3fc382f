"""From examples to tensors: tokenize each task's data once, group batches by length, pad and collate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtst.alignment import IGNORE_INDEX, encode_words
from mtst.data import SentenceExample, TokenExample
from mtst.padding import features_for, pad_ids
from mtst.tasks import Task


@dataclass
class EncodedData:
    """A task's examples as token ids, ready to batch. ``targets`` is per example (None when unlabeled)."""

    input_ids: list[list[int]]
    targets: list[Any]
    pair_ids: list[list[int]] | None = None  # similarity: the second sentence
    n_words: list[int] | None = None  # token tasks: words per example (before truncation)

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        """Tokens per example (longest side for pairs), for length grouping."""
        lens = np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self))
        if self.pair_ids is not None:
            lens = np.maximum(lens, np.fromiter((len(x) for x in self.pair_ids), dtype=np.int64, count=len(self)))
        return lens


def encode_examples(
    task: Task, examples: Sequence[SentenceExample | TokenExample], tokenizer: Any, max_length: int
) -> EncodedData:
    """Tokenize a task's examples once and map labels to ids (unknown labels: an error naming file and line)."""
    name, c = task.name, task.config

    def _ids(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]

    if task.type == "token_classification":
        ids, targets, n_words = [], [], []
        for ex in examples:
            tag_ids = [task.labels.id(t, source=ex.source, task=name) for t in ex.tags]
            enc = encode_words(tokenizer, ex.tokens, tags=tag_ids, max_length=max_length)
            ids.append(enc["input_ids"])
            targets.append(enc["labels"])
            n_words.append(len(ex.tokens))
        return EncodedData(ids, targets, n_words=n_words)
    texts = [ex.text for ex in examples]
    if task.type == "classification":
        targets = [task.labels.id(str(ex.label), source=ex.source, task=name) for ex in examples]
    else:
        scale = c.score_max or 1.0
        targets = [None if ex.label is None else float(ex.label) / scale for ex in examples]
    if task.type == "similarity":
        for ex in examples:
            if ex.text_pair is None:
                raise ValueError(f"{ex.source}: task {name!r} needs sentence pairs; set pair_column in the config.")
        if c.resolved_loss != "mnrl" and any(t is None for t in targets):
            raise ValueError(f"task {name!r}: loss {c.resolved_loss} needs a score for every pair (label_column).")
        return EncodedData(_ids(texts), targets, pair_ids=_ids([ex.text_pair for ex in examples]))
    return EncodedData(_ids(texts), targets)


class LengthGroupedBatches:
    """An endless, seeded stream of index batches; each holds texts of similar length to cut padding.

    Per epoch: shuffle, cut into chunks of ``chunk_batches`` batches, sort each chunk by length, split it
    into batches, shuffle the batches. The state is (epoch, position), so a resumed run continues exactly.
    """

    def __init__(
        self, lengths: np.ndarray, batch_size: int, *, seed: int, shuffle: bool = True, chunk_batches: int = 50
    ) -> None:
        if len(lengths) == 0:
            raise ValueError("Cannot batch an empty data set.")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.chunk = batch_size * chunk_batches
        self.epoch = 0
        self.position = 0
        self._batches = self.plan(0)

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def plan(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch, in order (without shuffling: longest first)."""
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.chunk):
            chunk = order[start : start + self.chunk]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def __next__(self) -> np.ndarray:
        if self.position >= len(self._batches):
            self.epoch += 1
            self.position = 0
            self._batches = self.plan(self.epoch)
        batch = self._batches[self.position]
        self.position += 1
        return batch

    def __iter__(self):
        return self

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._batches = self.plan(self.epoch)


def collate(task: Task, data: EncodedData, index: Sequence[int], pad_id: int) -> tuple[dict[str, torch.Tensor], Any]:
    """Features and targets of one batch of a task.

    Similarity batches stack first sentences then second ones (``[2 * batch, seq]``), so one backbone pass
    embeds both sides.
    """
    rows = [data.input_ids[i] for i in index]
    if task.type == "similarity":
        rows = rows + [data.pair_ids[i] for i in index]
        scores = [data.targets[i] for i in index]
        targets = None if any(s is None for s in scores) else torch.tensor(scores, dtype=torch.float32)
        return features_for(rows, pad_id), targets
    features = features_for(rows, pad_id)
    if task.type == "token_classification":
        return features, pad_ids([data.targets[i] for i in index], IGNORE_INDEX)
    dtype = torch.long if task.type == "classification" else torch.float32
    return features, torch.tensor([data.targets[i] for i in index], dtype=dtype)
