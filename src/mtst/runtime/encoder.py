"""``OnnxSentenceEncoder``: an exported graph on onnxruntime with ``SentenceEncoder``'s text API (encode, similarity).

Tokenizing, batching by length and restoring the input order are ``EncodingMixin``'s, the same code the torch
encoder runs; only ``embed_batch`` differs: the graph pools, and the L2 normalization happens here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from mtst.encoding import EncodingMixin
from mtst.hub import push_export
from mtst.modelcard import export_card
from mtst.pooling import check_pooling
from mtst.precision import check_precision
from mtst.runtime.session import EMBEDDING_OUTPUT, GraphSession, read_export_config
from mtst.stfolder import quiet_transformers

CPU = torch.device("cpu")


class OnnxSentenceEncoder(EncodingMixin):
    """An exported encoder graph run by onnxruntime on the CPU; ``encode`` and ``similarity`` as the torch one."""

    backend = "onnx"
    training = False

    def __init__(
        self,
        folder: str | Path,
        config: dict[str, Any],
        *,
        normalize: bool | None = None,
        max_length: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.config = config
        e = config["encoder"]
        self.pooling = e["pooling"]
        self.graph_normalize = bool(e["normalize"])  # what the heads inside the graph see
        self.normalize = self.graph_normalize if normalize is None else bool(normalize)
        self.position_limit = int(e["position_limit"])
        max_length = int(e["max_length"]) if max_length is None else max_length
        if not isinstance(max_length, int) or not 2 <= max_length <= self.position_limit:
            raise ValueError(
                f"max_length must be an integer from 2 to {self.position_limit} (the backbone's positions), "
                f"got {max_length!r}."
            )
        self.max_length = max_length
        self.quantize = config.get("quantize", "none")
        self.source = str(self.folder)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        except (OSError, ValueError, KeyError) as err:
            raise OSError(f"Could not load the tokenizer of the export {self.folder}: {err}") from err
        self.session = GraphSession(self.folder, config, threads=threads)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str | torch.device | None = None,
        threads: int | None = None,
    ) -> OnnxSentenceEncoder:
        """Load an export folder (encoder or multi-task: either yields its encoder); overrides as ``from_pretrained``.

        Pooling is fixed inside the graph: a different ``pooling`` is refused. ``threads`` defaults to the
        physical cores. The graph runs on the CPU only.
        """
        conf = read_export_config(folder)
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"ONNX exports run on the CPU (onnxruntime), not on {device!r}; pass device='cpu'.")
        if pooling is not None and check_pooling(pooling) != conf["encoder"]["pooling"]:
            raise ValueError(
                f"{folder}: the export pools with {conf['encoder']['pooling']!r} inside its graph; pooling "
                f"{pooling!r} needs a new export from the source model with that pooling."
            )
        return cls(folder, conf, normalize=normalize, max_length=max_length, threads=threads)

    from_pretrained = load  # the name transformers and sentence-transformers use

    # ------------------------------------------------------------------ properties (as SentenceEncoder's)
    @property
    def dim(self) -> int:
        """Length of the sentence embedding."""
        return int(self.config["encoder"]["dim"])

    @property
    def device(self) -> torch.device:
        return CPU

    def place(self, device: torch.device) -> None:
        """Only the CPU: ``encode(device="cuda")`` on an export is refused, with what to do instead."""
        if torch.device(device).type != "cpu":
            raise ValueError(f"ONNX exports run on the CPU (onnxruntime), not on {str(device)!r}; pass device='cpu'.")

    def get_config(self) -> dict[str, Any]:
        """Pooling, normalization and max length, as ``SentenceEncoder.get_config``."""
        return {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}

    def describe(self) -> str:
        """A short line on what runs: backend, precision, threads and the source model."""
        return (
            f"ONNX ({'int8' if self.quantize == 'int8' else 'fp32'}, onnxruntime, {self.session.threads} threads), "
            f"exported from {self.config.get('source', {}).get('model', '?')}"
        )

    def fingerprint(self) -> str:
        """SHA-256 of the graph's checksum and the tokenizer vocabulary (an int8 graph differs from its fp32 one)."""
        h = hashlib.sha256(f"onnx:{self.config.get('graph_sha256', '')}".encode())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ running the graph
    @contextlib.contextmanager
    def inference(self, precision: str | None = None) -> Iterator[None]:
        """No autograd; ``precision`` may be fp32 or auto only: the graph has its own (fp32 or int8)."""
        if precision is not None and check_precision(precision) == "bf16":
            raise ValueError(
                f"precision='bf16' applies to torch models; this ONNX export runs its own graph "
                f"({'int8' if self.quantize == 'int8' else 'fp32'}). Drop --precision, or load the source model."
            )
        with torch.inference_mode():
            yield

    def outputs(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every graph output of one padded batch as a tensor: ``sentence_embedding`` (pooled) and each head."""
        return {k: torch.from_numpy(v) for k, v in self.session.run(features).items()}

    def embedding(self, pooled: torch.Tensor, normalize: bool) -> torch.Tensor:
        """The pooled graph output ``[batch, dim]``, L2-normalized if asked."""
        return F.normalize(pooled, p=2, dim=-1) if normalize else pooled

    def embed_batch(self, features: dict[str, torch.Tensor], normalize: bool) -> torch.Tensor:
        pooled = torch.from_numpy(self.session.run(features, [EMBEDDING_OUTPUT])[EMBEDDING_OUTPUT])  # [batch, dim]
        return self.embedding(pooled, normalize)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"sentence_embedding"}`` as the torch encoder's forward gives it (normalized as the model is)."""
        return {"sentence_embedding": self.embed_batch(features, self.graph_normalize)}

    __call__ = forward

    def token_states(self, texts: Any, **kwargs: Any) -> Any:
        """Not in an export: the graph returns pooled embeddings and head outputs, not every token's state."""
        raise NotImplementedError(
            f"{self.folder} is an ONNX export: it has no per-token states. Load the source model for token_states "
            "(e.g. to build a token cache)."
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        exist_ok: bool = True,
    ) -> str:
        """Upload the export folder as it is (with a model card if it has none) to the hub repo; the commit URL."""
        card = export_card(self.config, model_id=repo_id)
        return push_export(
            self.folder,
            repo_id,
            str(card),
            token=token,
            private=private,
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
            exist_ok=exist_ok,
        )

    def eval(self) -> OnnxSentenceEncoder:
        return self  # an inference graph: no train/eval modes

    def train(self, mode: bool = True) -> OnnxSentenceEncoder:
        return self

    def __repr__(self) -> str:
        return (
            f"OnnxSentenceEncoder({str(self.folder)!r}, backbone={self.config['encoder'].get('model_type')!r}, "
            f"pooling={self.pooling!r}, dim={self.dim}, quantize={self.quantize!r})"
        )
