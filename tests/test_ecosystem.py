"""The ecosystem's conventions (issue 14): model cards, the hub round trip, sentence-transformers' names on
``encode``, a CLI that behaves like one (exit codes, --version, -q/-v, --json), precision "auto" and portable
saved configs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from needs import need_module
from typer.testing import CliRunner

import mtst.engines.cli
import mtst.hub
import mtst.modelcard
import mtst.stfolder
from mtst import precision
from mtst.cli import app
from mtst.config import MTSTConfig, TaskConfig, TrainConfig
from mtst.encoder import SentenceEncoder
from mtst.model import MultiTaskModel, demo_heads_path
from mtst.tasks import build_task

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _front_matter(card: Path) -> dict:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _flat(res) -> str:
    return " ".join(res.output.split())  # rich wraps long lines


def _multitask(encoder, *, dev: str | None = None, train: str | None = None) -> MultiTaskModel:
    tasks = [
        build_task(TaskConfig(name="topic", type="classification", train=train, dev=dev), ["animal", "place"]),
        build_task(TaskConfig(name="ner", type="token_classification"), ["O", "B-LOC", "I-LOC"]),
        build_task(TaskConfig(name="score", type="regression")),
    ]
    model = MultiTaskModel(encoder, tasks)
    model.extra = {"dev_metrics": {"topic": {"accuracy": 0.75, "macro_f1": 0.5}, "ner": {"entity_f1": 0.25}}}
    return model


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------- model cards
def test_encoder_card_is_sentence_transformers_metadata(tiny_encoder, tmp_path):
    folder = tiny_encoder.save(tmp_path / "enc")
    meta = _front_matter(folder / "README.md")
    assert meta["library_name"] == "sentence-transformers" and meta["pipeline_tag"] == "sentence-similarity"
    assert {"sentence-transformers", "feature-extraction", "mtst"} <= set(meta["tags"])
    assert "base_model" not in meta  # a random local backbone: nothing to name
    text = (folder / "README.md").read_text()
    assert 'SentenceTransformer("enc")' in text and "Embedding dimension: 32" in text


def test_base_model_follows_the_card_of_the_folder_it_was_loaded_from(tiny_model_dir, tmp_path):
    folder = tmp_path / "enc"
    SentenceEncoder.from_pretrained(tiny_model_dir).save(folder)
    card = folder / "README.md"
    card.write_text(card.read_text().replace("---\n", "---\nbase_model: someone/tiny-bert\n", 1))
    again = SentenceEncoder.from_pretrained(folder)
    assert again.base_model == "someone/tiny-bert"
    again.save(tmp_path / "again")
    assert _front_matter(tmp_path / "again" / "README.md")["base_model"] == "someone/tiny-bert"


def test_multitask_card_lists_tasks_labels_and_metrics(tiny_encoder, tmp_path):
    folder = _multitask(tiny_encoder).save(tmp_path / "mt")
    meta = _front_matter(folder / "README.md")
    assert meta["library_name"] == "mtst" and "token-classification" in meta["tags"]
    tasks = {t["name"]: t for t in meta["mtst"]["tasks"]}
    assert list(tasks) == ["topic", "ner", "score"]
    assert tasks["topic"]["labels"] == ["animal", "place"] and tasks["score"]["labels"] is None
    assert tasks["topic"]["metrics"] == {"accuracy": 0.75, "macro_f1": 0.5} and tasks["score"]["metrics"] is None
    assert meta["mtst"]["encoder"] == "encoder/"
    results = meta["model-index"][0]["results"]
    got = {(r["task"]["name"], r["task"]["type"], m["type"], m["value"]) for r in results for m in r["metrics"]}
    assert got == {
        ("topic", "text-classification", "accuracy", 0.75),
        ("topic", "text-classification", "macro_f1", 0.5),
        ("ner", "token-classification", "entity_f1", 0.25),
    }
    text = (folder / "README.md").read_text()
    assert "`encoder/` is a standard sentence-transformers folder" in text
    assert 'MultiTaskModel.from_pretrained("mt")' in text
    # the encoder/ folder is one, with its own card
    assert _front_matter(folder / "encoder" / "README.md")["library_name"] == "sentence-transformers"
    assert (folder / "encoder" / "modules.json").exists()


@pytest.mark.slow
def test_a_trained_model_card_has_its_dev_metrics(tiny_model_dir, tmp_path):
    from toydata import write_toy_data

    from mtst.training import train

    data = write_toy_data(tmp_path / "data")
    config = MTSTConfig.from_dict(
        {
            "model": {"backbone": str(tiny_model_dir), "max_length": 32},
            "tasks": [{"name": "topic", "type": "classification", "train": "cls.tsv", "dev_fraction": 0.25}],
            "train": {"max_steps": 4, "eval_every": 4, "batch_size": 16, "lr": 1e-3},
        },
        base_dir=data,
    )
    result = train(config, tmp_path / "run", progress=False)
    model_dir = Path(result["model_dir"])
    (topic,) = _front_matter(model_dir / "README.md")["mtst"]["tasks"]
    assert topic["metrics"] == pytest.approx(result["final_metrics"]["topic"])
    saved = json.loads((model_dir / "mtst_config.json").read_text())
    assert saved["tasks"][0]["train"] == "../../data/cls.tsv"  # beside the run, in the same project: relative
    assert MultiTaskModel.load(model_dir).tasks["topic"].config.train == str(data / "cls.tsv")


# ---------------------------------------------------------------------- the hub
class _FakeHub:
    """Stands in for ``huggingface_hub.HfApi``: records what would be created and uploaded (no network)."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, *, private=None, repo_type=None, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private, repo_type, exist_ok, self.token))

    def upload_folder(self, *, repo_id, folder_path, repo_type, commit_message, revision, create_pr):
        folder = Path(folder_path)
        card = (folder / "README.md").read_text()
        self.calls.append(("upload_folder", repo_id, _files(folder), commit_message, revision, create_pr, card))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc", "pr_url": None})


