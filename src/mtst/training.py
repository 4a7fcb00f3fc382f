"""The multi-task training loop on Hugging Face Accelerate.

``train_steps`` is a generator of step records (what happened); ``train`` is the caller that writes
metrics, curves and checkpoints. The same code runs on a CPU, one GPU, or several processes under
``accelerate launch``: every process draws the same task each step (shared sampler seed) and its own
batch of it (per-process data order), and Accelerate averages the gradients.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtst.batching import EncodedData, LengthGroupedBatches, collate, encode_examples
from mtst.cache import EmbeddingCache
from mtst.checkpoint import load_checkpoint, save_checkpoint
from mtst.config import MTSTConfig, TrainConfig, save_config
from mtst.diskio import check_writable_folder
from mtst.evaluation import evaluate, score
from mtst.freezing import apply_freeze, layerwise_param_groups, make_adamw, parse_freeze
from mtst.headtraining import CachedData, cache_task_data, head_steps, train_head
from mtst.model import MultiTaskModel
from mtst.sampling import TaskSampler
from mtst.taskdata import load_task_splits

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "mtst" / "embeddings"


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then linear, cosine or constant."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


class LossWeights(nn.Module):
    """Per-task loss weights: static (from the config) or learned uncertainty weights (Kendall et al., 2018).

    With uncertainty weighting each task has a learned log-variance ``s``; its loss becomes ``exp(-s) * L + s``.
    """

    def __init__(self, static: dict[str, float], *, learned: bool) -> None:
        super().__init__()
        self.static = dict(static)
        self.learned = learned
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in static}) if learned else None

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        if self.log_vars is None:
            return self.static[task] * loss
        s = self.log_vars[task]
        return torch.exp(-s) * loss + s


class TrainingModule(nn.Module):
    """Model and loss weights in one module, so ``accelerator.prepare`` wraps (and syncs) both."""

    def __init__(self, model: MultiTaskModel, weights: LossWeights) -> None:
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, features: dict[str, torch.Tensor], task: str, targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss to optimise, raw task loss to report) for one batch of ``task``."""
        output = self.model(features, tasks=[task])[task]
        head = self.model.heads[task] if task in self.model.heads else None  # noqa: SIM401 (ModuleDict)
        raw = self.model.tasks[task].loss(head, output, targets)
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
    losses: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainingState:
    """Counters that, with the checkpointed objects, let a run resume exactly."""

    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    sampler: dict[str, Any] = field(default_factory=dict)
    batches: dict[str, dict[str, int]] = field(default_factory=dict)


