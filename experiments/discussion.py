"""The experiments behind docs/discussion.md, on ../shared/datasets, with the embedded all-MiniLM-L6-v2.

Each sub-command answers one design question, prints a Markdown table and writes its numbers to
runs/discussion/NAME.json:

    pooling          mean vs CLS vs max: STS-B dev Spearman (no training) and SST-2 dev accuracy of a linear
                     head trained on the frozen backbone (20,000 SST-2 train rows)
    freezing         none vs backbone vs all-but-last-2 vs layer-wise LR decay: SST-2 dev accuracy and time
                     (6,000 SST-2 train rows, 2 epochs)
    frozen-head      the shipped sentiment head kept frozen while the backbone is fine-tuned on TREC: how far
                     sentiment falls, and what keeps it stable
    contrastive      heads on the frozen off-the-shelf backbone vs on the backbone fine-tuned on STS-B first
                     (runs/stsb, from configs/stsb_contrastive.yaml)
    separate         one multi-task model vs three single-task models (runs/multitask vs runs/sst2_2ep,
                     runs/trec, runs/wikiann): quality, parameters, inference time

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/discussion.py NAME [--datasets ../shared/datasets]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "discussion"
CACHE = ROOT / "runs" / "cache"
SMOKE = False  # --smoke: 3 steps on 64 examples per task, to check that an experiment runs end to end


# ---------------------------------------------------------------------------------------------- helpers
def sst2(d: Path, n: int | None) -> dict[str, Any]:
    return {
        "name": "sentiment",
        "type": "classification",
        "train": str(d / "sst2/train.tsv"),
        "dev": str(d / "sst2/dev.tsv"),
        "max_train_examples": n,
    }


def trec(d: Path) -> dict[str, Any]:
    return {"name": "topic", "type": "classification", "train": str(d / "trec/train.tsv"), "dev_fraction": 0.1}


def frozen_train(**kw: Any) -> dict[str, Any]:
    """Train settings for heads on the frozen backbone, from the embedding cache."""
    base = {"freeze": "backbone", "epochs": 4, "batch_size": 64, "head_lr": 2e-3, "warmup": 0.05}
    return {**base, "cache_dir": str(CACHE), "cache_dtype": "float16", **kw}


def finetune_train(**kw: Any) -> dict[str, Any]:
    """Train settings for fine-tuning the whole network (the single-task configs' settings)."""
    base = {"epochs": 2, "batch_size": 32, "lr": 5e-5, "head_lr": 1e-3, "warmup": 0.06, "precision": "bf16"}
    return {**base, **kw}


def train_run(cfg: dict[str, Any], label: str, setup=None) -> dict[str, Any]:
    """Train one config to the end; returns its final dev metrics, trainable parameters, seconds and the trainer."""
    from tqdm.auto import tqdm

    from mtst.config import MTSTConfig
    from mtst.training import build_trainer

    if SMOKE:
        cfg = {**cfg, "train": {**cfg["train"], "max_steps": 3, "epochs": 1}}
        cfg["tasks"] = [{**t, "max_train_examples": 64} for t in cfg["tasks"]]
    start = time.perf_counter()
    trainer = build_trainer(MTSTConfig.from_dict(cfg), device="cpu")
    if setup is not None:
        setup(trainer)
    prepared = time.perf_counter()
    metrics = None
    for record in tqdm(trainer.steps(), total=trainer.total_steps, desc=label, mininterval=10):
        metrics = record.metrics or metrics
    done = time.perf_counter()
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {
        "metrics": metrics,
        "trainable_params": trainable,
        "steps": trainer.total_steps,
        "prepare_s": prepared - start,
        "train_s": done - prepared,
        "total_s": done - start,
        "trainer": trainer,
    }


def stsb_spearman(encoder, d: Path) -> float:
    """Off-the-shelf STS-B dev Spearman of cosine similarities (no training)."""
    import numpy as np
    from scipy.stats import spearmanr

    from mtst.data.loaders import load_sentence_examples

    rows = load_sentence_examples(
        d / "stsb/dev.tsv", text_column="sentence1", pair_column="sentence2", label_column="score", label_type="number"
    )
    a = encoder.encode([r.text for r in rows], batch_size=64, normalize=True)
    b = encoder.encode([r.text_pair for r in rows], batch_size=64, normalize=True)
    return float(spearmanr(np.sum(a * b, axis=1), [r.label for r in rows]).statistic)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def save(name: str, result: Any, md: str) -> None:
    out = OUT / "smoke" if SMOKE else OUT
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{name}.md").write_text(md + "\n")
    print(md)


def strip(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "trainer"}


# ---------------------------------------------------------------------------------------------- experiments
def pooling(d: Path) -> None:
    from mtst.encoder import SentenceEncoder

    result, rows = {}, []
    for pool in ("mean", "cls", "max"):
        encoder = SentenceEncoder.from_pretrained("default", pooling=pool, device="cpu")
        rho = stsb_spearman(encoder, d)
        run = train_run(
            {"model": {"backbone": "default", "pooling": pool}, "tasks": [sst2(d, 20000)], "train": frozen_train()},
            f"pooling={pool}",
        )
        acc = run["metrics"]["sentiment"]["accuracy"]
        result[pool] = {"stsb_dev_spearman": rho, "sst2_dev_accuracy": acc, **strip(run)}
        rows.append([pool, pct(rho), pct(acc), f"{run['total_s']:.0f}"])
    save("pooling", result, table(["pooling", "STS-B dev Spearman", "SST-2 dev acc. (frozen, linear head)", "s"], rows))


def freezing(d: Path) -> None:
    variants = {
        "none": finetune_train(),
        "backbone (head only, 2 epochs)": frozen_train(epochs=2, batch_size=32, head_lr=1e-3, warmup=0.06),
        "backbone (head only, 20 epochs)": frozen_train(epochs=20, batch_size=32, head_lr=1e-3, warmup=0.06),
        "all_but_last: 2": finetune_train(freeze={"all_but_last": 2}),
        "layerwise_lr_decay: 0.8": finetune_train(layerwise_lr_decay=0.8),
    }
    result, rows = {}, []
    for name, train in variants.items():
        cfg = {"model": {"backbone": "default", "max_length": 64}, "tasks": [sst2(d, 6000)], "train": train}
        run = train_run(cfg, name)
        acc = run["metrics"]["sentiment"]["accuracy"]
        result[name] = {"sst2_dev_accuracy": acc, **strip(run)}
        rows.append([name, pct(acc), f"{run['trainable_params']:,}", f"{run['total_s']:.0f}"])
    save("freezing", result, table(["train.freeze", "SST-2 dev acc.", "trainable params", "seconds"], rows))


def frozen_head(d: Path) -> None:
    """Fine-tune on TREC with the shipped sentiment head frozen; measure sentiment on SST-2 dev before and after."""
    from mtst.evaluation import evaluate_task
    from mtst.model import MultiTaskModel, demo_heads_path
    from mtst.tasks import read_splits

    demo = MultiTaskModel.load(demo_heads_path(), device="cpu")
    sent_task = demo.tasks["sentiment"]
    dev_cfg = dataclasses.replace(sent_task.config, train=str(d / "sst2/train.tsv"), dev=str(d / "sst2/dev.tsv"))
    dev = read_splits(dev_cfg, seed=42, splits=("dev",)).dev

    def sentiment_acc(encoder) -> float:
        model = MultiTaskModel(encoder, [sent_task])
        model.heads["sentiment"].load_state_dict(demo.heads["sentiment"].state_dict())
        model.eval()
        data = sent_task.encode(dev, encoder.tokenizer, encoder.max_length)
        return evaluate_task(model, "sentiment", data)["accuracy"]

    before = sentiment_acc(demo.encoder)
    sent_cfg = {**sst2(d, 4900), "head": "mlp", "hidden_size": 256, "labels": list(sent_task.labels.names)}

    def load_sentiment_head(trainer) -> None:
        trainer.model.heads["sentiment"].load_state_dict(demo.heads["sentiment"].state_dict())

    base = {"backbone": "default", "max_length": 128}
    variants = {
        "fine-tune all, sentiment head frozen": ({"tasks": [trec(d)], "train": finetune_train()}, None),
        "all_but_last: 2": ({"tasks": [trec(d)], "train": finetune_train(freeze={"all_but_last": 2})}, None),
        "lr 1e-5 (5x lower)": ({"tasks": [trec(d)], "train": finetune_train(lr=1e-5)}, None),
        "rehearsal: SST-2 batches in turn, head frozen": (
            {
                "tasks": [trec(d), sent_cfg],
                "train": finetune_train(sampling="round_robin", frozen_heads=["sentiment"]),
            },
            load_sentiment_head,
        ),
        "freeze backbone (topic head only)": ({"tasks": [trec(d)], "train": frozen_train()}, None),
    }
    result: dict[str, Any] = {"sentiment_before": before}
    rows = [["shipped heads, off-the-shelf backbone", "—", pct(before), "—", "—"]]
    for name, (cfg, setup) in variants.items():
        run = train_run({"model": base, **cfg}, name, setup=setup)
        after = sentiment_acc(run["trainer"].model.encoder)
        topic = run["metrics"]["topic"]["accuracy"]
        result[name] = {"topic_accuracy": topic, "sentiment_after": after, **strip(run)}
        rows.append([name, pct(topic), pct(after), f"{100 * (after - before):+.2f}", f"{run['total_s']:.0f}"])
    header = ["training on TREC", "TREC held-out acc.", "SST-2 dev acc. (frozen head)", "change", "seconds"]
    save("frozen_head", result, table(header, rows))


def contrastive(d: Path) -> None:
    from mtst.encoder import SentenceEncoder

    stsb_backbone = ROOT / "runs" / "stsb" / "model" / "encoder"
    if not stsb_backbone.is_dir():
        raise SystemExit(
            f"{stsb_backbone} is missing: run `mtst train configs/stsb_contrastive.yaml --output runs/stsb`."
        )
    result, rows = {}, []
    for name, backbone in (("off-the-shelf", "default"), ("STS-B contrastive first", str(stsb_backbone))):
        rho = stsb_spearman(SentenceEncoder.from_pretrained(backbone, device="cpu"), d)
        run = train_run(
            {"model": {"backbone": backbone}, "tasks": [sst2(d, 20000), trec(d)], "train": frozen_train()},
            name,
        )
        m = run["metrics"]
        result[name] = {"stsb_dev_spearman": rho, **strip(run)}
        rows.append(
            [name, pct(rho), pct(m["sentiment"]["accuracy"]), pct(m["topic"]["accuracy"]), f"{run['total_s']:.0f}"]
        )
    header = ["backbone (frozen)", "STS-B dev Spearman", "SST-2 dev acc.", "TREC held-out acc.", "seconds"]
    save("contrastive", result, table(header, rows))


def separate(d: Path, rounds: int = 3) -> None:
    import torch

    from mtst.config import load_config
    from mtst.data.loaders import load_sentence_examples
    from mtst.data.readers import read_conll
    from mtst.evaluation import evaluate_model
    from mtst.model import MultiTaskModel

    runs = ROOT / "runs"
    singles = {
        "topic": (runs / "trec/model", ROOT / "experiments/single_task/trec.yaml"),
        "sentiment": (runs / "sst2_2ep/model", ROOT / "experiments/single_task/sst2.yaml"),  # the 2-epoch run
        "entities": (runs / "wikiann/model", ROOT / "experiments/single_task/wikiann.yaml"),
    }
    joint = MultiTaskModel.load(runs / "multitask/model", device="cpu")
    joint_cfg = load_config(ROOT / "configs/multitask.yaml")
    quality: dict[str, dict[str, float]] = {}
    joint_dev = evaluate_model(joint, joint_cfg, split="dev")
    joint_test = evaluate_model(joint, joint_cfg, split="test")
    models = {}
    for task, (path, cfg) in singles.items():
        models[task] = MultiTaskModel.load(path, device="cpu")
        split = "test" if task == "entities" else "dev"
        single = evaluate_model(models[task], load_config(cfg), split=split)[task]
        both = (joint_test if split == "test" else joint_dev)[task]
        key = "entity_f1" if task == "entities" else "accuracy"
        quality[task] = {"split": split, "metric": key, "single": single[key], "joint": both[key]}

    def params(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    n_joint, n_single = params(joint), sum(params(m) for m in models.values())
    texts = [r.text for r in load_sentence_examples(d / "sst2/dev.tsv")]
    texts += [" ".join(r.tokens) for r in read_conll(d / "wikiann_en/dev.conll")[:1000]]
    texts += [r.text for r in load_sentence_examples(d / "trec/train.tsv")[-500:]]
    torch.set_num_threads(2)
    joint.predict(texts[:64])
    for m in models.values():
        m.predict(texts[:64])
    t_joint, t_sep = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        joint.predict(texts, batch_size=64)
        t_joint.append(time.perf_counter() - start)
        start = time.perf_counter()
        for m in models.values():
            m.predict(texts, batch_size=64)
        t_sep.append(time.perf_counter() - start)
    med_j, med_s = statistics.median(t_joint), statistics.median(t_sep)
    result = {
        "quality": quality,
        "params": {"joint": n_joint, "separate": n_single},
        "inference_s": {"joint": t_joint, "separate": t_sep, "texts": len(texts)},
        "inference_ratio_separate_over_joint": med_s / med_j,
    }
    rows = [
        [t, q["split"], q["metric"], pct(q["single"]), pct(q["joint"]), f"{100 * (q['joint'] - q['single']):+.2f}"]
        for t, q in quality.items()
    ]
    md = table(["task", "split", "metric", "single-task model", "joint model", "joint − single"], rows)
    md += "\n\n" + table(
        ["", "one multi-task model", "three single-task models", "ratio"],
        [
            ["parameters", f"{n_joint:,}", f"{n_single:,}", f"{n_single / n_joint:.2f}"],
            [
                f"predict {len(texts):,} texts, all tasks (s, median of {rounds})",
                f"{med_j:.1f}",
                f"{med_s:.1f}",
                f"{med_s / med_j:.2f}",
            ],
        ],
    )
    save("separate", result, md)


EXPERIMENTS = {
    "pooling": pooling,
    "freezing": freezing,
    "frozen-head": frozen_head,
    "contrastive": contrastive,
    "separate": separate,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--smoke", action="store_true", help="3 training steps on 64 examples: a quick check.")
    args = parser.parse_args()
    global SMOKE
    SMOKE = args.smoke

    import torch

    torch.set_num_threads(2)
    EXPERIMENTS[args.experiment](args.datasets.resolve())


if __name__ == "__main__":
    main()