@pytest.fixture
def fake_hub(monkeypatch):
    monkeypatch.setattr(mtst.hub, "HfApi", _FakeHub)
    _FakeHub.calls = []
    return _FakeHub.calls


def test_push_encoder_uploads_a_sentence_transformers_folder(tiny_encoder, fake_hub):
    url = tiny_encoder.push_to_hub("me/tiny-enc", token="hf_x", private=True, commit_message="first")
    assert url == "https://huggingface.co/me/tiny-enc/commit/abc"
    (create, upload) = fake_hub
    assert create == ("create_repo", "me/tiny-enc", True, "model", True, "hf_x")
    _, repo, files, message, revision, pr, card = upload
    assert (repo, message, revision, pr) == ("me/tiny-enc", "first", None, False)
    assert {
        "README.md",
        "config.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= files
    assert 'SentenceTransformer("me/tiny-enc")' in card  # the card names the repository


def test_push_multitask_uploads_heads_config_card_and_encoder(tiny_encoder, fake_hub):
    url = _multitask(tiny_encoder).push_to_hub("me/tiny-mt", create_pr=True)
    assert url.startswith("https://huggingface.co/me/tiny-mt")
    _, _, files, _, _, pr, card = fake_hub[1]
    assert pr is True
    assert {"README.md", "mtst_config.json", "heads.safetensors", "encoder/modules.json", "encoder/README.md"} <= files
    assert "encoder/model.safetensors" in files and "encoder/1_Pooling/config.json" in files
    assert 'MultiTaskModel.from_pretrained("me/tiny-mt")' in card and 'snapshot_download("me/tiny-mt"' in card
    with pytest.raises(ValueError, match="repo_id must look like 'owner/name'"):
        _multitask(tiny_encoder).push_to_hub("a/b/c")


def test_push_export_stages_the_folder_with_a_card(tmp_path, fake_hub):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"graph")
    (folder / "mtst_export.json").write_text("{}")
    config = {"format": "mtst-onnx", "kind": "multitask", "quantize": "int8", "tasks": [{"name": "topic"}]}
    card = str(mtst.modelcard.export_card(config, model_id="me/onnx"))
    mtst.hub.push_export(folder, "me/onnx", card)
    _, _, files, *_, uploaded_card = fake_hub[1]
    assert files == {"model.onnx", "mtst_export.json", "README.md"}
    assert "int8" in uploaded_card and 'MultiTaskModel.from_pretrained("me/onnx")' in uploaded_card
    assert not (folder / "README.md").exists()  # the export folder itself is left as it was


