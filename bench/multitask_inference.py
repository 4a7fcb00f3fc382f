"""Multi-task inference speed: ``MultiTaskModel.predict`` with three heads vs ``SentenceEncoder.encode`` alone.

What it measures
    Throughput (texts per second, wall clock) of two calls on the same fixed set of real sentences, with the
    embedded all-MiniLM-L6-v2 backbone (``SentenceEncoder.from_pretrained("default")``) on the CPU:

    * predict: ``model.predict(texts, batch_size=B)`` on a ``MultiTaskModel`` with three heads sharing that
      encoder: ``topic`` (classification, 6 TREC coarse labels), ``sentiment`` (classification, 2 labels) and
      ``entities`` (token classification, 7 BIO tags, with a CRF). Its time covers all of its work: tokenizing
      with character offsets and word ids, sorting by length, one backbone pass per batch, the three heads,
      softmax, the CRF's Viterbi decoding, and building the per-text result dicts (labels, scores and entity
      spans with character offsets).
    * encode: ``encoder.encode(texts, batch_size=B)`` on the same encoder object: embeddings only.

    The ratio time(predict) / time(encode) is the cost of the heads and of decoding on top of the backbone;
    the target is at most 1.15. The heads are freshly (randomly) initialised: their outputs are meaningless
    and only speed is measured. A random CRF may tag more or fewer entities than a trained one, which changes
    the amount of span decoding a little; the number of entities found is printed.

How it measures
    One process, ``torch.set_num_threads(2)``. One untimed warm-up call of each, then ``--rounds`` alternating
    rounds of one timed call each (predict then encode in odd rounds, encode then predict in even ones), so
    that load from other work on the machine hits both alike. It prints texts/s per round, the median per call
    and the ratio of the median wall-clock times (predict / encode; 1.00 means the heads cost nothing).

    On a shared machine the backbone's own time swings with the load (by tens of percent between calls a
    minute apart), which swamps a few percent of overhead. So, as cross-checks, it also prints each round's
    ratio (the two calls of one round) and their median, and splits every call's time into the part inside
    the backbone's forward (timed with forward hooks on ``encoder.backbone``; the same work in both calls) and
    the rest (tokenizing, padding, pooling, heads and decoding): "ratio with the same backbone time" is
    (B + rest of predict) / (B + rest of encode), with B the median backbone time over all timed calls and
    each rest its median.

The texts (read from ``--datasets``, by default ``../shared/datasets`` relative to the project root; they are
not copied into the repository), in this order, 2,872 in all:

    * SST-2 ``sst2/dev.tsv``: every ``text`` (872 movie-review sentences);
    * TREC ``trec/train.tsv``: the ``text`` of the first 1,000 rows (questions);
    * WikiANN ``wikiann_en/test.conll``: the first 1,000 sentences, tokens joined with spaces.

Run it from the project root::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/multitask_inference.py
    HF_HUB_OFFLINE=1 .venv/bin/python bench/multitask_inference.py --rounds 5 --json-out /tmp/multitask.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach for the network

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
DEFAULT_BATCH_SIZE = 32
THREADS = 2
SST2_ROWS = None  # all 872
TREC_ROWS = 1000
WIKIANN_SENTENCES = 1000
MIN_TEXTS = 2000
WARMUP_TEXTS = 256

TOPIC_LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
SENTIMENT_LABELS = ["negative", "positive"]
NER_TAGS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]

Call = Callable[[list[str], int], Any]


def load_texts(datasets: Path) -> tuple[list[str], dict[str, int]]:
    """The benchmark's fixed selection of texts, and how many came from each file."""
    from mtst.data.loaders import load_sentence_examples, load_token_examples

    sst2, trec, wikiann = datasets / "sst2" / "dev.tsv", datasets / "trec" / "train.tsv", datasets / "wikiann_en"
    for path in (sst2, trec, wikiann / "test.conll"):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: pass --datasets pointing at the shared datasets folder.")
    parts = {
        "sst2/dev.tsv [text], all rows": [
            ex.text for ex in load_sentence_examples(sst2, text_column="text", label_column="label")
        ][:SST2_ROWS],
        f"trec/train.tsv [text], first {TREC_ROWS} rows": [
            ex.text for ex in load_sentence_examples(trec, text_column="text", label_column="label")
        ][:TREC_ROWS],
        f"wikiann_en/test.conll, first {WIKIANN_SENTENCES} sentences, tokens joined with spaces": [
            " ".join(ex.tokens) for ex in load_token_examples(wikiann / "test.conll")
        ][:WIKIANN_SENTENCES],
    }
    texts = [t for part in parts.values() for t in part]
    if len(texts) < MIN_TEXTS:
        raise ValueError(f"Only {len(texts)} texts were read from {datasets}; the benchmark needs {MIN_TEXTS}.")
    return texts, {source: len(part) for source, part in parts.items()}


