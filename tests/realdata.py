"""Seeded samples of the real held-out sets (../shared/datasets) for the shipped models' quality tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mtst.tasks import read_splits

# task name -> (train file, dev file or None: TREC's dev is 10% of train held out)
HELD_OUT_FILES = {
    "topic": ("trec/train.tsv", None),
    "sentiment": ("sst2/train.tsv", "sst2/dev.tsv"),
    "entities": ("wikiann_en/train.conll", "wikiann_en/dev.conll"),
}


def held_out_samples(model: Any, datasets_dir: Path, size: int) -> dict[str, Any]:
    """``size`` seeded examples of each task's held-out dev set (seed 42 split), encoded for ``model``."""
    rng = np.random.default_rng(0)
    data = {}
    for name, (train, dev) in HELD_OUT_FILES.items():
        task = model.tasks[name]
        config = dataclasses.replace(
            task.config, train=str(datasets_dir / train), dev=str(datasets_dir / dev) if dev else None
        )
        held_out = read_splits(config, seed=42, splits=("dev",)).dev  # topic: the 10% of TREC train held out
        sample = [held_out[i] for i in sorted(rng.choice(len(held_out), size=size, replace=False))]
        data[name] = task.encode(sample, model.encoder.tokenizer, model.encoder.max_length)
    return data
