"""The text side of an encoder, written once for every backend: token ids, the one batched path, encode, similarity.

``SentenceEncoder`` (torch) and ``OnnxSentenceEncoder`` (onnxruntime) both inherit it. A subclass provides
``tokenizer``, ``max_length``, ``position_limit``, ``dim``, ``normalize``, ``device``, ``place(device)``,
``inference(precision)`` (a context to run batches in) and ``embed_batch(features, normalize)`` (one padded batch
to its embeddings ``[batch, dim]``). sentence-transformers' names (``get_sentence_embedding_dimension``,
``max_seq_length``, ``encode``'s keywords) are here too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mtst.devices import check_device
from mtst.inputs import text_list
from mtst.padding import features_for, sorted_batches
from mtst.progress import progress_bars_disabled
from mtst.similarity import cosine_similarity

logger = logging.getLogger("mtst.encoder")

CONVERT_TO = ("numpy", "torch")


def _normalize_setting(normalize: bool | None, normalize_embeddings: bool | None) -> bool | None:
    """mtst's ``normalize`` or sentence-transformers' ``normalize_embeddings`` (True adds an L2 normalization;
    False, its default, leaves the model's own, so it never undoes a model that normalizes)."""
    if normalize_embeddings and normalize is not None and not normalize:
        raise ValueError("normalize=False and normalize_embeddings=True disagree; give one of them.")
    return True if normalize_embeddings else normalize


def _output_kind(convert_to: str | None, to_numpy: bool | None, to_tensor: bool | None) -> str:
    """``"numpy"``, ``"torch"`` or ``"list"`` (of tensors) from ``convert_to`` or sentence-transformers' flags."""
    if convert_to is not None and convert_to not in CONVERT_TO:
        raise ValueError(f"convert_to must be one of {', '.join(CONVERT_TO)}; got {convert_to!r}.")
    # sentence-transformers: convert_to_tensor wins over convert_to_numpy; neither gives a list of tensors
    flags = None
    if to_tensor:
        flags = "torch"
    elif to_numpy is not None or to_tensor is not None:
        flags = "numpy" if (to_numpy is None or to_numpy) else "list"
    if convert_to is not None and flags is not None and flags != convert_to:
        raise ValueError(
            f"convert_to={convert_to!r} disagrees with convert_to_numpy={to_numpy!r}, convert_to_tensor={to_tensor!r}; "
            "give one of them."
        )
    return convert_to or flags or "numpy"


class EncodingMixin:
    """Tokenize, batch by length, embed, compare: the encoder API shared by the torch and ONNX backends."""

    tokenizer: Any
    max_length: int
    normalize: bool
    precision: str | None = None  # what encode runs in when not told: "fp32", "bf16", "auto", None (default_precision)

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
        ``indices`` to restore the input order. A bar shows progress past 8 batches (or as ``show_progress_bar``;
        never after ``mtst.progress.disable_progress_bars()``).
        """
        plan = sorted_batches([len(r) for r in ids], batch_size)
        show = len(plan) > 8 if show_progress_bar is None else show_progress_bar
        pad_id = self.tokenizer.pad_token_id or 0
        for index in tqdm(plan, desc=desc, disable=not show or progress_bars_disabled()):
            idx = index.tolist()
            yield idx, {k: v.to(self.device) for k, v in features_for([ids[i] for i in idx], pad_id).items()}

    # ------------------------------------------------------------------ sentence-transformers' names
    def get_sentence_embedding_dimension(self) -> int:
        """Length of the sentence embedding (``dim``), under sentence-transformers' name."""
        return self.dim

    get_embedding_dimension = get_sentence_embedding_dimension  # sentence-transformers 6's shorter name

    @property
    def max_seq_length(self) -> int:
        """Most tokens per text (``max_length``), under sentence-transformers' name; longer texts are truncated."""
        return self.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        limit = int(self.position_limit)
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= limit:
            raise ValueError(
                f"max_seq_length must be an integer from 2 to {limit} (the backbone's position embeddings), "
                f"got {value!r}."
            )
        self.max_length = value

    def place(self, device: torch.device) -> None:
        """Move the model to ``device`` (checked by ``mtst.devices.check_device``), as ``encode(device=...)`` does."""
        raise NotImplementedError

    # ------------------------------------------------------------------ encode
    def iter_embeddings(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        normalize: bool | None = None,
        precision: str | None = None,
        show_progress_bar: bool | None = False,
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """The batched path of ``encode`` as a generator: ``(indices into texts, float32 [batch, dim] on the CPU)``.

        Longest texts come first; a caller writes each batch at its indices (``encode_file`` counts them on its
        own progress bar). The batches run inside ``inference(precision)``, entered at the first ``next``.
        """
        normalize = self.normalize if normalize is None else normalize
        with self.inference(self.precision if precision is None else precision):  # refuses a wrong one at once
            ids = self.token_ids(texts) if texts else []
            for idx, features in self.batches(ids, batch_size, show_progress_bar=show_progress_bar):
                yield idx, self.embed_batch(features, normalize).float().cpu()  # [batch, dim]

    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        normalize: bool | None = None,
        convert_to: str | None = None,
        show_progress_bar: bool | None = None,
        precision: str | None = None,
        device: str | torch.device | None = None,
        normalize_embeddings: bool | None = None,
        convert_to_numpy: bool | None = None,
        convert_to_tensor: bool | None = None,
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor]:
        """Embed texts as a float32 ``[n, dim]`` array in input order (``[dim]`` for a single string).

        Texts are sorted by token length before batching to cut padding; texts longer than ``max_length``
        tokens are truncated. ``normalize`` defaults to the encoder's own setting. ``convert_to``: ``"numpy"``
        (the default) or ``"torch"``. ``precision`` is the *compute* precision: ``"fp32"``, ``"bf16"`` or
        ``"auto"`` (bf16 only where the CPU or GPU computes it natively; see ``mtst.precision``); the default is
        the encoder's ``precision`` attribute, else ``$MTST_PRECISION``, else auto. ``device`` moves the model
        there first.

        sentence-transformers' keywords mean what they mean there: ``normalize_embeddings=True`` is
        ``normalize=True`` (``False`` keeps the model's own); ``convert_to_tensor=True`` is ``convert_to="torch"``;
        ``convert_to_numpy=False`` without a tensor gives a list of ``[dim]`` tensors; ``precision="float32"`` is
        fp32, and its output quantizations (``"int8"``, ``"binary"``...) are refused with what to use instead.
        """
        normalize = _normalize_setting(normalize, normalize_embeddings)
        convert_to = _output_kind(convert_to, convert_to_numpy, convert_to_tensor)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        items, single = text_list(texts)  # a str, a sequence of str, a pyarrow string array; else TypeError
        if device is not None:
            self.place(check_device(device))

        out = torch.empty((len(items), self.dim), dtype=torch.float32)  # [n, dim]
        plan = self.iter_embeddings(
            items, batch_size=batch_size, normalize=normalize, precision=precision, show_progress_bar=show_progress_bar
        )
        for idx, emb in plan:
            out[torch.as_tensor(idx)] = emb  # [batch, dim] back at the texts' places
        if single:
            out = out[0]
        if convert_to == "list":
            return list(out) if not single else out
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