def build_model() -> Any:
    """The default encoder with three randomly initialised heads (topic, sentiment, entities with a CRF)."""
    from mtst.config import TaskConfig
    from mtst.encoder import SentenceEncoder
    from mtst.model import MultiTaskModel
    from mtst.tasks import build_task

    torch.manual_seed(0)
    enc = SentenceEncoder.from_pretrained("default", device="cpu")
    tasks = [
        build_task(TaskConfig(name="topic", type="classification"), TOPIC_LABELS),
        build_task(TaskConfig(name="sentiment", type="classification"), SENTIMENT_LABELS),
        build_task(TaskConfig(name="entities", type="token_classification", crf=True), NER_TAGS),
    ]
    return MultiTaskModel(enc, tasks).eval()


class BackboneTimer:
    """Wall-clock seconds spent inside the backbone's forward (both calls run it), summed until ``reset``."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._start = 0.0
        backbone.register_forward_pre_hook(self._enter)
        backbone.register_forward_hook(self._leave)

    def _enter(self, module: torch.nn.Module, args: Any) -> None:
        self._start = time.perf_counter()

    def _leave(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.seconds += time.perf_counter() - self._start

    def reset(self) -> None:
        self.seconds = 0.0


def timed(call: Call, texts: list[str], batch_size: int, timer: BackboneTimer) -> tuple[float, float, Any]:
    """Wall-clock seconds one call takes, the part of them inside the backbone, and the call's output."""
    gc.collect()
    timer.reset()
    start = time.perf_counter()
    out = call(texts, batch_size)
    return time.perf_counter() - start, timer.seconds, out


def check_outputs(predictions: list[dict[str, Any]], embeddings: Any, n: int, dim: int) -> dict[str, Any]:
    """Sanity checks on the last outputs: one result per text with every task, one embedding per text."""
    if len(predictions) != n or any(set(p) != {"topic", "sentiment", "entities"} for p in predictions):
        raise RuntimeError("predict did not return one dict with topic, sentiment and entities per text.")
    if tuple(embeddings.shape) != (n, dim):
        raise RuntimeError(f"encode returned shape {tuple(embeddings.shape)}, expected {(n, dim)}.")
    return {
        "n_entities": sum(len(p["entities"]) for p in predictions),
        "texts_with_entities": sum(bool(p["entities"]) for p in predictions),
        "embedding_shape": list(embeddings.shape),
    }


def run(model: Any, texts: list[str], batch_size: int, rounds: int) -> dict[str, Any]:
    """Warm up both calls, then time alternating rounds; return rates, median times and the ratios."""
    calls: dict[str, Call] = {
        "predict": lambda t, b: model.predict(t, batch_size=b),
        "encode": lambda t, b: model.encoder.encode(t, batch_size=b, show_progress_bar=False),
    }
    timer = BackboneTimer(model.encoder.backbone)
    for call in calls.values():  # warm-up, untimed
        call(texts[:WARMUP_TEXTS], batch_size)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    backbone: dict[str, list[float]] = {name: [] for name in calls}
    outputs: dict[str, Any] = {}
    for r in range(1, rounds + 1):
        names = list(calls) if r % 2 else list(reversed(calls))  # predict first in odd rounds, encode in even
        for name in names:
            s, in_backbone, outputs[name] = timed(calls[name], texts, batch_size, timer)
            seconds[name].append(s)
            backbone[name].append(in_backbone)
            print(
                f"  batch {batch_size:>4}  round {r}  {name:<8} {s:8.2f} s  {len(texts) / s:9.1f} texts/s"
                f"  (backbone {in_backbone:7.2f} s, rest {s - in_backbone:6.2f} s)"
            )
            sys.stdout.flush()
    median_s = {name: statistics.median(values) for name, values in seconds.items()}
    rest = {name: [s - b for s, b in zip(seconds[name], backbone[name], strict=True)] for name in calls}
    median_rest = {name: statistics.median(values) for name, values in rest.items()}
    median_backbone = statistics.median(backbone["predict"] + backbone["encode"])
    ratios = [p / e for p, e in zip(seconds["predict"], seconds["encode"], strict=True)]
    return {
        "batch_size": batch_size,
        "rounds": rounds,
        "seconds": seconds,
        "backbone_seconds": backbone,
        "rest_seconds": rest,
        "texts_per_s": {name: [len(texts) / s for s in values] for name, values in seconds.items()},
        "median_seconds": median_s,
        "median_texts_per_s": {name: len(texts) / s for name, s in median_s.items()},
        "ratio_predict_over_encode": median_s["predict"] / median_s["encode"],
        "per_round_ratios": ratios,
        "median_per_round_ratio": statistics.median(ratios),
        "median_backbone_seconds_all_calls": median_backbone,
        "median_rest_seconds": median_rest,
        "ratio_same_backbone_time": (median_backbone + median_rest["predict"])
        / (median_backbone + median_rest["encode"]),
        "checks": check_outputs(outputs["predict"], outputs["encode"], len(texts), model.encoder.dim),
    }


