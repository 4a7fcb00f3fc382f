"""Fast inference paths (issue 16): ONNX fp32 / int8 exports and bf16 autocast against sentence-transformers.

What it measures, in one process with the same thread count for every backend (``--threads``, default 2;
torch and onnxruntime both use it) and in alternating rounds (the order of the backends flips every round):

* encode throughput (texts/s, wall clock, and process CPU seconds) of the embedded all-MiniLM-L6-v2 under
  sentence-transformers fp32 (the reference, 1.0), sentence-transformers with bf16 autocast, mtst torch fp32,
  mtst bf16 (``precision="bf16"``), mtst ONNX fp32 and mtst ONNX int8 (``mtst export default``); with
  ``--fusions`` also the two exports after onnxruntime's transformer fusions (see below);
* ``predict`` throughput of the joint model given by ``--model`` (from ``configs/multitask.yaml``) under each
  mtst backend: torch fp32, bf16, ONNX fp32, ONNX int8 (``mtst export MODEL``);
* quality under each backend: STS-B dev Spearman of the encoder (from the timed call's embeddings), and the
  joint model's TREC held-out accuracy, SST-2 dev accuracy and WikiANN test entity F1 (test where a task has
  a test file, else dev, as ``mtst evaluate`` builds them).

Texts (from ``--datasets``; not copied into the repository): SST-2 dev (872), STS-B dev ``sentence1`` and
``sentence2`` (3,000), the first 1,000 WikiANN test sentences (tokens joined by spaces): 4,872 in all.

Fusions: the dynamo exporter's graph is not matched by ``onnxruntime.transformers.optimizer`` (it fuses only
BiasGelu there), so ``--fusions`` uses ``onnxscript.rewriter.ort_fusions.optimize_for_ort``, the fusion set
onnxruntime's own dynamo helper applies (Attention/MultiHeadAttention, SkipLayerNormalization, BiasGelu). The
int8 variant quantizes first and fuses after (fusing first turns Q/K/V into an Attention node that
quantize_dynamic leaves in fp32).

``--profile`` adds a per-operator profile of the ONNX int8 and torch fp32 encoders (onnxruntime's profiler,
``torch.profiler``) on the same batches, to say where the time goes.

Run it from the project root::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/fast_path.py --model /work/runs/multitask/model
    HF_HUB_OFFLINE=1 .venv/bin/python bench/fast_path.py --model DIR --rounds 2 --fusions --profile \\
        --json-out /tmp/fast_path.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--model", type=Path, required=True, help="the joint mtst model folder (configs/multitask.yaml)")
    p.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "multitask.yaml", help="the model's task file")
    p.add_argument("--rounds", type=int, default=3, help="timed calls of each backend (default 3)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and onnxruntime (default 2)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--work-dir", type=Path, default=None, help="where the exports go (default: a temporary folder)")
    p.add_argument("--fusions", action="store_true", help="also time the exports after onnxruntime fusions")
    p.add_argument("--profile", action="store_true", help="per-operator profiles of ONNX int8 and torch fp32")
    p.add_argument("--skip-quality", action="store_true", help="skip the joint model's task metrics")
    p.add_argument("--limit", type=int, default=None, help="a smoke run: at most N texts (pairs) from each file")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args()
    if args.rounds < 1 or args.threads < 1 or args.batch_size < 1:
        p.error("--rounds, --threads and --batch-size must be positive")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # before torch and onnxruntime start their thread pools
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

Call = Callable[[list[str]], Any]


# ---------------------------------------------------------------------- texts and data
def load_texts(datasets: Path, limit: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """The benchmark texts, and where the STS-B pairs sit in them (for Spearman from the timed embeddings)."""
    from mtst.data.loaders import load_sentence_examples, load_token_examples

    sst2 = [ex.text for ex in load_sentence_examples(datasets / "sst2" / "dev.tsv")][:limit]
    sts = load_sentence_examples(
        datasets / "stsb" / "dev.tsv",
        text_column="sentence1",
        pair_column="sentence2",
        label_column="score",
        label_type="number",
    )[:limit]
    wiki = [" ".join(ex.tokens) for ex in load_token_examples(datasets / "wikiann_en" / "test.conll")][:1000][:limit]
    n, m = len(sst2), len(sts)
    texts = sst2 + [ex.text for ex in sts] + [ex.text_pair for ex in sts] + wiki
    scores = np.asarray([ex.label for ex in sts], float)
    pairs = {"a": np.arange(n, n + m), "b": np.arange(n + m, n + 2 * m), "score": scores}
    parts = {"sst2/dev.tsv text": n, "stsb/dev.tsv sentence1 + sentence2": 2 * m, "wikiann_en/test.conll": len(wiki)}
    return texts, {"pairs": pairs, "parts": parts}


def stsb_spearman(emb: np.ndarray, pairs: dict[str, np.ndarray]) -> float:
    a, b = emb[pairs["a"]], emb[pairs["b"]]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(spearmanr(cos, pairs["score"]).statistic) * 100


def task_data(model: Any, config_file: Path) -> dict[str, Any]:
    """Each task's test split where the config gives one, else dev (TREC: the seeded held-out part of train).

    The data paths come from the training config: a model saved outside its data's project keeps file names
    only."""
    from mtst.config import load_config
    from mtst.tasks import read_splits

    config = load_config(config_file)
    seed, out = config.train.seed, {}
    tok, n = model.encoder.tokenizer, model.encoder.max_length
    for name in model.tasks:
        tcfg = config.task(name)
        split = "test" if tcfg.test else "dev"
        examples = getattr(read_splits(tcfg, seed=seed, splits=(split,)), split)
        out[name] = (split, model.tasks[name].encode(examples, tok, n))
    return out


def quality(model: Any, data: dict[str, Any], bf16: bool) -> dict[str, float]:
    from mtst.evaluation import evaluate

    metrics = evaluate(model, {k: d for k, (_, d) in data.items()}, autocast=bf16)
    return {
        f"{k} {data[k][0]} {model.tasks[k].main_metric}": v[model.tasks[k].main_metric] * 100
        for k, v in metrics.items()
    }


# ---------------------------------------------------------------------- timing
def timed(call: Call, texts: list[str]) -> tuple[float, float, Any]:
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    out = call(texts)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def alternate(calls: dict[str, Call], texts: list[str], rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Warm up each call, then ``rounds`` rounds (order reversed every other round); per call wall/CPU lists."""
    for call in calls.values():
        call(texts[:256])
    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    last: dict[str, Any] = {}
    for r in range(rounds):
        for name in list(calls) if r % 2 == 0 else list(reversed(calls)):
            w, c, last[name] = timed(calls[name], texts)
            wall[name].append(w)
            cpu[name].append(c)
            print(
                f"  round {r + 1} {name:<28} {w:7.1f} s wall {len(texts) / w:7.1f} texts/s  {c:7.1f} s CPU", flush=True
            )
    return {"wall": dict(wall), "cpu": dict(cpu)}, last


