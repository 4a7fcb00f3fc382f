"""Configuration: frozen dataclasses for the model and its tasks, read from and written to YAML.

Every choice is validated against a named tuple of valid values, and errors name the field.
``--set a.b=c`` overrides are applied to the raw mapping before validation.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtst.cache import DTYPES as CACHE_DTYPES
from mtst.diskio import write_text
from mtst.freezing import parse_freeze
from mtst.heads import HEAD_TYPES
from mtst.losses import LOSS_WEIGHTING
from mtst.optim import SCHEDULES
from mtst.pooling import POOLING_MODES
from mtst.precision import PRECISIONS, default_precision
from mtst.sampling import SAMPLING_STRATEGIES
from mtst.tasks import task_class
from mtst.tasks.regression import REGRESSION_OUTPUTS
from mtst.yamlio import parse_yaml, read_yaml


def _unknown_key_error(where: str, key: str, valid: Sequence[str]) -> ValueError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown key {key!r} in {where}.{hint} Valid keys are: {', '.join(valid)}.")


_KINDS = {"str": (str,), "bool": (bool,), "int": (int,), "float": (int, float), "None": (type(None),)}
_NAMES = {"str": "text", "bool": "true or false", "int": "an integer", "float": "a number", "None": "null"}


def _check_type(where: str, key: str, value: Any, annotation: str) -> None:
    """Refuse a value whose YAML type the field cannot hold (``batch_size: big``, ``max_steps: true``)."""
    options = [a.strip() for a in annotation.split("|")]
    if "Any" in options or value is None:  # null: each field's own check decides (some take it as "absent")
        return
    for option in options:
        if option.startswith("tuple") and isinstance(value, (list, tuple)):
            return
        kinds = _KINDS.get(option, ())
        if isinstance(value, kinds) and not (isinstance(value, bool) and option in ("int", "float")):
            return
    wanted = " or ".join("a list" if o.startswith("tuple") else _NAMES.get(o, o) for o in options)
    raise ValueError(f"{where}.{key} must be {wanted}, got {type(value).__name__} {value!r}.")


def _from_mapping(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping (key: value), got {type(data).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise _unknown_key_error(where, str(key), list(fields))
    values = dict(data)
    for key, value in values.items():
        # YAML 1.1 (PyYAML) reads "3e-5" (no dot) as a string; numbers are what such fields mean.
        if isinstance(value, str) and "float" in str(fields[key].type):
            try:
                values[key] = float(value)
            except ValueError:
                raise ValueError(f"{where}.{key} must be a number, got {value!r}.") from None
        _check_type(where, key, values[key], str(fields[key].type))
    return cls(**values)


@dataclass(frozen=True)
class ModelConfig:
    """The shared encoder."""

    backbone: str = "default"  # "default" (embedded all-MiniLM-L6-v2), a local folder, or a hub id
    pooling: str | None = None  # None: the backbone folder's own choice (mean for a plain Hugging Face model)
    normalize: bool | None = None  # None: the backbone folder's own choice
    max_length: int | None = 128  # tokens per text; most sentences fit, and attention cost grows with length

    def __post_init__(self) -> None:
        if self.pooling is not None and self.pooling not in POOLING_MODES:
            raise ValueError(
                f"model.pooling: {self.pooling!r} is not valid. Valid pooling modes are: {', '.join(POOLING_MODES)}."
            )
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length < 2):
            raise ValueError(f"model.max_length must be an integer >= 2, got {self.max_length!r}.")


@dataclass(frozen=True)
class TaskConfig:
    """One task: its type, data files, columns, labels and head."""

    name: str
    type: str
    train: str | None = None  # data files: TSV/CSV/JSONL/CoNLL, or "hf:NAME[:CONFIG]"
    dev: str | None = None
    test: str | None = None
    text_column: str = "text"
    label_column: str = "label"  # class, number or score column; for JSONL token data: the tags list
    pair_column: str | None = None  # similarity: the second sentence's column (e.g. sentence2)
    tokens_column: str = "tokens"  # token_classification from JSONL / Hugging Face datasets
    labels: tuple[str, ...] | None = None  # label set; inferred from the training data when absent
    head: str = "linear"  # "linear", or "mlp" (one hidden layer)
    hidden_size: int | None = None  # MLP hidden width; defaults to the encoder's size
    dropout: float = 0.1
    class_weights: tuple[float, ...] | None = None  # classification: one weight per label, in label order
    crf: bool = False  # token_classification: a CRF layer with Viterbi decoding
    output: str = "sigmoid"  # regression: "sigmoid" for targets in 0..1, "linear" otherwise
    loss: str | None = None  # valid losses depend on the type (its Task class's ``losses``); None: its default
    scale: float = 20.0  # similarity: multiplier of cosine scores in the in-batch / CoSENT losses
    score_max: float | None = None  # regression/similarity: divide targets by this (STS-B: 5.0) to map them to 0..1
    weight: float = 1.0  # static loss weight when training several tasks
    batch_size: int | None = None  # this task's batch size; None: train.batch_size
    max_train_examples: int | None = None  # subsample the train file (seeded) to at most this many examples
    dev_fraction: float | None = None  # with no dev file: hold out this share of train (seeded) as the dev set
    init_from: str | None = None  # an mtst model folder: start this head (and its labels) from its task of this name

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Task name {self.name!r} must be a non-empty identifier (letters, digits, underscore).")
        try:
            kind = task_class(self.type)  # the task types registered in mtst.tasks
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if self.head not in HEAD_TYPES:
            raise ValueError(f"{where}: head {self.head!r} is not valid. Valid heads are: {', '.join(HEAD_TYPES)}.")
        if self.output not in REGRESSION_OUTPUTS:
            raise ValueError(
                f"{where}: output {self.output!r} is not valid; use one of {', '.join(REGRESSION_OUTPUTS)}."
            )
        if self.loss is not None and self.loss not in kind.losses:
            raise ValueError(
                f"{where}: loss {self.loss!r} is not valid for type {self.type}; use one of {', '.join(kind.losses)}."
            )
        kind.validate_config(self)  # keys that mean nothing for this type (crf, init_from, ...)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{where}: dropout must be in [0, 1), got {self.dropout}.")
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"{where}: labels contain duplicates: {list(self.labels)}.")
        if self.class_weights is not None:
            object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
            if self.labels is not None and len(self.class_weights) != len(self.labels):
                raise ValueError(
                    f"{where}: class_weights has {len(self.class_weights)} values for {len(self.labels)} labels."
                )

        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"{where}: batch_size must be >= 1, got {self.batch_size}.")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError(f"{where}: max_train_examples must be >= 1, got {self.max_train_examples}.")
        if self.dev_fraction is not None and not 0.0 < self.dev_fraction < 1.0:
            raise ValueError(f"{where}: dev_fraction must be in (0, 1), got {self.dev_fraction}.")
        if self.dev_fraction is not None and self.dev is not None:
            raise ValueError(f"{where}: give either dev (a file) or dev_fraction (held out from train), not both.")

    @property
    def resolved_loss(self) -> str:
        """The loss in use: the configured one or the task type's default."""
        return self.loss or task_class(self.type).losses[0]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimisation, task sampling, freezing, evaluation and checkpoints."""

    epochs: float = 1.0  # passes over the data (an epoch = every task's batches once); ignored if max_steps is set
    max_steps: int | None = None  # optimizer steps; overrides epochs
    batch_size: int = 32
    lr: float = 2e-5  # backbone learning rate (the usual range for fine-tuning BERT-sized encoders)
    head_lr: float = 1e-3  # heads start from random weights and can move faster
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps (< 1) or a number of steps (>= 1) of linear warm-up
    schedule: str = "linear"  # decay after warm-up: linear, cosine or constant
    grad_accum: int = 1  # batches per optimizer step
    max_grad_norm: float | None = 1.0  # gradient clipping; None turns it off
    seed: int = 42
    sampling: str = "proportional"  # which task the next batch comes from: proportional, temperature, round_robin
    temperature: float = 2.0  # sampling: temperature, p ~ n^(1/T)
    loss_weighting: str = "static"  # static (task.weight) or uncertainty (learned, Kendall et al. 2018)
    freeze: Any = "none"  # none, backbone, all, embeddings, or {all_but_last: N}
    frozen_heads: tuple[str, ...] = ()  # heads kept as they are
    layerwise_lr_decay: float | None = None  # e.g. 0.9: each layer down from the top gets lr * 0.9^depth
    eval_every: int | None = None  # steps between evaluations; None: once per epoch
    metric_for_best: str | None = None  # "task.metric"; None: mean of every task's main metric
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    save_every: int | None = None  # steps between resumable checkpoints; None: at every evaluation
    log_every: int = 10  # steps between loss records in metrics.jsonl
    # fp32, bf16 (autocast) or auto: bf16 where the CPU/GPU computes it natively (~1.9x faster for MiniLM there;
    # emulated bf16 on an AVX2-only CPU is ~8x slower), else fp32. $MTST_PRECISION changes the default.
    precision: str = field(default_factory=default_precision)
    eval_batch_size: int = 64
    cache_dir: str | None = None  # frozen backbone: where embeddings are kept; None: ~/.cache/mtst/embeddings
    cache_dtype: str = "float32"  # float16 halves the disk; heads barely notice
    use_cache: bool = True  # with freeze: backbone, train heads from cached embeddings (one encoding pass)

    def __post_init__(self) -> None:
        for key, value, valid in (
            ("schedule", self.schedule, SCHEDULES),
            ("sampling", self.sampling, SAMPLING_STRATEGIES),
            ("loss_weighting", self.loss_weighting, LOSS_WEIGHTING),
            ("precision", self.precision, PRECISIONS),
            ("cache_dtype", self.cache_dtype, CACHE_DTYPES),
        ):
            if value not in valid:
                raise ValueError(f"train.{key}: {value!r} is not valid; use one of {', '.join(valid)}.")
        for key in ("batch_size", "grad_accum", "log_every", "eval_batch_size"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be an integer >= 1, got {getattr(self, key)!r}.")
        for key in ("max_steps", "eval_every", "save_every", "early_stopping_patience"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"train.{key} must be an integer >= 1 (or null), got {value!r}.")
        if self.epochs <= 0:
            raise ValueError(f"train.epochs must be > 0, got {self.epochs}.")
        if self.lr < 0 or self.head_lr < 0:
            raise ValueError("train.lr and train.head_lr must be >= 0.")
        if self.warmup < 0:
            raise ValueError(f"train.warmup must be >= 0, got {self.warmup}.")
        if self.temperature <= 0:
            raise ValueError(f"train.temperature must be > 0, got {self.temperature}.")
        if self.layerwise_lr_decay is not None and not 0 < self.layerwise_lr_decay <= 1:
            raise ValueError(f"train.layerwise_lr_decay must be in (0, 1], got {self.layerwise_lr_decay}.")
        object.__setattr__(self, "frozen_heads", tuple(self.frozen_heads or ()))
        if isinstance(self.freeze, Mapping):
            object.__setattr__(self, "freeze", dict(self.freeze))
        parse_freeze(self.freeze)  # raises with the valid policies


@dataclass(frozen=True)
class MTSTConfig:
    """A task file: the shared model, its tasks, and how to train them."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tasks: tuple[TaskConfig, ...] = ()
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"Task names must be unique; repeated: {', '.join(dupes)}.")
        with_heads = [t.name for t in self.tasks if task_class(t.type).has_head]
        for head in self.train.frozen_heads:
            if head not in with_heads:
                raise ValueError(
                    f"train.frozen_heads names {head!r}, which is not a task with a head: {', '.join(with_heads)}."
                )
        if self.train.metric_for_best is not None:
            task, _, metric = self.train.metric_for_best.partition(".")
            if task not in names or not metric:
                raise ValueError(
                    f"train.metric_for_best must look like TASK.METRIC with TASK one of {', '.join(names)}; "
                    f"got {self.train.metric_for_best!r}."
                )
            kind = task_class(self.task(task).type)
            if kind.metric_names and metric not in kind.metric_names:  # () for a type that does not say
                raise ValueError(
                    f"train.metric_for_best: task {task!r} ({kind.type}) reports {', '.join(kind.metric_names)}; "
                    f"got {metric!r}."
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None) -> MTSTConfig:
        """Build and validate a config from a plain mapping; data paths are made relative to ``base_dir``."""
        data = dict(data)
        for key in data:
            if key not in ("model", "tasks", "train"):
                raise _unknown_key_error("the config", str(key), ["model", "tasks", "train"])
        model = _from_mapping(ModelConfig, data.get("model") or {}, "model")
        train = _from_mapping(TrainConfig, data.get("train") or {}, "train")
        raw_tasks = data.get("tasks") or []
        if not isinstance(raw_tasks, list):
            got = "a mapping" if isinstance(raw_tasks, Mapping) else type(raw_tasks).__name__
            raise ValueError(f"tasks must be a list of task mappings, got {got}: write each task as '- name: ...'.")
        tasks = []
        for i, raw in enumerate(raw_tasks):
            where = f"tasks[{i}]" + (f" ({raw.get('name')})" if isinstance(raw, Mapping) and "name" in raw else "")
            if isinstance(raw, Mapping):
                for required in ("name", "type"):
                    if required not in raw:
                        raise ValueError(f"{where}: missing required key {required!r}.")
                raw = {k: _resolve_path(v, base_dir) if k in _PATH_KEYS else v for k, v in raw.items()}
            tasks.append(_from_mapping(TaskConfig, raw, where))
        return cls(model=model, tasks=tuple(tasks), train=train)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (lists, not tuples) for JSON/YAML."""
        return _plain(dataclasses.asdict(self))

    def task(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"No task named {name!r}; tasks are: {', '.join(t.name for t in self.tasks)}.")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


_PATH_KEYS = ("train", "dev", "test", "init_from")  # task keys holding paths, relative to the task file


def _resolve_path(value: Any, base_dir: str | Path | None) -> Any:
    if not isinstance(value, str) or value.startswith("hf:") or base_dir is None:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (Path(base_dir) / path).resolve())


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to a raw config mapping (values parsed as YAML: numbers, booleans, lists).

    Tasks are addressed by name or index: ``tasks.topic.dropout=0.2`` or ``tasks.0.dropout=0.2``.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"Override {item!r} must look like key.path=value.")
        key, raw_value = item.split("=", 1)
        try:
            value = parse_yaml(raw_value) if raw_value.strip() else None
        except yaml.YAMLError as e:
            raise ValueError(f"Override {item!r}: the value is not valid YAML: {e}") from None
        parts = key.strip().split(".")
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            node = _descend(node, part, ".".join(parts[: depth + 1]))
        if isinstance(node, list):
            node = _descend(node, parts[-1], key)
            raise ValueError(f"Override {item!r}: {key} is a whole task; set one of its keys instead.")
        node[parts[-1]] = value
    return data


def _descend(node: Any, part: str, where: str) -> Any:
    if isinstance(node, list):
        for i, child in enumerate(node):
            if (isinstance(child, Mapping) and child.get("name") == part) or part == str(i):
                return child
        names = [str(c.get("name")) for c in node if isinstance(c, Mapping)]
        raise ValueError(f"Override path {where!r}: no task named {part!r}; tasks are: {', '.join(names)}.")
    if not isinstance(node, dict):
        raise ValueError(f"Override path {where!r} goes through a value that is not a mapping.")
    return node.setdefault(part, {})


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> MTSTConfig:
    """Read a YAML task file; data paths in it are relative to the file's folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Config file {path} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"Config file {path} is a folder; give the YAML task file.")
    data = read_yaml(path)  # errors name the file and the line (a duplicate key too)
    if data is None:
        raise ValueError(f"{path} is empty: expected 'model:' and 'tasks:' sections.")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping with 'model:' and 'tasks:'.")
    data = apply_overrides(data, overrides)
    try:
        return MTSTConfig.from_dict(data, base_dir=path.parent)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e


def save_config(config: MTSTConfig, path: str | Path) -> None:
    """Write a config as YAML (data paths as stored: absolute after loading)."""
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))  # atomic: a kill leaves the old file
