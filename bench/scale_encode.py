"""Large-corpus encoding: the local engine against Ray Data with N actors on this machine; peak memory of each.

Builds a Parquet corpus of ``--n`` sentences (the distinct sentences of at most 24 words from SST-2, TREC and
STS-B in ../shared/datasets; past the distinct count they repeat with a row-number suffix), then runs
``mtst.engines.encode_corpus`` on it in a fresh process per engine:

- ``local``: this process, torch with ``--local-threads`` threads;
- ``ray``: a local Ray started by the engine, ``--workers`` actors with one torch thread each.

Each run is timed from the call to its return (model load, planning, Ray start-up and actor start-up
included) and, in steady state, from the first finished shard to the last (shard file times). Peak memory
is sampled every 0.5 s over the child process and all its descendants (Ray's raylet, GCS and workers):
the sum of RSS (shared pages counted in every process) and of PSS (shared pages split among them). The
two outputs are compared row by row. Then the arithmetic for a cluster: throughput per worker times N,
and storage per 10^9 rows for each dtype (these vectors rewritten as shards of each dtype, as the engines
write them). ``--storage-only`` runs the local engine alone and reports the storage.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/scale_encode.py --n 50000 [--workers 2] [--json-out F]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_corpus(datasets: Path, out: Path, n: int, max_words: int = 24) -> int:
    """Write ``n`` rows (``id``, ``text``) to a Parquet file; returns the number of distinct sentences."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts: list[str] = []
    for name, columns in (("sst2/train.tsv", ["text"]), ("trec/train.tsv", ["text"])) + tuple(
        (f"stsb/{split}.tsv", ["sentence1", "sentence2"]) for split in ("train", "dev")
    ):
        with open(datasets / name, encoding="utf-8", newline="") as f:  # unquoted TSV with a header
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                texts += [row[c] for c in columns]
    distinct = [t for t in dict.fromkeys(t.strip() for t in texts) if t and len(t.split()) <= max_words]
    rows = [distinct[i] if i < len(distinct) else f"{distinct[i % len(distinct)]} {i}" for i in range(n)]
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(range(n)), "text": rows}), out)
    return len(distinct)


def child(args: argparse.Namespace) -> None:
    """Run one engine on the corpus in this process; print its timings as JSON."""
    import torch

    from mtst.engines import encode_corpus, shard_paths

    torch.set_num_threads(args.local_threads)  # the local engine's threads; Ray actors set their own (1 each)
    start = time.perf_counter()
    result = encode_corpus(
        args.input,
        args.output,
        model=args.model,
        engine=args.child,
        workers=args.workers if args.child == "ray" else None,
        batch_size=args.batch_size,
        shard_rows=args.shard_rows,
        id_column="id",
        dtype=args.dtype,
        overwrite=True,
        show_progress_bar=False,
    )
    seconds = time.perf_counter() - start
    times = sorted(p.stat().st_mtime for p in shard_paths(args.output))
    steady_rows = result.rows - args.shard_rows  # every row after the first finished shard
    print(
        json.dumps(
            {
                "engine": args.child,
                "rows": result.rows,
                "shards": result.shards,
                "workers": result.workers,
                "seconds": seconds,
                "sentences_per_s": result.rows / seconds,
                "steady_sentences_per_s": steady_rows / (times[-1] - times[0]) if len(times) > 1 else None,
            }
        )
    )


def sample_memory(pid: int, stop: threading.Event, peak: dict) -> None:
    """Peak, over time, of the summed RSS and PSS of process ``pid`` and all its descendants."""
    import psutil

    root = psutil.Process(pid)
    while not stop.is_set():
        rss = pss = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
        peak["rss_mb"] = max(peak.get("rss_mb", 0), rss / 2**20)
        peak["pss_mb"] = max(peak.get("pss_mb", 0), pss / 2**20)
        peak["processes"] = max(peak.get("processes", 0), len(procs))
        stop.wait(0.5)


def run_child(engine: str, args: argparse.Namespace, corpus: Path, output: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", engine, "--input", str(corpus), "--output", str(output)]
    cmd += ["--model", args.model, "--workers", str(args.workers), "--local-threads", str(args.local_threads)]
    cmd += ["--batch-size", str(args.batch_size), "--shard-rows", str(args.shard_rows), "--dtype", args.dtype]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=sample_memory, args=(proc.pid, stop, peak), daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{engine} run failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        peak_rss_mb=peak.get("rss_mb"),
        peak_pss_mb=peak.get("pss_mb"),
        processes=peak.get("processes"),
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )
    print(
        f"{engine:5s} {result['rows']:>9,} rows in {result['seconds']:6.1f}s: "
        f"{result['sentences_per_s']:6.1f}/s overall, "
        f"{result['steady_sentences_per_s'] or 0:6.1f}/s steady; peak RSS {result['peak_rss_mb']:.0f} MB, "
        f"PSS {result['peak_pss_mb']:.0f} MB over {result['processes']} process(es); "
        f"load {load_before:.1f} -> {result['load_after']:.1f}"
    )
    return result


