"""The export's self-check: the written graph and the torch model on the same sentences, compared.

fp32: every output (embedding, logits, scores, emissions) within ``FP32_MAX_ABS_DIFF`` of torch's.
int8: mean cosine of the embeddings to torch's fp32 ones at least ``INT8_MIN_COSINE``, and per head at least
``INT8_MIN_AGREEMENT`` of the predictions the same (labels; word tags of token tasks; regression scores
within ``REGRESSION_TOLERANCE`` of the scores' range). A head is judged on the check's sentences, or, given a
task file (``check_data``), on up to ``CHECK_EXAMPLES`` of its own dev examples: a question-topic head's
labels on statements and reviews mean little, and flip between fp32 and int8 where the head is unsure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtst.config import load_config
from mtst.data.examples import TokenExample
from mtst.encoder import SentenceEncoder
from mtst.model import MultiTaskModel
from mtst.runtime.encoder import OnnxSentenceEncoder
from mtst.runtime.model import OnnxMultiTaskModel
from mtst.runtime.session import EMBEDDING_OUTPUT
from mtst.tasks import read_splits
from mtst.textfiles import read_lines

FP32_MAX_ABS_DIFF = 1e-4
INT8_MIN_COSINE = 0.99
INT8_MIN_AGREEMENT = 0.98
REGRESSION_TOLERANCE = 0.02  # a regression prediction agrees within 2% of the range of the torch scores
MIN_TEXTS = 10
CHECK_EXAMPLES = 200  # per task, from its dev split, with check_data
SAMPLE_FILE = Path(__file__).resolve().parent / "assets" / "export_sample.txt"


def sample_texts(calibration: str | Path | None = None) -> list[str]:
    """The check's sentences: ``calibration`` (one text a line) or the sample set shipped with mtst."""
    texts = [t for t in read_lines(calibration or SAMPLE_FILE) if t.strip()]
    if len(texts) < MIN_TEXTS:
        raise ValueError(f"{calibration}: the self-check needs at least {MIN_TEXTS} texts, found {len(texts)}.")
    return texts


def task_check_texts(check_data: str | Path, tasks: Sequence[str], *, n: int = CHECK_EXAMPLES) -> dict[str, list[str]]:
    """Up to ``n`` seeded dev examples of each of ``tasks`` that the task file ``check_data`` gives dev data for
    (held out of train as it says, with its seed)."""
    config = load_config(check_data)
    rng = np.random.default_rng(0)
    out: dict[str, list[str]] = {}
    for task in config.tasks:
        if task.name not in tasks:
            continue
        dev = read_splits(task, seed=config.train.seed, splits=("dev",)).dev or []
        picked = sorted(rng.choice(len(dev), size=min(n, len(dev)), replace=False)) if dev else []
        texts = [" ".join(ex.tokens) if isinstance(ex, TokenExample) else ex.text for ex in (dev[i] for i in picked)]
        if texts:
            out[task.name] = texts
    if not out:
        named = ", ".join(t.name for t in config.tasks)
        raise ValueError(
            f"{check_data}: none of its tasks ({named}) is a task of this model ({', '.join(tasks)}) with dev data "
            "(dev: or dev_fraction:). Name the model's tasks and their data, as in the config it was trained with."
        )
    return out


@dataclass
class CheckFigures:
    """What the self-check measured, and which thresholds were missed (``failures``)."""

    quantize: str
    texts: int
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per output, over every position
    mean_cosine: float = 1.0  # embeddings vs torch fp32
    min_cosine: float = 1.0
    agreement: dict[str, float] = field(default_factory=dict)  # per task with a head
    agreement_on: dict[str, str] = field(default_factory=dict)  # per task: "N dev examples" or "N sentences"
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def lines(self) -> list[str]:
        """The figures, one line each, as the CLI prints them."""
        out = [f"embedding cosine to torch fp32: mean {self.mean_cosine:.5f}, min {self.min_cosine:.5f}"]
        out += [f"max |diff| {name}: {d:.2e}" for name, d in self.max_abs_diff.items()]
        out += [
            f"agreement {name} ({self.agreement_on.get(name, f'{self.texts} sentences')}): {a:.2%}"
            for name, a in self.agreement.items()
        ]
        return out