def test_multitask_load_takes_a_hub_id(tiny_encoder, tmp_path, monkeypatch):
    saved = _multitask(tiny_encoder).save(tmp_path / "snapshot")
    asked = []

    def fake_download(repo_id, allow_patterns):
        asked.append((repo_id, allow_patterns))
        return str(saved)

    monkeypatch.setattr(mtst.stfolder, "snapshot_download", fake_download)
    model = MultiTaskModel.from_pretrained("me/tiny-mt")
    assert list(model.tasks) == ["topic", "ner", "score"] and asked[0][0] == "me/tiny-mt"
    assert "*.safetensors" in asked[0][1] and "*.json" in asked[0][1]  # heads, config and encoder/ files
    assert model.predict(["the cat"])[0]["topic"]["label"] in ("animal", "place")


def test_a_hub_id_offline_says_so(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id, allow_patterns):
        raise LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(mtst.stfolder, "snapshot_download", offline)
    monkeypatch.setattr(mtst.stfolder.hub_constants, "HF_HUB_OFFLINE", True)
    for load in (MultiTaskModel.load, SentenceEncoder.from_pretrained):
        with pytest.raises(OSError, match="'me/missing' is not a local folder.*HF_HUB_OFFLINE is set"):
            load("me/missing")
    res = runner.invoke(app, ["predict", "-m", "me/missing", "the cat"])
    assert res.exit_code == 1 and "HF_HUB_OFFLINE is set" in _flat(res)


def test_save_pretrained_and_from_pretrained_names(tiny_encoder, tmp_path):
    enc_dir = tiny_encoder.save_pretrained(tmp_path / "enc")
    loaded = SentenceEncoder.load(enc_dir)
    np.testing.assert_allclose(loaded.encode(["a dog"]), tiny_encoder.encode(["a dog"]), atol=1e-6)
    mt_dir = _multitask(tiny_encoder).save_pretrained(tmp_path / "mt")
    again = MultiTaskModel.from_pretrained(mt_dir)
    assert again.predict(["the cat"]) == MultiTaskModel.load(mt_dir).predict(["the cat"])
    assert again.extra["dev_metrics"]["topic"]["accuracy"] == 0.75


def test_sentence_transformers_reads_the_encoder_inside_a_multitask_folder(tiny_encoder, tmp_path):
    st = need_module("sentence_transformers")
    folder = _multitask(tiny_encoder).save(tmp_path / "mt")
    ours = tiny_encoder.encode(["the cat sat", "paris"], precision="fp32")
    theirs = st.SentenceTransformer(str(folder / "encoder"), device="cpu").encode(["the cat sat", "paris"])
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


# ---------------------------------------------------------------------- saved data paths
def test_saved_data_paths_are_relative_or_names_only(tiny_encoder, tmp_path, caplog):
    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    (data / "dev.tsv").write_text("text\tlabel\nthe cat\tanimal\nparis\tplace\n")
    model = _multitask(tiny_encoder, dev=str(data / "dev.tsv"), train="/mnt/elsewhere/train.tsv")
    with caplog.at_level(logging.WARNING, logger="mtst"):
        folder = model.save(tmp_path / "project" / "runs" / "r1" / "model")
    saved = json.loads((folder / "mtst_config.json").read_text())
    topic = saved["tasks"][0]
    assert topic["dev"] == "../../../data/dev.tsv" and topic["train"] == "train.tsv"
    assert saved["names_only"] == {"topic": ["train"]}
    assert "saved by file name only (topic.train)" in caplog.text
    assert "file names only (topic: train)" in " ".join((folder / "README.md").read_text().split())
    assert not [v for t in saved["tasks"] for v in t.values() if isinstance(v, str) and v.startswith("/")]
    loaded = MultiTaskModel.load(folder)
    assert loaded.tasks["topic"].config.dev == str(data / "dev.tsv") and loaded.tasks["topic"].config.train is None
    # the folder moves with its project: the relative path still finds the data
    (tmp_path / "project").rename(tmp_path / "moved")
    moved = MultiTaskModel.load(tmp_path / "moved" / "runs" / "r1" / "model")
    assert moved.tasks["topic"].config.dev == str(tmp_path / "moved" / "data" / "dev.tsv")
    res = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "moved" / "runs" / "r1" / "model"), "--json"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output.strip().splitlines()[-1])) == {"topic"}


