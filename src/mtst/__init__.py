"""mtst: multi-task sentence transformers.

Encode sentences with a pretrained transformer, fine-tune it contrastively, and put several
task heads on one shared backbone. Nothing is loaded at import time: the names below are
imported on first use (``from mtst import MultiTaskModel`` loads torch then, ``import mtst`` does not).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mtst.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from mtst.config import MTSTConfig, load_config
    from mtst.encoder import SentenceEncoder
    from mtst.evaluation import evaluate_model
    from mtst.model import MultiTaskModel
    from mtst.runtime.encoder import OnnxSentenceEncoder
    from mtst.runtime.model import OnnxMultiTaskModel
    from mtst.training import train

# public name -> the module that defines it
_LAZY = {
    "SentenceEncoder": "mtst.encoder",
    "MultiTaskModel": "mtst.model",
    "OnnxSentenceEncoder": "mtst.runtime.encoder",
    "OnnxMultiTaskModel": "mtst.runtime.model",
    "MTSTConfig": "mtst.config",
    "load_config": "mtst.config",
    "train": "mtst.training",
    "evaluate_model": "mtst.evaluation",
}

__all__ = [
    "MTSTConfig",
    "MultiTaskModel",
    "OnnxMultiTaskModel",
    "OnnxSentenceEncoder",
    "SentenceEncoder",
    "__version__",
    "evaluate_model",
    "load_config",
    "train",
]


def __getattr__(name: str):
    # Lazy import: `import mtst` stays cheap and the CLI starts fast.
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'mtst' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
