"""Numeric precision of training and inference: the valid choices and what the machine supports.

bf16 pays only where the hardware computes it natively: on a CPU with AVX-512 BF16 or AMX, bf16 autocast ran
MiniLM about 1.9x faster than fp32; on an AVX2-only CPU it was about 8x slower (emulated). ``"auto"`` picks
bf16 only where it is native, and an explicit ``"bf16"`` elsewhere falls back to fp32 with a warning.

``"auto"`` is the default of training (``train.precision``), ``encode`` and ``predict``; ``$MTST_PRECISION``
changes that default (``fp32`` for results identical to sentence-transformers' fp32 on every machine).
Here ``precision`` is the *compute* precision; sentence-transformers' ``encode(precision=...)`` is the output
quantization (int8, binary, ...): ``check_precision`` maps ``"float32"`` / ``"bfloat16"`` to ours and refuses
the quantization names with what to use instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")  # train.precision, encode / predict and --precision
INFERENCE_PRECISIONS = PRECISIONS  # the same choices (the older name)
DEFAULT_PRECISION = "auto"
PRECISION_ENV = "MTST_PRECISION"  # overrides DEFAULT_PRECISION, as ACCELERATE_MIXED_PRECISION does for Accelerate
# the same compute precision under torch's and sentence-transformers' names
PRECISION_ALIASES = {"float32": "fp32", "bfloat16": "bf16"}
# sentence-transformers' encode(precision=...) values that quantize the output: not a compute precision
OUTPUT_QUANTIZATIONS = ("int8", "uint8", "binary", "ubinary")
# x86 features whose instructions compute bf16 matrix products natively (torch.cpu.get_capabilities keys)
NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16")

_warned: set[str] = set()


def cpu_capability() -> str:
    """One line on the CPU: torch's vector ISA and the bf16/int8 features it reports (printed with benchmarks)."""
    caps = _cpu_features()
    shown = [k for k in (*NATIVE_BF16_FEATURES, "amx_int8", "avx512_vnni", "avx_vnni") if caps.get(k)]
    return f"{torch.backends.cpu.get_cpu_capability()} ({', '.join(shown) or 'no bf16 or VNNI features'})"


def _cpu_features() -> dict[str, object]:
    get = getattr(torch.cpu, "get_capabilities", None)  # public since torch 2.10
    return dict(get()) if get is not None else {}


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True if this CPU runs bf16 matrix products natively: AVX-512 BF16 or AMX-BF16, with AVX-512 kernels on."""
    features = _cpu_features()
    native = any(bool(features.get(k)) for k in NATIVE_BF16_FEATURES)
    # ATEN_CPU_CAPABILITY=avx2 (or an older torch) caps torch's own kernels below AVX-512: bf16 would be emulated.
    return native and torch.backends.cpu.get_cpu_capability() == "AVX512"


def device_has_native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively (a CUDA GPU that supports it, or a CPU as above)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def check_precision(precision: str, *, choices: tuple[str, ...] = PRECISIONS) -> str:
    """``precision`` as one of ``choices`` (``"float32"`` / ``"bfloat16"`` mapped), else a ``ValueError`` saying why."""
    if isinstance(precision, str) and precision in OUTPUT_QUANTIZATIONS:
        raise ValueError(
            f"precision={precision!r} is sentence-transformers' output quantization; in mtst, precision is the "
            f"compute precision ({', '.join(choices)}). Quantize the float32 embeddings afterwards with "
            f"sentence_transformers.quantization.quantize_embeddings(emb, precision={precision!r}), or store int8 "
            "with `mtst encode --output DIR --dtype int8`."
        )
    precision = PRECISION_ALIASES.get(precision, precision) if isinstance(precision, str) else precision
    if precision not in choices:
        raise ValueError(f"precision must be one of {', '.join(choices)}; got {precision!r}.")
    return precision


def default_precision() -> str:
    """The precision used when none is given: ``$MTST_PRECISION`` if set, else ``"auto"``."""
    value = os.environ.get(PRECISION_ENV, "").strip()
    if not value:
        return DEFAULT_PRECISION
    try:
        return check_precision(value)
    except ValueError as e:
        raise ValueError(f"${PRECISION_ENV}: {e}") from None


def resolve_precision(precision: str | None, device: torch.device | str = "cpu") -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` (``None``: ``default_precision()``, ``"auto"``) means on ``device``.

    ``"auto"`` is bf16 where the device computes it natively, else fp32. ``"bf16"`` on a device without native
    bf16 falls back to fp32 with a warning, once per device type: there it is several times slower.
    """
    precision = default_precision() if precision is None else check_precision(precision)
    native = device_has_native_bf16(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        kind = torch.device(device).type
        if kind not in _warned:
            _warned.add(kind)
            logger.warning(
                "precision='bf16' asked for, but this %s has no native bf16 (%s): running fp32 instead, since "
                "emulated bf16 is several times slower. precision='auto' picks the right one silently.",
                kind,
                cpu_capability() if kind == "cpu" else "no bf16 support",
            )
        return "fp32"
    return precision


@contextlib.contextmanager
def inference_context(module: torch.nn.Module, device: torch.device, precision: str | None) -> Iterator[None]:
    """Eval mode, ``torch.inference_mode`` and bf16 autocast where ``precision`` resolves to bf16; restores the mode."""
    bf16 = resolve_precision(precision, device) == "bf16"
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            yield
    finally:
        module.train(was_training)
