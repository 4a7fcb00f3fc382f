"""Model cards: the ``README.md`` with YAML metadata that the Hugging Face hub and sentence-transformers write.

An encoder folder is a sentence-transformers folder, so its card says ``library_name: sentence-transformers``
(the hub then shows how to load it with sentence-transformers). A multi-task folder says ``library_name: mtst``,
lists every task with its labels and the metrics of the model's own evaluation (``extra["dev_metrics"]``, as
training saves them) under ``mtst:`` and as hub ``model-index`` results, and says that its ``encoder/`` is a
standard sentence-transformers folder. ``huggingface_hub.ModelCard`` writes the YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

CARD_FILE = "README.md"
DEFAULT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the embedded "default" backbone on the hub
ENCODER_TAGS = ["sentence-transformers", "feature-extraction", "sentence-similarity", "mtst"]


def card_base_model(folder: str | Path) -> str | None:
    """The ``base_model`` a folder's own model card names, or ``None`` (no card, or none said)."""
    card = Path(folder) / CARD_FILE
    if not card.is_file():
        return None
    try:
        base = ModelCard.load(card).data.base_model
    except (OSError, ValueError):
        return None
    return base if isinstance(base, str) else None


def base_model_of(source: str | None, folder: str | Path | None = None) -> str | None:
    """What a model loaded from ``source`` was built on: a hub id, the default's hub id, or its card's base model."""
    if source == "default":
        return DEFAULT_HUB_ID
    if folder is not None and (named := card_base_model(folder)):
        return named
    if source and not Path(source).expanduser().exists() and source.count("/") == 1:
        return source  # a hub id
    return None


def _card(data: ModelCardData, body: str) -> ModelCard:
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")


def encoder_card(encoder: Any, *, model_id: str, base_model: str | None) -> ModelCard:
    """The card of a sentence encoder folder (a standard sentence-transformers folder)."""
    data = ModelCardData(
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=ENCODER_TAGS,
        base_model=base_model,
    )
    built = f"fine-tuned from [{base_model}](https://huggingface.co/{base_model})" if base_model else "saved"
    body = f"""
# {Path(model_id).name}

A sentence encoder {built} with mtst. The folder is a standard
sentence-transformers folder: sentence-transformers, mtst and Hugging Face transformers load it.

- Backbone: {_backbone(encoder)}
- Pooling: {encoder.pooling}; L2-normalized: {"yes" if encoder.normalize else "no"}
- Embedding dimension: {encoder.dim}; max sequence length: {encoder.max_length} tokens

## Usage

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{model_id}")
embeddings = model.encode(["A man is playing a guitar.", "Someone plays music."])  # [2, {encoder.dim}]
print(model.similarity(embeddings, embeddings))
```

With mtst:

```python
from mtst import SentenceEncoder

encoder = SentenceEncoder.from_pretrained("{model_id}")
embeddings = encoder.encode(["A man is playing a guitar.", "Someone plays music."])  # [2, {encoder.dim}]
```
"""
    return _card(data, body)


def _backbone(encoder: Any) -> str:
    config = getattr(getattr(encoder, "backbone", None), "config", None)
    return getattr(config, "model_type", None) or "see config.json"


