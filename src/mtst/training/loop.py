"""The full training engine on Hugging Face Accelerate: ``Trainer.steps()`` yields one ``StepRecord`` per step.

The same code runs on a CPU, one GPU, or several processes under ``accelerate launch``: every process draws
the same task each step (shared sampler seed) and its own batch of it (each epoch's batches are dealt out to
the processes: disjoint rows), and Accelerate averages the gradients. Logging, checkpoints and the best model
are the caller's (``run.train``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch import nn

from mtst.batching import LengthGroupedBatches
from mtst.checkpoint import load_checkpoint, save_checkpoint
from mtst.config import MTSTConfig, TrainConfig
from mtst.evaluation import evaluate, score
from mtst.freezing import apply_freeze
from mtst.losses import LossWeights
from mtst.model import MultiTaskModel
from mtst.optim import build_optimizer, layerwise_param_groups
from mtst.precision import resolve_precision
from mtst.sampling import TaskSampler
from mtst.training.setup import build_model, load_run_data


class TrainingModule(nn.Module):
    """Model and loss weights in one module, so ``accelerator.prepare`` wraps (and syncs) both."""

    def __init__(self, model: MultiTaskModel, weights: LossWeights) -> None:
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, features: dict[str, torch.Tensor], task: str, targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss to optimise, raw task loss to report) for one batch of ``task``."""
        output = self.model(features, tasks=[task])[task]
        raw = self.model.tasks[task].loss(self.model.head(task), output, targets)
        return self.weights(task, raw), raw


@dataclass
class StepRecord:
    """What one optimizer step did; ``metrics`` is set on steps that evaluated."""

    step: int
    total_steps: int
    epoch: float
    task: str
    loss: float
    lr: float
    metrics: dict[str, dict[str, float]] | None = None
    score: float | None = None
    is_best: bool = False
    stop: bool = False
    losses: dict[str, float] = field(default_factory=dict)  # each task's mean loss in this step
    batches: dict[str, int] = field(default_factory=dict)  # how many of its batches that mean covers (1 if absent)


@dataclass
class TrainingState:
    """Counters that, with the checkpointed objects, let a run resume exactly."""

    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    sampler: dict[str, Any] = field(default_factory=dict)
    batches: dict[str, dict[str, int]] = field(default_factory=dict)


def check_finite(loss: torch.Tensor, task: str, step: int) -> None:
    """Stop training with a clear error when a loss is NaN or infinite."""
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"The loss of task {task!r} is {loss.item()} at step {step}; training stopped. The last good "
            "checkpoint is kept: lower train.lr or check the data, then resume with --resume."
        )


def update_best(state: TrainingState, record: StepRecord, patience: int | None) -> None:
    """Mark ``record`` best if its score beats the state's; count evaluations without improvement."""
    best = state.best_score
    if best is None or (not math.isnan(record.score) and record.score > best):
        state.best_score, state.best_step = record.score, record.step
        state.evals_without_improvement = 0
        record.is_best = True
    else:
        state.evals_without_improvement += 1
    record.stop = patience is not None and state.evals_without_improvement >= patience


