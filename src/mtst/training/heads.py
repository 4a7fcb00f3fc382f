"""The second engine: train heads on a frozen backbone from cached embeddings (one pass through the backbone).

Each head trains on its own: its own seeded initialisation (or the weights ``init_from`` gave it), optimizer,
schedule, batch order and dropout randomness. Nothing is shared while the backbone is frozen, so training one
head alone or all of them together gives the same weights for a fixed seed. The run restarts from step 0 on
resume: head training from a cache takes seconds.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed

from mtst.batching import EncodedData, LengthGroupedBatches
from mtst.cache import DEFAULT_CACHE_DIR, EmbeddingCache
from mtst.checkpoint import load_checkpoint, save_checkpoint
from mtst.config import MTSTConfig, TrainConfig
from mtst.evaluation import Runner, evaluate, score
from mtst.freezing import apply_freeze, parse_freeze
from mtst.model import MultiTaskModel
from mtst.optim import build_optimizer
from mtst.tasks import Task
from mtst.training.loop import StepRecord, TrainingState, check_finite
from mtst.training.setup import build_model, load_run_data


@dataclass
class CachedData:
    """A task's inputs as cached vectors: ``[n, dim]`` sentence embeddings or per-text token states."""

    inputs: np.ndarray | list[np.ndarray]
    encoded: EncodedData  # targets (and, for tokens, label rows aligned with the token states)

    def __len__(self) -> int:
        return len(self.encoded)

    def lengths(self) -> np.ndarray:
        """Rows per example for length grouping: tokens for token states, 1 for sentence vectors."""
        if isinstance(self.inputs, list):
            return np.array([len(s) for s in self.inputs])
        return np.ones(len(self), np.int64)


def cache_task_data(
    encoder: Any,
    task: Task,
    examples: Sequence[Any],
    encoded: EncodedData,
    cache: EmbeddingCache,
    *,
    batch_size: int = 64,
) -> CachedData:
    """Fetch (or compute once and store) the frozen encoder's vectors for a task's examples."""
    inputs = cache.get(encoder, task.cache_inputs(examples), kind=task.cache_kind, batch_size=batch_size)
    if isinstance(inputs, list):
        for i, (states, labels) in enumerate(zip(inputs, encoded.targets, strict=True)):
            if len(states) != len(labels):  # same tokenizer, same truncation: a mismatch is a bug, not bad input
                raise RuntimeError(f"{examples[i].source}: cached token states do not line up with the labels.")
    return CachedData(inputs, encoded)


def cached_runner(model: MultiTaskModel, name: str, data: CachedData) -> Runner:
    """Run only task ``name``'s head, on its cached vectors."""
    task, head, device = model.tasks[name], model.heads[name], model.encoder.device

    def run(index: np.ndarray) -> tuple[torch.Tensor, Any]:
        x, targets = task.cached_batch(data.inputs, data.encoded, index, device)
        return head(x), targets

    return run


