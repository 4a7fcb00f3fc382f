"""Progress bars on or off for the whole process (``mtst -q``), like the switches of transformers and huggingface_hub.

mtst's bars ask ``progress_bars_disabled()`` besides their own ``show_progress_bar``; ``disable_progress_bars``
also turns off those of transformers and huggingface_hub (model loading, downloads, saving).
"""

from __future__ import annotations

from huggingface_hub.utils import disable_progress_bars as hub_disable
from huggingface_hub.utils import enable_progress_bars as hub_enable
from transformers.utils import logging as hf_logging

_disabled = False


def progress_bars_disabled() -> bool:
    """True after ``disable_progress_bars()`` (until ``enable_progress_bars()``)."""
    return _disabled


def disable_progress_bars() -> None:
    """Hide every progress bar mtst, transformers and huggingface_hub draw in this process."""
    global _disabled
    _disabled = True
    hf_logging.disable_progress_bar()
    hub_disable()


def enable_progress_bars() -> None:
    """Show progress bars again (each bar still follows its own ``show_progress_bar``)."""
    global _disabled
    _disabled = False
    hf_logging.enable_progress_bar()
    hub_enable()
