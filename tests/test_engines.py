"""Large-corpus encoding (mtst.engines): readers, shards and manifest, resume after a kill, the Ray engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from mtst.cli import app
from mtst.engines import encode_corpus, plan_input, read_embeddings, read_manifest, shard_paths
from tests.needs import need_module

TEXTS = [f"the cat {i} sat on the mat in paris" if i % 4 else "" for i in range(10)] + [
    "a dog is playing music",
    "london",
    "the cat and the dog " * 20,  # longer than the tiny model's 64 positions: truncated, as in encode
]


def write_inputs(folder: Path, texts: list[str]) -> dict[str, Path]:
    """The same texts (ids ``doc-i``) as Parquet (several row groups), JSONL, CSV, TSV and plain text."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"doc-{i}" for i in range(len(texts))]
    paths = {k: folder / f"corpus.{k}" for k in ("parquet", "jsonl", "csv", "tsv", "txt")}
    pq.write_table(
        pa.table({"id": ids, "text": texts, "other": list(range(len(texts)))}), paths["parquet"], row_group_size=4
    )
    lines = [json.dumps({"id": i, "text": t}) for i, t in zip(ids, texts, strict=True)]
    paths["jsonl"].write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n", encoding="utf-8")
    paths["csv"].write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in zip(ids, texts, strict=True)))
    paths["tsv"].write_text("id\ttext\n" + "".join(f"{i}\t{t}\n" for i, t in zip(ids, texts, strict=True)))
    paths["txt"].write_text("\n".join(texts) + "\n", encoding="utf-8")
    return paths


def fp32(encoder, texts: list[str]) -> np.ndarray:
    """``SentenceEncoder.encode`` in fp32, the engines' precision (its default, auto, is bf16 on some CPUs)."""
    return encoder.encode(texts, precision="fp32")


@pytest.fixture
def corpus(tmp_path) -> dict[str, Path]:
    return write_inputs(tmp_path / "in", TEXTS)


# ---------------------------------------------------------------------------------------------- the local engine
@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv", "tsv", "txt"])
def test_local_engine_matches_encode(fmt, corpus, tiny_model_dir, tiny_encoder, tmp_path):
    id_column = None if fmt == "txt" else "id"
    out = tmp_path / "out"
    result = encode_corpus(
        corpus[fmt], out, model=tiny_model_dir, shard_rows=5, id_column=id_column, show_progress_bar=False
    )
    assert (result.rows, result.shards, result.written, result.skipped) == (13, 3, 3, 0)
    ids, vectors = read_embeddings(out)
    np.testing.assert_allclose(vectors, fp32(tiny_encoder, TEXTS), atol=1e-6, rtol=0)
    assert ids == ([f"doc-{i}" for i in range(13)] if id_column else list(range(13)))
    assert [p.name for p in shard_paths(out)] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    manifest = read_manifest(out)
    assert manifest["model"]["dim"] == 32 and len(manifest["model"]["fingerprint"]) == 64
    assert manifest["settings"]["dtype"] == "float32" and manifest["rows"] == 13


def test_folder_of_files_numbers_rows_across_files(corpus, tiny_encoder, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "a.txt").write_text("the cat\nthe dog\n")
    (folder / "b.txt").write_text("paris\n")
    (folder / "_SUCCESS").write_text("")  # skipped, as Spark and Arrow skip it
    out = tmp_path / "out"
    encode_corpus(folder, out, model=tiny_encoder, shard_rows=1, show_progress_bar=False)
    ids, vectors = read_embeddings(out)
    assert ids == [0, 1, 2]
    np.testing.assert_allclose(vectors, fp32(tiny_encoder, ["the cat", "the dog", "paris"]), atol=1e-6, rtol=0)
    encode_corpus(str(folder / "*.txt"), tmp_path / "glob", model=tiny_encoder, show_progress_bar=False)
    np.testing.assert_array_equal(read_embeddings(tmp_path / "glob")[1], vectors)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_smaller_dtypes_round_trip(dtype, corpus, tiny_encoder, tmp_path):
    encode_corpus(corpus["parquet"], tmp_path / "o", model=tiny_encoder, dtype=dtype, show_progress_bar=False)
    table = pq.read_table(tmp_path / "o")
    expected = fp32(tiny_encoder, TEXTS)
    _, vectors = read_embeddings(tmp_path / "o")
    if dtype == "float16":
        assert table.schema.field("embedding").type == pa.list_(pa.float16(), 32)
        np.testing.assert_allclose(vectors, expected, rtol=1e-3, atol=1e-4)
    else:
        assert table.schema.field("embedding").type == pa.list_(pa.int8(), 32)
        scale = table.column("scale").to_numpy()
        assert np.all(np.abs(vectors - expected) <= scale[:, None] / 2 + 1e-7)


