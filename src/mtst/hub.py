"""The Hugging Face hub: ``push_to_hub`` for every model class, through ``huggingface_hub`` (create, then upload).

The classes save themselves into a temporary folder, with a model card that names the repository, and
``push_folder`` uploads it in one commit, as ``SentenceTransformer.push_to_hub`` does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi


def check_repo_id(repo_id: str) -> str:
    """A hub repository id must look like ``owner/name`` (or ``name`` for your own namespace)."""
    if not isinstance(repo_id, str) or not repo_id.strip() or repo_id.count("/") > 1 or repo_id.startswith("/"):
        raise ValueError(f"repo_id must look like 'owner/name' (or 'name'), got {repo_id!r}.")
    return repo_id.strip()


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    exist_ok: bool = True,
) -> str:
    """Create ``repo_id`` on the hub (kept if it exists and ``exist_ok``), upload ``folder``; return the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=exist_ok)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=commit_message or "Upload model saved with mtst",
        revision=revision,
        create_pr=create_pr,
    )
    return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", info))


def push_export(
    folder: str | Path,
    repo_id: str,
    card_text: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    exist_ok: bool = True,
) -> str:
    """Upload an ``mtst export`` folder as it is, with ``card_text`` as its README.md if it has none (one commit)."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="mtst-push-") as tmp:
        staged = Path(tmp) / folder.name
        shutil.copytree(folder, staged, copy_function=_link_or_copy)
        card = staged / "README.md"
        if not card.exists():
            card.write_text(card_text, encoding="utf-8")
        return push_folder(
            staged,
            check_repo_id(repo_id),
            token=token,
            private=private,
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
            exist_ok=exist_ok,
        )


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the file system allows it (an export's graph is tens of MB), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
