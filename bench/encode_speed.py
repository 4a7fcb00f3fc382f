"""Encoding speed: mtst's ``SentenceEncoder.encode`` vs ``sentence_transformers.SentenceTransformer.encode``.

What it measures
    Throughput (sentences per second, wall clock) of embedding the same fixed set of real sentences with
    the same model, the embedded all-MiniLM-L6-v2 (``mtst.encoder.default_model_path()``), loaded once by
    each library on the CPU:

    * mtst:                  ``SentenceEncoder.from_pretrained("default").encode(texts, batch_size=B)``
    * sentence-transformers: ``SentenceTransformer(str(default_model_path()), device="cpu").encode(texts,
      batch_size=B)``

    Both calls return a float32 numpy array of normalized embeddings in input order; the time of a call
    covers all of its work (tokenizing, sorting by length, the forward passes, pooling, normalization and
    gathering the output). Progress bars are turned off for both.

How it measures
    One process, ``torch.set_num_threads(2)``. For each batch size (32 and 128 by default) each tool makes
    one untimed warm-up call, then the tools run in alternating rounds (mtst, sentence-transformers, mtst,
    sentence-transformers, ...), ``--rounds`` timed calls per tool, so that load from other work on the
    machine hits both tools alike. It prints sentences/s per round, the median per tool and the ratio of
    the medians (mtst / sentence-transformers; above 1 means mtst is faster), and, as a sanity check, the
    largest absolute difference between the two tools' embeddings of the same texts. It also records the
    process CPU time of each call (all threads), which other load on the machine disturbs less than the
    wall clock, as a second view of the same comparison.

The texts (read from ``--datasets``, by default ``../shared/datasets`` relative to the project root; they
are not copied into the repository), in this order, 5,872 in all:

    * SST-2 ``sst2/dev.tsv``: every ``text`` (872 movie-review sentences);
    * STS-B ``stsb/dev.tsv``: ``sentence1`` then ``sentence2`` of every pair (1,500 pairs, 3,000 sentences);
    * TREC ``trec/train.tsv``: the ``text`` of the first 2,000 rows (questions).

Run it from the project root::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/encode_speed.py
    HF_HUB_OFFLINE=1 .venv/bin/python bench/encode_speed.py --rounds 5 --json-out /tmp/encode_speed.json
"""

from __future__ import annotations

import argparse
import csv
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
DEFAULT_BATCH_SIZES = (32, 128)
THREADS = 2
TREC_ROWS = 2000
MIN_TEXTS = 5000
WARMUP_TEXTS = 512

# (file relative to --datasets, columns taken from each row, rows to take or None for all)
SELECTION: tuple[tuple[str, tuple[str, ...], int | None], ...] = (
    ("sst2/dev.tsv", ("text",), None),
    ("stsb/dev.tsv", ("sentence1", "sentence2"), None),
    ("trec/train.tsv", ("text",), TREC_ROWS),
)

Encode = Callable[[list[str], int], np.ndarray]


def read_tsv_columns(path: Path, columns: Sequence[str], limit: int | None = None) -> list[str]:
    """Texts of ``columns`` from each row of an unquoted UTF-8 TSV with a header (row by row, columns in order)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --datasets pointing at the shared datasets folder.")
    texts: list[str] = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}.")
        for i, row in enumerate(reader):
            if limit is not None and i >= limit:
                break
            texts.extend(row[c] for c in columns)
    return texts


def load_texts(datasets: Path) -> tuple[list[str], dict[str, int]]:
    """The benchmark's fixed selection of texts, and how many came from each file."""
    texts: list[str] = []
    counts: dict[str, int] = {}
    for rel, columns, limit in SELECTION:
        part = read_tsv_columns(datasets / rel, columns, limit)
        counts[f"{rel} [{', '.join(columns)}]" + (f" first {limit} rows" if limit else "")] = len(part)
        texts.extend(part)
    if len(texts) < MIN_TEXTS:
        raise ValueError(f"Only {len(texts)} texts were read from {datasets}; the benchmark needs {MIN_TEXTS}.")
    return texts, counts


