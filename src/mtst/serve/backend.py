"""What the server runs: one place that loads a model and the four calls the routes need."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtst.encoder import SentenceEncoder
from mtst.model import MultiTaskModel, default_multitask_path
from mtst.runtime.session import export_kind

DEFAULT = "default"
MODEL_CONFIG_FILE = "mtst_config.json"
# Texts per forward pass inside one merged batch (sorted by length first, so little padding). On a CPU one
# pass over a whole merged batch of ~300 SST-2 sentences ran at half the speed of passes of 16-64 texts.
MODEL_BATCH_SIZE = 32


class Backend:
    """A loaded sentence encoder, with the task heads of a ``MultiTaskModel`` when there is one.

    ``encoder`` answers the embedding routes; ``model`` answers ``/predict`` through its own encoder, which is
    usually ``encoder`` itself. The default differs: all-MiniLM-L6-v2 embeds (STS-B 0.87), the shipped joint
    model, whose backbone fine-tuning on topic, sentiment and entities left its embeddings at STS-B 0.54,
    predicts.

    ``embed``, ``predict`` and ``count_tokens`` are called from the batcher's worker thread only, one at a time.
    """

    def __init__(self, encoder: Any, model: Any | None = None, *, name: str = DEFAULT) -> None:
        self.encoder = encoder
        self.model = model
        self.name = name

    # ------------------------------------------------------------------ properties
    @property
    def kind(self) -> str:
        """``"torch"``, or ``"onnx"`` for an ``mtst export`` folder run on onnxruntime."""
        return str(getattr(self.encoder, "backend", "torch"))

    @property
    def max_length(self) -> int:
        """Most tokens per text (special tokens included); longer texts are truncated."""
        return int(self.encoder.max_length)

    def limit(self, kind: str) -> int:
        """``max_length`` of what runs a job of ``kind`` ("embed" or "predict")."""
        if kind == "predict" and self.model is not None:
            return int(self.model.encoder.max_length)
        return self.max_length

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @property
    def normalize(self) -> bool:
        """The encoder's own normalization (what ``SentenceEncoder.encode`` does by default)."""
        return bool(self.encoder.normalize)

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """``{name: {"type", "labels"}}`` of the tasks ``predict`` answers (similarity tasks have no head)."""
        if self.model is None:
            return {}
        return {
            name: {"type": t.type, "labels": list(t.labels.names) if t.labels is not None else None}
            for name, t in self.model.tasks.items()
            if t.type != "similarity"
        }

    # ------------------------------------------------------------------ calls
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text before truncation, special tokens included."""
        enc = self.encoder.tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=False,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str], normalize: bool) -> np.ndarray:
        """Float32 embeddings ``[n, dim]`` (texts past ``max_length`` are truncated)."""
        return self.encoder.encode(
            list(texts), batch_size=MODEL_BATCH_SIZE, normalize=normalize, show_progress_bar=False
        )

    def predict(self, texts: Sequence[str], tasks: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One dict per text, ``{task: prediction}``, all tasks from one backbone pass; ValueError: unknown task."""
        if self.model is None:
            raise ValueError(no_tasks_message(self.name))
        return self.model.predict(
            list(texts),
            tasks=None if tasks is None else list(tasks),
            batch_size=MODEL_BATCH_SIZE,
            show_progress_bar=False,
        )

    def info(self) -> dict[str, Any]:
        """Model, backend, tasks and their labels, and the encoder's settings (the app adds its limits)."""
        return {
            "model": self.name,
            "backend": self.kind,
            "device": str(self.encoder.device),
            "dim": self.dim,
            "pooling": self.encoder.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "tasks": [{"name": name, **t} for name, t in self.tasks.items()],
            **(
                {"predict": self._predict_info()}
                if self.model is not None and self.model.encoder is not self.encoder
                else {}
            ),
        }

    def _predict_info(self) -> dict[str, Any]:
        """What answers ``/predict`` where it is not the embedding encoder (the default model)."""
        enc = self.model.encoder
        return {
            "backend": str(getattr(enc, "backend", "torch")),
            "max_length": int(enc.max_length),
            "dim": int(enc.dim),
        }


def no_tasks_message(name: str) -> str:
    return (
        f"model {name!r} is a sentence encoder without task heads: it serves /embed, /v1/embeddings and "
        "/similarity only. Serve an mtst model folder (written by `mtst train`) to get predictions."
    )


def load_backend(model: str | Path | None = None, *, device: str | None = None) -> Backend:
    """Load what ``mtst serve --model`` names: ``None``/"default", an mtst model folder, or any encoder.

    "default" is all-MiniLM-L6-v2 for embeddings and the shipped joint model (int8 ONNX) for predictions; a
    folder holding ``mtst_config.json`` (or an ``mtst export`` of one) is a ``MultiTaskModel``; anything else loads with
    ``SentenceEncoder.from_pretrained`` (embeddings and similarity only). Errors are ``OSError``/``ValueError``
    that name the model.
    """
    if model is None or str(model) == DEFAULT:
        embedder = SentenceEncoder.from_pretrained(DEFAULT, device=device)
        if export_kind(default_multitask_path()) == "multitask":
            return Backend(embedder, MultiTaskModel.load(DEFAULT), name=DEFAULT)  # see Backend
        return Backend(embedder, name=DEFAULT)
    path = Path(str(model)).expanduser()
    if (path / MODEL_CONFIG_FILE).exists() or export_kind(path) == "multitask":
        mt = MultiTaskModel.load(path, device=device)
        return Backend(mt.encoder, mt, name=path.resolve().name)
    encoder = SentenceEncoder.from_pretrained(model, device=device)
    return Backend(encoder, name=path.resolve().name if path.exists() else str(model))