def machine_info() -> dict[str, Any]:
    import transformers

    import mtst

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "mtst": mtst.__version__,
    }


def print_summary(res: dict[str, Any], target: float) -> None:
    med_s, med_r = res["median_seconds"], res["median_texts_per_s"]
    ratio = res["ratio_predict_over_encode"]
    print()
    print(
        "| batch size | predict, 3 heads (texts/s) | encode (texts/s) | predict (s) | encode (s) "
        "| ratio predict/encode |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {res['batch_size']} | {med_r['predict']:.1f} | {med_r['encode']:.1f} "
        f"| {med_s['predict']:.2f} | {med_s['encode']:.2f} | {ratio:.3f} |"
    )
    rounds = ", ".join(f"{x:.3f}" for x in res["per_round_ratios"])
    print(f"\nratio of the median times: {ratio:.3f}; target <= {target}: {'met' if ratio <= target else 'NOT met'}")
    print(f"per-round ratios (predict / encode, same round): {rounds}; median {res['median_per_round_ratio']:.3f}")
    rest = res["median_rest_seconds"]
    print(
        f"time outside the backbone, median: predict {rest['predict']:.2f} s, encode {rest['encode']:.2f} s; "
        f"backbone, median of all calls: {res['median_backbone_seconds_all_calls']:.2f} s; "
        f"ratio with the same backbone time: {res['ratio_same_backbone_time']:.3f}"
    )
    checks = res["checks"]
    print(f"entities found by the (random) heads: {checks['n_entities']} in {checks['texts_with_entities']} texts")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--datasets", type=Path, default=DEFAULT_DATASETS, help=f"shared datasets folder (default: {DEFAULT_DATASETS})"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed calls of each (default: 3)")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"batch size (default: {DEFAULT_BATCH_SIZE})"
    )
    parser.add_argument("--target", type=float, default=1.15, help="ratio to meet (default: 1.15)")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.batch_size < 1:
        parser.error("--batch-size must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(THREADS)
    texts, counts = load_texts(args.datasets)
    model = build_model()
    info = machine_info()
    print(f"{len(texts)} texts from {args.datasets}:")
    for source, n in counts.items():
        print(f"  {n:>5}  {source}")
    print(
        f"torch {info['torch']} ({info['torch_threads']} threads, {info['cpu_count']} CPUs), "
        f"transformers {info['transformers']}, mtst {info['mtst']}; heads: topic (6), sentiment (2), "
        f"entities (7 BIO tags + CRF), randomly initialised; {args.rounds} alternating rounds each"
    )
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = run(model, texts, args.batch_size, args.rounds)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print_summary(result, args.target)
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}; timed part took {elapsed:.0f} s")

    if args.json_out is not None:
        report = {
            "benchmark": "multitask_inference",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "n_texts": len(texts),
            "texts": counts,
            "heads": "topic (classification, 6), sentiment (classification, 2), entities (token, 7 tags, CRF); "
            "randomly initialised (speed only)",
            "target_ratio": args.target,
            "machine": info,
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            "result": result,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