def load_tools() -> dict[str, Encode]:
    """Load the default model with both libraries; return ``name -> encode(texts, batch_size)``."""
    from sentence_transformers import SentenceTransformer

    from mtst.encoder import SentenceEncoder, default_model_path

    mtst_encoder = SentenceEncoder.from_pretrained("default", device="cpu")
    st_model = SentenceTransformer(str(default_model_path()), device="cpu")

    def encode_mtst(texts: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(mtst_encoder.encode(texts, batch_size=batch_size, show_progress_bar=False))

    def encode_st(texts: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(st_model.encode(texts, batch_size=batch_size, show_progress_bar=False))

    return {"mtst": encode_mtst, "sentence-transformers": encode_st}


def timed(encode: Encode, texts: list[str], batch_size: int) -> tuple[float, float, np.ndarray]:
    """Wall-clock seconds and process CPU seconds (all threads) that one ``encode`` call takes, and its output."""
    gc.collect()
    cpu_start, start = time.process_time(), time.perf_counter()
    out = encode(texts, batch_size)
    return time.perf_counter() - start, time.process_time() - cpu_start, out


def run_batch_size(tools: dict[str, Encode], texts: list[str], batch_size: int, rounds: int) -> dict[str, Any]:
    """Warm up each tool, then time alternating rounds; return rates, medians, ratio and the parity check."""
    names = list(tools)
    for name in names:  # warm-up, untimed
        tools[name](texts[:WARMUP_TEXTS], batch_size)
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, np.ndarray] = {}
    for r in range(1, rounds + 1):
        for name in names:
            seconds, cpu, outputs[name] = timed(tools[name], texts, batch_size)
            rate = len(texts) / seconds
            rates[name].append(rate)
            cpu_seconds[name].append(cpu)
            print(
                f"  batch {batch_size:>4}  round {r}  {name:<22} {seconds:8.2f} s  {rate:9.1f} sentences/s"
                f"  (CPU {cpu:7.2f} s)"
            )
            sys.stdout.flush()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_seconds.items()}
    a, b = (outputs[name] for name in names)
    if a.shape != b.shape:
        raise RuntimeError(f"The tools returned different shapes: {a.shape} vs {b.shape}.")
    return {
        "batch_size": batch_size,
        "rounds": rounds,
        "sentences_per_s": rates,
        "median_sentences_per_s": medians,
        "ratio_mtst_over_st": medians["mtst"] / medians["sentence-transformers"],
        "cpu_seconds": cpu_seconds,
        "median_cpu_seconds": cpu_medians,
        "cpu_ratio_st_over_mtst": cpu_medians["sentence-transformers"] / cpu_medians["mtst"],
        "max_abs_diff": float(np.abs(a - b).max()),
        "shape": list(a.shape),
    }


def machine_info() -> dict[str, Any]:
    import sentence_transformers
    import transformers

    import mtst

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "mtst": mtst.__version__,
    }


def print_summary(results: list[dict[str, Any]]) -> None:
    print()
    print("| batch size | mtst (sentences/s) | sentence-transformers (sentences/s) | ratio mtst/ST | max abs diff |")
    print("|---:|---:|---:|---:|---:|")
    for res in results:
        med = res["median_sentences_per_s"]
        print(
            f"| {res['batch_size']} | {med['mtst']:.1f} | {med['sentence-transformers']:.1f} "
            f"| {res['ratio_mtst_over_st']:.2f} | {res['max_abs_diff']:.2e} |"
        )
    print()
    print("Process CPU time per call (median, all threads), a check that is less sensitive to other load:")
    for res in results:
        cpu = res["median_cpu_seconds"]
        print(
            f"  batch {res['batch_size']:>4}: mtst {cpu['mtst']:.1f} s, sentence-transformers "
            f"{cpu['sentence-transformers']:.1f} s, ratio ST/mtst {res['cpu_ratio_st_over_mtst']:.2f}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--datasets", type=Path, default=DEFAULT_DATASETS, help=f"shared datasets folder (default: {DEFAULT_DATASETS})"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per tool and batch size (default: 3)")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=list(DEFAULT_BATCH_SIZES),
        help="batch sizes to measure (default: 32 128)",
    )
    parser.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if any(b < 1 for b in args.batch_sizes):
        parser.error("--batch-sizes must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(THREADS)
    texts, counts = load_texts(args.datasets)
    tools = load_tools()
    info = machine_info()
    print(f"{len(texts)} texts from {args.datasets}:")
    for source, n in counts.items():
        print(f"  {n:>5}  {source}")
    print(
        f"torch {info['torch']} ({info['torch_threads']} threads, {info['cpu_count']} CPUs), "
        f"transformers {info['transformers']}, sentence-transformers {info['sentence_transformers']}, "
        f"mtst {info['mtst']}; {args.rounds} alternating rounds per tool and batch size"
    )
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = [run_batch_size(tools, texts, b, args.rounds) for b in args.batch_sizes]
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print_summary(results)
    print(f"\nload average (1, 5, 15 min) before {load_before}, after {load_after}; timed part took {elapsed:.0f} s")

    if args.json_out is not None:
        report = {
            "benchmark": "encode_speed",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "n_texts": len(texts),
            "texts": counts,
            "machine": info,
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            "results": results,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
