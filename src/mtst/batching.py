"""Encoded task data and the seeded, length-grouped stream of batches that training draws from.

Each task type encodes its examples into ``EncodedData`` and collates its batches (``mtst.tasks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mtst.padding import sorted_batches


@dataclass
class EncodedData:
    """A task's examples as token ids, ready to batch. ``targets`` is per example (None when unlabeled)."""

    input_ids: list[list[int]]
    targets: list[Any]
    pair_ids: list[list[int]] | None = None  # similarity: the second sentence
    n_words: list[int] | None = None  # token tasks: words per example (before truncation)
    word_targets: list[list[int]] | None = None  # token tasks: every word's tag id, truncated words included

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        """Tokens per example (longest side for pairs), for length grouping."""
        lens = np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self))
        if self.pair_ids is not None:
            lens = np.maximum(lens, np.fromiter((len(x) for x in self.pair_ids), dtype=np.int64, count=len(self)))
        return lens


class LengthGroupedBatches:
    """An endless, seeded stream of index batches; each holds texts of similar length to cut padding.

    Per epoch: shuffle, cut into chunks of ``chunk_batches`` batches, sort each chunk by length, split it
    into batches, shuffle the batches. The state is (epoch, position), so a resumed run continues exactly.

    With ``world`` processes, every process plans the same epoch (same ``seed``) and takes every ``world``-th
    batch from ``rank`` on: in an epoch the processes see disjoint rows that cover the data set. Where the
    batches do not divide evenly, the first ones are repeated to fill the last round (as torch's
    ``DistributedSampler`` and Accelerate's ``even_batches`` do), so every process has as many batches.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        chunk_batches: int = 50,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if len(lengths) == 0:
            raise ValueError("Cannot batch an empty data set.")
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world), got rank {rank} of {world}.")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.chunk = batch_size * chunk_batches
        self.rank, self.world = rank, world
        self.epoch = 0
        self.position = 0
        self._batches = self.plan(0)

    @property
    def batches_per_epoch(self) -> int:
        """Batches one process draws per epoch (all processes draw as many)."""
        return -(-self.global_batches // self.world)

    @property
    def global_batches(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def plan(self, epoch: int) -> list[np.ndarray]:
        """This process's batches of one epoch, in order (without shuffling: longest first)."""
        batches = self.global_plan(epoch)
        if self.world == 1:
            return batches
        batches = batches + [batches[i % len(batches)] for i in range((-len(batches)) % self.world)]
        return batches[self.rank :: self.world]

    def global_plan(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch over all processes, in order."""
        if not self.shuffle:
            return sorted_batches(self.lengths, self.batch_size)
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
