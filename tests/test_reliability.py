"""Issue 18, inputs and files: each defect the hostile probe found, as a test that failed before its fix.

Training-run defects (resume, overwrite, leftovers, Ctrl-C, loss logging) are in ``test_reliability_runs.py``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from mtst.cli import app
from mtst.config import TaskConfig, load_config
from mtst.encoder import SentenceEncoder
from mtst.model import MultiTaskModel
from mtst.tasks import build_task

runner = CliRunner()


class _Said(str):
    """What the CLI printed, without whitespace: rich wraps long lines. ``x in said`` drops x's whitespace too."""

    def __contains__(self, needle: object) -> bool:
        return "".join(str(needle).split()) in str(self)


def _clean_exit(res, code: int | None = None) -> str:
    """The CLI ended with ``code`` through its own error path (no traceback); returns its output."""
    # an error the CLI reports itself (1 or 2: another issue splits failures from usage errors), or ``code``
    assert (res.exit_code == code) if code is not None else (res.exit_code in (1, 2)), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return _Said("".join(res.output.split()))


def _model(tiny_encoder, folder):
    tasks = [
        build_task(TaskConfig(name="topic", type="classification"), ["animal", "place"]),
        build_task(TaskConfig(name="score", type="regression")),
    ]
    return MultiTaskModel(tiny_encoder, tasks).save(folder)


class _NoModelLoads:
    """Stands in for transformers.AutoModel: a test that reaches it loaded the model before refusing the input."""

    @staticmethod
    def from_pretrained(*args, **kwargs):
        raise RuntimeError("the backbone was loaded before the input was checked")


@pytest.fixture
def no_model_load(monkeypatch):
    import mtst.encoder

    monkeypatch.setattr(mtst.encoder, "AutoModel", _NoModelLoads)


# 1 ------------------------------------------------------------------------------------------------------------
def test_max_length_zero_is_refused_before_the_model_loads(tiny_model_dir, no_model_load):
    for bad in (0, 1, -5):
        with pytest.raises(ValueError, match=rf"max_length must be an integer >= 2, got {bad}"):
            SentenceEncoder.from_pretrained(tiny_model_dir, max_length=bad)
    out = _clean_exit(runner.invoke(app, ["encode", "x", "-m", str(tiny_model_dir), "--max-length", "0"]))
    assert "max_length must be an integer >= 2, got 0" in out


