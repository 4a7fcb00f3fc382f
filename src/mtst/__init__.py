"""mtst: multi-task sentence transformers.

Encode sentences with a pretrained transformer, fine-tune it contrastively, and put several
task heads on one shared backbone. Nothing is loaded at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtst.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from mtst.encoder import SentenceEncoder

__all__ = ["SentenceEncoder", "__version__"]


def __getattr__(name: str):
    # Lazy import: `import mtst` stays cheap and the CLI starts fast.
    if name == "SentenceEncoder":
        from mtst.encoder import SentenceEncoder

        return SentenceEncoder
    raise AttributeError(f"module 'mtst' has no attribute {name!r}")