class Trainer:
    """The full engine: model, data, sampler, optimizer, scheduler and the Accelerator of one run."""

    def __init__(self, config: MTSTConfig, *, device: str | None = None) -> None:
        t: TrainConfig = config.train
        self.config, self.tc = config, t
        # Accelerate keeps mixed precision and accumulation in process-wide singletons; a second Trainer in the
        # same process (a notebook, a test suite) with other settings would be refused. The process group
        # (PartialState) is kept, so this is safe under `accelerate launch` too.
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
        # "auto" is bf16 only where the device computes it natively; "bf16" elsewhere runs fp32, with a warning
        target = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
        self.precision = resolve_precision(t.precision, target)
        self.accelerator = Accelerator(
            gradient_accumulation_steps=t.grad_accum,
            mixed_precision="bf16" if self.precision == "bf16" else "no",
            cpu=device == "cpu",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        set_seed(t.seed)
        self.model = build_model(config, device=self.accelerator.device)
        apply_freeze(self.model, t.freeze, frozen_heads=t.frozen_heads)
        data = load_run_data(config, self.model)
        self.train_data, self.dev_data = data.train, data.dev
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        self.batches = {  # one epoch plan shared by all processes; each takes its own, disjoint batches of it
            name: LengthGroupedBatches(
                d.lengths(),
                config.task(name).batch_size or t.batch_size,
                seed=t.seed * 1000 + world,
                rank=rank,
                world=world,
            )
            for name, d in self.train_data.items()
        }
        self.sampler = TaskSampler(
            {n: b.batches_per_epoch for n, b in self.batches.items()},
            t.sampling,
            temperature=t.temperature,
            seed=t.seed,
        )
        batches_per_epoch = sum(b.batches_per_epoch for b in self.batches.values())
        self.steps_per_epoch = max(1, batches_per_epoch // t.grad_accum)
        self.total_steps = t.max_steps or max(1, math.ceil(t.epochs * self.steps_per_epoch))
        self.loss_weights = LossWeights(
            {task.name: task.weight for task in config.tasks}, learned=t.loss_weighting == "uncertainty"
        ).to(self.accelerator.device)
        groups = layerwise_param_groups(
            self.model, lr=t.lr, head_lr=t.head_lr, layerwise_lr_decay=t.layerwise_lr_decay, weight_decay=t.weight_decay
        )
        if self.loss_weights.log_vars is not None:
            groups.append(
                {"params": list(self.loss_weights.parameters()), "lr": t.head_lr, "weight_decay": 0.0, "name": "loss"}
            )
        if not any(g["params"] for g in groups):
            raise ValueError("Nothing to train: every parameter is frozen (train.freeze / train.frozen_heads).")
        optimizer, self.scheduler = build_optimizer(
            groups,
            lr=t.lr,
            weight_decay=t.weight_decay,
            warmup=t.warmup,
            total_steps=self.total_steps,
            schedule=t.schedule,
        )
        self.module, self.optimizer = self.accelerator.prepare(TrainingModule(self.model, self.loss_weights), optimizer)
        self.state = TrainingState()

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    def wait_for_everyone(self) -> None:
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ checkpoints
    def save(self, folder: Path) -> None:
        """Write a resumable checkpoint (the main process writes; every process waits for it)."""
        self.state.sampler = self.sampler.state_dict()
        self.state.batches = {n: b.state_dict() for n, b in self.batches.items()}
        if self.accelerator.is_main_process:
            save_checkpoint(
                folder,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                state=asdict(self.state),
                extra=self.loss_weights,
            )
        self.accelerator.wait_for_everyone()

    def restore(self, folder: Path) -> None:
        """Continue from a checkpoint written by ``save``: weights, optimizer, schedule, sampler, data order.

        The learning rates and the schedule's length are this config's (a resume may change ``lr``, ``head_lr``,
        ``max_steps``); with the same config they are the checkpoint's, to the bit.
        """
        base_lrs = list(self.scheduler.base_lrs)  # this config's rates, before the checkpoint's replace them
        state = load_checkpoint(
            folder, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, extra=self.loss_weights
        )
        self.state = TrainingState(**state)
        saved = {str(k): int(v) for k, v in self.state.sampler.get("sizes", {}).items()}
        if saved != self.sampler.sizes:
            raise ValueError(
                f"Cannot resume from {folder}: the tasks' batches per epoch are {self.sampler.sizes}, the checkpoint's "
                f"{saved}. A batch_size (train.batch_size or a task's), a train file, max_train_examples or the number "
                "of processes changed since it was written. Resume with the run's settings and data (its "
                "config.yaml), or train into a new --output folder."
            )
        self.sampler.load_state_dict(self.state.sampler)
        for name, b in self.batches.items():
            b.load_state_dict(self.state.batches[name])
        self.scheduler.base_lrs = base_lrs
        for group, base, factor in zip(self.optimizer.param_groups, base_lrs, self.scheduler.lr_lambdas, strict=True):
            group["initial_lr"], group["lr"] = base, base * factor(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    # ------------------------------------------------------------------ the loop
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Metrics of every task on its dev data."""
        return evaluate(
            self.model, self.dev_data, batch_size=self.tc.eval_batch_size, autocast=self.precision == "bf16"
        )

    def steps(self) -> Iterator[StepRecord]:
        """Train until the last step (or early stopping), yielding one record per optimizer step."""
        t, acc = self.tc, self.accelerator
        pad_id = self.model.encoder.tokenizer.pad_token_id or 0
        eval_every = t.eval_every or self.steps_per_epoch
        self.module.train()
        while self.state.step < self.total_steps:
            step_losses: dict[str, list[float]] = {}
            for _ in range(t.grad_accum):
                task = next(self.sampler)
                index = next(self.batches[task])
                features, targets = self.model.tasks[task].collate(self.train_data[task], index, pad_id)
                features = {k: v.to(acc.device) for k, v in features.items()}
                targets = targets.to(acc.device) if isinstance(targets, torch.Tensor) else targets
                with acc.accumulate(self.module), acc.autocast():
                    loss, raw = self.module(features, task, targets)
                    check_finite(loss, task, self.state.step + 1)
                    acc.backward(loss)
                    if acc.sync_gradients and t.max_grad_norm is not None:
                        acc.clip_grad_norm_(self.module.parameters(), t.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                step_losses.setdefault(task, []).append(float(raw.detach()))  # one entry per batch
            self.scheduler.step()
            self.state.step += 1
            step = self.state.step
            means = {k: sum(v) / len(v) for k, v in step_losses.items()}
            record = StepRecord(
                step=step,
                total_steps=self.total_steps,
                epoch=step / self.steps_per_epoch,
                task=task,
                loss=float(sum(means.values()) / len(means)),
                lr=self.scheduler.get_last_lr()[0],
                losses=means,
                batches={k: len(v) for k, v in step_losses.items()},
            )
            if self.dev_data and (step % eval_every == 0 or step == self.total_steps):
                record.metrics = self.evaluate()
                self.module.train()
                record.score = score(record.metrics, self.model.tasks, t.metric_for_best)
                update_best(self.state, record, t.early_stopping_patience)
            yield record
            if record.stop:
                return
