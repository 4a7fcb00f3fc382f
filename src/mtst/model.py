"""``MultiTaskModel``: one shared ``SentenceEncoder`` and a head per task; one backbone pass serves every task.

``predict`` comes from ``mtst.prediction`` (shared with the ONNX backend); ``load`` on a folder written by
``mtst export`` returns the onnxruntime-backed ``OnnxMultiTaskModel`` with the same API.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from mtst.config import MTSTConfig, TaskConfig
from mtst.datapaths import portable_task_paths, resolve_task_paths
from mtst.diskio import atomic_folder, check_writable_folder, read_json, write_json
from mtst.encoder import SentenceEncoder
from mtst.hub import check_repo_id, push_folder
from mtst.modelcard import CARD_FILE, multitask_card
from mtst.precision import inference_context
from mtst.prediction import PredictionMixin
from mtst.runtime.model import OnnxMultiTaskModel
from mtst.runtime.session import is_export
from mtst.stfolder import resolve_model_folder
from mtst.tasks import Task, build_task
from mtst.tensorfiles import load_tensors
from mtst.version import __version__

MODEL_CONFIG_FILE = "mtst_config.json"
HEADS_FILE = "heads.safetensors"
REDO = "Save or train the model again, or restore the folder from a copy."  # what to do about a damaged file
ENCODER_DIR = "encoder"
FORMAT = "mtst-multitask"
FORMAT_VERSION = 1
DEFAULT_MULTITASK = "default"  # MultiTaskModel.load("default"): the shipped joint model
DEFAULT_MULTITASK_DIR = "default_model"
NAMES_ONLY = "names_only"  # config key: {task: [path keys saved as file names only]} (see mtst.datapaths)

logger = logging.getLogger(__name__)
_said_names_only: set[str] = set()


def keep_quiet_about_names_only(path: str | Path) -> None:
    """Do not warn of names-only data paths when saving to ``path`` (a checkpoint's temporary copy: the best
    model's own save says it, with the folder the user will look in)."""
    _said_names_only.add(str(path))


class MultiTaskModel(PredictionMixin, nn.Module):
    """A sentence encoder shared by several task heads."""

    def __init__(self, encoder: SentenceEncoder, tasks: Sequence[Task]) -> None:
        super().__init__()
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"Task names must be unique, got {names}.")
        self.encoder = encoder
        self.tasks: dict[str, Task] = {t.name: t for t in tasks}
        heads = {t.name: t.build_head(encoder.dim) for t in tasks}
        self.heads = nn.ModuleDict({name: h for name, h in heads.items() if h is not None})
        self.heads.to(encoder.device)
        self.extra: dict[str, Any] = {}  # free-form notes saved with the model (e.g. the metrics its heads reached)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(
        cls,
        config: MTSTConfig,
        *,
        labels: Mapping[str, Sequence[str]] | None = None,
        device: str | torch.device | None = None,
    ) -> MultiTaskModel:
        """Build the encoder and fresh heads; each task's labels come from the config or from ``labels``.

        Reading data files (to infer labels) and ``init_from`` heads is the training set-up's job
        (``mtst.training.setup.build_model``).
        """
        m = config.model
        encoder = SentenceEncoder.from_pretrained(
            m.backbone, pooling=m.pooling, normalize=m.normalize, max_length=m.max_length, device=device
        )
        labels = dict(labels or {})
        return cls(encoder, [build_task(t, t.labels or labels.get(t.name)) for t in config.tasks])

    # ------------------------------------------------------------------ forward
    def forward(self, features: Mapping[str, torch.Tensor], tasks: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the backbone once and every requested task's head on its output: ``{task: output}``.

        Sentence tasks get logits ``[batch, n_labels]`` or scores ``[batch]``; token tasks emissions
        ``[batch, seq, n_tags]``; similarity tasks the sentence embeddings ``[batch, dim]``.
        """
        names = self._check_tasks(tasks)
        enc = self.encoder(features)  # the one backbone pass
        return {name: self.tasks[name].forward(self.head(name), enc) for name in names}

    def head(self, name: str) -> nn.Module | None:
        """The head of task ``name`` (``None`` for a task without one)."""
        return self.heads[name] if name in self.heads else None  # noqa: SIM401 (ModuleDict has no .get)

    def inference(self, precision: str | None = None) -> AbstractContextManager[None]:
        """Eval mode, no autograd, and bf16 autocast where ``precision`` resolves to it (``mtst.precision``)."""
        return inference_context(self, self.encoder.device, precision)

    def __repr__(self) -> str:
        e = self.encoder
        tasks = {name: t.type for name, t in self.tasks.items()}
        return (
            f"MultiTaskModel(source={e.source!r}, backbone={e.backbone.config.model_type!r}, pooling={e.pooling!r}, "
            f"dim={e.dim}, tasks={tasks})"
        )

    # ------------------------------------------------------------------ save / load
    def save(
        self, path: str | Path, *, overwrite: bool = False, include_encoder: bool = True, extra: dict | None = None
    ) -> Path:
        """Write ``encoder/`` (a sentence-transformers folder), ``heads.safetensors``, ``mtst_config.json`` and a card.

        An existing mtst model folder is replaced; any other non-empty folder only with ``overwrite=True``.
        ``include_encoder=False`` writes the heads only (a few MB) for a backbone that ``load`` can find by its
        name (e.g. ``"default"``); its weight fingerprint is recorded and checked on load. ``extra`` is stored
        as-is in the config (e.g. ``dev_metrics``, which the model card lists). Data paths are saved relative to
        the folder, or as file names only where they lie outside its project (``mtst.datapaths``).
        """
        self._write(Path(path), overwrite=overwrite, include_encoder=include_encoder, extra=extra)
        return Path(path)

    save_pretrained = save  # the name transformers and sentence-transformers use

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
        include_encoder: bool = True,
    ) -> str:
        """Save to a temporary folder (card included) and upload it to the hub repo ``repo_id``; the commit URL."""
        repo_id = check_repo_id(repo_id)
        with tempfile.TemporaryDirectory(prefix="mtst-push-") as tmp:
            folder = Path(tmp) / repo_id.rsplit("/", 1)[-1]
            self._write(folder, overwrite=False, include_encoder=include_encoder, extra=None, model_id=repo_id)
            return push_folder(
                folder,
                repo_id,
                token=token,
                private=private,
                commit_message=commit_message,
                revision=revision,
                create_pr=create_pr,
                exist_ok=exist_ok,
            )

    def _write(
        self, path: Path, *, overwrite: bool, include_encoder: bool, extra: dict | None, model_id: str | None = None
    ) -> None:
        extra = self.extra if extra is None else extra
        is_model = (path / MODEL_CONFIG_FILE).exists()
        check_writable_folder(path, overwrite=overwrite or is_model, what="mtst model")
        config = self.get_config()
        if not include_encoder:
            source = getattr(self.encoder, "source", None)
            if source is None or Path(str(source)).exists():
                raise ValueError(
                    "include_encoder=False needs an encoder loaded by name (e.g. 'default'), so load() can find it; "
                    f"this one came from {source!r}."
                )
            config["encoder"].update({"source": str(source), "fingerprint": self.encoder.fingerprint()})
        if extra:
            config["extra"] = extra
        config["tasks"], names_only = portable_task_paths(config["tasks"], path)
        if names_only:
            config[NAMES_ONLY] = names_only
            if str(path) not in _said_names_only:
                _said_names_only.add(str(path))
                said = ", ".join(f"{task}.{key}" for task, keys in names_only.items() for key in keys)
                logger.warning(
                    "%s: data outside the model's project saved by file name only (%s); `mtst evaluate --model "
                    "%s` needs a config that names it.",
                    path,
                    said,
                    path,
                )
        model_id = model_id or path.name
        card = multitask_card(
            config,
            self.tasks,
            model_id=model_id,
            base_model=self.encoder.base_model,
            has_encoder=include_encoder,
            metrics=(extra or {}).get("dev_metrics"),
        )
        with atomic_folder(path, overwrite=True, what="mtst model") as tmp:
            if include_encoder:
                (tmp / ENCODER_DIR).mkdir()
                self.encoder.save_to(tmp / ENCODER_DIR, model_id=f"{model_id}/{ENCODER_DIR}")
            state = {k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}
            save_file(state, str(tmp / HEADS_FILE), metadata={"format": FORMAT})
            write_json(tmp / MODEL_CONFIG_FILE, config)
            card.save(tmp / CARD_FILE)

    def get_config(self) -> dict[str, Any]:
        """Format, versions, encoder settings and every task (config and labels), as saved in ``mtst_config.json``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "mtst_version": __version__,
            "encoder": self.encoder.get_config(),
            "tasks": [t.to_dict() for t in self.tasks.values()],
        }

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = None) -> MultiTaskModel | OnnxMultiTaskModel:
        """Load a folder written by ``save`` (or a hub id); a missing or mismatched file gives an error naming it.

        A folder written by ``mtst export`` loads as an ``OnnxMultiTaskModel`` (onnxruntime, same API).
        """
        path = resolve_multitask_folder(path)
        if is_export(path):
            return OnnxMultiTaskModel.load(path, device=device)
        conf_file, conf = path / MODEL_CONFIG_FILE, read_model_config(path)
        e = conf["encoder"]
        for needed in ([] if "source" in e else [path / ENCODER_DIR]) + [path / HEADS_FILE]:
            if not needed.exists():
                raise FileNotFoundError(f"{needed} is missing: the model folder {path} is incomplete.")
        encoder = SentenceEncoder.from_pretrained(
            e["source"] if "source" in e else path / ENCODER_DIR,
            pooling=e["pooling"],
            normalize=e["normalize"],
            max_length=e["max_length"],
            device=device,
        )
        if "fingerprint" in e and encoder.fingerprint() != e["fingerprint"]:
            raise ValueError(
                f"{conf_file}: these heads were trained on a different {e['source']!r} backbone "
                "(weight fingerprint mismatch); retrain them or load the backbone they were made with."
            )
        tasks = resolve_task_paths(conf["tasks"], path, conf.get(NAMES_ONLY))
        model = cls(encoder, [build_task(TaskConfig(**t)) for t in tasks])
        model.extra = conf.get("extra", {})
        state = load_tensors(path / HEADS_FILE, REDO)
        mismatch = state_mismatch(model.heads.state_dict(), state)
        if mismatch:
            raise ValueError(f"{path / HEADS_FILE} does not match {conf_file}: {mismatch}")
        model.heads.load_state_dict(state)
        return model.to(encoder.device).eval()

    from_pretrained = load  # the name transformers and sentence-transformers use


