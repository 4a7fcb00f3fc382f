"""Streaming encode of a large text file to disk: peak memory and throughput against in-memory ``encode``.

Builds a file of 1,000,000 short sentences (every distinct sentence of at most 24 words from SST-2 train,
TREC, WikiANN and STS-B in ../shared/datasets, repeated in order until the count is reached), then:

1. encodes the first ``--compare-n`` lines two ways, each in its own process: in memory
   (``read_lines`` + ``SentenceEncoder.encode`` + ``np.save``) and streamed (``mtst.textfiles.encode_file``,
   10,000 lines per chunk, appended to the .npy file); throughput counts the encode and the write, not the
   model load; the peak RSS of each process is its own ``ru_maxrss``;
2. runs ``mtst encode --input FILE --output FILE.npy`` on all 1,000,000 lines under ``/usr/bin/time``, which
   reports the command's peak RSS; its throughput is lines over wall-clock time (model load included).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/stream_encode.py [--n 1000000] [--compare-n 100000] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_corpus(datasets: Path, out: Path, n: int, max_words: int = 24) -> int:
    """Write ``n`` lines cycled from the distinct short sentences of the shared data; returns the distinct count."""
    from mtst.data.loaders import load_sentence_examples
    from mtst.data.readers import read_conll

    texts: list[str] = []
    texts += [r.text for r in load_sentence_examples(datasets / "sst2" / "train.tsv")]
    texts += [r.text for r in load_sentence_examples(datasets / "trec" / "train.tsv")]
    for split in ("train", "dev", "test"):
        texts += [" ".join(r.tokens) for r in read_conll(datasets / "wikiann_en" / f"{split}.conll")]
    for split in ("train", "dev"):
        for col in ("sentence1", "sentence2"):
            texts += [
                r.text
                for r in load_sentence_examples(datasets / "stsb" / f"{split}.tsv", text_column=col, label_column=None)
            ]
    distinct = [t for t in dict.fromkeys(t.strip() for t in texts) if t and len(t.split()) <= max_words]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(distinct[i % len(distinct)] + "\n")
    return len(distinct)


def child(mode: str, input_path: Path, output: Path, batch_size: int) -> None:
    """Encode ``input_path`` one way in this process; print seconds, rows and this process's peak RSS as JSON."""
    import resource

    import numpy as np
    import torch

    from mtst.encoder import SentenceEncoder
    from mtst.textfiles import encode_file, read_lines

    torch.set_num_threads(2)
    encoder = SentenceEncoder.from_pretrained("default", device="cpu")
    start = time.perf_counter()
    if mode == "memory":
        texts = read_lines(input_path)
        np.save(output, encoder.encode(texts, batch_size=batch_size))
        rows = len(texts)
    else:
        rows, _ = encode_file(
            encoder, input_path, output, batch_size=batch_size, show_progress_bar=False, overwrite=True
        )
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))


def run_child(mode: str, input_path: Path, output: Path, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--input", str(input_path), "--output", str(output)]
    cmd += ["--batch-size", str(batch_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["sentences_per_s"] = result["rows"] / result["seconds"]
    print(
        f"{mode:6s} {result['rows']:>9,} rows  {result['sentences_per_s']:7.1f}/s  "
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "stream_encode")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--compare-n", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--keep-output", action="store_true", help="Keep the large .npy files.")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--child", choices=("memory", "stream"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.input, args.output, args.batch_size)
        return

    work = args.workdir
    big, small = work / f"texts_{args.n}.txt", work / f"texts_{args.compare_n}.txt"
    distinct = build_corpus(args.datasets, big, args.n)
    with open(big, encoding="utf-8") as src, open(small, "w", encoding="utf-8") as dst:
        for _ in range(args.compare_n):
            dst.write(src.readline())
    print(f"{args.n:,} lines built from {distinct:,} distinct sentences of at most 24 words")

    result: dict = {"n": args.n, "compare_n": args.compare_n, "distinct": distinct, "batch_size": args.batch_size}
    result["memory"] = run_child("memory", small, work / "memory.npy", args.batch_size)
    result["stream"] = run_child("stream", small, work / "stream.npy", args.batch_size)

    import numpy as np

    a, b = np.load(work / "memory.npy", mmap_mode="r"), np.load(work / "stream.npy", mmap_mode="r")
    result["max_abs_diff"] = float(np.abs(a - b).max())
    del a, b

    out_npy = work / f"emb_{args.n}.npy"
    cmd = ["/usr/bin/time", "-f", "MAXRSS_KB=%M WALL_S=%e", str(Path(sys.executable).parent / "mtst"), "encode"]
    cmd += ["--input", str(big), "--output", str(out_npy), "--batch-size", str(args.batch_size), "--overwrite"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    m = re.search(r"MAXRSS_KB=(\d+) WALL_S=([\d.]+)", proc.stderr)
    shape = np.load(out_npy, mmap_mode="r").shape
    result["cli_stream"] = {
        "rows": shape[0],
        "dim": shape[1],
        "seconds": wall,
        "sentences_per_s": args.n / wall,
        "peak_rss_mb": int(m.group(1)) / 1024 if m else None,
        "output_gb": out_npy.stat().st_size / 1e9,
    }
    c = result["cli_stream"]
    print(
        f"mtst encode {c['rows']:,} rows: {c['sentences_per_s']:.1f}/s, peak RSS {c['peak_rss_mb']:.0f} MB, "
        f"{c['output_gb']:.2f} GB"
    )
    result["ratio_stream_vs_memory_same_n"] = result["stream"]["sentences_per_s"] / result["memory"]["sentences_per_s"]
    result["ratio_cli_1m_vs_memory"] = c["sentences_per_s"] / result["memory"]["sentences_per_s"]
    print(
        f"throughput stream/memory ({args.compare_n:,} lines): {result['ratio_stream_vs_memory_same_n']:.3f}; "
        f"mtst encode on {args.n:,} / memory on {args.compare_n:,}: {result['ratio_cli_1m_vs_memory']:.3f}; "
        f"max |diff| {result['max_abs_diff']:.2e}"
    )
    if not args.keep_output:
        for f in (out_npy, work / "memory.npy", work / "stream.npy"):
            f.unlink(missing_ok=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
