"""``export_model``: one ONNX graph of a whole model (backbone, pooling, every head), fp32 or int8, checked.

The graph takes ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` where the backbone takes them),
with dynamic batch and sequence axes, and returns ``sentence_embedding`` (pooled, before L2 normalization)
and one output per task with a head: logits ``[batch, n_labels]``, scores ``[batch]`` or token emissions
``[batch, seq, n_tags]``. CRF scores stay outside the graph (``crf.safetensors``; the numpy Viterbi decodes
them). ``--quantize int8`` is onnxruntime's dynamic quantization: int8 weights, per output channel.
Before it reports success the export runs itself against the torch model (``mtst.export_check``).
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import inspect
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save_file
from torch import nn

from mtst.datapaths import portable_task_paths
from mtst.diskio import atomic_folder, write_json
from mtst.encoder import SentenceEncoder
from mtst.export_check import CheckFigures, check_export, sample_texts, task_check_texts
from mtst.model import MODEL_CONFIG_FILE, MultiTaskModel
from mtst.pooling import pool
from mtst.precision import cpu_capability
from mtst.runtime.encoder import OnnxSentenceEncoder
from mtst.runtime.model import OnnxMultiTaskModel
from mtst.runtime.session import (
    CRF_FILE,
    EMBEDDING_OUTPUT,
    FORMAT,
    FORMAT_VERSION,
    GRAPH_FILE,
    INSTALL_HINT,
    file_sha256,
    is_export,
)
from mtst.stfolder import quiet_transformers
from mtst.tasks import Task
from mtst.version import __version__

logger = logging.getLogger(__name__)

QUANTIZE = ("none", "int8")
OPSET = 18  # the TorchScript fallback's opset (the dynamo exporter picks its own)
# op types quantize_dynamic turns to int8: weight matrix products, and the embedding tables (Gather) that
# make up most of a small model's file (MiniLM-L6: 91 MB fp32, 23 MB int8, 59 MB with fp32 tables)
QUANTIZED_OPS = ("MatMul", "Gather")


class ExportGraph(nn.Module):
    """The model as one function of token ids: ``(sentence_embedding, *head outputs)`` in task order."""

    def __init__(
        self, encoder: SentenceEncoder, tasks: Sequence[Task] = (), heads: Mapping[str, nn.Module] | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.tasks = [t for t in tasks if t.has_head]
        self.heads = nn.ModuleDict({t.name: (heads or {})[t.name] for t in self.tasks})
        accepted = inspect.signature(encoder.backbone.forward).parameters
        takes_types = "token_type_ids" in accepted and "token_type_ids" in encoder.tokenizer.model_input_names
        self.input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if takes_types else [])
        self.output_names = [EMBEDDING_OUTPUT] + [t.name for t in self.tasks]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        features = {"input_ids": input_ids, "attention_mask": attention_mask}  # each [batch, seq]
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        enc = self.encoder(features)  # the backbone once; heads see what they saw in training (normalized or not)
        pooled = enc["sentence_embedding"]  # [batch, dim]
        if self.encoder.normalize:  # the graph returns the embedding before normalization: encode may skip it
            pooled = pool(self.encoder.pooling, enc["token_embeddings"], features["attention_mask"])
        return (pooled, *(t.forward(self.heads[t.name], enc) for t in self.tasks))


@dataclass
class ExportReport:
    """What ``export_model`` wrote and measured."""

    folder: Path
    kind: str  # "encoder" or "multitask"
    quantize: str
    exporter: str  # "dynamo", or "torchscript" after the dynamo exporter failed
    graph_mb: float
    seconds: float
    check: CheckFigures


def export_model(
    model: str | Path | MultiTaskModel | SentenceEncoder,
    output: str | Path,
    *,
    quantize: str = "none",
    keep_heads_fp32: bool = False,
    keep_fp32: Sequence[str] = (),
    calibration: str | Path | None = None,
    check_data: str | Path | None = None,
    force: bool = False,
    overwrite: bool = False,
    batch_size: int = 32,
) -> ExportReport:
    """Export ``model`` (an mtst model folder, an encoder folder, ``"default"``, a hub id, or a loaded model).

    Writes ``output`` atomically; refuses a non-empty folder unless ``overwrite``. The self-check runs on the
    sample sentences shipped with mtst, or on ``calibration`` (one text a line); below its thresholds the
    export fails with a ``ValueError`` and writes nothing, unless ``force``, which keeps the files.
    ``keep_fp32``: module-name patterns (``fnmatch``, e.g. ``"*.layer.5.output.dense"``) whose weight products
    int8 leaves in fp32, as ``keep_heads_fp32`` does for every head. ``check_data``: a task file (the training
    config) whose dev examples judge each head it names (``export_check.task_check_texts``).
    """
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}; got {quantize!r}.")
    if (keep_heads_fp32 or keep_fp32) and quantize != "int8":
        what = "keep_heads_fp32" if keep_heads_fp32 else "keep_fp32"
        raise ValueError(f"{what} applies to quantize='int8' (--quantize int8) only.")
    require_exporter()
    start = time.perf_counter()
    source = load_source(model)
    texts = sample_texts(calibration)
    multitask = isinstance(source, MultiTaskModel)
    if check_data is not None and not multitask:
        raise ValueError("check_data (--check-data) judges task heads: this model is an encoder without any.")
    heads = [t.name for t in source.tasks.values() if t.has_head] if multitask else []
    task_texts = task_check_texts(check_data, heads) if check_data is not None else None
    encoder = source.encoder if multitask else source
    tasks = list(source.tasks.values()) if multitask else []
    graph = ExportGraph(encoder, tasks, {t.name: source.head(t.name) for t in tasks if t.has_head}).eval()
    with atomic_folder(output, overwrite=overwrite, what="ONNX export") as tmp:
        fp32 = tmp / (GRAPH_FILE if quantize == "none" else "fp32.onnx")
        exporter = export_graph(graph, fp32)
        if quantize == "int8":
            kept = (head_nodes(fp32) if keep_heads_fp32 else []) + matching_nodes(fp32, keep_fp32)
            quantize_graph(fp32, tmp / GRAPH_FILE, exclude=kept)
            fp32.unlink()
        with quiet_transformers():
            encoder.tokenizer.save_pretrained(str(tmp))
        crf = {t.name: t.crf_params(source.head(t.name)) for t in tasks}
        crf = {name: params for name, params in crf.items() if params is not None}
        if crf:
            parts = ("start", "transitions", "end")
            arrays = {f"{n}.{k}": np.asarray(getattr(p, k), np.float32) for n, p in crf.items() for k in parts}
            save_file(arrays, str(tmp / CRF_FILE), metadata={"format": FORMAT})
        config = export_config(source, graph, quantize=quantize, keep_heads_fp32=keep_heads_fp32, exporter=exporter)
        config["keep_fp32"] = list(keep_fp32)
        config["tasks"], names_only = portable_task_paths(config["tasks"], output)  # no machine paths saved
        if names_only:
            config["names_only"] = names_only
        config.update(graph_sha256=file_sha256(tmp / GRAPH_FILE), crf=sorted(crf))
        write_json(tmp / "mtst_export.json", config)
        loaded = OnnxMultiTaskModel.load(tmp) if multitask else OnnxSentenceEncoder.load(tmp)
        figures = check_export(
            source, graph, loaded, texts, quantize=quantize, batch_size=batch_size, task_texts=task_texts
        )
        config["check"] = figures.to_dict()
        write_json(tmp / "mtst_export.json", config)
        if not figures.passed and not force:
            raise ValueError(
                f"The export's self-check failed on {figures.texts} sentences: {'; '.join(figures.failures)}. "
                "Nothing was written. "
                + ("Try --keep-heads-fp32, --keep-fp32 PATTERN, or --quantize none; " if quantize == "int8" else "")
                + "--force keeps the files anyway."
            )
        mb = (tmp / GRAPH_FILE).stat().st_size / 1e6
    kind = "multitask" if multitask else "encoder"
    return ExportReport(Path(output), kind, quantize, exporter, mb, time.perf_counter() - start, figures)


def require_exporter() -> None:
    """Fail early, with the fix, when onnx, onnxscript or onnxruntime is missing."""
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"mtst export needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}.")


def load_source(model: str | Path | MultiTaskModel | SentenceEncoder) -> MultiTaskModel | SentenceEncoder:
    """The torch model to export: a loaded one as is, an mtst model folder, or any encoder name or folder."""
    if isinstance(model, (MultiTaskModel, SentenceEncoder)):
        return model.to("cpu").eval()
    if is_export(model):
        raise ValueError(f"{model} is already an ONNX export; export its source model instead.")
    if (Path(str(model)) / MODEL_CONFIG_FILE).exists():
        return MultiTaskModel.load(model, device="cpu")
    return SentenceEncoder.from_pretrained(model, device="cpu")


def export_config(
    source: MultiTaskModel | SentenceEncoder, graph: ExportGraph, *, quantize: str, keep_heads_fp32: bool, exporter: str
) -> dict[str, Any]:
    """The ``mtst_export.json`` that marks the folder: format, settings, tasks and labels, source model."""
    multitask = isinstance(source, MultiTaskModel)
    encoder = graph.encoder
    outputs = {EMBEDDING_OUTPUT: "[batch, dim] pooled embedding, before L2 normalization"}
    outputs.update({t.name: f"{t.type} head output (batch first)" for t in graph.tasks})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mtst_version": __version__,
        "kind": "multitask" if multitask else "encoder",
        "graph": GRAPH_FILE,
        "quantize": quantize,
        "keep_heads_fp32": keep_heads_fp32,
        "exporter": exporter,
        "torch_version": torch.__version__,
        "exported_on": cpu_capability(),
        "inputs": graph.input_names,
        "outputs": outputs,
        "encoder": {
            **encoder.get_config(),
            "dim": encoder.dim,
            "position_limit": encoder.position_limit,
            "model_type": encoder.backbone.config.model_type,
        },
        "tasks": [t.to_dict() for t in source.tasks.values()] if multitask else [],
        "source": {"model": _source_name(encoder), "fingerprint": encoder.fingerprint()},
        "extra": source.extra if multitask else {},
    }


def _source_name(encoder: SentenceEncoder) -> str:
    """What the export came from, without a machine path: a hub id or "default", else the folder's name."""
    source = str(getattr(encoder, "source", None) or "?")
    local = source != "default" and Path(source).expanduser().exists()
    return getattr(encoder, "base_model", None) or (Path(source).expanduser().resolve().name if local else source)


