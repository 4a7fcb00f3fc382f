"""Which devices this machine has: a device asked for that is not there is refused with what to use instead."""

from __future__ import annotations

import torch

DEVICE_HINT = "use 'cpu', 'cuda', 'cuda:N' or 'mps'"


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` if this machine has it; else a ``ValueError`` naming what it has."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {device!r} is not a device name: {DEVICE_HINT}.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"this torch ({torch.__version__}) is a CPU-only build"
                if torch.version.cuda is None
                else "no CUDA GPU is visible (drivers, CUDA_VISIBLE_DEVICES)"
            )
            raise ValueError(f"device {device!r} is not available: {why}. Use device='cpu'.")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device {device!r} is not available: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}."
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} is not available: no Apple GPU (MPS) here. Use device='cpu'.")
    return dev