def task_seed(seed: int, name: str) -> int:
    """A per-task seed that depends only on the run seed and the task's name."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


def head_steps(tc: TrainConfig, n: int, batch_size: int) -> int:
    """Optimizer steps of one head: ``max_steps``, or ``epochs`` passes over its ``n`` examples."""
    return tc.max_steps or max(1, math.ceil(tc.epochs * -(-n // batch_size)))


def train_head(
    model: MultiTaskModel, name: str, train: CachedData, *, tc: TrainConfig, batch_size: int
) -> Iterator[tuple[int, int, float, float]]:
    """Train one head from cached inputs; yields ``(step, total_steps, loss, lr)`` per optimizer step.

    The head starts from a seeded initialisation of its own, or from the weights ``init_from`` loaded.
    """
    seed = task_seed(tc.seed, name)
    task, head = model.tasks[name], model.heads[name]
    device = model.encoder.device
    generator = torch.Generator().manual_seed(seed)
    if task.config.init_from is None:  # a head from init_from keeps the weights build_model loaded into it
        with torch.no_grad():  # a fresh, seeded initialisation: independent of which other heads exist
            torch.manual_seed(seed)
            fresh = task.build_head(model.encoder.dim)
            head.load_state_dict(fresh.state_dict())
    batches = LengthGroupedBatches(train.lengths(), batch_size, seed=seed)
    total = head_steps(tc, len(train), batch_size)
    params = [p for p in head.parameters() if p.requires_grad]
    if not params:
        return
    optimizer, scheduler = build_optimizer(
        params, lr=tc.head_lr, weight_decay=tc.weight_decay, warmup=tc.warmup, total_steps=total, schedule=tc.schedule
    )
    head.train()
    for step in range(1, total + 1):
        x, targets = task.cached_batch(train.inputs, train.encoded, next(batches), device)
        with torch.random.fork_rng(devices=[]):  # dropout draws from this head's own generator
            torch.set_rng_state(generator.get_state())
            loss = task.loss(head, head(x), targets)
            generator.set_state(torch.get_rng_state())
        check_finite(loss, name, step)
        loss.backward()
        if tc.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        yield step, total, float(loss.detach()), scheduler.get_last_lr()[0]
    head.eval()


class HeadTrainer:
    """Frozen backbone: encode each task's data once into the cache, then train each head in turn from it."""

    def __init__(self, config: MTSTConfig, *, device: str | None = None) -> None:
        t: TrainConfig = config.train
        self.config, self.tc = config, t
        set_seed(t.seed)
        self.model = build_model(config, device=device)
        apply_freeze(self.model, t.freeze, frozen_heads=t.frozen_heads)
        for name, task in self.model.tasks.items():
            if not task.has_head:
                raise ValueError(
                    f"task {name!r} ({task.type}) has no head: with train.freeze: backbone it has nothing to "
                    "train. Fine-tune the backbone first (freeze: none), then train heads on it."
                )
        data = load_run_data(config, self.model)
        self.train_data, self.dev_data = data.train, data.dev
        cache = EmbeddingCache(t.cache_dir or DEFAULT_CACHE_DIR, dtype=t.cache_dtype)
        enc, bs = self.model.encoder, t.eval_batch_size
        self.train_cached: dict[str, CachedData] = {}
        self.dev_cached: dict[str, CachedData] = {}
        for name, task in self.model.tasks.items():
            self.train_cached[name] = cache_task_data(
                enc, task, data.train_examples[name], data.train[name], cache, batch_size=bs
            )
            if name in data.dev:
                self.dev_cached[name] = cache_task_data(
                    enc, task, data.dev_examples[name], data.dev[name], cache, batch_size=bs
                )
        self.head_steps = {
            n: head_steps(t, len(d), config.task(n).batch_size or t.batch_size)
            for n, d in self.train_cached.items()
            if n not in t.frozen_heads
        }
        self.total_steps = max(1, sum(self.head_steps.values()))
        self.state = TrainingState()
        self.is_main_process = True

    def wait_for_everyone(self) -> None:
        """One process: nothing to wait for."""

    def save(self, folder: Path) -> None:
        """A checkpoint of the heads and the counters (no optimizer: a resumed run retrains from the cache)."""
        save_checkpoint(folder, model=self.model, optimizer=None, scheduler=None, state=asdict(self.state))

    def restore(self, folder: Path) -> None:
        state = load_checkpoint(folder, model=self.model, optimizer=None, scheduler=None)
        self.state = TrainingState(**state)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Metrics of every task on its dev data, from the heads on cached vectors."""
        runners = {n: cached_runner(self.model, n, d) for n, d in self.dev_cached.items()}
        return evaluate(self.model, self.dev_data, batch_size=self.tc.eval_batch_size, runners=runners)

    def steps(self) -> Iterator[StepRecord]:
        """Train each head in turn; evaluate once at the end."""
        self.state.step = 0
        for name in self.head_steps:
            bs = self.config.task(name).batch_size or self.tc.batch_size
            for local, _, loss, lr in train_head(self.model, name, self.train_cached[name], tc=self.tc, batch_size=bs):
                self.state.step += 1
                record = StepRecord(
                    step=self.state.step,
                    total_steps=self.total_steps,
                    epoch=local / max(1, -(-len(self.train_cached[name]) // bs)),
                    task=name,
                    loss=loss,
                    lr=lr,
                    losses={name: loss},
                )
                if self.state.step == self.total_steps and self.dev_data:
                    record.metrics = self.evaluate()
                    record.score = score(record.metrics, self.model.tasks, self.tc.metric_for_best)
                    self.state.best_score, self.state.best_step, record.is_best = record.score, record.step, True
                yield record


def uses_cache(config: MTSTConfig) -> bool:
    """True when the run trains heads only, from cached embeddings (``freeze: backbone`` and ``use_cache``)."""
    return config.train.use_cache and parse_freeze(config.train.freeze)[0] == "backbone"