def summary(times: dict[str, Any], n: int, reference: str) -> dict[str, dict[str, float]]:
    med_w = {k: statistics.median(v) for k, v in times["wall"].items()}
    med_c = {k: statistics.median(v) for k, v in times["cpu"].items()}
    return {
        k: {
            "texts_per_s": n / med_w[k],
            "ratio_wall": med_w[reference] / med_w[k],
            "ratio_cpu": med_c[reference] / med_c[k],
            "wall_s": med_w[k],
            "cpu_s": med_c[k],
        }
        for k in med_w
    }


def encode_call(encoder: Any, batch_size: int, **kwargs: Any) -> Call:
    return lambda t: encoder.encode(t, batch_size=batch_size, show_progress_bar=False, **kwargs)


def predict_call(model: Any, batch_size: int, **kwargs: Any) -> Call:
    return lambda t: model.predict(t, batch_size=batch_size, show_progress_bar=False, **kwargs)


# ---------------------------------------------------------------------- exports
def export(source: str | Path, out: Path, quantize: str) -> Path:
    from mtst.export import export_model

    if not (out / "mtst_export.json").exists():  # force: a failed self-check is reported, and timed all the same
        report = export_model(source, out, quantize=quantize, overwrite=True, force=True)
        verdict = "passed" if report.check.passed else "FAILED: " + "; ".join(report.check.failures)
        print(f"  self-check {verdict}")
        print(
            f"  exported {source} -> {out} ({quantize}, {report.graph_mb:.1f} MB, {report.seconds:.0f} s): "
            + "; ".join(report.check.lines()),
            flush=True,
        )
    return out


