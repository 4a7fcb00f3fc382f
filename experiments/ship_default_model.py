"""Build the shipped default model: train configs/multitask.yaml, export it to int8 ONNX, measure it, ship it.

    make default-model        # = .venv/bin/python experiments/ship_default_model.py

1. `mtst train configs/multitask.yaml --output runs/multitask` (resumed if a checkpoint is there, skipped if the
   run finished; ~25-35 min on 2 cores with AVX-512 BF16, much longer on AVX2).
2. `mtst export runs/multitask/model --quantize int8 --check-data configs/multitask.yaml` into a temporary
   folder (the export checks itself, each head on 200 of its own dev examples).
3. `mtst evaluate` of the export on every held-out split the data sets have (TREC: the 10% of train held out with
   the run's seed; SST-2: dev; WikiANN: dev and test), and of the torch model too, for the record.
4. STS-B dev Spearman of the shipped encoder and of the plain all-MiniLM-L6-v2, to say what fine-tuning did to
   the embeddings.
5. `shipped.json` (the figures, each task's domain, the commands, the CPU) is written beside the export, and the
   folder replaces src/mtst/assets/default_model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSET_DIR = ROOT / "src" / "mtst" / "assets" / "default_model"
CONFIG = ROOT / "configs" / "multitask.yaml"
MTST = [sys.executable, "-m", "mtst"]
MAX_MB = 25.0  # what git should carry

DOMAINS = {
    "topic": "TREC questions (Li & Roth 2002): what a question asks for. Meaningful for questions only.",
    "sentiment": "SST-2 movie-review sentences and phrases: negative or positive.",
    "entities": "WikiANN English (Wikipedia sentences): PER, ORG, LOC spans.",
}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def evaluate(model: Path, split: str) -> dict:
    out = run([*MTST, "evaluate", "--model", model, CONFIG, "--split", split, "--json"], capture_output=True, text=True)
    return json.loads(out.stdout)


def sts_spearman(encoder) -> float:
    """Spearman correlation of cosine similarity with the STS-B dev scores."""
    import numpy as np
    from scipy.stats import spearmanr

    from mtst.data.readers import read_table_columns

    path = ROOT.parent / "shared" / "datasets" / "stsb" / "dev.tsv"
    rows = [r for _, r in read_table_columns(path, ["sentence1", "sentence2", "score"], [], None)[0]]
    a = np.asarray(encoder.encode([r["sentence1"] for r in rows], normalize_embeddings=True))
    b = np.asarray(encoder.encode([r["sentence2"] for r in rows], normalize_embeddings=True))
    return float(spearmanr((a * b).sum(1), [float(r["score"]) for r in rows]).statistic)


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "multitask", help="the training run folder")
    parser.add_argument("--export-arg", action="append", default=[], help="an extra `mtst export` argument")
    args = parser.parse_args()

    import torch

    from mtst.encoder import SentenceEncoder
    from mtst.model import MultiTaskModel
    from mtst.precision import cpu_capability

    started = time.perf_counter()
    run_dir: Path = args.run
    if (run_dir / "curves.png").is_file() and (run_dir / "model").is_dir():
        print(f"{run_dir} holds a finished run: not training again (delete it to retrain).")
    else:
        resume = ["--resume"] if (run_dir / "checkpoint").is_dir() else []
        run([*MTST, "train", CONFIG, "--output", run_dir, *resume])
    trained = time.perf_counter()

    with tempfile.TemporaryDirectory(dir=ASSET_DIR.parent) as tmp:
        export = Path(tmp) / "default_model"
        # each head is judged on its own dev examples (a topic head's labels on reviews mean little)
        options = ["--quantize", "int8", "--check-data", CONFIG, *args.export_arg]
        run([*MTST, "export", run_dir / "model", "--output", export, *options])
        metrics = {split: evaluate(export, split) for split in ("dev", "test")}
        torch_metrics = {split: evaluate(run_dir / "model", split) for split in ("dev", "test")}
        sts = {
            "shipped": sts_spearman(MultiTaskModel.load(export).encoder),
            "all-MiniLM-L6-v2": sts_spearman(SentenceEncoder.from_pretrained("default")),
        }
        size = folder_mb(export)
        shipped = {
            "recipe": "make default-model (python experiments/ship_default_model.py)",
            "trained_with": f"mtst train configs/multitask.yaml --output {run_dir.name}",
            "exported_with": " ".join(
                ["mtst export MODEL --quantize int8 --check-data configs/multitask.yaml", *args.export_arg]
            ),
            "measured": "int8 ONNX export; dev: TREC 10% of train held out (seed 42), SST-2 dev, WikiANN dev; "
            "test: WikiANN test. Dev sets picked the best step.",
            "metrics": metrics,
            "torch_fp32_metrics": torch_metrics,
            "stsb_dev_spearman": sts,
            "domains": {name: DOMAINS.get(name, "") for name in metrics["dev"]},
            "size_mb": round(size, 1),
            "cpu": cpu_capability(),
            "torch": torch.__version__,
            "minutes": {
                "train": round((trained - started) / 60, 1),
                "total": round((time.perf_counter() - started) / 60, 1),
            },
        }
        (export / "shipped.json").write_text(json.dumps(shipped, indent=2) + "\n", encoding="utf-8")
        if size > MAX_MB:
            print(f"warning: the export is {size:.1f} MB, more than the {MAX_MB:.0f} MB git should carry.")
        old = Path(tmp) / "previous"
        if ASSET_DIR.exists():
            ASSET_DIR.rename(old)
        export.rename(ASSET_DIR)
    print(json.dumps(shipped, indent=2))
    print(f"Wrote {ASSET_DIR} ({size:.1f} MB).")


if __name__ == "__main__":
    main()
