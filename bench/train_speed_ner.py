"""Training throughput and quality on WikiANN NER: mtst vs the Hugging Face ``Trainer``, in one process.

Same backbone (the embedded all-MiniLM-L6-v2), same training data, batch size, epochs and learning rate.
The Hugging Face side is what a user writes by hand: ``AutoModelForTokenClassification`` + ``Trainer`` with
``DataCollatorForTokenClassification``, labels on each word's first sub-word. mtst runs its own defaults for
NER (CRF head, length-grouped batches, bf16 autocast, a separate head learning rate). Reports training
sentences/s (training loop only, no evaluation inside) and entity F1 (seqeval) on the test set.

    .venv/bin/python bench/train_speed_ner.py                       # full train set, 1 epoch
    .venv/bin/python bench/train_speed_ner.py --max-train 2000      # a quick look
    .venv/bin/python bench/train_speed_ner.py --hf-bf16             # also HF with bf16 + group_by_length
    .venv/bin/python bench/train_speed_ner.py --hf-bf16 --mtst-linear   # and mtst with HF's linear head
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def subsample(examples: list, n: int | None, seed: int = 0) -> list:
    if n is None or n >= len(examples):
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=n, replace=False))
    return [examples[i] for i in keep]


def run_hf(train, test, labels, args, *, bf16: bool) -> dict:
    """Hugging Face Trainer + AutoModelForTokenClassification; returns speed and test F1."""
    import torch
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from mtst.encoder import default_model_path

    path = str(default_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    label2id = {name: i for i, name in enumerate(labels)}
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )

    def encode(examples):
        rows = []
        for ex in examples:
            enc = tok(ex.tokens, is_split_into_words=True, truncation=True, max_length=args.max_length)
            prev, lab = None, []
            for w in enc.word_ids():
                lab.append(-100 if w is None or w == prev else label2id[ex.tags[w]])
                prev = w
            rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": lab})
        return rows

    train_rows, test_rows = encode(train), encode(test)
    targs = TrainingArguments(
        output_dir=str(Path(args.workdir) / ("hf_bf16" if bf16 else "hf")),
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        warmup_steps=0.1,
        weight_decay=0.01,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=bf16,
        train_sampling_strategy="group_by_length" if bf16 else "random",
        logging_steps=10_000,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model, args=targs, train_dataset=train_rows, data_collator=DataCollatorForTokenClassification(tok)
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    # The Trainer's group_by_length also reorders evaluation and prediction batches (`_get_eval_sampler`), so
    # `predict` would return rows out of input order; predict in order.
    trainer.args.train_sampling_strategy = "random"
    out = trainer.predict(test_rows)
    preds = out.predictions.argmax(-1)
    pred_tags, gold_tags = [], []
    for p, row, ex in zip(preds, test_rows, test, strict=True):
        words = [labels[pi] for pi, li in zip(p, row["labels"], strict=False) if li != -100]
        pred_tags.append(words + ["O"] * (len(ex.tags) - len(words)))
        gold_tags.append(list(ex.tags))
    return {"seconds": seconds, "sent_per_s": len(train) * args.epochs / seconds, "f1": f1_score(gold_tags, pred_tags)}


def run_mtst(train_path: Path, test, n_train: int | None, args, *, crf: bool = True) -> dict:
    """mtst's trainer on the same data (a CRF head, or a linear one like HF's); returns speed and test F1."""
    from mtst.config import MTSTConfig
    from mtst.evaluation import evaluate_task
    from mtst.training import Trainer

    cfg = MTSTConfig.from_dict(
        {
            "model": {"backbone": "default", "max_length": args.max_length},
            "tasks": [
                {
                    "name": "entities",
                    "type": "token_classification",
                    "train": str(train_path),
                    "crf": crf,
                    "max_train_examples": n_train,
                }
            ],
            "train": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "head_lr": 1e-3,
                "warmup": 0.1,
                "precision": "bf16",
                "seed": 0,
            },
        }
    )
    trainer = Trainer(cfg, device="cpu")
    n = len(trainer.train_data["entities"])
    start = time.perf_counter()
    for _ in trainer.steps():
        pass
    seconds = time.perf_counter() - start
    task = trainer.model.tasks["entities"]
    data = task.encode(test, trainer.model.encoder.tokenizer, trainer.model.encoder.max_length)
    metrics = evaluate_task(trainer.model, "entities", data, autocast=True)
    return {"seconds": seconds, "sent_per_s": n * args.epochs / seconds, "f1": metrics["entity_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--max-train", type=int, default=None, help="subsample the 20,000 training sentences")
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--hf-bf16", action="store_true", help="also run HF with bf16 and group_by_length")
    parser.add_argument("--mtst-linear", action="store_true", help="also run mtst with a linear head (no CRF), as HF")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_ner")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    import torch

    from mtst.data.loaders import load_token_examples
    from mtst.labels import LabelSet

    torch.set_num_threads(2)
    train_path = args.datasets / "wikiann_en" / "train.conll"
    train = subsample(load_token_examples(train_path), args.max_train)
    test = subsample(load_token_examples(args.datasets / "wikiann_en" / "test.conll"), args.max_test)
    labels = LabelSet.infer_bio(ex.tags for ex in train).names
    results = {"mtst": run_mtst(train_path, test, args.max_train, args)}
    if args.mtst_linear:
        results["mtst_linear_head"] = run_mtst(train_path, test, args.max_train, args, crf=False)
    results["hf_trainer"] = run_hf(train, test, labels, args, bf16=False)
    if args.hf_bf16:
        results["hf_trainer_bf16_grouped"] = run_hf(train, test, labels, args, bf16=True)
    print(
        f"WikiANN: {len(train)} train sentences x {args.epochs} epoch(s), batch {args.batch_size}, "
        f"test {len(test)} sentences, torch threads {torch.get_num_threads()}"
    )
    print(f"{'run':28s} {'sent/s':>8s} {'seconds':>8s} {'test F1':>8s}")
    for name, r in results.items():
        print(f"{name:28s} {r['sent_per_s']:8.1f} {r['seconds']:8.1f} {100 * r['f1']:8.2f}")
    for mine in ("mtst", "mtst_linear_head"):
        for name in results:
            if mine in results and not name.startswith("mtst"):
                ratio = results[mine]["sent_per_s"] / results[name]["sent_per_s"]
                print(f"throughput ratio {mine} / {name}: {ratio:.2f}")
    if args.json_out:
        args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **results}, indent=2))


if __name__ == "__main__":
    main()