def test_evaluate_says_what_was_saved_by_name_only(tiny_encoder, tmp_path):
    model = _multitask(tiny_encoder, dev="/mnt/elsewhere/dev.tsv")
    folder = model.save(tmp_path / "m")
    res = runner.invoke(app, ["evaluate", "--model", str(folder)])
    assert res.exit_code == 1
    out = _flat(res)
    assert "task 'topic': its dev data (dev.tsv) lay outside the model's project" in out
    assert "mtst evaluate --model DIR CONFIG" in out and "No task of this model has dev data" in out


def test_the_shipped_demo_heads_config_holds_no_machine_paths():
    conf = json.loads((demo_heads_path() / "mtst_config.json").read_text())
    paths = [t[k] for t in conf["tasks"] for k in ("train", "dev", "test", "init_from") if t.get(k)]
    assert paths and all("/" not in p for p in paths), paths
    assert conf["names_only"] == {"topic": ["train"], "sentiment": ["train", "dev"], "entities": ["train", "dev"]}
    assert "/work/" not in (demo_heads_path() / "mtst_config.json").read_text()


# ---------------------------------------------------------------------- encode: sentence-transformers' names
def test_encode_accepts_sentence_transformers_keywords(tiny_encoder):
    texts = ["the cat sat on the mat", "paris", "a dog"]
    base = tiny_encoder.encode(texts)
    assert isinstance(base, np.ndarray) and base.shape == (3, 32)
    as_tensor = tiny_encoder.encode(texts, convert_to_tensor=True)
    assert isinstance(as_tensor, torch.Tensor) and torch.allclose(as_tensor, torch.from_numpy(base))
    assert isinstance(tiny_encoder.encode(texts, convert_to_numpy=True), np.ndarray)
    as_list = tiny_encoder.encode(texts, convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == 3 and as_list[1].shape == (32,)
    assert isinstance(tiny_encoder.encode(texts, convert_to_numpy=True, convert_to_tensor=True), torch.Tensor)
    normed = tiny_encoder.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(normed, base / np.linalg.norm(base, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(tiny_encoder.encode(texts, normalize_embeddings=False), base)  # keeps the model's
    tiny_encoder.normalize = True
    # False in sentence-transformers never undoes a model that normalizes
    np.testing.assert_allclose(np.linalg.norm(tiny_encoder.encode(texts, normalize_embeddings=False), axis=1), 1.0)
    np.testing.assert_allclose(tiny_encoder.encode(texts, precision="float32"), normed, atol=1e-6)
    np.testing.assert_allclose(tiny_encoder.encode(texts, device="cpu"), normed, atol=1e-6)


def test_encode_keyword_conflicts_and_the_other_precision(tiny_encoder):
    with pytest.raises(ValueError, match="normalize=False and normalize_embeddings=True disagree"):
        tiny_encoder.encode(["a"], normalize=False, normalize_embeddings=True)
    with pytest.raises(ValueError, match="convert_to='numpy' disagrees with convert_to_numpy=None, convert_to_tensor"):
        tiny_encoder.encode(["a"], convert_to="numpy", convert_to_tensor=True)
    for quantized in ("int8", "uint8", "binary", "ubinary"):
        with pytest.raises(ValueError, match=rf"precision='{quantized}' is sentence-transformers' output quantiz"):
            tiny_encoder.encode(["a"], precision=quantized)
    with pytest.raises(ValueError, match="quantize_embeddings"):
        tiny_encoder.encode(["a"], precision="int8")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, auto; got 'half'"):
        tiny_encoder.encode(["a"], precision="half")


def test_dimension_and_max_seq_length_as_in_sentence_transformers(tiny_encoder):
    assert tiny_encoder.get_sentence_embedding_dimension() == 32 == tiny_encoder.get_embedding_dimension()
    assert tiny_encoder.max_seq_length == tiny_encoder.max_length == 64
    tiny_encoder.max_seq_length = 8
    assert tiny_encoder.max_length == 8
    assert tiny_encoder.token_ids(["the cat sat on the mat and the dog sat on it"], warn=False)[0].__len__() == 8
    for bad in (1, 65, "8", 8.0, True):
        with pytest.raises(ValueError, match=r"max_seq_length must be an integer from 2 to 64"):
            tiny_encoder.max_seq_length = bad
    assert tiny_encoder.max_length == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: cuda is a device that exists")
def test_a_device_that_is_not_there_is_a_clear_error(tiny_encoder, tiny_model_dir):
    with pytest.raises(ValueError, match=r"device 'cuda' is not available: .*Use device='cpu'"):
        tiny_encoder.encode(["a"], device="cuda")
    with pytest.raises(ValueError, match=r"device 'cuda:1' is not available"):
        SentenceEncoder.from_pretrained(tiny_model_dir, device="cuda:1")
    with pytest.raises(ValueError, match=r"device 'gpu0' is not a device name"):
        SentenceEncoder.from_pretrained(tiny_model_dir, device="gpu0")
    assert tiny_encoder.device.type == "cpu"


def test_reprs_are_one_short_line(tiny_encoder):
    text = repr(tiny_encoder)
    assert "\n" not in text and len(text) < 200
    assert "backbone='bert'" in text and "pooling='mean'" in text and "dim=32" in text
    text = repr(_multitask(tiny_encoder))
    assert "\n" not in text and "dim=32" in text
    assert "tasks={'topic': 'classification', 'ner': 'token_classification', 'score': 'regression'}" in text


def test_top_level_exports_stay_lazy():
    code = (
        "import sys, mtst; assert 'torch' not in sys.modules, 'import mtst loaded torch'; "
        "from mtst import MultiTaskModel, SentenceEncoder, OnnxSentenceEncoder, OnnxMultiTaskModel, MTSTConfig, "
        "load_config, train, evaluate_model; "
        "print(MultiTaskModel.__module__, SentenceEncoder.__module__, train.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["mtst.model", "mtst.encoder", "mtst.training.run"]


# ---------------------------------------------------------------------- the command line
def test_version_and_python_dash_m():
    from mtst import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"mtst {__version__}"
    out = subprocess.run(
        [sys.executable, "-m", "mtst", "--version"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0 and out.stdout.strip() == f"mtst {__version__}", out.stderr


def test_exit_codes_success_failure_usage(tiny_model_dir, tmp_path):
    ok = runner.invoke(app, ["encode", "a dog", "-m", str(tiny_model_dir)])
    assert ok.exit_code == 0, ok.output
    # 1: the command line is right, running it failed
    for args in (
        ["encode", "a dog", "-m", str(tmp_path / "missing")],
        ["encode", "--input", str(tmp_path / "nope.txt"), "-m", str(tiny_model_dir)],
        ["predict", "a dog", "-m", str(tiny_model_dir)],  # an encoder, not a multi-task model
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and "error:" in res.output and "Traceback" not in res.output, (args, res.output)
    # 2: the command line itself is wrong (click's own errors too)
    for args in (
        ["encode"],
        ["encode", "a", "--no-such-option"],
        ["encode", "a", "--pooling", "sum"],
        ["encode", "a", "--precision", "int8"],
        ["encode", "a", "--batch-size", "0"],
        ["similarity", "only one"],
        ["evaluate", "-m", str(tmp_path), "--split", "train"],
        ["nonsense"],
        ["-v", "-q", "encode", "a"],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
    res = runner.invoke(app, ["encode", "-m", str(tiny_model_dir)])
    assert "Try 'mtst encode --help' for help." in res.output


def test_help_texts_are_whole():
    top = " ".join(runner.invoke(app, ["--help"]).output.split())
    assert "(soon)" not in top and "train" in top and "--version" in top and "--install-completion" in top
    encode_help = " ".join(runner.invoke(app, ["encode", "--help"], terminal_width=200).output.split())
    assert "save an [n, dim] .npy file" in encode_help
    assert "mtst[ray]" in encode_help


def test_json_output_of_encode_and_similarity(tiny_model_dir, tiny_encoder):
    res = runner.invoke(app, ["encode", "a dog", "the cat", "-m", str(tiny_model_dir), "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["text"] for r in rows] == ["a dog", "the cat"]
    np.testing.assert_allclose([r["embedding"] for r in rows], tiny_encoder.encode(["a dog", "the cat"]), atol=1e-5)
    res = runner.invoke(app, ["similarity", "a dog", "the cat", "paris", "-m", str(tiny_model_dir), "--json"])
    assert res.exit_code == 0, res.output
    pairs = [json.loads(line) for line in res.output.splitlines()]
    sim = tiny_encoder.similarity(["a dog", "the cat", "paris"])
    assert len(pairs) == 3 and [p["score"] for p in pairs] == sorted((p["score"] for p in pairs), reverse=True)
    for p in pairs:
        assert p["score"] == pytest.approx(float(sim[p["i"], p["j"]]), abs=1e-5)
        assert p["a"] == ["a dog", "the cat", "paris"][p["i"]]
    res = runner.invoke(
        app, ["similarity", "a dog", "the cat", "paris", "-m", str(tiny_model_dir), "--json", "--top", "1"]
    )
    assert len(res.output.splitlines()) == 1
    res = runner.invoke(app, ["encode", "a dog", "-m", str(tiny_model_dir), "--json", "-o", "x.npy"])
    assert res.exit_code == 2 and "--json" in res.output


class _Bars:
    """Records every tqdm bar the encode path makes: (shown?, total) and its updates."""

    def __init__(self):
        self.made = []

    def factory(self, module_tqdm):
        bars = self

        class Recorded(module_tqdm):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.updates = []
                self.shown = not self.disable  # close() sets disable: read it now
                bars.made.append(self)

            def update(self, n=1):
                self.updates.append(n)
                return super().update(n)

        return Recorded


def test_encode_file_draws_one_bar_moved_by_every_batch(tiny_model_dir, tmp_path, monkeypatch):
    import mtst.encoding
    import mtst.textfiles
    from mtst.textfiles import encode_file

    bars = _Bars()
    monkeypatch.setattr(mtst.textfiles, "tqdm", bars.factory(mtst.textfiles.tqdm))
    monkeypatch.setattr(mtst.encoding, "tqdm", bars.factory(mtst.encoding.tqdm))
    src = tmp_path / "in.txt"
    src.write_text("".join(f"the cat {i} sat on the mat\n" for i in range(50)))
    enc = SentenceEncoder.from_pretrained(tiny_model_dir)
    encode_file(enc, src, tmp_path / "out.npy", batch_size=4, chunk_size=20)
    shown = [b for b in bars.made if b.shown]
    assert len(shown) == 1 and shown[0].total == 50 and shown[0].desc == "Encoding"
    assert sum(shown[0].updates) == 50 and len(shown[0].updates) == 13  # ceil(20/4) + ceil(20/4) + ceil(10/4)


def test_quiet_hides_bars_and_verbose_shows_info(tiny_model_dir, tmp_path, monkeypatch):
    import mtst.textfiles
    from mtst.progress import progress_bars_disabled

    bars = _Bars()
    monkeypatch.setattr(mtst.textfiles, "tqdm", bars.factory(mtst.textfiles.tqdm))
    src = tmp_path / "in.txt"
    src.write_text("a dog\nthe cat\n")
    args = ["encode", "-i", str(src), "-m", str(tiny_model_dir), "-o", str(tmp_path / "e.npy"), "--overwrite"]
    assert runner.invoke(app, ["-q", *args]).exit_code == 0
    assert not bars.made[-1].shown and not progress_bars_disabled()  # off for the command, on again after it
    assert runner.invoke(app, args).exit_code == 0
    assert bars.made[-1].shown

    def says_info(*a, **k):
        logging.getLogger("mtst.encoder").info("an info line")
        return "ok"

    monkeypatch.setattr(mtst.engines.cli, "encode_to_folder", says_info)
    folder_args = ["encode", "-i", str(src), "-m", str(tiny_model_dir), "-o", str(tmp_path / "shards")]
    assert "INFO mtst.encoder: an info line" in runner.invoke(app, ["-v", *folder_args]).output
    assert "an info line" not in runner.invoke(app, folder_args).output


# ---------------------------------------------------------------------- precision "auto"
@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend this CPU has (True) or lacks (False) native bf16, and drop the tests' MTST_PRECISION=fp32."""
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)
    monkeypatch.setattr(precision, "_warned", set())

    def set_native(native: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)

    return set_native


def test_auto_is_the_default_and_picks_by_the_hardware(native_bf16):
    native_bf16(False)
    assert TrainConfig().precision == "auto" and precision.default_precision() == "auto"
    assert precision.resolve_precision(None) == "fp32"  # AVX2-only: emulated bf16 would be ~8x slower
    native_bf16(True)
    assert precision.resolve_precision(None) == "bf16" and precision.resolve_precision("auto") == "bf16"
    assert precision.resolve_precision("fp32") == "fp32"


def test_mtst_precision_sets_the_default(native_bf16, monkeypatch):
    native_bf16(True)
    monkeypatch.setenv(precision.PRECISION_ENV, "fp32")
    assert TrainConfig().precision == "fp32" and precision.resolve_precision(None) == "fp32"
    monkeypatch.setenv(precision.PRECISION_ENV, "fp16")
    with pytest.raises(ValueError, match=r"\$MTST_PRECISION: precision must be one of fp32, bf16, auto"):
        precision.resolve_precision(None)


def test_encode_and_predict_default_to_auto(tiny_encoder, native_bf16):
    seen: list[bool] = []
    tiny_encoder.backbone.register_forward_pre_hook(lambda m, a: seen.append(torch.is_autocast_enabled("cpu")))
    native_bf16(True)
    tiny_encoder.encode(["the cat"])
    model = _multitask(tiny_encoder)
    model.predict(["the cat"])
    native_bf16(False)
    tiny_encoder.encode(["the cat"])
    model.predict(["the cat"])
    assert seen == [True, True, False, False]


def _trainer(tiny_model_dir, tmp_path, **train):
    from toydata import write_toy_data

    from mtst.training import Trainer

    data = write_toy_data(tmp_path / "data")
    config = MTSTConfig.from_dict(
        {
            "model": {"backbone": str(tiny_model_dir), "max_length": 32},
            "tasks": [{"name": "topic", "type": "classification", "train": "cls.tsv", "dev_fraction": 0.25}],
            "train": {"max_steps": 2, "batch_size": 8, **train},
        },
        base_dir=data,
    )
    return Trainer(config, device="cpu")


def test_training_auto_precision_follows_the_hardware(tiny_model_dir, tmp_path, native_bf16, caplog):
    native_bf16(False)
    trainer = _trainer(tiny_model_dir, tmp_path)
    assert trainer.tc.precision == "auto" and trainer.precision == "fp32"
    assert trainer.accelerator.mixed_precision == "no"
    native_bf16(True)
    trainer = _trainer(tiny_model_dir, tmp_path)
    assert trainer.precision == "bf16" and trainer.accelerator.mixed_precision == "bf16"
    native_bf16(False)
    with caplog.at_level(logging.WARNING, logger="mtst.precision"):
        trainer = _trainer(tiny_model_dir, tmp_path, precision="bf16")
        _trainer(tiny_model_dir, tmp_path, precision="bf16")
    assert trainer.precision == "fp32" and trainer.accelerator.mixed_precision == "no"
    warned = [r for r in caplog.records if "no native bf16" in r.getMessage()]
    assert len(warned) == 1 and "running fp32 instead" in warned[0].getMessage()  # once, with why


def test_shipped_configs_say_auto():
    from mtst.config import load_config

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        assert load_config(path).train.precision == "auto", path
    assert os.environ.get(precision.PRECISION_ENV) == "fp32"  # conftest: the rest of the suite runs fp32
