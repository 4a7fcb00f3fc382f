"""What a test needs from its environment: a skip where it is missing, a failure instead under MTST_STRICT_TESTS=1.

``.ci/run`` sets ``MTST_STRICT_TESTS=1``, so a CI machine without ../shared/datasets or an optional package
fails the tests that need them instead of passing with those tests quietly skipped.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

STRICT_ENV = "MTST_STRICT_TESTS"


def strict() -> bool:
    """True when missing requirements fail the test (CI) rather than skip it."""
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0", "false", "no")


def missing(what: str) -> NoReturn:
    """Skip the running test because ``what`` is missing, or fail it under ``MTST_STRICT_TESTS=1``."""
    if strict():
        pytest.fail(f"{what}; {STRICT_ENV}=1 (set by .ci/run) makes this a failure, not a skip.", pytrace=False)
    pytest.skip(what)


def need_module(name: str) -> ModuleType:
    """Import ``name`` for a test (as ``pytest.importorskip``, but a failure under ``MTST_STRICT_TESTS=1``)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"{name} is not installed ({e})")
