"""Optimisation: the learning-rate schedule (a pure function), warm-up, AdamW and layer-wise parameter groups.

``build_optimizer`` is the one place that turns a ``TrainConfig``'s rates into an optimizer and its scheduler,
for the full training loop and for head training from the cache alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from mtst.freezing import all_params, backbone_parts, unique_params

SCHEDULES = ("linear", "cosine", "constant")


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


def warmup_steps(warmup: float, total_steps: int) -> int:
    """Warm-up steps: ``warmup`` itself when >= 1, else that share of ``total_steps``."""
    return int(warmup) if warmup >= 1 else int(round(warmup * total_steps))


def _check_rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
    return float(value)


def layerwise_param_groups(
    model: Any,
    *,
    lr: float,
    head_lr: float | None = None,
    layerwise_lr_decay: float | None = None,
    weight_decay: float = 0.01,
) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters, each with ``params``, ``lr``, ``weight_decay``, ``name``.

    With decay d the top layer (and pooler) get ``lr``, layer i from the top ``lr * d**i``, the embeddings
    ``lr * d**n_layers``; heads get ``head_lr`` (default ``lr``). Biases and norm weights (ndim < 2) get no decay.
    """
    lr = _check_rate("lr", lr)
    head_lr = lr if head_lr is None else _check_rate("head_lr", head_lr)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float) or not weight_decay >= 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}.")
    if layerwise_lr_decay is not None and (
        isinstance(layerwise_lr_decay, bool)
        or not isinstance(layerwise_lr_decay, int | float)
        or not 0 < layerwise_lr_decay <= 1
    ):
        raise ValueError(
            f"train.layerwise_lr_decay must be in (0, 1] (e.g. 0.9; 1 = no decay) or null, got {layerwise_lr_decay!r}."
        )

    backbone = model.encoder.backbone
    # (name, lr, params) before the trainable / no-decay split, bottom of the network first.
    blocks: list[tuple[str, float, list[nn.Parameter]]] = []
    if layerwise_lr_decay is None:
        blocks.append(("backbone", lr, unique_params(backbone.parameters())))
    else:
        parts = backbone_parts(backbone)
        n_layers = len(parts.layers)
        blocks.append(("backbone.embeddings", lr * layerwise_lr_decay**n_layers, parts.embeddings))
        for i, layer in enumerate(parts.layers):
            blocks.append((f"backbone.layer.{i}", lr * layerwise_lr_decay ** (n_layers - 1 - i), layer))
        blocks.append((parts.top_name, lr, parts.top))
    for name, head in model.heads.items():
        blocks.append((f"heads.{name}", head_lr, list(head.parameters())))
    placed = {id(p) for _, _, ps in blocks for p in ps}
    blocks.append(("other", lr, [p for p in all_params(model) if id(p) not in placed]))  # e.g. encoder extras

    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for name, group_lr, block in blocks:
        params = [p for p in block if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]  # biases, LayerNorm weights
        if decay:
            groups.append({"params": decay, "lr": group_lr, "weight_decay": float(weight_decay), "name": name})
        if no_decay:
            groups.append({"params": no_decay, "lr": group_lr, "weight_decay": 0.0, "name": f"{name}.no_decay"})
    return groups


def make_adamw(params: Any, *, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW with PyTorch's fused kernel where the device has one (CPU, CUDA), else the multi-tensor one.

    Left to its defaults on CPU, AdamW updates one tensor at a time: for MiniLM-L6 on 2 cores that step took
    77 ms against 13.5 ms fused (``bench/train_speed_ner.py``), a fifth of a training step.
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


def build_optimizer(
    params: Sequence[Any], *, lr: float, weight_decay: float, warmup: float, total_steps: int, schedule: str
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``params`` (tensors or parameter groups) and its warm-up + decay schedule over ``total_steps``."""
    optimizer = make_adamw(params, lr=lr, weight_decay=weight_decay)
    factor = partial(
        lr_factor, warmup_steps=warmup_steps(warmup, total_steps), total_steps=total_steps, schedule=schedule
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