def fused_copy(folder: Path, out: Path) -> Path:
    """The export with onnxscript's ORT fusions applied to its graph (and the checksum updated)."""
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    from mtst.runtime.session import file_sha256

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(folder, out)
    model, counts = optimize_for_ort(ir.load(str(out / "model.onnx")))
    ir.save(model, str(out / "model.onnx"))
    conf = json.loads((out / "mtst_export.json").read_text())
    conf["graph_sha256"] = file_sha256(out / "model.onnx")
    (out / "mtst_export.json").write_text(json.dumps(conf))
    print(f"  fused {folder.name}: { ({k: v for k, v in counts.items() if v}) }", flush=True)
    return out


# ---------------------------------------------------------------------- profiles
def profile_onnx(folder: Path, texts: list[str], batch_size: int, threads: int) -> dict[str, float]:
    """Share of onnxruntime's node time per operator type over one pass of ``texts``."""
    import onnxruntime as ort

    from mtst.encoder import SentenceEncoder

    enc = SentenceEncoder.from_pretrained(folder)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    for _, f in enc.batches(enc.token_ids(texts), batch_size, show_progress_bar=False):
        feed = {k: v.numpy() for k, v in f.items()}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        session.run(None, feed)
    trace = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            by_op[ev["args"]["op_name"]] += ev["dur"]
    total = sum(by_op.values())
    return {k: 100 * v / total for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}