class Trainer:
    """Everything a run holds: model, data, sampler, optimizer, scheduler and the Accelerator."""

    def __init__(self, config: MTSTConfig, *, device: str | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        t: TrainConfig = config.train
        self.config, self.tc = config, t
        # Accelerate keeps mixed precision and accumulation in process-wide singletons; a second Trainer in the
        # same process (a notebook, a test suite) with other settings would be refused. The process group
        # (PartialState) is kept, so this is safe under `accelerate launch` too.
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
        self.accelerator = Accelerator(
            gradient_accumulation_steps=t.grad_accum,
            mixed_precision="bf16" if t.precision == "bf16" else "no",
            cpu=device == "cpu",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        set_seed(t.seed)
        self.model = MultiTaskModel.from_config(config, device=self.accelerator.device)
        apply_freeze(self.model, t.freeze, frozen_heads=t.frozen_heads)
        tok, max_len = self.model.encoder.tokenizer, self.model.encoder.max_length
        self.train_data: dict[str, EncodedData] = {}
        self.dev_data: dict[str, EncodedData] = {}
        self.cached = t.use_cache and parse_freeze(t.freeze)[0] == "backbone"
        self.train_cached: dict[str, CachedData] = {}
        self.dev_cached: dict[str, CachedData] = {}
        cache = EmbeddingCache(t.cache_dir or DEFAULT_CACHE_DIR, dtype=t.cache_dtype) if self.cached else None
        for tcfg in config.tasks:
            task = self.model.tasks[tcfg.name]
            if self.cached and task.level == "pair":
                raise ValueError(
                    f"task {tcfg.name!r} ({task.type}) has no head: with train.freeze: backbone it has nothing to "
                    "train. Fine-tune the backbone first (freeze: none), then train heads on it."
                )
            splits = load_task_splits(tcfg, seed=t.seed, splits=("train", "dev"))
            if splits.train is None:
                raise ValueError(f"task {tcfg.name!r} has no 'train:' data to train on.")
            self.train_data[tcfg.name] = encode_examples(task, splits.train, tok, max_len)
            if splits.dev is not None:
                self.dev_data[tcfg.name] = encode_examples(task, splits.dev, tok, max_len)
            if cache is not None:
                self.train_cached[tcfg.name] = cache_task_data(
                    self.model, tcfg.name, splits.train, self.train_data[tcfg.name], cache, batch_size=t.eval_batch_size
                )
                if splits.dev is not None:
                    self.dev_cached[tcfg.name] = cache_task_data(
                        self.model, tcfg.name, splits.dev, self.dev_data[tcfg.name], cache, batch_size=t.eval_batch_size
                    )
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        self.batches = {
            name: LengthGroupedBatches(
                data.lengths(), config.task(name).batch_size or t.batch_size, seed=t.seed * 1000 + 17 * rank + world
            )
            for name, data in self.train_data.items()
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
        if self.cached:
            self.head_steps = {
                n: head_steps(t, len(d), config.task(n).batch_size or t.batch_size)
                for n, d in self.train_cached.items()
                if n not in t.frozen_heads
            }
            self.total_steps = max(1, sum(self.head_steps.values()))
        warmup = int(t.warmup) if t.warmup >= 1 else int(round(t.warmup * self.total_steps))
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
        optimizer = make_adamw(groups, lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(lr_factor, warmup_steps=warmup, total_steps=self.total_steps, schedule=t.schedule)
        )
        self.module, self.optimizer = self.accelerator.prepare(TrainingModule(self.model, self.loss_weights), optimizer)
        self.state = TrainingState()

    # ------------------------------------------------------------------ checkpoints
    def save(self, folder: Path) -> None:
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
        state = load_checkpoint(
            folder, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, extra=self.loss_weights
        )
        self.state = TrainingState(**state)
        self.sampler.load_state_dict(self.state.sampler)
        for name, b in self.batches.items():
            b.load_state_dict(self.state.batches[name])

    # ------------------------------------------------------------------ the loop
    def evaluate(self) -> dict[str, dict[str, float]]:
        return evaluate(
            self.model,
            self.dev_data,
            batch_size=self.tc.eval_batch_size,
            autocast=self.tc.precision == "bf16" and not self.cached,
            cached=self.dev_cached,
        )

    def _cached_steps(self) -> Iterator[StepRecord]:
        """Frozen backbone: train each head in turn from cached vectors; evaluate once at the end.

        The run restarts from step 0 on resume: head training from a cache takes seconds.
        """
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
                    record.score = score(record.metrics, self.model, self.tc.metric_for_best)
                    self.state.best_score, self.state.best_step, record.is_best = record.score, record.step, True
                yield record

    def steps(self) -> Iterator[StepRecord]:
        """Train until the last step (or early stopping), yielding one record per optimizer step."""
        if self.cached:
            yield from self._cached_steps()
            return
        t, acc = self.tc, self.accelerator
        pad_id = self.model.encoder.tokenizer.pad_token_id or 0
        eval_every = t.eval_every or self.steps_per_epoch
        self.module.train()
        while self.state.step < self.total_steps:
            step_losses: dict[str, list[float]] = {}
            for _ in range(t.grad_accum):
                task = next(self.sampler)
                index = next(self.batches[task])
                features, targets = collate(self.model.tasks[task], self.train_data[task], index, pad_id)
                features = {k: v.to(acc.device) for k, v in features.items()}
                targets = targets.to(acc.device) if isinstance(targets, torch.Tensor) else targets
                with acc.accumulate(self.module), acc.autocast():
                    loss, raw = self.module(features, task, targets)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"The loss of task {task!r} is {loss.item()} at step {self.state.step + 1}; training "
                            "stopped. The last good checkpoint is kept: lower train.lr or check the data, then "
                            "resume with --resume."
                        )
                    acc.backward(loss)
                    if acc.sync_gradients and t.max_grad_norm is not None:
                        acc.clip_grad_norm_(self.module.parameters(), t.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                step_losses.setdefault(task, []).append(float(raw.detach()))
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
            )
            if self.dev_data and (step % eval_every == 0 or step == self.total_steps):
                record.metrics = self.evaluate()
                self.module.train()
                record.score = score(record.metrics, self.model, t.metric_for_best)
                best = self.state.best_score
                if best is None or (not math.isnan(record.score) and record.score > best):
                    self.state.best_score, self.state.best_step = record.score, step
                    self.state.evals_without_improvement = 0
                    record.is_best = True
                else:
                    self.state.evals_without_improvement += 1
                patience = t.early_stopping_patience
                record.stop = patience is not None and self.state.evals_without_improvement >= patience
            yield record
            if record.stop:
                return


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records past ``step`` (from the part of a killed run that the checkpoint does not hold)."""
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        path.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")


def train(
    config: MTSTConfig,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[StepRecord], None] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Train the config's tasks on one shared backbone; write the best model, metrics and curves to ``output_dir``.

    ``output_dir/model`` holds the best model (the last one if no task has dev data), ``checkpoint/`` the
    state to ``resume`` from, ``metrics.jsonl`` every logged loss and evaluation, ``curves.png`` their plot.
    """
    from tqdm.auto import tqdm

    out = Path(output_dir)
    ckpt = out / CHECKPOINT_DIR
    if resume:
        if not (ckpt / "trainer_state.json").exists():
            raise FileNotFoundError(f"Cannot resume: {ckpt} holds no checkpoint. Start without --resume.")
    else:
        check_writable_folder(out, overwrite=overwrite, what="training run")
    trainer = Trainer(config, device=device)
    acc, t = trainer.accelerator, config.train
    metrics_file = out / METRICS_FILE
    if acc.is_main_process and not resume:
        if out.exists() and overwrite:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    acc.wait_for_everyone()
    if resume:
        trainer.restore(ckpt)
        if acc.is_main_process:
            _truncate_metrics(metrics_file, trainer.state.step)
    save_every = t.save_every
    last_metrics: dict[str, dict[str, float]] | None = None
    bar = tqdm(
        total=trainer.total_steps,
        initial=trainer.state.step,
        desc="Training",
        disable=not (progress and acc.is_main_process),
    )
    for record in trainer.steps():
        bar.update(1)
        bar.set_postfix(task=record.task, loss=f"{record.loss:.4f}")
        main = acc.is_main_process
        if main and (record.step % t.log_every == 0 or record.step == 1):
            _append_jsonl(
                metrics_file,
                {"step": record.step, "epoch": round(record.epoch, 4), "lr": record.lr, "loss": record.losses},
            )
        if record.metrics is not None:
            last_metrics = record.metrics
            if main:
                _append_jsonl(metrics_file, {"step": record.step, "eval": record.metrics, "score": record.score})
                if record.is_best:
                    trainer.model.save(out / MODEL_DIR)
        due = (save_every and record.step % save_every == 0) or (save_every is None and record.metrics is not None)
        if due or record.step == trainer.total_steps or record.stop:
            trainer.save(ckpt)
        if on_step is not None:
            on_step(record)
    bar.close()
    if acc.is_main_process:
        if not trainer.dev_data:
            trainer.model.save(out / MODEL_DIR)
        from mtst.plotting import plot_training_curves

        plot_training_curves(metrics_file, out / "curves.png")
    acc.wait_for_everyone()
    return {
        "steps": trainer.state.step,
        "best_step": trainer.state.best_step,
        "best_score": trainer.state.best_score,
        "final_metrics": last_metrics,
        "model_dir": str(out / MODEL_DIR),
    }