def default_multitask_path() -> Path:
    """Folder of the shipped joint model (``"default"``): TREC topic, SST-2 sentiment and WikiANN entities on one
    fine-tuned all-MiniLM-L6-v2, exported to int8 ONNX (``make default-model`` rebuilds it)."""
    return Path(__file__).resolve().parent / "assets" / DEFAULT_MULTITASK_DIR


def demo_heads_path() -> Path:
    """Folder of heads trained on the frozen default backbone from cached embeddings (benchmarks, discussion)."""
    return Path(__file__).resolve().parent / "assets" / "demo_heads"


def resolve_multitask_folder(path: str | Path) -> Path:
    """``"default"`` (the shipped joint model), an mtst model or export folder, or a hub id, as a local folder."""
    if str(path) == DEFAULT_MULTITASK:
        folder = default_multitask_path()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"The shipped default model is missing from this install ({folder}). Reinstall mtst, or rebuild "
                "it from a source checkout with `make default-model`."
            )
        return folder
    return resolve_model_folder(path, expected=f"{MODEL_CONFIG_FILE} (an mtst model, from save or mtst train)")


def read_model_config(path: str | Path) -> dict[str, Any]:
    """The checked ``mtst_config.json`` of a saved model folder; an error says what the folder is instead."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Model folder {path} does not exist.")
    conf_file = path / MODEL_CONFIG_FILE
    if not conf_file.exists():
        hint = (
            " It looks like a sentence encoder: load it with SentenceEncoder.from_pretrained."
            if ((path / "modules.json").exists() or (path / "config.json").exists())
            else ""
        )
        raise FileNotFoundError(f"{path} is not an mtst model folder: {MODEL_CONFIG_FILE} is missing.{hint}")
    conf = read_json(conf_file)
    if conf.get("format") != FORMAT:
        raise ValueError(f"{conf_file}: format is {conf.get('format')!r}, expected {FORMAT!r}.")
    if int(conf.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{conf_file}: format_version {conf['format_version']} is newer than this mtst reads.")
    return conf


def state_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading into a module with ``expected``'s weights ("" if nothing)."""
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    return "; ".join(
        f"{what}: {', '.join(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys
    )