def storage_per_row(folder: Path, shard_rows: int) -> dict[str, float]:
    """Bytes per row of shards as the engines write them (id + embedding [+ scale]), per dtype, from these vectors."""
    import tempfile

    import pyarrow as pa

    from mtst.engines import read_embeddings
    from mtst.engines.shards import DTYPES, embedding_table, write_shard

    ids, vectors = read_embeddings(folder)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, dtype in enumerate(DTYPES):
            size = 0
            for start in range(0, len(ids), shard_rows):
                table = embedding_table(
                    pa.array(ids[start : start + shard_rows]), vectors[start : start + shard_rows], dtype
                )
                size += write_shard(Path(tmp), k * 100_000 + start // shard_rows, table).stat().st_size
            out[dtype] = size / len(ids)
    return out


def cpu_info() -> dict[str, str]:
    import torch

    from mtst.precision import cpu_capability

    model = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "")
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "features": cpu_capability(),
        "model": model,
        "cores": str(os.cpu_count()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="Sentences in the corpus.")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors (one torch thread each).")
    parser.add_argument("--local-threads", type=int, default=2, help="torch threads of the local engine.")
    parser.add_argument("--shard-rows", type=int, default=2_500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--model", default="default")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "scale_encode")
    parser.add_argument("--order", default="local,ray", help="Which engine runs first (the load drifts).")
    parser.add_argument("--keep-output", action="store_true", help="Keep the shards.")
    parser.add_argument("--storage-only", action="store_true", help="Run the local engine only; bytes per row.")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--child", choices=("local", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import shutil

    import numpy as np

    from mtst.engines import read_embeddings

    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores), torch capability {cpu['capability']}: {cpu['features']}")
    corpus = args.workdir / f"corpus_{args.n}.parquet"
    distinct = build_corpus(args.datasets, corpus, args.n)
    print(f"{args.n:,} sentences ({distinct:,} distinct), {args.n // args.shard_rows} shards of {args.shard_rows:,}")
    settings = ("workers", "local_threads", "shard_rows", "batch_size", "dtype", "model", "order")
    result: dict = {"n": args.n, "distinct": distinct, "cpu": cpu, **{k: getattr(args, k) for k in settings}}
    result["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    order = args.order.split(",")
    if sorted(order) != ["local", "ray"]:
        parser.error(f"--order must list local and ray once each, got {args.order!r}")
    outputs = {engine: args.workdir / f"out_{engine}" for engine in order}
    if args.storage_only:
        result["local"] = run_child("local", args, corpus, outputs["local"])
        result["bytes_per_row"] = storage_per_row(outputs["local"], args.shard_rows)
        for dtype, per_row in result["bytes_per_row"].items():
            print(f"  {dtype:8s}: {per_row:7.1f} bytes/row on disk -> {per_row * 1e9 / 1e12:6.2f} TB per 10^9 rows")
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(result, indent=2))
        if not args.keep_output:
            shutil.rmtree(outputs["local"], ignore_errors=True)
        return
    for engine, folder in outputs.items():
        result[engine] = run_child(engine, args, corpus, folder)

    (ids_a, a), (ids_b, b) = read_embeddings(outputs["local"]), read_embeddings(outputs["ray"])
    result["same_ids"] = ids_a == ids_b == list(range(args.n))
    result["max_abs_diff"] = float(np.abs(a - b).max())
    del a, b
    result["ray_vs_local_steady"] = result["ray"]["steady_sentences_per_s"] / result["local"]["steady_sentences_per_s"]
    result["bytes_per_row"] = storage_per_row(outputs["local"], args.shard_rows)
    print(
        f"same ids: {result['same_ids']}, max |local - ray| {result['max_abs_diff']:.2e}; "
        f"ray / local (steady): {result['ray_vs_local_steady']:.3f}"
    )

    per_worker = result["ray"]["steady_sentences_per_s"] / args.workers
    print(f"\nCluster arithmetic: {per_worker:.0f} sentences/s per 1-CPU worker measured here")
    for n_workers in (16, 128, 1024):
        hours = 1e9 / (per_worker * n_workers) / 3600
        print(f"  {n_workers:5d} workers: {per_worker * n_workers:10,.0f}/s, 10^9 sentences in {hours:7.1f} h")
    for dtype, per_row in result["bytes_per_row"].items():
        print(f"  {dtype:8s}: {per_row:7.1f} bytes/row on disk -> {per_row * 1e9 / 1e12:6.2f} TB per 10^9 rows")
    if not args.keep_output:
        for folder in outputs.values():
            shutil.rmtree(folder, ignore_errors=True)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
