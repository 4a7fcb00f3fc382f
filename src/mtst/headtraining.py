"""Train heads on a frozen backbone from cached embeddings: the data goes through the transformer once.

Each head trains on its own: its own seeded initialisation, optimizer, schedule, batch order and dropout
randomness. Nothing is shared while the backbone is frozen, so training one head alone or all of them
together gives the same weights for a fixed seed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from mtst.alignment import IGNORE_INDEX
from mtst.batching import EncodedData, LengthGroupedBatches
from mtst.cache import EmbeddingCache
from mtst.config import TrainConfig
from mtst.data import SentenceExample, TokenExample
from mtst.freezing import make_adamw
from mtst.model import MultiTaskModel
from mtst.padding import pad_ids


@dataclass
class CachedData:
    """A task's inputs as cached vectors: ``[n, dim]`` sentence embeddings or per-text token states."""

    inputs: np.ndarray | list[np.ndarray]
    encoded: EncodedData  # targets (and, for tokens, label rows aligned with the token states)

    def __len__(self) -> int:
        return len(self.encoded)


def cache_task_data(
    model: MultiTaskModel,
    name: str,
    examples: Sequence[SentenceExample] | Sequence[TokenExample],
    encoded: EncodedData,
    cache: EmbeddingCache,
    *,
    batch_size: int = 64,
) -> CachedData:
    """Fetch (or compute once and store) the frozen encoder's vectors for a task's examples."""
    task = model.tasks[name]
    if task.level == "token":
        inputs = cache.get(model.encoder, [ex.tokens for ex in examples], kind="token", batch_size=batch_size)
        for i, (states, labels) in enumerate(zip(inputs, encoded.targets, strict=True)):
            if len(states) != len(labels):  # same tokenizer, same truncation: a mismatch is a bug, not bad input
                raise RuntimeError(f"{examples[i].source}: cached token states do not line up with the labels.")
        return CachedData(inputs, encoded)
    return CachedData(cache.get(model.encoder, [ex.text for ex in examples], batch_size=batch_size), encoded)


def cached_batch(data: CachedData, index: Sequence[int], device: torch.device) -> tuple[torch.Tensor, Any, Any]:
    """(head input, targets, first-sub-word mask or None) for a batch of cached rows."""
    targets = [data.encoded.targets[i] for i in index]
    if isinstance(data.inputs, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(data.inputs[np.asarray(index)])).float().to(device)  # [batch, dim]
        dtype = torch.long if isinstance(targets[0], int) else torch.float32
        return x, torch.tensor(targets, dtype=dtype, device=device), None
    states = [data.inputs[i] for i in index]
    width = max(len(s) for s in states)
    x = torch.zeros((len(states), width, states[0].shape[1]))  # [batch, seq, dim]
    for r, s in enumerate(states):
        x[r, : len(s)] = torch.from_numpy(s)
    labels = pad_ids(targets, IGNORE_INDEX)[:, :width].to(device)
    return x.to(device), labels, labels != IGNORE_INDEX


def task_seed(seed: int, name: str) -> int:
    """A per-task seed that depends only on the run seed and the task's name."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


def head_steps(tc: TrainConfig, n: int, batch_size: int) -> int:
    """Optimizer steps of one head: ``max_steps``, or ``epochs`` passes over its ``n`` examples."""
    return tc.max_steps or max(1, math.ceil(tc.epochs * -(-n // batch_size)))


def train_head(
    model: MultiTaskModel, name: str, train: CachedData, *, tc: TrainConfig, batch_size: int
) -> Iterator[tuple[int, int, float, float]]:
    """Train one head from cached inputs; yields ``(step, total_steps, loss, lr)`` per optimizer step."""
    from mtst.training import lr_factor

    seed = task_seed(tc.seed, name)
    task, head = model.tasks[name], model.heads[name]
    device = model.encoder.device
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a fresh, seeded initialisation: independent of which other heads exist
        torch.manual_seed(seed)
        fresh = task.build_head(model.encoder.dim)
        head.load_state_dict(fresh.state_dict())
    lengths = (
        np.array([len(s) for s in train.inputs]) if isinstance(train.inputs, list) else np.ones(len(train), np.int64)
    )
    batches = LengthGroupedBatches(lengths, batch_size, seed=seed)
    total = head_steps(tc, len(train), batch_size)
    warmup = int(tc.warmup) if tc.warmup >= 1 else int(round(tc.warmup * total))
    params = [p for p in head.parameters() if p.requires_grad]
    if not params:
        return
    optimizer = make_adamw(params, lr=tc.head_lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, warmup_steps=warmup, total_steps=total, schedule=tc.schedule)
    )
    head.train()
    for step in range(1, total + 1):
        x, targets, _ = cached_batch(train, next(batches), device)
        with torch.random.fork_rng(devices=[]):  # dropout draws from this head's own generator
            torch.set_rng_state(generator.get_state())
            loss = task.loss(head, head(x), targets)
            generator.set_state(torch.get_rng_state())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"The loss of task {name!r} is {loss.item()} at step {step}; training stopped.")
        loss.backward()
        if tc.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        yield step, total, float(loss.detach()), scheduler.get_last_lr()[0]
    head.eval()