def read_saved_head(path: str | Path, task: TaskConfig) -> tuple[list[str] | None, dict[str, torch.Tensor]]:
    """Labels and head weights of ``task.name`` in the mtst model at ``path``, to start a new run's head from them."""
    where = f"task {task.name!r}: init_from {path}"
    heads_file = Path(path) / HEADS_FILE
    try:
        conf = read_model_config(path)
        if not heads_file.exists():
            raise FileNotFoundError(f"{heads_file} is missing: the model folder {path} is incomplete.")
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from err
    saved = {t["name"]: t for t in conf.get("tasks", [])}
    if task.name not in saved:
        raise ValueError(f"{where}: that model has no task {task.name!r}; its tasks are: {', '.join(saved) or 'none'}.")
    if saved[task.name]["type"] != task.type:
        raise ValueError(f"{where}: the saved task is a {saved[task.name]['type']} task, this one is {task.type}.")
    names = saved[task.name].get("labels")
    if task.labels is not None and names is not None and list(task.labels) != list(names):
        raise ValueError(
            f"{where}: labels {list(task.labels)} differ from the saved head's {names} (same names, same order needed)."
        )
    prefix = f"{task.name}."
    state = {k[len(prefix) :]: v for k, v in load_tensors(heads_file, REDO).items() if k.startswith(prefix)}
    return names, state