def _dataset(task: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(dataset type, name, split)`` of the data a task's dev metrics were measured on."""
    source = task.get("dev") or task.get("train")
    split = "dev" if task.get("dev") else (f"{task.get('dev_fraction')} of train, held out" if source else "dev")
    if isinstance(source, str) and source.startswith("hf:"):
        name = source[3:].split(":")[0]
        return name, name, split
    return "local", Path(str(source)).name if source else task["name"], split


def multitask_card(
    config: Mapping[str, Any],
    tasks: Mapping[str, Any],
    *,
    model_id: str,
    base_model: str | None,
    has_encoder: bool,
    metrics: Mapping[str, Mapping[str, float]] | None,
) -> ModelCard:
    """The card of a multi-task model folder: ``config`` is its ``mtst_config.json``, ``tasks`` the model's tasks."""
    metrics = metrics or {}
    saved = {t["name"]: t for t in config["tasks"]}
    listed, results = [], []
    for name, task in tasks.items():
        values = {k: float(v) for k, v in (metrics.get(name) or {}).items()}
        labels = task.labels.names if task.labels is not None else None
        listed.append({"name": name, "type": task.type, "labels": labels, "metrics": values or None})
        kind, dataset, split = _dataset(saved.get(name, {"name": name}))
        for metric, value in values.items():
            results.append(
                EvalResult(
                    task_type=task.hub_task,
                    task_name=name,
                    dataset_type=kind,
                    dataset_name=dataset,
                    dataset_split=split,
                    metric_type=metric,
                    metric_name=metric,
                    metric_value=value,
                )
            )
    hub_tasks = sorted({t.hub_task for t in tasks.values() if t.hub_task != "other"})
    data = ModelCardData(
        library_name="mtst",
        tags=["mtst", "multi-task", "sentence-transformers", *hub_tasks],
        base_model=base_model,
        model_name=Path(model_id).name,
        eval_results=results or None,
        mtst={"format": config["format"], "encoder": "encoder/" if has_encoder else None, "tasks": listed},
    )
    rows = "\n".join(
        f"| `{t['name']}` | {t['type']} | {', '.join(t['labels']) if t['labels'] else '—'} | "
        + (", ".join(f"{k} {v:.4f}" for k, v in t["metrics"].items()) if t["metrics"] else "not measured")
        + " |"
        for t in listed
    )
    if has_encoder:
        encoder_part = f"""`encoder/` is a standard sentence-transformers folder (the shared backbone and its
pooling), readable without mtst:

```python
from huggingface_hub import snapshot_download
from sentence_transformers import SentenceTransformer

folder = snapshot_download("{model_id}", allow_patterns=["encoder/*"])  # or the local folder
encoder = SentenceTransformer(f"{{folder}}/encoder")
```"""
    else:
        source = config["encoder"].get("source")
        encoder_part = (
            f"This folder holds the heads only: the shared encoder is `{source}`"
            + (f" ([{base_model}](https://huggingface.co/{base_model}))" if base_model else "")
            + ", which mtst loads by name and checks by its weights' fingerprint."
        )
    e = config["encoder"]
    dropped = config.get("names_only") or {}
    paths = (
        "\n\nData paths in `mtst_config.json` are relative to this folder, except those outside the project it "
        "was saved in, kept as file names only ("
        + "; ".join(f"{task}: {', '.join(keys)}" for task, keys in dropped.items())
        + "): `mtst evaluate --model DIR CONFIG` takes a config that names them."
        if dropped
        else ""
    )
    origin = f"from [{base_model}](https://huggingface.co/{base_model}), " if base_model else ""
    note = f"\n\n{extra_note}" if (extra_note := (config.get("extra") or {}).get("note")) else ""
    body = f"""
# {Path(model_id).name}

A multi-task model made with mtst: one shared sentence encoder ({origin}pooling {e["pooling"]}, max
{e["max_length"]} tokens) and a head per task, all run by one backbone pass.{note}

| task | type | labels | dev metrics |
|---|---|---|---|
{rows}

## Usage

```python
from mtst import MultiTaskModel

model = MultiTaskModel.from_pretrained("{model_id}")
model.predict(["Marie Curie was born in Warsaw."])  # one dict per text, a key per task
```

Or `mtst predict --model DIR "some text"` on the command line.

## The encoder

{encoder_part}

Files: `mtst_config.json` (tasks, labels, encoder settings), `heads.safetensors` (the task heads).{paths}
"""
    return _card(data, body)


def export_card(config: Mapping[str, Any], *, model_id: str) -> ModelCard:
    """The card of an ``mtst export`` folder (its ``mtst_export.json`` as ``config``): ONNX, fp32 or int8."""
    kind, quantize = config.get("kind", "encoder"), config.get("quantize", "none")
    tasks = config.get("tasks") or []
    data = ModelCardData(
        library_name="mtst",
        tags=["mtst", "onnx", *(["multi-task"] if tasks else ["sentence-similarity"])],
        model_name=Path(model_id).name,
        mtst={"format": config.get("format"), "kind": kind, "quantize": quantize, "tasks": [t["name"] for t in tasks]},
    )
    loader = "MultiTaskModel" if kind == "multitask" else "SentenceEncoder"
    call = 'model.predict(["some text"])' if kind == "multitask" else 'model.encode(["some text"])'
    body = f"""
# {Path(model_id).name}

An ONNX export made by `mtst export` ({"int8, dynamic quantization" if quantize == "int8" else "fp32"}) of a
{"multi-task model" if tasks else "sentence encoder"}: one graph (backbone, pooling{", every head" if tasks else ""})
run by onnxruntime on the CPU. `mtst_export.json` holds its settings and the self-check against the torch model.

```python
from mtst import {loader}

model = {loader}.from_pretrained("{model_id}")  # onnxruntime: pip install 'mtst[onnx]'
{call}
```
"""
    return _card(data, body)