@pytest.mark.slow
def test_an_onnx_int8_export_is_used_when_the_model_points_at_one(corpus, tiny_model_dir, tiny_encoder, tmp_path):
    """``model`` loads through ``SentenceEncoder.from_pretrained``: an ``mtst export`` folder runs on onnxruntime."""
    need_module("onnxruntime")
    from mtst.encoder import SentenceEncoder
    from mtst.export import export_model

    export_model(tiny_model_dir, tmp_path / "int8", quantize="int8", force=True)
    onnx = SentenceEncoder.from_pretrained(tmp_path / "int8")
    assert type(onnx).__name__ == "OnnxSentenceEncoder"
    encode_corpus(corpus["parquet"], tmp_path / "out", model=tmp_path / "int8", show_progress_bar=False)
    np.testing.assert_allclose(read_embeddings(tmp_path / "out")[1], onnx.encode(TEXTS), atol=1e-6, rtol=0)
    fingerprint = read_manifest(tmp_path / "out")["model"]["fingerprint"]
    assert fingerprint == onnx.fingerprint() != tiny_encoder.fingerprint()
    with pytest.raises(ValueError, match=r"model\.fingerprint"):  # the torch model may not finish that folder
        encode_corpus(corpus["parquet"], tmp_path / "out", model=tiny_model_dir, show_progress_bar=False)


def test_rerun_skips_finished_shards_and_redoes_missing_ones(corpus, tiny_encoder, tmp_path):
    out = tmp_path / "out"
    encode_corpus(corpus["jsonl"], out, model=tiny_encoder, shard_rows=3, show_progress_bar=False)
    first = {p.name: p.stat().st_mtime_ns for p in shard_paths(out)}
    (out / "part-00002.parquet").unlink()
    result = encode_corpus(corpus["jsonl"], out, model=tiny_encoder, shard_rows=3, show_progress_bar=False)
    assert (result.written, result.skipped) == (1, 4)
    again = {p.name: p.stat().st_mtime_ns for p in shard_paths(out)}
    assert {k: v for k, v in again.items() if k != "part-00002.parquet"} == {
        k: v for k, v in first.items() if k != "part-00002.parquet"
    }
    np.testing.assert_allclose(read_embeddings(out)[1], fp32(tiny_encoder, TEXTS), atol=1e-6, rtol=0)


