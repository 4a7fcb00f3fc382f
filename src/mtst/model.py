"""``MultiTaskModel``: one shared ``SentenceEncoder`` and a head per task; one backbone pass serves every task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtst.config import MTSTConfig, TaskConfig
from mtst.data import LabelSet
from mtst.diskio import atomic_folder, check_writable_folder, read_json, write_json
from mtst.encoder import SentenceEncoder
from mtst.entities import entities_from_words
from mtst.tasks import Task, build_task, task_from_dict

MODEL_CONFIG_FILE = "mtst_config.json"
HEADS_FILE = "heads.safetensors"
ENCODER_DIR = "encoder"
FORMAT = "mtst-multitask"
FORMAT_VERSION = 1


class MultiTaskModel(nn.Module):
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
        """Build the encoder and fresh heads; each task's labels come from the config, ``labels``, or its train file."""
        m = config.model
        encoder = SentenceEncoder.from_pretrained(
            m.backbone, pooling=m.pooling, normalize=m.normalize, max_length=m.max_length, device=device
        )
        labels = dict(labels or {})
        starts = {t.name: read_saved_head(t.init_from, t) for t in config.tasks if t.init_from}
        tasks = [
            build_task(t, starts[t.name][0] if t.name in starts else t.labels or labels.get(t.name) or infer_labels(t))
            for t in config.tasks
        ]
        model = cls(encoder, tasks)
        for name, (_, state) in starts.items():
            mismatch = _state_mismatch(model.heads[name].state_dict(), state)
            if mismatch:
                raise ValueError(
                    f"task {name!r}: the head in {config.task(name).init_from} does not fit this task's head "
                    f"({mismatch}): use the head, hidden_size and crf of the model it was saved with."
                )
            model.heads[name].load_state_dict(state)
        return model

    # ------------------------------------------------------------------ forward
    def forward(self, features: Mapping[str, torch.Tensor], tasks: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the backbone once and every requested task's head on its output: ``{task: output}``.

        Sentence tasks get logits ``[batch, n_labels]`` or scores ``[batch]``; token tasks emissions
        ``[batch, seq, n_tags]``; similarity tasks the sentence embeddings ``[batch, dim]``.
        """
        names = self._check_tasks(tasks)
        enc = self.encoder(features)  # the one backbone pass
        out: dict[str, Any] = {}
        for name in names:
            level = self.tasks[name].level
            if level == "pair":
                out[name] = enc["sentence_embedding"]
            elif level == "token":
                out[name] = self.heads[name](enc["token_embeddings"])
            else:
                out[name] = self.heads[name](enc["sentence_embedding"])
        return out

    def _check_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        if tasks is None:
            return list(self.tasks)
        if isinstance(tasks, str):
            tasks = [tasks]
        for name in tasks:
            if name not in self.tasks:
                raise ValueError(f"Unknown task {name!r}; this model's tasks are: {', '.join(self.tasks)}.")
        return list(tasks)

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        texts: str | Sequence[str],
        *,
        tasks: Sequence[str] | None = None,
        batch_size: int = 32,
        word_tags: bool = False,
        min_entity_score: float = 0.0,
    ) -> list[dict[str, Any]]:
        """One dict per text with every task's prediction, from one backbone pass per batch.

        Classification: ``{"label", "score"}``; regression: ``{"score"}``; token classification: a list of
        ``{"text", "label", "start", "end", "score"}`` entities with character offsets into the text (and,
        with ``word_tags=True``, ``"<task>_words"``: ``[{"text", "tag", "start", "end", "score"}]``).
        Similarity tasks have no head and are skipped. Words past ``max_length`` tokens get no tag.
        Entities whose score (mean tag probability) is below ``min_entity_score`` are left out.
        """
        items = [texts] if isinstance(texts, str) else list(texts)
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str: every text must be a string.")
        names = [n for n in self._check_tasks(tasks) if self.tasks[n].level != "pair"]
        if not items or not names:
            return [{} for _ in items]
        encoder = self.encoder
        enc = encoder.tokenizer(
            items, truncation=True, max_length=encoder.max_length, return_offsets_mapping=True, padding=False
        )
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        word_ids = [enc.word_ids(i) for i in range(len(items))]
        results: list[dict[str, Any]] = [{} for _ in items]
        order = sorted(range(len(items)), key=lambda i: -len(ids[i]))
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                features = encoder._pad([ids[i] for i in idx])
                outputs = self.forward(features, names)
                for name in names:
                    self._decode_into(
                        name, outputs[name], idx, items, word_ids, offsets, results, word_tags, min_entity_score
                    )
        self.train(was_training)
        return results

    def _decode_into(
        self, name, output, idx, texts, word_ids, offsets, results, word_tags, min_entity_score=0.0
    ) -> None:
        task = self.tasks[name]
        if task.level == "sentence":
            for i, pred in zip(idx, task.decode(output), strict=True):
                results[i][name] = pred
            return
        first = _first_subword_mask([word_ids[i] for i in idx], output.shape[1]).to(output.device)
        for i, tagged in zip(idx, task.decode(self.heads[name], output, first), strict=True):
            words = _word_offsets(word_ids[i], offsets[i])
            entities = entities_from_words(texts[i], words, tagged)
            results[i][name] = [e for e in entities if e["score"] >= min_entity_score]
            if word_tags:
                results[i][f"{name}_words"] = [
                    {"text": texts[i][s:e], "tag": tag, "start": s, "end": e, "score": round(p, 4)}
                    for (s, e), (tag, p) in zip(words, tagged, strict=True)
                ]

    # ------------------------------------------------------------------ save / load
    def save(
        self, path: str | Path, *, overwrite: bool = False, include_encoder: bool = True, extra: dict | None = None
    ) -> Path:
        """Write ``encoder/`` (a sentence-transformers folder), ``heads.safetensors`` and ``mtst_config.json``.

        An existing mtst model folder is replaced; any other non-empty folder only with ``overwrite=True``.
        ``include_encoder=False`` writes the heads only (a few MB) for a backbone that ``load`` can find by its
        name (e.g. ``"default"``); its weight fingerprint is recorded and checked on load. ``extra`` is stored
        as-is in the config (e.g. the metrics the heads reached).
        """
        from safetensors.torch import save_file

        path = Path(path)
        is_model = (path / MODEL_CONFIG_FILE).exists()
        check_writable_folder(path, overwrite=overwrite or is_model, what="mtst model")
        config = self.get_config()
        if not include_encoder:
            from mtst.cache import backbone_fingerprint

            source = getattr(self.encoder, "source", None)
            if source is None or Path(str(source)).exists():
                raise ValueError(
                    "include_encoder=False needs an encoder loaded by name (e.g. 'default'), so load() can find it; "
                    f"this one came from {source!r}."
                )
            config["encoder"].update({"source": str(source), "fingerprint": backbone_fingerprint(self.encoder)})
        if extra:
            config["extra"] = extra
        with atomic_folder(path, overwrite=True, what="mtst model") as tmp:
            if include_encoder:
                (tmp / ENCODER_DIR).mkdir()
                self.encoder.save_to(tmp / ENCODER_DIR)
            state = {k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}
            save_file(state, str(tmp / HEADS_FILE), metadata={"format": FORMAT})
            write_json(tmp / MODEL_CONFIG_FILE, config)
        return path

    def get_config(self) -> dict[str, Any]:
        from mtst import __version__

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "mtst_version": __version__,
            "encoder": self.encoder.get_config(),
            "tasks": [t.to_dict() for t in self.tasks.values()],
        }

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = None) -> MultiTaskModel:
        """Load a folder written by ``save``; a missing or mismatched file gives an error naming it."""
        from safetensors.torch import load_file

        path = Path(path)
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
        if "fingerprint" in e:
            from mtst.cache import backbone_fingerprint

            if backbone_fingerprint(encoder) != e["fingerprint"]:
                raise ValueError(
                    f"{conf_file}: these heads were trained on a different {e['source']!r} backbone "
                    "(weight fingerprint mismatch); retrain them or load the backbone they were made with."
                )
        model = cls(encoder, [task_from_dict(t) for t in conf["tasks"]])
        model.extra = conf.get("extra", {})
        state = load_file(str(path / HEADS_FILE))
        mismatch = _state_mismatch(model.heads.state_dict(), state)
        if mismatch:
            raise ValueError(f"{path / HEADS_FILE} does not match {conf_file}: {mismatch}")
        model.heads.load_state_dict(state)
        return model.to(encoder.device).eval()


def demo_heads_path() -> Path:
    """Folder of the heads shipped for ``mtst demo`` (topic, sentiment, entities on the default backbone)."""
    return Path(__file__).resolve().parent / "assets" / "demo_heads"


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


def _state_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
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
    from safetensors.torch import load_file

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
    state = {k[len(prefix) :]: v for k, v in load_file(str(heads_file)).items() if k.startswith(prefix)}
    return names, state


def infer_labels(task: TaskConfig) -> LabelSet | None:
    """Label set read from the task's train file (sorted classes; BIO tags with ``O`` first)."""
    from mtst.taskdata import load_split

    if task.type not in ("classification", "token_classification"):
        return None
    if task.train is None:
        raise ValueError(f"task {task.name!r} needs its label set: give 'labels:' in the config or a 'train:' file.")
    examples = load_split(task, task.train, "train")  # the same reader and columns that training uses
    if task.type == "token_classification":
        return LabelSet.infer_bio(ex.tags for ex in examples)
    return LabelSet.infer(str(ex.label) for ex in examples)


def _first_subword_mask(word_ids: Sequence[Sequence[int | None]], width: int) -> torch.Tensor:
    """``[batch, width]`` booleans: True on the first sub-word of each word."""
    mask = np.zeros((len(word_ids), width), dtype=bool)
    for r, wids in enumerate(word_ids):
        w = np.array([-1 if x is None else x for x in wids], dtype=np.int64)  # [seq]
        prev = np.concatenate([[-1], w[:-1]])
        mask[r, : len(w)] = (w >= 0) & (w != prev)
    return torch.from_numpy(mask)


def _word_offsets(word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character span ``(start, end)`` of each word, in order of first sub-word."""
    spans: dict[int, list[int]] = {}
    for w, (s, e) in zip(word_ids, offsets, strict=True):
        if w is None:
            continue
        if w in spans:
            spans[w][1] = e
        else:
            spans[w] = [s, e]
    return [(s, e) for s, e in spans.values()]