def profile_torch(encoder: Any, texts: list[str], batch_size: int) -> dict[str, float]:
    """Share of torch's self CPU time per aten operator over one encode of ``texts``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        encoder.encode(texts, batch_size=batch_size, show_progress_bar=False, precision="fp32")
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in rows)
    return {k: 100 * t / total for k, t in sorted(rows, key=lambda kv: -kv[1]) if t > 0}


# ---------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    import onnxruntime
    import sentence_transformers
    import transformers

    from mtst.precision import cpu_capability, cpu_has_native_bf16

    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": cpu_capability(),
        "native_bf16": cpu_has_native_bf16(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "python": platform.python_version(),
    }


def model_step(model_dir: Path) -> str:
    """Which step of its run the joint model is (from the run's metrics.jsonl, when beside it)."""
    metrics = model_dir.parent / "metrics.jsonl"
    if not metrics.exists():
        return "unknown (no metrics.jsonl beside the model)"
    evals = [json.loads(x) for x in metrics.read_text().splitlines() if '"eval"' in x]
    last = json.loads(metrics.read_text().splitlines()[-1]).get("step")
    best = max(evals, key=lambda e: e.get("score", float("-inf")), default=None)
    return f"best eval step {best['step'] if best else '?'} (score {best.get('score', 0):.4f}); run at step {last}"


def main(args: argparse.Namespace) -> int:
    from sentence_transformers import SentenceTransformer

    from mtst.encoder import SentenceEncoder, default_model_path
    from mtst.model import MultiTaskModel

    torch.set_num_threads(args.threads)
    info = machine()
    print(json.dumps(info))
    print(f"joint model {args.model}: {model_step(args.model)}")
    load_before = os.getloadavg()
    texts, meta = load_texts(args.datasets, args.limit)
    bs = args.batch_size
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="fast_path."))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{len(texts)} texts: {meta['parts']}; exports in {work}", flush=True)
    enc_exports = {q: export("default", work / f"default_{q}", q) for q in ("none", "int8")}
    mt_exports = {q: export(args.model, work / f"joint_{q}", q) for q in ("none", "int8")}

    st = SentenceTransformer(str(default_model_path()), device="cpu")
    mtst_enc = SentenceEncoder.from_pretrained("default", device="cpu")
    encoders = {
        "mtst ONNX fp32": SentenceEncoder.from_pretrained(enc_exports["none"]),
        "mtst ONNX int8": SentenceEncoder.from_pretrained(enc_exports["int8"]),
    }
    if args.fusions:
        encoders["mtst ONNX fp32 + fusions"] = SentenceEncoder.from_pretrained(
            fused_copy(enc_exports["none"], work / "default_none_fused")
        )
        encoders["mtst ONNX int8 + fusions"] = SentenceEncoder.from_pretrained(
            fused_copy(enc_exports["int8"], work / "default_int8_fused")
        )

    def st_call(bf16: bool) -> Call:
        def call(t: list[str]) -> np.ndarray:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return st.encode(t, batch_size=bs, show_progress_bar=False, convert_to_numpy=True)

        return call

    calls: dict[str, Call] = {
        "sentence-transformers fp32": st_call(False),
        "sentence-transformers bf16": st_call(True),
        "mtst torch fp32": encode_call(mtst_enc, bs, precision="fp32"),
        "mtst bf16": encode_call(mtst_enc, bs, precision="bf16"),
    }
    calls.update({k: encode_call(e, bs) for k, e in encoders.items()})
    print("encode:", flush=True)
    times, last = alternate(calls, texts, args.rounds)
    encode = summary(times, len(texts), "sentence-transformers fp32")
    for k in encode:
        encode[k]["stsb_spearman"] = stsb_spearman(np.asarray(last[k], dtype=np.float32), meta["pairs"])

    joint = {"torch fp32": MultiTaskModel.load(args.model, device="cpu")}
    joint_calls: dict[str, Call] = {
        "mtst torch fp32": predict_call(joint["torch fp32"], bs, precision="fp32"),
        "mtst bf16": predict_call(joint["torch fp32"], bs, precision="bf16"),
    }
    for q, name in (("none", "mtst ONNX fp32"), ("int8", "mtst ONNX int8")):
        joint[name] = MultiTaskModel.load(mt_exports[q])
        joint_calls[name] = predict_call(joint[name], bs)
    print("predict:", flush=True)
    ptimes, _ = alternate(joint_calls, texts, args.rounds)
    predict = summary(ptimes, len(texts), "mtst torch fp32")
    if not args.skip_quality:
        data = task_data(joint["torch fp32"], args.config)
        for name, model in (
            ("mtst torch fp32", joint["torch fp32"]),
            ("mtst bf16", joint["torch fp32"]),
            ("mtst ONNX fp32", joint["mtst ONNX fp32"]),
            ("mtst ONNX int8", joint["mtst ONNX int8"]),
        ):
            predict[name]["quality"] = quality(model, data, bf16=name == "mtst bf16")
            print(f"  quality {name}: {predict[name]['quality']}", flush=True)
    profiles = {}
    if args.profile:
        sample = texts[::8]
        profiles["mtst ONNX int8"] = profile_onnx(enc_exports["int8"], sample, bs, args.threads)
        profiles["mtst ONNX fp32"] = profile_onnx(enc_exports["none"], sample, bs, args.threads)
        profiles["mtst torch fp32"] = profile_torch(mtst_enc, sample, bs)  # precision="fp32" inside
        for k, v in profiles.items():
            print(f"  profile {k}: " + ", ".join(f"{op} {share:.1f}%" for op, share in list(v.items())[:10]))
    load_after = os.getloadavg()

    print("\n| encode backend | texts/s | vs ST fp32 (wall) | vs ST fp32 (CPU time) | STS-B dev Spearman |")
    print("|---|---:|---:|---:|---:|")
    for k, r in encode.items():
        print(
            f"| {k} | {r['texts_per_s']:.1f} | {r['ratio_wall']:.2f} | {r['ratio_cpu']:.2f} "
            f"| {r['stsb_spearman']:.2f} |"
        )
    print(
        "\n| predict backend | texts/s | vs mtst fp32 (wall) | vs mtst fp32 (CPU time) | "
        + " | ".join(next(iter(predict.values())).get("quality", {}))
        + " |"
    )
    for k, r in predict.items():
        q = " | ".join(f"{v:.2f}" for v in r.get("quality", {}).values())
        print(f"| {k} | {r['texts_per_s']:.1f} | {r['ratio_wall']:.2f} | {r['ratio_cpu']:.2f} | {q} |")
    print(
        f"\nload average before {load_before}, after {load_after}; {args.rounds} rounds, {args.threads} threads, "
        f"batch {bs}; CPU: {info['cpu_capability']}"
    )
    if args.json_out:
        report = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": info,
            "joint_model": str(args.model),
            "joint_model_step": model_step(args.model),
            "texts": meta["parts"],
            "load_before": load_before,
            "load_after": load_after,
            "encode": encode,
            "encode_times": times,
            "predict": predict,
            "predict_times": ptimes,
            "profiles": profiles,
        }
        args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(ARGS))
