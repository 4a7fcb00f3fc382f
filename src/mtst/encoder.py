"""``SentenceEncoder``: a Hugging Face backbone plus pooling that turns texts into fixed-length embeddings.

``batches`` (from ``mtst.encoding``, shared with the ONNX backend) is the one batched forward path (sort by
length, pad, run; callers put results back in input order by the indices it yields): ``encode``,
``token_states``, ``MultiTaskModel.predict`` and the embedding cache all use it. ``from_pretrained`` on a folder
written by ``mtst export`` returns the onnxruntime-backed ``OnnxSentenceEncoder`` with the same API.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from transformers import AutoModel, AutoTokenizer

from mtst.devices import check_device, default_device
from mtst.diskio import atomic_folder
from mtst.encoding import CONVERT_TO, EncodingMixin
from mtst.hub import check_repo_id, push_folder
from mtst.inputs import check_max_length
from mtst.modelcard import CARD_FILE, base_model_of, encoder_card
from mtst.pooling import check_pooling, pool
from mtst.precision import inference_context
from mtst.runtime.encoder import OnnxSentenceEncoder
from mtst.runtime.session import is_export
from mtst.stfolder import (
    DEFAULT_MODEL,
    default_model_path,
    quiet_transformers,
    read_sentence_transformers_config,
    resolve_model_folder,
    write_sentence_transformers_files,
)
from mtst.tensorfiles import damaged, weights_file

__all__ = ["CONVERT_TO", "DEFAULT_MODEL", "SentenceEncoder", "default_model_path", "read_sentence_transformers_config"]


class SentenceEncoder(EncodingMixin, nn.Module):
    """A transformer backbone, its tokenizer and a pooling mode: texts in, one vector per text out."""

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = check_pooling(pooling)
        self.normalize = bool(normalize)
        limit = self.position_limit
        if max_length is None:
            model_max = getattr(tokenizer, "model_max_length", None) or limit
            max_length = min(int(model_max), limit) if model_max < 1e9 else limit
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}.")
        if max_length > limit:
            raise ValueError(
                f"max_length={max_length} exceeds the backbone's limit of {limit} positions "
                "(config.max_position_embeddings)."
            )
        self.max_length = max_length
        self.source: str | None = None  # what from_pretrained was given ("default", a folder, a hub id)
        self.base_model: str | None = None  # the hub id this encoder comes from, for model cards

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_MODEL,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str | torch.device | None = None,
    ) -> SentenceEncoder | OnnxSentenceEncoder:
        """Load an encoder from ``"default"``, a local Hugging Face or sentence-transformers folder, or a hub id.

        Pooling, normalization and max length come from the folder's sentence-transformers files where
        present (mean pooling, no normalization and the tokenizer's limit otherwise); arguments override them.
        A folder written by ``mtst export`` loads as an ``OnnxSentenceEncoder`` (onnxruntime, same API).
        """
        if pooling is not None:
            check_pooling(pooling)
        check_max_length(max_length)  # before anything loads
        folder = resolve_model_folder(name_or_path)
        if is_export(folder):  # CPU only: it says so for another device
            return OnnxSentenceEncoder.load(
                folder, pooling=pooling, normalize=normalize, max_length=max_length, device=device
            )
        device = check_device(device) if device is not None else default_device()  # before the weights load
        st = read_sentence_transformers_config(folder)
        backbone_dir = folder / st.get("backbone_subdir", "")
        if not (backbone_dir / "config.json").exists():
            raise FileNotFoundError(
                f"{backbone_dir} is not a model folder: expected config.json (a Hugging Face model) "
                "or modules.json naming a Transformer module (a sentence-transformers model)."
            )
        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
                backbone = AutoModel.from_pretrained(str(backbone_dir), dtype=torch.float32)
        except (OSError, ValueError, KeyError) as e:
            raise OSError(f"Could not load the backbone from {backbone_dir}: {e}") from e
        except SafetensorError as e:
            raise OSError(str(damaged(weights_file(backbone_dir), e, "Save or download the model again."))) from None
        encoder = cls(
            backbone,
            tokenizer,
            pooling=pooling or st.get("pooling", "mean"),
            normalize=st.get("normalize", False) if normalize is None else normalize,
            max_length=max_length if max_length is not None else st.get("max_length"),
        )
        encoder.source = str(name_or_path)
        encoder.base_model = base_model_of(encoder.source, folder)
        return encoder.to(device).eval()

    load = from_pretrained  # beside save, as MultiTaskModel.load

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Length of the sentence embedding."""
        return int(self.backbone.config.hidden_size)

    @property
    def position_limit(self) -> int:
        """Most tokens the backbone accepts (its position embeddings)."""
        return int(getattr(self.backbone.config, "max_position_embeddings", 512))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def place(self, device: torch.device) -> None:
        """Move the encoder to ``device`` (``encode(device=...)`` does, as in sentence-transformers)."""
        if device != self.device:
            self.to(device)

    def __repr__(self) -> str:
        return (
            f"SentenceEncoder(source={self.source!r}, backbone={self.backbone.config.model_type!r}, "
            f"pooling={self.pooling!r}, normalize={self.normalize}, dim={self.dim}, "
            f"max_seq_length={self.max_length}, device='{self.device}')"
        )

    def get_config(self) -> dict[str, Any]:
        """The settings that, with the backbone folder, rebuild this encoder."""
        return {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}

    def describe(self) -> str:
        """A short line on what runs: the backbone's type and size (``OnnxSentenceEncoder`` says its own)."""
        size = sum(p.numel() for p in self.parameters()) / 1e6
        return f"{self.backbone.config.model_type}, {size:.1f}M parameters, torch on {self.device}"

    # ------------------------------------------------------------------ forward
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize a batch, padded to its longest text and truncated to ``max_length``."""
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the backbone once; return token states and the pooled (and optionally normalized) embedding."""
        inputs = {k: features[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in features}
        token_states = self.backbone(**inputs, return_dict=True).last_hidden_state  # [batch, seq, hidden]
        embedding = pool(self.pooling, token_states, features["attention_mask"])  # [batch, hidden]
        if self.normalize:
            embedding = F.normalize(embedding, p=2, dim=-1)
        return {"token_embeddings": token_states, "sentence_embedding": embedding}

    # ------------------------------------------------------------------ encode
    def fingerprint(self) -> str:
        """SHA-256 of the backbone's weights and tokenizer vocabulary, computed now (weights may have changed)."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.backbone.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ the batched path (EncodingMixin)
    def inference(self, precision: str | None = None) -> AbstractContextManager[None]:
        """Eval mode, no autograd, and bf16 autocast where ``precision`` resolves to it (``mtst.precision``)."""
        return inference_context(self, self.device, precision)

    def embed_batch(self, features: dict[str, torch.Tensor], normalize: bool) -> torch.Tensor:
        """Pooled embeddings ``[batch, dim]`` of one padded batch, L2-normalized if ``normalize``."""
        token_states = self.backbone(**features, return_dict=True).last_hidden_state  # [batch, seq, hidden]
        emb = pool(self.pooling, token_states, features["attention_mask"]).float()  # [batch, hidden]
        return F.normalize(emb, p=2, dim=-1) if normalize else emb

    def token_states(
        self,
        texts: Sequence[str] | Sequence[Sequence[str]],
        *,
        batch_size: int = 64,
        show_progress_bar: bool | None = None,
    ) -> list[np.ndarray]:
        """Per text (or pre-split word list), the backbone's last hidden states of its tokens ``[n_tokens, dim]``."""
        ids = self.token_ids(texts, warn=False)
        out: list[np.ndarray] = [None] * len(ids)  # type: ignore[list-item]
        with torch.inference_mode():
            for idx, features in self.batches(
                ids, batch_size, desc="Encoding tokens", show_progress_bar=show_progress_bar
            ):
                states = self.backbone(**features, return_dict=True).last_hidden_state.float().cpu().numpy()
                for row, i in enumerate(idx):
                    out[i] = states[row, : len(ids[i])]
        return out

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write a folder that ``SentenceEncoder.from_pretrained`` and ``SentenceTransformer`` both load.

        Refuses a non-empty folder unless ``overwrite``; the write is atomic (temporary folder, then rename).
        """
        with atomic_folder(path, overwrite=overwrite, what="encoder") as tmp:
            self.save_to(tmp, model_id=Path(path).name)
        return Path(path)

    save_pretrained = save  # the name transformers and sentence-transformers use

    def save_to(self, folder: Path, *, model_id: str | None = None) -> None:
        """Write the encoder's files and model card into an existing folder (callers do the overwrite checks)."""
        folder = Path(folder)
        with quiet_transformers():
            self.backbone.save_pretrained(str(folder), safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder))
        write_sentence_transformers_files(
            folder, dim=self.dim, pooling=self.pooling, normalize=self.normalize, max_length=self.max_length
        )
        card = encoder_card(self, model_id=model_id or folder.name, base_model=self.base_model)
        card.save(folder / CARD_FILE)

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
        """Save to a temporary folder (card included) and upload it to the hub repo ``repo_id``; the commit URL."""
        repo_id = check_repo_id(repo_id)
        with tempfile.TemporaryDirectory(prefix="mtst-push-") as tmp:
            self.save_to(Path(tmp), model_id=repo_id)
            return push_folder(
                tmp,
                repo_id,
                token=token,
                private=private,
                commit_message=commit_message,
                revision=revision,
                create_pr=create_pr,
                exist_ok=exist_ok,
            )
