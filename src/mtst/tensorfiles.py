"""Reading safetensors files with an error that names a damaged file and says what to do about it."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file


class DamagedFileError(ValueError):
    """A file mtst wrote cannot be read (truncated, corrupted); ``path`` names it."""

    def __init__(self, message: str, *, path: str | Path) -> None:
        super().__init__(message)
        self.path = str(path)


def damaged(path: str | Path, error: Exception, what_to_do: str) -> DamagedFileError:
    """The error for a safetensors file that failed to load with ``error``."""
    return DamagedFileError(f"{path} is damaged or truncated ({error}); it cannot be read. {what_to_do}", path=path)


def load_tensors(path: str | Path, what_to_do: str) -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` (on the CPU); a damaged file is a ``DamagedFileError`` naming it."""
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise damaged(path, e, what_to_do) from None


def weights_file(folder: str | Path) -> Path:
    """The one ``*.safetensors`` file of a model folder, or the folder itself where there are several (shards)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    return files[0] if len(files) == 1 else Path(folder)
