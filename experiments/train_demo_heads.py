"""Train the three heads that `mtst demo` ships: topic (TREC), sentiment (SST-2) and entities (WikiANN).

The backbone is the embedded all-MiniLM-L6-v2, frozen: each data set goes through it once (kept in an
embedding cache on disk) and the heads train from the cached vectors. The heads alone (a few MB) are written
to src/mtst/assets/demo_heads with their dev metrics.

    .venv/bin/python experiments/train_demo_heads.py [--datasets ../shared/datasets] [--cache-dir runs/cache]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSET_DIR = ROOT / "src" / "mtst" / "assets" / "demo_heads"


def demo_config(datasets: Path, cache_dir: Path, epochs: float):
    """The demo's task file: three heads on the frozen default backbone."""
    from mtst.config import MTSTConfig

    d = datasets.resolve()
    return MTSTConfig.from_dict(
        {
            "model": {"backbone": "default", "max_length": 128},
            "tasks": [
                {
                    "name": "topic",
                    "type": "classification",
                    "train": str(d / "trec/train.tsv"),
                    "dev_fraction": 0.1,
                    "head": "mlp",
                    "hidden_size": 256,
                },
                {
                    "name": "sentiment",
                    "type": "classification",
                    "train": str(d / "sst2/train.tsv"),
                    "dev": str(d / "sst2/dev.tsv"),
                    "head": "mlp",
                    "hidden_size": 256,
                },
                {
                    "name": "entities",
                    "type": "token_classification",
                    "train": str(d / "wikiann_en/train.conll"),
                    "dev": str(d / "wikiann_en/dev.conll"),
                    "crf": True,
                    "head": "mlp",
                    "hidden_size": 256,
                },
            ],
            "train": {
                "freeze": "backbone",
                "epochs": epochs,
                "batch_size": 64,
                "head_lr": 2e-3,
                "warmup": 0.05,
                "seed": 42,
                "cache_dir": str(cache_dir),
                "cache_dtype": "float16",
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "cache")
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--output", type=Path, default=ASSET_DIR)
    args = parser.parse_args()

    import torch
    from tqdm.auto import tqdm

    from mtst.training import build_trainer

    torch.set_num_threads(2)
    start = time.perf_counter()
    trainer = build_trainer(demo_config(args.datasets, args.cache_dir, args.epochs), device="cpu")
    prepared = time.perf_counter()
    record = None
    with tqdm(total=trainer.total_steps, desc="Training heads") as bar:
        for record in trainer.steps():
            bar.update(1)
            bar.set_postfix(task=record.task, loss=f"{record.loss:.3f}")
    done = time.perf_counter()
    extra = {
        "dev_metrics": record.metrics,
        "note": "Heads trained on the frozen all-MiniLM-L6-v2 from cached embeddings; "
        "topic dev = 10% of TREC train held out (seed 42), sentiment = SST-2 dev, entities = WikiANN dev.",
        "command": "python experiments/train_demo_heads.py",
        "seconds": {"encode_and_cache": round(prepared - start, 1), "train_heads": round(done - prepared, 1)},
    }
    trainer.model.save(args.output, include_encoder=False, extra=extra)
    print(json.dumps(extra, indent=2))
    print(f"Heads written to {args.output}")


if __name__ == "__main__":
    main()