@pytest.mark.slow
def test_kill_and_resume_loses_and_duplicates_nothing(tiny_model_dir, tiny_encoder, tmp_path):
    """A run killed with SIGKILL part-way, then rerun: every row once, in order; finished shards kept as they were."""
    texts = [f"the cat {i} sat on mat {i % 7}" for i in range(3000)]
    src = tmp_path / "big.txt"
    src.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import torch
        torch.set_num_threads(1)
        from mtst.engines import encode_corpus
        encode_corpus({str(src)!r}, {str(out)!r}, model={str(tiny_model_dir)!r}, shard_rows=20,
                      show_progress_bar=False)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(shard_paths(out)) >= 5:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in shard_paths(out)}
    assert 5 <= len(before) < 150
    # a kill during a write leaves a hidden temporary shard behind; the rerun must clear it
    (out / ".part-00149.parquet.0123abcd.tmp").write_bytes(b"half a shard")

    torch.set_num_threads(1)
    result = encode_corpus(src, out, model=tiny_model_dir, shard_rows=20, show_progress_bar=False)
    assert (result.skipped, result.written, result.shards) == (len(before), 150 - len(before), 150)
    assert {p.name: p.stat().st_mtime_ns for p in shard_paths(out) if p.name in before} == before
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("part-")) == ["_manifest.json"]
    ids, vectors = read_embeddings(out)
    assert ids == list(range(3000))
    np.testing.assert_allclose(vectors, fp32(tiny_encoder, texts), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------- errors
def test_rerun_with_another_model_or_settings_is_refused(corpus, tiny_encoder, tmp_path):
    out = tmp_path / "out"
    encode_corpus(corpus["parquet"], out, model=tiny_encoder, show_progress_bar=False)
    with pytest.raises(ValueError, match=r"settings\.dtype: 'float32' in the folder, 'int8' now"):
        encode_corpus(corpus["parquet"], out, model=tiny_encoder, dtype="int8", show_progress_bar=False)
    other = tiny_encoder
    with torch.no_grad():
        next(other.backbone.parameters()).add_(0.01)  # another model: same shape, other weights
    with pytest.raises(ValueError, match=r"another model.*\n  model\.fingerprint: "):
        encode_corpus(corpus["parquet"], out, model=other, show_progress_bar=False)
    with pytest.raises(ValueError, match=r"inputs: 1 file\(s\), 13 rows"):
        encode_corpus(corpus["txt"], out, model=tiny_encoder, show_progress_bar=False)
    result = encode_corpus(corpus["parquet"], out, model=other, overwrite=True, show_progress_bar=False)
    assert (result.written, result.skipped) == (1, 0)
    np.testing.assert_allclose(read_embeddings(out)[1], fp32(other, TEXTS), atol=1e-6, rtol=0)


def test_missing_column_names_the_file_and_the_columns(corpus, tiny_encoder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(
        ValueError, match=r"corpus\.parquet has no column 'body' \(--text-column\); its columns are: id"
    ):
        encode_corpus(corpus["parquet"], out, model=tiny_encoder, text_column="body")
    with pytest.raises(ValueError, match=r"corpus\.csv has no column 'key' \(--id-column\); its columns are: id, text"):
        encode_corpus(corpus["csv"], out, model=tiny_encoder, id_column="key")
    with pytest.raises(ValueError, match=r"corpus\.jsonl, line 1: no key 'body' \(--text-column\); this line has: id"):
        encode_corpus(corpus["jsonl"], out, model=tiny_encoder, text_column="body")
    with pytest.raises(ValueError, match=r"plain text .* no id column"):
        encode_corpus(corpus["txt"], out, model=tiny_encoder, id_column="id")
    assert not out.exists()


def test_bad_rows_are_reported_with_file_and_line(tiny_encoder, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a cat"}\n{"text": "a dog"}\n{"text": 7}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: 'text' is int, not a string"):
        encode_corpus(bad, tmp_path / "o1", model=tiny_encoder, show_progress_bar=False)
    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "nulls.parquet")
    with pytest.raises(ValueError, match=r"nulls\.parquet, row 1: 'text' is null"):
        encode_corpus(tmp_path / "nulls.parquet", tmp_path / "o2", model=tiny_encoder, show_progress_bar=False)


def test_empty_input_is_refused(tiny_encoder, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty\.jsonl is empty: its 1 file\(s\) hold no texts"):
        encode_corpus(tmp_path / "empty.jsonl", tmp_path / "o", model=tiny_encoder)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match=r"No input files in .*nothing: expected files ending in"):
        encode_corpus(tmp_path / "nothing", tmp_path / "o", model=tiny_encoder)
    with pytest.raises(FileNotFoundError, match=r"No files match"):
        encode_corpus(tmp_path / "nothing" / "*.parquet", tmp_path / "o", model=tiny_encoder)


def test_output_folder_with_other_files_is_refused(corpus, tiny_encoder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds files that mtst did not write \(notes\.txt\); choose an empty"):
        encode_corpus(corpus["txt"], out, model=tiny_encoder)
    with pytest.raises(FileExistsError, match=r"is a file"):
        encode_corpus(corpus["txt"], out / "notes.txt", model=tiny_encoder)
    with pytest.raises(ValueError, match=r"lies inside the input"):
        encode_corpus(corpus["txt"].parent, corpus["txt"].parent / "emb", model=tiny_encoder)
    assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_bad_options(corpus, tiny_encoder, tmp_path):
    with pytest.raises(ValueError, match=r"dtype must be one of float32, float16, int8, got 'bf16'"):
        encode_corpus(corpus["txt"], tmp_path / "o", model=tiny_encoder, dtype="bf16")
    with pytest.raises(ValueError, match=r"engine must be one of local, ray"):
        encode_corpus(corpus["txt"], tmp_path / "o", model=tiny_encoder, engine="spark")
    with pytest.raises(
        ValueError, match=r"--workers, --ray-address, --cpus-per-worker and --gpus-per-worker need --engine ray"
    ):
        encode_corpus(corpus["txt"], tmp_path / "o", model=tiny_encoder, workers=4)
    with pytest.raises(ValueError, match=r"input format must be auto or one of"):
        plan_input(corpus["txt"], input_format="xml")


# ---------------------------------------------------------------------------------------------- command line
def flat(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_cli_encode_to_folder_and_cache_build(corpus, tiny_model_dir, tiny_encoder, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["encode", "-i", str(corpus["parquet"]), "-o", str(out), "-m", str(tiny_model_dir), "--id-column", "id"]
    res = runner.invoke(app, [*args, "--dtype", "float16", "--shard-rows", "4"])
    assert res.exit_code == 0, res.output
    assert "13 x 32 float16 embeddings in 4 shard(s)" in flat(res) and "4 written now, 0 already done" in flat(res)
    res = runner.invoke(app, [*args, "--dtype", "float16", "--shard-rows", "4"])
    assert res.exit_code == 0 and "0 written now, 4 already done" in flat(res), res.output
    res = runner.invoke(app, [*args, "--dtype", "int8", "--shard-rows", "4"])
    assert res.exit_code == 1 and "settings.dtype" in flat(res)  # 1: failed while running
    res = runner.invoke(app, ["encode", "-i", str(corpus["parquet"]), "-o", str(tmp_path / "e.npy")])
    assert res.exit_code == 2 and "needs --output DIR" in flat(res)
    res = runner.invoke(app, ["encode", "-i", str(corpus["txt"]), "-o", str(tmp_path / "e.npy"), "--dtype", "int8"])
    assert res.exit_code == 2 and "--dtype needs --output DIR" in flat(res)
    ids, vectors = read_embeddings(out)
    assert ids[0] == "doc-0" and vectors.shape == (13, 32)

    cache = tmp_path / "cache"
    res = runner.invoke(
        app, ["cache", "build", "-i", str(corpus["jsonl"]), "-m", str(tiny_model_dir), "--cache-dir", str(cache)]
    )
    assert res.exit_code == 0 and "13 texts cached" in flat(res), res.output
    res = runner.invoke(app, ["cache", "build", "-i", str(corpus["csv"]), "--text-column", "body"])
    assert res.exit_code == 1 and "no column 'body'" in flat(res)


# ---------------------------------------------------------------------------------------------- the Ray engine
@pytest.fixture(scope="module")
def local_ray():
    ray = need_module("ray")
    need_module("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_engine_with_two_actors_matches_local(local_ray, tiny_model_dir, tmp_path):
    texts = [f"the cat {i} sat on the mat" if i % 9 else "" for i in range(120)]
    src = write_inputs(tmp_path / "in", texts)["jsonl"]
    encode_corpus(src, tmp_path / "local", model=tiny_model_dir, id_column="id", shard_rows=15)
    remote = encode_corpus(
        src, tmp_path / "ray", model=tiny_model_dir, id_column="id", shard_rows=15, engine="ray", workers=2
    )
    assert (remote.engine, remote.workers, remote.written, remote.rows) == ("ray", 2, 8, 120)
    (local_ids, local_vectors), (ray_ids, ray_vectors) = (
        read_embeddings(tmp_path / "local"),
        read_embeddings(tmp_path / "ray"),
    )
    assert ray_ids == local_ids == [f"doc-{i}" for i in range(120)]
    np.testing.assert_allclose(ray_vectors, local_vectors, atol=1e-6, rtol=0)
    assert read_manifest(tmp_path / "ray")["model"] == read_manifest(tmp_path / "local")["model"]
    # the layouts are the same: a folder written by Ray resumes with the local engine (nothing left to do)
    again = encode_corpus(src, tmp_path / "ray", model=tiny_model_dir, id_column="id", shard_rows=15)
    assert (again.written, again.skipped) == (0, 8)
    # Ray Data reads the folder back as one dataset (it reads the .parquet files, not the manifest)
    assert local_ray.data.read_parquet(str(tmp_path / "ray")).count() == 120


def test_ray_actor_sends_bad_input_back_as_the_error_to_raise(tiny_model_dir, tmp_path):
    """The actor class, run in this process: a fragment's bad row comes back as data, raised in the driver as is."""
    from mtst.engines.local import ModelSpec, ShardSettings
    from mtst.engines.manifest import model_fingerprint
    from mtst.engines.rayengine import FragmentEncoder, load_encoder, raise_worker_error

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a cat"}\n{"text": "a dog"}\n{"text": null}\n')
    plan = plan_input(bad, shard_rows=2)
    spec = ModelSpec(str(tiny_model_dir))
    settings = ShardSettings(str(tmp_path), "float32", "text", None, 32)
    actor = FragmentEncoder(spec, model_fingerprint(load_encoder(spec)), plan.fragments, settings, threads=1)
    out = actor({"index": np.array([0, 1])})
    assert list(out["rows"]) == [2, 0] and out["error"][0] == ""
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: 'text' is NoneType, not a string"):
        raise_worker_error(out["error"][1])
    assert [p.name for p in shard_paths(tmp_path)] == ["part-00000.parquet"]
    with pytest.raises(ValueError, match="another model"):
        FragmentEncoder(spec, "0" * 64, plan.fragments, settings, threads=1)
