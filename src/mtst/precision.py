"""Numeric precision of training and inference: the valid choices and what the machine supports."""

from __future__ import annotations

PRECISIONS = ("fp32", "bf16")
