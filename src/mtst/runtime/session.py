"""An export folder on disk (the file that marks it, its format checks) and the onnxruntime session of its graph.

Layout written by ``mtst export``::

    EXPORT/
      mtst_export.json   format, version, kind (encoder | multitask), encoder settings, tasks, inputs, outputs
      model.onnx         one graph: input_ids, attention_mask (+ token_type_ids) -> sentence_embedding + heads
      crf.safetensors    transition and start/end scores of each CRF (decoded in numpy, outside the graph)
      tokenizer files    as the tokenizer's save_pretrained writes them
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import psutil  # installed with accelerate
import torch

from mtst.diskio import read_json

EXPORT_CONFIG_FILE = "mtst_export.json"
GRAPH_FILE = "model.onnx"
CRF_FILE = "crf.safetensors"
FORMAT = "mtst-onnx"
FORMAT_VERSION = 1
KINDS = ("encoder", "multitask")
INSTALL_HINT = "pip install 'mtst[onnx]' (or: pip install onnxruntime onnx onnxscript)"
# The graph's pooled output: the sentence embedding before L2 normalization (the runtime normalizes it).
EMBEDDING_OUTPUT = "sentence_embedding"


def is_export(path: str | Path) -> bool:
    """True if ``path`` is a folder written by ``mtst export``."""
    return (Path(path) / EXPORT_CONFIG_FILE).is_file()


def export_kind(path: str | Path) -> str | None:
    """``"encoder"`` or ``"multitask"`` for an export folder (its config checked), ``None`` for any other path."""
    return read_export_config(path)["kind"] if is_export(path) else None


def read_export_config(path: str | Path) -> dict[str, Any]:
    """The checked ``mtst_export.json`` of an export folder; errors name the file and say how to fix it."""
    path = Path(path)
    conf_file = path / EXPORT_CONFIG_FILE
    if not conf_file.is_file():
        raise FileNotFoundError(f"{path} is not an mtst ONNX export: {EXPORT_CONFIG_FILE} is missing.")
    conf = read_json(conf_file)
    if not isinstance(conf, dict) or conf.get("format") != FORMAT:
        found = conf.get("format") if isinstance(conf, dict) else type(conf).__name__
        raise ValueError(f"{conf_file}: format is {found!r}, expected {FORMAT!r}.")
    version = conf.get("format_version")
    if not isinstance(version, int):
        raise ValueError(f"{conf_file}: format_version must be an integer, got {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{conf_file}: format_version {version} is newer than this mtst reads ({FORMAT_VERSION}): the export "
            "was written by a later mtst. Upgrade mtst (pip install -U mtst), or export the model again with "
            "this one (mtst export SOURCE_MODEL --output DIR --overwrite)."
        )
    if conf.get("kind") not in KINDS:
        raise ValueError(f"{conf_file}: kind must be one of {', '.join(KINDS)}, got {conf.get('kind')!r}.")
    return conf


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an ``ImportError`` that says how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"Running an ONNX export needs onnxruntime, which is not installed: {INSTALL_HINT}.") from e
    return onnxruntime


def physical_cores() -> int:
    """Physical cores this process may use (``OMP_NUM_THREADS`` wins when set, as it does for torch)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = psutil.cpu_count(logical=False) or allowed
    return max(1, min(cores, allowed))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (the graph's checksum, recorded at export and checked at load)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class GraphSession:
    """The onnxruntime session of an export's graph: padded torch features in, named numpy outputs out."""

    def __init__(self, folder: str | Path, config: dict[str, Any], *, threads: int | None = None) -> None:
        ort = import_onnxruntime()
        folder = Path(folder)
        graph = folder / config.get("graph", GRAPH_FILE)
        if not graph.is_file():
            raise FileNotFoundError(f"{graph} is missing: the export folder {folder} is incomplete; export again.")
        expected = config.get("graph_sha256")
        if expected and file_sha256(graph) != expected:
            raise OSError(
                f"{graph} is damaged or was changed: its checksum differs from the one recorded at export. "
                "Export the model again (mtst export SOURCE_MODEL --output DIR --overwrite)."
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or physical_cores()
        options.inter_op_num_threads = 1  # one graph, run sequentially: parallelism is inside the ops
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no per-load notes on the console
        try:
            self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
            raise OSError(
                f"onnxruntime could not load {graph} ({type(e).__name__}: {str(e).strip()[:300]}): the file is "
                "damaged or incomplete. Export the model again (mtst export SOURCE_MODEL --output DIR --overwrite)."
            ) from e
        self.threads = options.intra_op_num_threads
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, features: dict[str, torch.Tensor], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the graph on one padded batch: ``{output name: array}`` (all outputs unless ``outputs``)."""
        ids = features["input_ids"].cpu().numpy().astype(np.int64, copy=False)  # [batch, seq]
        feed = {"input_ids": ids, "attention_mask": features["attention_mask"].cpu().numpy().astype(np.int64)}
        if "token_type_ids" in self.input_names:
            given = features.get("token_type_ids")
            feed["token_type_ids"] = np.zeros_like(ids) if given is None else given.cpu().numpy().astype(np.int64)
        names = outputs or self.output_names
        return dict(zip(names, self.session.run(names, feed), strict=True))