# 2 ------------------------------------------------------------------------------------------------------------
def test_evaluate_refuses_a_config_task_the_model_lacks(tiny_encoder, tmp_path):
    model_dir = _model(tiny_encoder, tmp_path / "m")
    (tmp_path / "d.tsv").write_text("text\tlabel\nthe cat\tanimal\nparis\tplace\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("tasks:\n  - {name: sentiment, type: classification, train: d.tsv, dev: d.tsv}\n")
    out = _clean_exit(runner.invoke(app, ["evaluate", "--model", str(model_dir), str(cfg)]))
    assert "sentiment" in out and "topic, score" in out


# 4 ------------------------------------------------------------------------------------------------------------
def test_duplicate_yaml_keys_are_refused_with_their_line(tmp_path):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("tasks:\n  - {name: t, type: regression, train: d.tsv}\ntrain:\n  lr: 0.1\ntrain:\n  max_steps: 3\n")
    with pytest.raises(ValueError, match=r"dup\.yaml, line 5: duplicate key 'train' \(first at line 3\)"):
        load_config(cfg)
    cfg.write_text("tasks:\n  - name: t\n    type: regression\n    name: u\n")
    with pytest.raises(ValueError, match=r"line 4: duplicate key 'name' \(first at line 2\)"):
        load_config(cfg)


# 6, 7 ---------------------------------------------------------------------------------------------------------
def test_encode_creates_the_output_folder_in_both_forms(tiny_model_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a dog\nthe cat\n")
    for args, out in (
        (["--input", str(src)], tmp_path / "nodir" / "sub" / "emb.npy"),
        (["a dog", "the cat"], tmp_path / "other" / "sub" / "emb.npy"),
    ):
        res = runner.invoke(app, ["encode", *args, "-m", str(tiny_model_dir), "--output", str(out)])
        assert res.exit_code == 0, res.output
        assert np.load(out).shape == (2, 32)
        assert ".tmp" not in res.output and not [p for p in out.parent.iterdir() if p.name != "emb.npy"]


def test_encode_output_that_is_a_folder_named_npy(tiny_model_dir, tmp_path, no_model_load):
    src = tmp_path / "in.txt"
    src.write_text("a dog\n")
    folder = tmp_path / "emb.npy"
    folder.mkdir()
    for args in (["--input", str(src)], ["a dog"]):
        for extra in ([], ["--overwrite"]):
            res = runner.invoke(app, ["encode", *args, "-m", str(tiny_model_dir), "-o", str(folder), *extra])
            assert "emb.npy is a folder" in _clean_exit(res)
    assert folder.is_dir()


# 8 ------------------------------------------------------------------------------------------------------------
def _truncate(path, keep=40):
    path.write_bytes(path.read_bytes()[:keep])


def test_damaged_safetensors_name_the_file(tiny_encoder, tmp_path):
    model_dir = _model(tiny_encoder, tmp_path / "m")
    _truncate(model_dir / "heads.safetensors")
    with pytest.raises(ValueError, match=r"heads\.safetensors is damaged"):
        MultiTaskModel.load(model_dir)
    out = _clean_exit(runner.invoke(app, ["predict", "-m", str(model_dir), "the cat"]))
    assert "heads.safetensors is damaged" in out

    enc_dir = tiny_encoder.save(tmp_path / "enc")
    _truncate(enc_dir / "model.safetensors", keep=2000)
    with pytest.raises(OSError, match=r"model\.safetensors is damaged"):
        SentenceEncoder.from_pretrained(enc_dir)
    out = _clean_exit(runner.invoke(app, ["encode", "x", "-m", str(enc_dir)]))
    assert "model.safetensors is damaged" in out


# 9, 12 --------------------------------------------------------------------------------------------------------
def test_cache_info_on_a_truncated_index(tiny_model_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a dog\nthe cat\n")
    cache = tmp_path / "cache"
    res = runner.invoke(app, ["cache", "build", "-i", str(src), "-m", str(tiny_model_dir), "--cache-dir", str(cache)])
    assert res.exit_code == 0, res.output
    (index,) = cache.glob("*/index.json")
    index.write_text(index.read_text()[:7])
    for args in (["cache", "info"], ["cache", "build", "-i", str(src), "-m", str(tiny_model_dir)]):
        out = _clean_exit(runner.invoke(app, [*args, "--cache-dir", str(cache)]))
        assert "index.json" in out and "mtst cache clear" in out


def test_cache_dir_that_is_a_file(tiny_encoder, tiny_model_dir, tmp_path, no_model_load):
    from mtst.cache import EmbeddingCache

    file = tmp_path / "cachefile"
    file.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=r"cachefile is a file, not a folder") as err:
        EmbeddingCache(file).get(tiny_encoder, ["a dog"])
    assert "sentence-" not in str(err.value)  # no internal sub-path
    src = tmp_path / "in.txt"
    src.write_text("a dog\n")
    for args in (["cache", "info"], ["cache", "build", "-i", str(src), "-m", str(tiny_model_dir)]):
        out = _clean_exit(runner.invoke(app, [*args, "--cache-dir", str(file)]))
        assert "cachefile is a file, not a folder" in out and "Errno" not in out


# 10, 11 -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tasks:\n  topic: {type: classification}\n", "tasks must be a list of task mappings, got a mapping"),
        ("tasks: [topic, entities]\n", "tasks[0] must be a mapping (key: value), got str"),
        ("model: default\ntasks:\n  - {name: t, type: regression}\n", "model must be a mapping (key: value), got str"),
        ("tasks:\n  - {name: t, type: regression, batch_size: big}\n", "batch_size must be an integer"),
        ("tasks:\n  - {name: t, type: regression}\ntrain: {max_steps: true}\n", "max_steps must be an integer"),
    ],
)
def test_task_file_shape_errors_are_clean(tmp_path, text, expected):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    with pytest.raises(ValueError) as err:
        load_config(cfg)
    assert str(err.value).startswith(f"{cfg}: ") and expected in str(err.value)
    out = _clean_exit(runner.invoke(app, ["train", str(cfg), "--output", str(tmp_path / "run")]))
    assert expected in out and not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["tasks: []\n", "model: {}\n", "tasks:\n"])
