"""Heads on a frozen backbone: training from the on-disk embedding cache vs re-encoding every epoch.

Part 1 (speed), on SST-2 train (67,349 rows): one epoch of head training when every epoch re-encodes the
texts through the frozen all-MiniLM-L6-v2 (what a loop without a cache does), vs one epoch that reads the
cached embeddings from disk (memory-mapped) — after the cache exists. Same head, batch size and steps.

Part 2 (quality), on the same cached embeddings: the demo heads that mtst ships (trained from the cache by
experiments/train_demo_heads.py) vs scikit-learn's LogisticRegression: SST-2 dev accuracy, TREC held-out
accuracy (the same 10% of train, seed 42) and WikiANN test entity F1 (logistic regression on each word's
first-sub-word state).

    .venv/bin/python bench/cache_speed.py [--cache-dir runs/cache] [--rounds 3] [--json-out runs/cache_speed.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def head_epoch(x: np.ndarray, y: np.ndarray, n_labels: int, *, batch_size: int = 64, seed: int = 0) -> float:
    """Train a fresh linear head for one epoch on embeddings ``x``; returns the seconds it took."""
    import torch

    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], n_labels)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    order = np.random.default_rng(seed).permutation(len(x))
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        xb, yb = torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32)), torch.from_numpy(y[idx])
        loss = torch.nn.functional.cross_entropy(head(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - start


def speed(args, encoder, texts: list[str], labels: np.ndarray) -> dict:
    from mtst.cache import EmbeddingCache

    cache = EmbeddingCache(args.cache_dir, dtype="float16")
    t0 = time.perf_counter()
    cache.get(encoder, texts, batch_size=64)  # builds the cache if this is the first run
    first = time.perf_counter() - t0
    re_encode, cached = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        x = encoder.encode(texts, batch_size=64)
        enc_s = time.perf_counter() - t0
        re_encode.append(enc_s + head_epoch(x, labels, 2, seed=r))
        t0 = time.perf_counter()
        x = EmbeddingCache(args.cache_dir, dtype="float16").get(encoder, texts)  # a fresh object: read from disk
        load_s = time.perf_counter() - t0
        cached.append(load_s + head_epoch(x, labels, 2, seed=r))
        print(f"round {r}: re-encode epoch {re_encode[-1]:.1f}s, cached epoch {cached[-1]:.2f}s (load {load_s:.2f}s)")
    med_re, med_c = statistics.median(re_encode), statistics.median(cached)
    return {
        "rows": len(texts),
        "first_epoch_with_cache_build_s": first,
        "re_encode_epoch_s": re_encode,
        "cached_epoch_s": cached,
        "median_re_encode_s": med_re,
        "median_cached_s": med_c,
        "speedup": med_re / med_c,
    }


def quality(args) -> dict:
    from sklearn.linear_model import LogisticRegression

    from mtst.cache import EmbeddingCache
    from mtst.evaluation import evaluate_task
    from mtst.metrics import classification_metrics, entity_metrics
    from mtst.model import MultiTaskModel, demo_heads_path
    from mtst.tasks import read_splits
    from mtst.training.heads import cache_task_data, cached_runner

    model = MultiTaskModel.load(demo_heads_path())
    cache = EmbeddingCache(args.cache_dir, dtype="float16")
    d = args.datasets.resolve()
    out: dict[str, dict] = {}
    for name, train_src, eval_src, split in (
        ("sentiment", d / "sst2/train.tsv", d / "sst2/dev.tsv", "dev"),
        ("topic", d / "trec/train.tsv", None, "dev"),
        ("entities", d / "wikiann_en/train.conll", d / "wikiann_en/test.conll", "test"),
    ):
        task = model.tasks[name]
        cfg = dataclasses.replace(
            task.config,
            train=str(train_src),
            dev=str(eval_src) if split == "dev" and eval_src else None,
            test=str(eval_src) if split == "test" else None,
            dev_fraction=0.1 if eval_src is None else None,
        )
        splits = read_splits(cfg, seed=42, splits=("train", split))
        tok, max_len = model.encoder.tokenizer, model.encoder.max_length
        train = cache_task_data(model.encoder, task, splits.train, task.encode(splits.train, tok, max_len), cache)
        held = getattr(splits, split)
        ev = cache_task_data(model.encoder, task, held, task.encode(held, tok, max_len), cache)
        ours = evaluate_task(model, name, ev.encoded, runner=cached_runner(model, name, ev))
        t0 = time.perf_counter()
        if task.cache_kind == "token":
            xs = np.concatenate(
                [s[np.array(t) != -100] for s, t in zip(train.inputs, train.encoded.targets, strict=True)]
            )
            ys = np.concatenate([np.array(t)[np.array(t) != -100] for t in train.encoded.targets])
            lr = LogisticRegression(max_iter=300).fit(xs, ys)
            pred_tags, gold_tags = [], []
            for s, t, n in zip(ev.inputs, ev.encoded.targets, ev.encoded.n_words, strict=True):
                first = np.array(t) != -100
                p = [task.labels.name(int(i)) for i in lr.predict(s[first])] if first.any() else []
                g = [task.labels.name(int(i)) for i in np.array(t)[first]]
                pred_tags.append(p + ["O"] * (n - len(p)))
                gold_tags.append(g + ["O"] * (n - len(g)))
            theirs = entity_metrics(pred_tags, gold_tags)
            key = "entity_f1"
            # is a low score under- or over-fitting? word-level accuracy on train vs eval, and iterations used
            xe = np.concatenate([s[np.array(t) != -100] for s, t in zip(ev.inputs, ev.encoded.targets, strict=True)])
            ye = np.concatenate([np.array(t)[np.array(t) != -100] for t in ev.encoded.targets])
            theirs["lr_iterations"] = int(lr.n_iter_.max())
            theirs["lr_word_accuracy_train"] = float((lr.predict(xs) == ys).mean())
            theirs["lr_word_accuracy_eval"] = float((lr.predict(xe) == ye).mean())
            print(f"  LogisticRegression on entities: {theirs}")
        else:
            lr = LogisticRegression(max_iter=1000).fit(train.inputs, np.array(train.encoded.targets))
            preds = lr.predict(ev.inputs)
            theirs = classification_metrics(
                [task.labels.name(int(p)) for p in preds],
                [task.labels.name(int(g)) for g in ev.encoded.targets],
                task.labels.names,
            )
            key = "accuracy"
        out[name] = {
            "split": split,
            "metric": key,
            "mtst_head": ours[key],
            "logistic_regression": theirs[key],
            "lr_fit_s": time.perf_counter() - t0,
            "n_train": len(train),
            "n_eval": len(ev),
        }
        print(
            f"{name:10s} {split:5s} {key:10s} mtst head {100 * ours[key]:.2f}  "
            f"LogisticRegression {100 * theirs[key]:.2f}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "cache")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    import torch

    from mtst.data.loaders import load_sentence_examples
    from mtst.encoder import SentenceEncoder

    torch.set_num_threads(2)
    encoder = SentenceEncoder.from_pretrained("default", max_length=128, device="cpu")
    result: dict = {}
    if not args.skip_speed:
        rows = load_sentence_examples(args.datasets / "sst2" / "train.tsv")
        labels = np.array([0 if r.label == "negative" else 1 for r in rows], dtype=np.int64)
        result["speed"] = speed(args, encoder, [r.text for r in rows], labels)
        s = result["speed"]
        print(
            f"SST-2 train, {s['rows']} rows: re-encode epoch {s['median_re_encode_s']:.1f}s (median), "
            f"cached epoch {s['median_cached_s']:.2f}s, speed-up {s['speedup']:.0f}x"
        )
    if not args.skip_quality:
        result["quality"] = quality(args)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
