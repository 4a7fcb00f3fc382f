import numpy as np
import pytest
from typer.testing import CliRunner

from mtst.cli import app

runner = CliRunner()


def test_encode_to_npy(tiny_model_dir, tmp_path):
    out = tmp_path / "emb.npy"
    res = runner.invoke(app, ["encode", "a dog", "the cat", "--model", str(tiny_model_dir), "--output", str(out)])
    assert res.exit_code == 0, res.output
    emb = np.load(out)
    assert emb.shape == (2, 32) and emb.dtype == np.float32


def test_encode_file_in_chunks_matches_in_memory(tiny_model_dir, tmp_path):
    from mtst.encoder import SentenceEncoder
    from mtst.textfiles import encode_file

    texts = [f"the cat {i} sat" if i % 3 else "" for i in range(23)]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    enc = SentenceEncoder.from_pretrained(tiny_model_dir)
    out = tmp_path / "out.npy"
    assert encode_file(enc, src, out, chunk_size=5, show_progress_bar=False) == (23, 32)
    np.testing.assert_allclose(np.load(out), enc.encode(texts), atol=1e-5)
    with pytest.raises(FileExistsError, match="exists"):
        encode_file(enc, src, out)


def test_encode_cli_with_input_file(tiny_model_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a dog\nthe cat\n\nparis", encoding="utf-8")
    out = tmp_path / "emb.npy"
    res = runner.invoke(app, ["encode", "--input", str(src), "--output", str(out), "-m", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    assert np.load(out).shape == (4, 32)
    res = runner.invoke(app, ["encode", "--input", str(src), "--output", str(out), "-m", str(tiny_model_dir)])
    assert res.exit_code == 1 and "exists" in res.output  # a failure while running: the file is there


def test_encode_prints_preview(tiny_model_dir):
    res = runner.invoke(app, ["encode", "a dog", "--model", str(tiny_model_dir), "--pooling", "max", "--no-normalize"])
    assert res.exit_code == 0, res.output
    assert "shape (1, 32)" in res.output and "a dog" in res.output


def test_encode_errors(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    res = runner.invoke(app, ["encode", "--input", str(empty), "-m", str(tiny_model_dir)])
    assert res.exit_code == 1 and "is empty" in res.output
    res = runner.invoke(app, ["encode", "-m", str(tiny_model_dir)])
    assert res.exit_code == 2 and "no texts" in res.output  # a usage error
    res = runner.invoke(app, ["encode", "x", "-m", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = runner.invoke(app, ["encode", "x", "-m", str(tiny_model_dir), "--pooling", "sum"])
    assert res.exit_code == 2 and "Valid pooling modes are" in res.output
    res = runner.invoke(app, ["encode", "x", "-m", str(tiny_model_dir), "-o", str(tmp_path / "e.txt")])
    assert res.exit_code == 2 and "must end in .npy" in res.output


def test_similarity_table_and_heatmap(tiny_model_dir, tmp_path):
    png = tmp_path / "heat.png"
    res = runner.invoke(app, ["similarity", "a dog", "a dog", "the mat", "-m", str(tiny_model_dir), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "│" in ln]
    assert "1.0000" in lines[0]  # identical texts rank first
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_similarity_needs_two(tiny_model_dir):
    res = runner.invoke(app, ["similarity", "only one", "-m", str(tiny_model_dir)])
    assert res.exit_code == 2 and "at least two" in res.output


def test_demo_on_tiny_model(tiny_model_dir):
    res = runner.invoke(app, ["demo", "--model", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    assert "shape (9, 32)" in res.output and "most similar first" in res.output
    assert "Predictions" not in res.output  # an encoder has no tasks


def test_demo_on_a_multitask_model_shows_tasks_predictions_and_dev_figures(tiny_encoder, tmp_path):
    folder = _saved_multitask_model(
        tiny_encoder, tmp_path / "mt", extra={"dev_metrics": {"topic": {"accuracy": 0.8125}}}
    )
    res = runner.invoke(app, ["demo", "--model", str(folder)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "what each was trained on" in res.output and "LOC, HUM" in res.output  # its labels
    assert "Predictions" in res.output and "Held-out figures" in res.output and "81.2" in res.output


def _saved_multitask_model(tiny_encoder, folder, extra=None):
    from mtst.config import TaskConfig
    from mtst.model import MultiTaskModel
    from mtst.tasks import build_task

    tasks = [
        build_task(TaskConfig(name="topic", type="classification"), ["LOC", "HUM"]),
        build_task(TaskConfig(name="sentiment", type="regression")),
        build_task(TaskConfig(name="entities", type="token_classification"), ["O", "B-LOC", "I-LOC"]),
    ]
    return MultiTaskModel(tiny_encoder, tasks).save(folder, extra=extra)


def test_predict_json_and_table(tiny_encoder, tmp_path):
    import json

    model_dir = _saved_multitask_model(tiny_encoder, tmp_path / "m")
    res = runner.invoke(app, ["predict", "--model", str(model_dir), "the cat in paris", "a dog", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.strip().splitlines()]
    assert [r["text"] for r in rows] == ["the cat in paris", "a dog"]
    assert rows[0]["topic"]["label"] in {"LOC", "HUM"} and isinstance(rows[0]["entities"], list)
    res = runner.invoke(app, ["predict", "-m", str(model_dir), "the cat", "--task", "sentiment"])
    assert res.exit_code == 0 and "sentiment" in res.output and "topic" not in res.output


def test_predict_errors(tiny_encoder, tmp_path):
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "nothing"), "x"])
    assert res.exit_code == 1 and "does not exist" in res.output
    model_dir = _saved_multitask_model(tiny_encoder, tmp_path / "m")
    res = runner.invoke(app, ["predict", "-m", str(model_dir), "x", "--task", "nope"])
    assert res.exit_code == 1 and "Unknown task 'nope'" in res.output


def test_cache_build_info_clear(tiny_model_dir, tmp_path):
    import json

    src = tmp_path / "in.txt"
    src.write_text("a dog\nthe cat\n", encoding="utf-8")
    cache = tmp_path / "cache"
    res = runner.invoke(app, ["cache", "build", "-i", str(src), "-m", str(tiny_model_dir), "--cache-dir", str(cache)])
    assert res.exit_code == 0 and "2 texts cached" in res.output, res.output
    res = runner.invoke(app, ["cache", "info", "--cache-dir", str(cache), "--json"])
    entry = json.loads(res.output)
    assert entry["kind"] == "sentence" and entry["rows"] == 2 and entry["dtype"] == "float32"
    assert runner.invoke(app, ["cache", "info", "--cache-dir", str(cache)]).exit_code == 0
    res = runner.invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert "Removed 1 cache entries" in res.output
    res = runner.invoke(app, ["cache", "info", "--cache-dir", str(cache)])
    assert "No cache entries" in res.output