# ---------------------------------------------------------------------- the graph
def example_inputs(graph: ExportGraph, texts: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Padded example inputs for tracing, one tensor per graph input ``[batch, seq]``."""
    enc = graph.encoder.tokenizer(list(texts), padding=True, return_tensors="pt")
    return tuple(enc[name] if name in enc else torch.zeros_like(enc["input_ids"]) for name in graph.input_names)


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """Hide the exporters' progress lines and warnings (torchvision missing, deprecations); errors still raise."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(None):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_graph(graph: ExportGraph, path: Path) -> str:
    """Write ``graph`` to ``path`` with the dynamo exporter, else TorchScript's (said in a warning); which one ran."""
    args = example_inputs(graph, ["a short one", "and a somewhat longer sentence, to pad the first one"])
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=graph.encoder.position_limit)
    names = {"input_names": graph.input_names, "output_names": graph.output_names}
    dynamic = {name: {0: batch, 1: seq} for name in graph.input_names}
    try:
        with quiet_exporters():
            torch.onnx.export(graph, args, str(path), dynamo=True, dynamic_shapes=dynamic, external_data=False, **names)
        return "dynamo"
    except Exception as err:  # the exporter raises many kinds; any of them means: try the other exporter
        cause = err
        while cause.__cause__ is not None:  # the exporter wraps torch.export's error, which says what failed
            cause = cause.__cause__
        logger.warning(
            "The dynamo ONNX exporter failed (%s: %s); exporting with the TorchScript exporter instead.",
            type(cause).__name__,
            (str(cause).strip().splitlines() or [""])[0][:300],
        )
        path.unlink(missing_ok=True)
    with quiet_exporters():
        axes = dynamic_axes(graph, args)
        torch.onnx.export(graph, args, str(path), dynamo=False, dynamic_axes=axes, opset_version=OPSET, **names)
    return "torchscript"


