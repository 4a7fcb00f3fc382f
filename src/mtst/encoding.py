"""The text side of an encoder, written once for every backend: token ids, the one batched path, encode, similarity.

``SentenceEncoder`` (torch) and ``OnnxSentenceEncoder`` (onnxruntime) both inherit it. A subclass provides
``tokenizer``, ``max_length``, ``dim``, ``normalize``, ``device``, ``inference(precision)`` (a context to run
batches in) and ``embed_batch(features, normalize)`` (one padded batch to its embeddings ``[batch, dim]``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mtst.inputs import text_list
from mtst.padding import features_for, sorted_batches
from mtst.similarity import cosine_similarity

logger = logging.getLogger("mtst.encoder")

CONVERT_TO = ("numpy", "torch")


class EncodingMixin:
    """Tokenize, batch by length, embed, compare: the encoder API shared by the torch and ONNX backends."""

    tokenizer: Any
    max_length: int
    normalize: bool
    precision: str | None = None  # what encode runs in when not told: None (fp32), "fp32", "bf16" or "auto"

    @property
    def dim(self) -> int:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @property
    def device(self) -> torch.device:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def inference(self, precision: str | None = None) -> AbstractContextManager[None]:
        """The context batches run in (eval mode, no autograd, autocast for ``precision``)."""
        raise NotImplementedError

    def embed_batch(self, features: dict[str, torch.Tensor], normalize: bool) -> torch.Tensor:
        """Embeddings ``[batch, dim]`` of one padded batch, L2-normalized if ``normalize``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the batched path
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

    # ------------------------------------------------------------------ encode
    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        normalize: bool | None = None,
        convert_to: str = "numpy",
        show_progress_bar: bool | None = None,
        precision: str | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts as a float32 ``[n, dim]`` array in input order (``[dim]`` for a single string).

        Texts are sorted by token length before batching to cut padding; texts longer than
        ``max_length`` tokens are truncated. ``normalize`` defaults to the encoder's own setting.
        ``precision``: ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 only where the CPU or GPU computes it
        natively; see ``mtst.precision``); the default is the encoder's ``precision`` attribute (fp32 if unset).
        """
        if convert_to not in CONVERT_TO:
            raise ValueError(f"convert_to must be one of {', '.join(CONVERT_TO)}; got {convert_to!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        items, single = text_list(texts)  # a str, a sequence of str, a pyarrow string array; else TypeError
        normalize = self.normalize if normalize is None else normalize

        out = torch.empty((len(items), self.dim), dtype=torch.float32)  # [n, dim]
        with self.inference(self.precision if precision is None else precision):  # refuses a wrong one at once
            ids = self.token_ids(items) if items else []
            for idx, features in self.batches(ids, batch_size, show_progress_bar=show_progress_bar):
                out[torch.as_tensor(idx)] = self.embed_batch(features, normalize).float().cpu()  # [batch, dim]
        if single:
            out = out[0]
        return out if convert_to == "torch" else out.numpy()

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
