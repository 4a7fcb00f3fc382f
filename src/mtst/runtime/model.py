"""``OnnxMultiTaskModel``: an exported multi-task graph on onnxruntime with ``MultiTaskModel``'s API.

``predict`` is ``PredictionMixin``'s, the code the torch model runs: each task decodes the graph's outputs
with its own ``predict`` (softmax labels, sigmoid scores, numpy Viterbi over the saved CRF scores, entity
spans with character offsets). ``forward`` and ``head`` follow the torch model's, so ``mtst.evaluation``
evaluates an export unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.numpy import load_file

from mtst.config import TaskConfig
from mtst.datapaths import resolve_task_paths
from mtst.prediction import PredictionMixin
from mtst.runtime.encoder import OnnxSentenceEncoder
from mtst.runtime.session import CRF_FILE, EMBEDDING_OUTPUT, read_export_config
from mtst.tasks import Task, build_task


@dataclass(frozen=True)
class CRFScores:
    """A CRF's scores as ``torchcrf.CRF`` names them, read from ``crf.safetensors``."""

    start_transitions: torch.Tensor  # [n_tags]
    transitions: torch.Tensor  # [n_tags (from), n_tags (to)]
    end_transitions: torch.Tensor  # [n_tags]


@dataclass(frozen=True)
class SavedHead:
    """What of a head lives outside the graph: its CRF, for ``task.crf_params(head)``."""

    crf: CRFScores | None


class OnnxMultiTaskModel(PredictionMixin):
    """An exported multi-task graph: one onnxruntime call per batch gives the embedding and every head's output."""

    backend = "onnx"
    training = False

    def __init__(
        self, encoder: OnnxSentenceEncoder, tasks: Sequence[Task], crf: Mapping[str, CRFScores] | None = None
    ) -> None:
        self.encoder = encoder
        self.tasks: dict[str, Task] = {t.name: t for t in tasks}
        self.crf = dict(crf or {})
        self.extra: dict[str, Any] = dict(encoder.config.get("extra") or {})

    @classmethod
    def load(
        cls, path: str | Path, *, device: str | torch.device | None = None, threads: int | None = None
    ) -> OnnxMultiTaskModel:
        """Load a multi-task export folder (``mtst export`` of an mtst model); ``threads``: physical cores."""
        path = Path(path)
        conf = read_export_config(path)
        if conf["kind"] != "multitask":
            raise ValueError(
                f"{path} is an ONNX export of a sentence encoder without task heads: load it with "
                "SentenceEncoder.from_pretrained, or export an mtst model folder to get predictions."
            )
        encoder = OnnxSentenceEncoder.load(path, device=device, threads=threads)
        tasks = [build_task(TaskConfig(**t)) for t in resolve_task_paths(conf["tasks"], path, conf.get("names_only"))]
        missing = [t.name for t in tasks if t.has_head and t.name not in encoder.session.output_names]
        if missing:
            raise ValueError(f"{path}: the graph has no output for task(s) {', '.join(missing)}; export again.")
        crf: dict[str, CRFScores] = {}
        if conf.get("crf"):
            crf_file = path / CRF_FILE
            if not crf_file.is_file():
                raise FileNotFoundError(f"{crf_file} is missing: the export folder {path} is incomplete.")
            arrays = load_file(str(crf_file))
            for name in conf["crf"]:
                parts = [torch.from_numpy(arrays[f"{name}.{k}"]) for k in ("start", "transitions", "end")]
                crf[name] = CRFScores(*parts)
        return cls(encoder, tasks, crf)

    from_pretrained = load  # the name transformers and sentence-transformers use

    # ------------------------------------------------------------------ as MultiTaskModel
    def head(self, name: str) -> SavedHead | None:
        """What decoding needs of task ``name``'s head (its CRF), or ``None`` for a task without one."""
        return SavedHead(self.crf.get(name)) if self.tasks[name].has_head else None

    def forward(self, features: Mapping[str, torch.Tensor], tasks: Sequence[str] | None = None) -> dict[str, Any]:
        """One graph run for the batch: ``{task: output}`` as the torch model's forward gives them."""
        names = self._check_tasks(tasks)
        out = self.encoder.outputs(dict(features))
        encoded = {"sentence_embedding": self.encoder.embedding(out[EMBEDDING_OUTPUT], self.encoder.graph_normalize)}
        # tasks without a head (similarity) take the embedding itself, through their own forward
        return {n: out[n] if self.tasks[n].has_head else self.tasks[n].forward(None, encoded) for n in names}

    __call__ = forward

    def inference(self, precision: str | None = None) -> contextlib.AbstractContextManager[None]:
        return self.encoder.inference(precision)

    def push_to_hub(self, repo_id: str, **options: Any) -> str:
        """Upload the export folder to the hub repo ``repo_id`` (the options of ``OnnxSentenceEncoder.push_to_hub``)."""
        return self.encoder.push_to_hub(repo_id, **options)

    def eval(self) -> OnnxMultiTaskModel:
        return self  # an inference graph: no train/eval modes

    def train(self, mode: bool = True) -> OnnxMultiTaskModel:
        return self

    def get_config(self) -> dict[str, Any]:
        """The export's config (format, encoder settings, tasks and labels, source model)."""
        return dict(self.encoder.config)

    def __repr__(self) -> str:
        tasks = {name: t.type for name, t in self.tasks.items()}
        return f"OnnxMultiTaskModel({str(self.encoder.folder)!r}, dim={self.encoder.dim}, tasks={tasks})"