def check_export(
    source: MultiTaskModel | SentenceEncoder,
    graph: nn.Module,
    loaded: OnnxMultiTaskModel | OnnxSentenceEncoder,
    texts: list[str],
    *,
    quantize: str,
    batch_size: int = 32,
    task_texts: Mapping[str, list[str]] | None = None,
) -> CheckFigures:
    """Run ``graph`` (torch) and the loaded export on ``texts`` and compare them (see the module docstring).

    ``task_texts``: each head named there is judged on its own texts (``task_check_texts``), not on ``texts``.
    """
    figures = CheckFigures(quantize=quantize, texts=len(texts))
    runtime = loaded.encoder if isinstance(loaded, OnnxMultiTaskModel) else loaded
    torch_encoder = graph.encoder
    ids = torch_encoder.token_ids(texts, warn=False)
    diffs = dict.fromkeys(graph.output_names, 0.0)
    cosines = []
    with torch.inference_mode():
        for _, features in torch_encoder.batches(ids, batch_size, show_progress_bar=False):
            inputs = [features.get(n, torch.zeros_like(features["input_ids"])) for n in graph.input_names]
            expected = dict(zip(graph.output_names, graph(*inputs), strict=True))
            got = runtime.outputs(features)
            for name, ref in expected.items():
                diffs[name] = max(diffs[name], float((ref.float() - got[name]).abs().max()))
            a, b = expected[EMBEDDING_OUTPUT].float(), got[EMBEDDING_OUTPUT]  # [batch, dim]
            cosines.append(torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy())
    cos = np.concatenate(cosines)
    figures.max_abs_diff, figures.mean_cosine, figures.min_cosine = diffs, float(cos.mean()), float(cos.min())
    if isinstance(source, MultiTaskModel) and isinstance(loaded, OnnxMultiTaskModel):
        options = {"word_tags": True, "batch_size": batch_size, "show_progress_bar": False, "precision": "fp32"}
        own = dict(task_texts or {})
        heads = [t.name for t in source.tasks.values() if t.has_head]
        shared = [name for name in heads if name not in own]
        if shared:
            expected_rows, got_rows = source.predict(texts, **options), loaded.predict(texts, **options)
            figures.agreement.update({name: agreement(name, expected_rows, got_rows) for name in shared})
        for name in (n for n in heads if n in own):
            one = {**options, "tasks": [name]}
            expected_rows, got_rows = source.predict(own[name], **one), loaded.predict(own[name], **one)
            figures.agreement[name] = agreement(name, expected_rows, got_rows)
            figures.agreement_on[name] = f"{len(own[name])} dev examples"
        figures.agreement = {name: figures.agreement[name] for name in heads}  # in task order
    figures.failures = failures(figures)
    return figures


def agreement(name: str, expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> float:
    """Share of task ``name``'s predictions that match: labels, word tags, or scores within the tolerance."""
    words = f"{name}_words"
    if expected and words in expected[0]:  # token task: compare every word's tag
        rows = zip(expected, got, strict=True)
        pairs = [(e["tag"], g["tag"]) for a, b in rows for e, g in zip(a[words], b[words], strict=True)]
        return float(np.mean([x == y for x, y in pairs])) if pairs else 1.0
    first = [row[name] for row in expected]
    second = [row[name] for row in got]
    if first and "label" in first[0]:
        return float(np.mean([a["label"] == b["label"] for a, b in zip(first, second, strict=True)]))
    a = np.array([p["score"] for p in first])
    b = np.array([p["score"] for p in second])
    spread = float(a.max() - a.min()) if len(a) else 0.0
    return float(np.mean(np.abs(a - b) <= REGRESSION_TOLERANCE * max(spread, 1e-6))) if len(a) else 1.0


def failures(figures: CheckFigures) -> list[str]:
    """The thresholds the figures miss, each as a sentence with the figure and its limit."""
    out = []
    if figures.quantize == "none":
        out += [
            f"output {name!r} differs from torch by up to {d:.2e} (limit {FP32_MAX_ABS_DIFF:.0e})"
            for name, d in figures.max_abs_diff.items()
            if not d <= FP32_MAX_ABS_DIFF
        ]
    else:
        if not figures.mean_cosine >= INT8_MIN_COSINE:
            out.append(f"mean embedding cosine to fp32 is {figures.mean_cosine:.4f} (limit {INT8_MIN_COSINE})")
        out += [
            f"task {name!r} agrees with fp32 on {a:.1%} of its predictions (limit {INT8_MIN_AGREEMENT:.0%})"
            for name, a in figures.agreement.items()
            if not a >= INT8_MIN_AGREEMENT
        ]
    return out