def test_a_task_file_without_tasks_cannot_train(tmp_path, text, no_model_load):
    from mtst.training import train

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    out = _clean_exit(runner.invoke(app, ["train", str(cfg), "--output", str(tmp_path / "run")]))
    assert f"{cfg}: tasks is empty: list at least one task" in out
    with pytest.raises(ValueError, match="tasks is empty: list at least one task"):
        train(load_config(cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# 14, 15 -------------------------------------------------------------------------------------------------------
def test_none_is_a_type_error(tiny_encoder, tmp_path):
    model = MultiTaskModel.load(_model(tiny_encoder, tmp_path / "m"))
    with pytest.raises(TypeError, match="texts must be a string or a sequence of strings, got NoneType"):
        tiny_encoder.encode(None)
    with pytest.raises(TypeError, match="texts must be a string or a sequence of strings, got NoneType"):
        model.predict(None)
    with pytest.raises(TypeError, match="got int"):
        tiny_encoder.encode(3)


def test_arrow_string_columns_are_texts(tiny_encoder, tmp_path):
    pa = pytest.importorskip("pyarrow")
    texts = ["the cat", "paris is a city", "a dog"]
    expected = tiny_encoder.encode(texts)
    for column in (
        pa.chunked_array([texts[:1], texts[1:]]),
        pa.array(texts),
        pa.array(texts, pa.large_string()),
        [pa.scalar(t) for t in texts],
    ):
        np.testing.assert_allclose(tiny_encoder.encode(column), expected, atol=1e-6)
    np.testing.assert_allclose(tiny_encoder.encode(pa.scalar("a dog")), expected[2], atol=1e-6)
    model = MultiTaskModel.load(_model(tiny_encoder, tmp_path / "m"))
    assert model.predict(pa.chunked_array([texts])) == model.predict(texts)
    with pytest.raises(TypeError, match=r"texts\[1\] is None"):
        tiny_encoder.encode(pa.array(["a", None]))


# 16 (inputs of the quick commands) ----------------------------------------------------------------------------
def test_quick_commands_refuse_bad_input_before_the_model_loads(tiny_encoder, tiny_model_dir, tmp_path, no_model_load):
    model_dir = _model(tiny_encoder, tmp_path / "m")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    src = tmp_path / "in.txt"
    src.write_text("a dog\n")
    cases = [
        (["encode", "--input", str(empty), "-m", str(tiny_model_dir), "-o", str(tmp_path / "e.npy")], "is empty"),
        (["encode", "--input", str(tmp_path / "nope.txt"), "-m", str(tiny_model_dir)], "does not exist"),
        (["cache", "build", "-i", str(src), "-m", str(tiny_model_dir), "--dtype", "float64"], "float32, float16"),
        (["cache", "build", "-i", str(empty), "-m", str(tiny_model_dir)], "is empty"),
        (["evaluate", "--model", str(model_dir), "--split", "train"], "split must be 'dev' or 'test'"),
        (["evaluate", "--model", str(model_dir), "--precision", "int4"], "precision must be one of"),
        (["predict", "--model", str(model_dir), "--input", str(empty)], "is empty"),
    ]
    for args, expected in cases:
        assert expected in _clean_exit(runner.invoke(app, args)), args


# 18 -----------------------------------------------------------------------------------------------------------
def _modes(folder):
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_files_follow_the_umask(tiny_encoder, tmp_path, umask):
    old = os.umask(umask)
    try:
        modes = _modes(_model(tiny_encoder, tmp_path / "m"))
    finally:
        os.umask(old)
    assert modes["heads.safetensors"] == 0o666 & ~umask
    assert modes["encoder/model.safetensors"] == 0o666 & ~umask
    assert modes["mtst_config.json"] == 0o666 & ~umask
    assert modes["encoder"] == 0o777 & ~umask
    assert set(modes.values()) == {0o666 & ~umask, 0o777 & ~umask}


# 17 (an interrupted encode) -----------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_encode_leaves_nothing_and_the_next_run_cleans_up(tiny_model_dir, tmp_path, caplog):
    from mtst.textfiles import encode_file

    src = tmp_path / "in.txt"
    src.write_text("a dog\nthe cat\n")
    stale = tmp_path / f".emb.npy.{_dead_pid()}.x1y2.tmp"
    stale.write_bytes(b"")
    live = tmp_path / f".emb.npy.{os.getppid()}.a1b2.tmp"  # a writer that is still running: kept
    live.write_bytes(b"")
    encoder = SentenceEncoder.from_pretrained(tiny_model_dir)
    with caplog.at_level("WARNING"):
        assert encode_file(encoder, src, tmp_path / "emb.npy", show_progress_bar=False) == (2, 32)
    assert not stale.exists() and live.exists()
    assert stale.name in caplog.text and "interrupted" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.txt", "emb.npy", live.name])


def test_encode_file_writes_a_temp_name_mtst_can_recognise(tiny_model_dir, tmp_path, monkeypatch):
    """An encode killed mid-write leaves ``.NAME.PID.XXXX.tmp``: the pattern the clean-up recognises."""
    from mtst import textfiles
    from mtst.diskio import stale_temp_owner

    seen = []
    real = textfiles.np.lib.format.write_array_header_1_0

    def spy(f, header):
        seen.append(os.path.basename(f.name))
        return real(f, header)

    monkeypatch.setattr(textfiles.np.lib.format, "write_array_header_1_0", spy)
    src = tmp_path / "in.txt"
    src.write_text("a dog\n")
    textfiles.encode_file(
        SentenceEncoder.from_pretrained(tiny_model_dir), src, tmp_path / "emb.npy", show_progress_bar=False
    )
    assert len(seen) == 1 and stale_temp_owner(seen[0]) == os.getpid()
