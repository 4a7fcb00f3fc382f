"""``SentenceEncoder``: a Hugging Face backbone plus pooling that turns texts into fixed-length embeddings.

``batches`` is the one batched forward path (sort by length, pad, run; callers put results back in input
order by the indices it yields): ``encode``, ``token_states``, ``MultiTaskModel.predict`` and the embedding
cache all use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

from mtst.diskio import atomic_folder
from mtst.inputs import check_max_length
from mtst.padding import features_for, sorted_batches
from mtst.pooling import check_pooling, pool
from mtst.similarity import cosine_similarity
from mtst.stfolder import (
    DEFAULT_MODEL,
    default_model_path,
    quiet_transformers,
    read_sentence_transformers_config,
    resolve_model_folder,
    write_sentence_transformers_files,
)
from mtst.tensorfiles import damaged, weights_file

logger = logging.getLogger(__name__)

CONVERT_TO = ("numpy", "torch")

__all__ = ["CONVERT_TO", "DEFAULT_MODEL", "SentenceEncoder", "default_model_path", "read_sentence_transformers_config"]


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class SentenceEncoder(nn.Module):
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
    ) -> SentenceEncoder:
        """Load an encoder from ``"default"``, a local Hugging Face or sentence-transformers folder, or a hub id.

        Pooling, normalization and max length come from the folder's sentence-transformers files where
        present (mean pooling, no normalization and the tokenizer's limit otherwise); arguments override them.
        """
        if pooling is not None:
            check_pooling(pooling)
        check_max_length(max_length)  # before anything loads
        folder = resolve_model_folder(name_or_path)
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
        return encoder.to(device or _default_device()).eval()

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

    def get_config(self) -> dict[str, Any]:
        """The settings that, with the backbone folder, rebuild this encoder."""
        return {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}

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

    # ------------------------------------------------------------------ the batched forward path
    def token_ids(self, texts: Sequence[str] | Sequence[Sequence[str]], *, warn: bool = True) -> list[list[int]]:
        """Token ids of every text (or pre-split word list), truncated to ``max_length``; no padding yet."""
        split = bool(texts) and not isinstance(texts[0], str)
        ids = self.tokenizer(
            [list(t) for t in texts] if split else list(texts),
            is_split_into_words=split,
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        truncated = sum(len(x) >= self.max_length for x in ids)
        if truncated and warn:
            logger.warning(
                "%d text(s) reached the limit of %d tokens; tokens past it are dropped (truncation).",
                truncated,
                self.max_length,
            )
        return ids

    def batches(
        self,
        ids: Sequence[Sequence[int]],
        batch_size: int,
        *,
        desc: str = "Encoding",
        show_progress_bar: bool | None = None,
    ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """The one batched path: ``(indices, padded features on the device)`` per batch, longest texts first.

        Texts of similar length share a batch, which cuts padding; callers write each batch's results back at
        ``indices`` to restore the input order. A bar shows progress past 8 batches (or as ``show_progress_bar``).
        """
        plan = sorted_batches([len(r) for r in ids], batch_size)
        show = len(plan) > 8 if show_progress_bar is None else show_progress_bar
        pad_id = self.tokenizer.pad_token_id or 0
        for index in tqdm(plan, desc=desc, disable=not show):
            idx = index.tolist()
            yield idx, {k: v.to(self.device) for k, v in features_for([ids[i] for i in idx], pad_id).items()}

    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        normalize: bool | None = None,
        convert_to: str = "numpy",
        show_progress_bar: bool | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts as a float32 ``[n, dim]`` array in input order (``[dim]`` for a single string).

        Texts are sorted by token length before batching to cut padding; texts longer than
        ``max_length`` tokens are truncated. ``normalize`` defaults to the encoder's own setting.
        """
        if convert_to not in CONVERT_TO:
            raise ValueError(f"convert_to must be one of {', '.join(CONVERT_TO)}; got {convert_to!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str: every text must be a string.")
        normalize = self.normalize if normalize is None else normalize

        out = torch.empty((len(items), self.dim), dtype=torch.float32)  # [n, dim]
        if items:
            ids = self.token_ids(items)
            was_training = self.training
            self.eval()
            with torch.inference_mode():
                for idx, features in self.batches(ids, batch_size, show_progress_bar=show_progress_bar):
                    token_states = self.backbone(**features, return_dict=True).last_hidden_state
                    emb = pool(self.pooling, token_states, features["attention_mask"]).float()  # [batch, hidden]
                    if normalize:
                        emb = F.normalize(emb, p=2, dim=-1)
                    out[torch.as_tensor(idx)] = emb.cpu()
            self.train(was_training)
        if single:
            out = out[0]
        return out if convert_to == "torch" else out.numpy()

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

    def similarity(
        self,
        a: Sequence[str] | np.ndarray | torch.Tensor,
        b: Sequence[str] | np.ndarray | torch.Tensor | None = None,
    ) -> np.ndarray:
        """Cosine similarity matrix ``[len(a), len(b)]`` between texts or embeddings (``b`` defaults to ``a``)."""
        ea = self._as_embeddings(a)
        eb = ea if b is None else self._as_embeddings(b)
        return cosine_similarity(ea, eb)

    def _as_embeddings(self, x: Sequence[str] | np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            return torch.from_numpy(x)
        if isinstance(x, torch.Tensor):
            return x.detach().cpu()
        return self.encode([x] if isinstance(x, str) else x, convert_to="torch")

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write a folder that ``SentenceEncoder.from_pretrained`` and ``SentenceTransformer`` both load.

        Refuses a non-empty folder unless ``overwrite``; the write is atomic (temporary folder, then rename).
        """
        with atomic_folder(path, overwrite=overwrite, what="encoder") as tmp:
            self.save_to(tmp)
        return Path(path)

    def save_to(self, folder: Path) -> None:
        """Write the encoder's files into an existing folder (callers do the overwrite checks)."""
        folder = Path(folder)
        with quiet_transformers():
            self.backbone.save_pretrained(str(folder), safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder))
        write_sentence_transformers_files(
            folder, dim=self.dim, pooling=self.pooling, normalize=self.normalize, max_length=self.max_length
        )
