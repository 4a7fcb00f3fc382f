import pytest

from mtst.config import MTSTConfig, TaskConfig, apply_overrides, load_config, save_config
from mtst.tasks import TASKS, task_types

EXAMPLE = """
model: {backbone: default, pooling: mean, max_length: 128}
tasks:
  - {name: topic, type: classification, train: data/trec.tsv, text_column: text, label_column: label}
  - {name: sentiment, type: classification, train: /abs/sst2.tsv, dev: hf:glue:sst2}
  - {name: entities, type: token_classification, train: data/train.conll, crf: true}
"""


def test_task_table_matches_config_types():
    assert task_types() == tuple(TASKS) == ("classification", "regression", "token_classification", "similarity")


def test_load_example_resolves_paths_relative_to_yaml(tmp_path):
    f = tmp_path / "cfg" / "tasks.yaml"
    f.parent.mkdir()
    f.write_text(EXAMPLE)
    cfg = load_config(f)
    assert cfg.model.max_length == 128 and cfg.model.pooling == "mean"
    assert [t.name for t in cfg.tasks] == ["topic", "sentiment", "entities"]
    assert cfg.task("topic").train == str((f.parent / "data" / "trec.tsv").resolve())
    assert cfg.task("sentiment").train == "/abs/sst2.tsv"
    assert cfg.task("sentiment").dev == "hf:glue:sst2"
    assert cfg.task("entities").crf is True


def test_overrides(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text(EXAMPLE)
    cfg = load_config(f, ["model.pooling=cls", "tasks.topic.dropout=0.3", "tasks.2.crf=false"])
    assert cfg.model.pooling == "cls" and cfg.task("topic").dropout == 0.3 and cfg.task("entities").crf is False
    with pytest.raises(ValueError, match="no task named 'nope'; tasks are: topic, sentiment, entities"):
        load_config(f, ["tasks.nope.dropout=0.1"])
    with pytest.raises(ValueError, match="must look like key.path=value"):
        apply_overrides({}, ["model.pooling"])


def test_unknown_key_suggests(tmp_path):
    with pytest.raises(ValueError, match="Unknown key 'poolng' in model. Did you mean 'pooling'"):
        MTSTConfig.from_dict({"model": {"poolng": "mean"}})
    with pytest.raises(ValueError, match=r"Unknown key 'lables' in tasks\[0\] \(t\). Did you mean 'labels'"):
        MTSTConfig.from_dict({"tasks": [{"name": "t", "type": "classification", "lables": ["a"]}]})


def test_invalid_choices_list_valid_ones():
    with pytest.raises(ValueError, match="Valid task types are: classification, regression, token_classification"):
        TaskConfig(name="t", type="ner")
    with pytest.raises(ValueError, match="Valid pooling modes are: mean, cls, max"):
        MTSTConfig.from_dict({"model": {"pooling": "avg"}})
    with pytest.raises(ValueError, match="crf: true applies only to type token_classification"):
        TaskConfig(name="t", type="classification", crf=True)
    with pytest.raises(ValueError, match="loss 'cosent' is not valid for type classification"):
        TaskConfig(name="t", type="classification", loss="cosent")
    with pytest.raises(ValueError, match="missing required key 'type'"):
        MTSTConfig.from_dict({"tasks": [{"name": "t"}]})
    with pytest.raises(ValueError, match="repeated: t"):
        MTSTConfig.from_dict({"tasks": [{"name": "t", "type": "regression"}, {"name": "t", "type": "regression"}]})


def test_empty_and_malformed_files(tmp_path):
    empty = tmp_path / "e.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_config(empty)
    bad = tmp_path / "b.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="malformed YAML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_roundtrip_yaml(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text(EXAMPLE)
    cfg = load_config(f)
    save_config(cfg, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == cfg


def test_exponent_without_dot_is_a_number(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("train: {lr: 3e-5}\ntasks: []\n")
    cfg = load_config(f, ["train.head_lr=1e-3"])
    assert cfg.train.lr == 3e-5 and cfg.train.head_lr == 1e-3
    with pytest.raises(ValueError, match="train.lr must be a number, got 'fast'"):
        load_config(f, ["train.lr=fast"])


def test_frozen_heads_must_name_tasks_with_heads():
    tasks = [{"name": "t", "type": "classification"}, {"name": "s", "type": "similarity"}]
    assert MTSTConfig.from_dict({"tasks": tasks, "train": {"frozen_heads": ["t"]}}).train.frozen_heads == ("t",)
    with pytest.raises(ValueError, match="frozen_heads names 's', which is not a task with a head: t"):
        MTSTConfig.from_dict({"tasks": tasks, "train": {"frozen_heads": ["s"]}})


def test_shipped_task_files_load_and_name_existing_data(datasets_dir):
    """Every task file in configs/ and experiments/ validates, and the data files it names exist."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = sorted([*root.glob("configs/*.yaml"), *root.glob("experiments/**/*.yaml")])
    assert len(files) >= 6
    for path in files:
        cfg = load_config(path)
        for task in cfg.tasks:
            for split in ("train", "dev", "test"):
                value = getattr(task, split)
                if value is not None and not value.startswith("hf:"):
                    assert Path(value).is_file(), f"{path.name}: task {task.name} {split} file {value} is missing"