def dynamic_axes(graph: ExportGraph, args: tuple[torch.Tensor, ...]) -> dict[str, dict[int, str]]:
    """Batch and sequence axes of every input and output, found by running two shapes (TorchScript needs them)."""
    with torch.inference_mode():
        a = graph(*args)
        b = graph(*(x[:1, : max(2, x.shape[1] - 3)] for x in args))
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "seq"} for n in graph.input_names}
    for name, x, y in zip(graph.output_names, a, b, strict=True):
        axes[name] = {0: "batch", **({1: "seq"} if x.dim() > 1 and x.shape[1] != y.shape[1] else {})}
    return axes


def head_nodes(path: Path) -> list[str]:
    """Names of the graph's nodes that only heads use (nothing ``sentence_embedding`` depends on)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    needed: set[int] = set()
    stack = [EMBEDDING_OUTPUT]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    return [node.name for node in graph.node if id(node) not in needed and node.name]


def node_module(node: Any) -> str:
    """The torch module a graph node came from ("encoder.backbone.encoder.layer.0.output.dense"), or ""."""
    for prop in node.metadata_props:  # the dynamo exporter records the module path of every node
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = ast.literal_eval(prop.value)
            return str(scopes[-2]) if len(scopes) > 1 else ""
    if node.name.startswith("/"):  # the TorchScript exporter names nodes /encoder/backbone/.../MatMul
        return ".".join(node.name.strip("/").split("/")[:-1])
    return ""


def matching_nodes(path: Path, patterns: Sequence[str]) -> list[str]:
    """Names of the quantizable nodes whose module matches one of ``patterns``; a pattern that matches none fails."""
    if not patterns:
        return []
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    nodes = [(n.name, node_module(n)) for n in graph.node if n.op_type in QUANTIZED_OPS and n.name]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(module, p) for _, module in nodes)]
    if unmatched:
        some = sorted({m for _, m in nodes if m})[:6]
        raise ValueError(
            f"--keep-fp32 {', '.join(map(repr, unmatched))} matches no weight product of the graph. Patterns match "
            f"module names, as in: {', '.join(some)}."
        )
    return [name for name, module in nodes if any(fnmatch.fnmatchcase(module, p) for p in patterns)]


class _DropPreprocessHint(logging.Filter):
    """quantize_dynamic suggests its shape pre-processing on every call; it fails on dynamo graphs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_graph(src: Path, dst: Path, *, exclude: Sequence[str] = ()) -> None:
    """int8 weights per output channel, activations quantized per batch at run time (``quantize_dynamic``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _DropPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,  # per-tensor scales cost MiniLM's embeddings 0.03 of cosine (0.960 vs 0.992)
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude) or None,
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.getLogger().removeFilter(hint)
