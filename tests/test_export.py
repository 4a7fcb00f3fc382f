"""ONNX export (mtst.export) and the onnxruntime backend (mtst.runtime): round trips on the tiny backbone.

One dynamo export of a three-head model (fp32) is shared by most tests; the others use the TorchScript
fallback (a few seconds instead of tens) by making the dynamo exporter fail, which also tests the fallback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtst.cli import app
from mtst.config import MTSTConfig, TaskConfig
from mtst.data.examples import SentenceExample, TokenExample
from mtst.encoder import SentenceEncoder
from mtst.evaluation import evaluate
from mtst.export import export_model, head_nodes, matching_nodes, node_module, quantize_graph
from mtst.model import MultiTaskModel
from mtst.runtime.encoder import OnnxSentenceEncoder
from mtst.runtime.model import OnnxMultiTaskModel
from mtst.tasks import build_task
from tests.needs import need_module

need_module("onnxruntime")
need_module("onnxscript")
onnx = need_module("onnx")

NER_TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
TEXTS = [
    "the cat sat on the mat",
    "paris",
    "",
    "The  CAT,  is in Paris — and London!!  cats?",
    "ünïcödé paris and london",
    "a dog in london and paris, playing music in the park with a cat and another dog",
    "is it?",
]
runner = CliRunner()


@contextlib.contextmanager
def dynamo_fails():
    """Make the dynamo exporter raise, so export_model falls back to the TorchScript exporter."""
    real = torch.onnx.export

    def export(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("dynamo switched off by the test")
        return real(*args, dynamo=False, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.onnx, "export", export)
        yield


def _model(encoder: SentenceEncoder) -> MultiTaskModel:
    torch.manual_seed(0)
    tasks = [
        build_task(TaskConfig(name="topic", type="classification", head="mlp", hidden_size=16), ["a", "b", "c"]),
        build_task(TaskConfig(name="sentiment", type="regression")),
        build_task(TaskConfig(name="entities", type="token_classification", crf=True), NER_TAGS),
        build_task(TaskConfig(name="sim", type="similarity")),
    ]
    model = MultiTaskModel(encoder, tasks).eval()
    with torch.no_grad():  # strong, varied emissions and transitions: a non-trivial Viterbi path with spans
        model.heads["entities"].net[-1].weight.mul_(20)
        model.heads["entities"].crf.transitions.normal_(0, 1)
    return model


@pytest.fixture(scope="module")
def torch_model(_tiny_encoder_once):
    return _model(_tiny_encoder_once)


@pytest.fixture(scope="module")
def model_dir(torch_model, tmp_path_factory):
    return torch_model.save(tmp_path_factory.mktemp("mt") / "model")


@pytest.fixture(scope="module")
def fp32_export(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "fp32"
    return export_model(model_dir, out)


@pytest.fixture(scope="module")
def onnx_model(fp32_export):
    return MultiTaskModel.load(fp32_export.folder)


def test_fp32_export_checks_itself_and_writes_one_graph(fp32_export):
    assert fp32_export.exporter == "dynamo" and fp32_export.kind == "multitask"
    check = fp32_export.check
    assert check.passed and check.texts >= 200  # the sample set shipped in src/mtst/assets
    assert set(check.max_abs_diff) == {"sentence_embedding", "topic", "sentiment", "entities"}
    assert max(check.max_abs_diff.values()) <= 1e-4
    assert check.agreement == {"topic": 1.0, "sentiment": 1.0, "entities": 1.0}
    folder = fp32_export.folder
    assert {"model.onnx", "crf.safetensors", "mtst_export.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    conf = json.loads((folder / "mtst_export.json").read_text())
    assert (conf["format"], conf["format_version"], conf["kind"]) == ("mtst-onnx", 1, "multitask")
    assert conf["quantize"] == "none" and conf["exporter"] == "dynamo"
    assert [t["name"] for t in conf["tasks"]] == ["topic", "sentiment", "entities", "sim"]
    assert conf["tasks"][2]["labels"] == NER_TAGS and conf["crf"] == ["entities"]
    assert conf["check"]["passed"] is True
    graph = onnx.load(str(folder / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["sentence_embedding", "topic", "sentiment", "entities"]
    for tensor in list(graph.input) + [graph.output[3]]:  # batch and sequence axes are symbolic
        dims = tensor.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_param


def test_fp32_outputs_match_torch(torch_model, onnx_model):
    assert isinstance(onnx_model, OnnxMultiTaskModel)
    ids = torch_model.encoder.token_ids(TEXTS)
    for _, features in torch_model.encoder.batches(ids, 3):
        with torch.inference_mode():
            expected = torch_model(features)
        got = onnx_model(features)
        assert set(got) == set(expected) == {"topic", "sentiment", "entities", "sim"}
        for name in expected:
            assert got[name].shape == expected[name].shape
            assert (got[name] - expected[name]).abs().max() <= 1e-4, name
    for normalize in (None, True, False):
        a = torch_model.encoder.encode(TEXTS, normalize=normalize, batch_size=2, precision="fp32")
        b = onnx_model.encoder.encode(TEXTS, normalize=normalize, batch_size=2)
        assert np.abs(a - b).max() <= 1e-4
    sim = torch_model.encoder.similarity(torch_model.encoder.encode(TEXTS[:3], precision="fp32"))
    assert onnx_model.encoder.similarity(TEXTS[:3]) == pytest.approx(sim, abs=1e-4)


def test_predict_on_export_gives_the_same_labels_and_entity_spans(torch_model, onnx_model):
    expected = torch_model.predict(TEXTS, word_tags=True, batch_size=3, precision="fp32")
    got = onnx_model.predict(TEXTS, word_tags=True, batch_size=3)
    assert sum(len(p["entities"]) for p in expected) >= 5  # the forced head tags real spans
    for e, g in zip(expected, got, strict=True):
        assert set(g) == set(e) == {"topic", "sentiment", "entities", "entities_words"}
        assert g["topic"]["label"] == e["topic"]["label"]
        assert g["topic"]["score"] == pytest.approx(e["topic"]["score"], abs=1e-5)
        assert g["sentiment"]["score"] == pytest.approx(e["sentiment"]["score"], abs=1e-5)
        spans = lambda ents: [(x["text"], x["label"], x["start"], x["end"]) for x in ents]  # noqa: E731
        assert spans(g["entities"]) == spans(e["entities"])
        assert [w["tag"] for w in g["entities_words"]] == [w["tag"] for w in e["entities_words"]]
    assert onnx_model.predict(TEXTS[:2], tasks=["topic"]) == [{"topic": p["topic"]} for p in got[:2]]
    with pytest.raises(ValueError, match="Unknown task 'nope'; this model's tasks are: topic, sentiment"):
        onnx_model.predict(["x"], tasks=["nope"])


def test_evaluate_runs_unchanged_on_an_export(torch_model, onnx_model):
    tok, n = torch_model.encoder.tokenizer, torch_model.encoder.max_length
    sentences = [SentenceExample(t, label=lab) for t, lab in zip(TEXTS, "abcabca", strict=True)]
    words = [TokenExample(t.split(), ["B-LOC" if w in ("paris", "london") else "O" for w in t.split()]) for t in TEXTS]
    data = {
        "topic": torch_model.tasks["topic"].encode(sentences, tok, n),
        "entities": torch_model.tasks["entities"].encode([w for w in words if w.tokens], tok, n),
    }
    expected, got = evaluate(torch_model, data), evaluate(onnx_model, data)
    assert got.keys() == expected.keys() == {"topic", "entities"}
    for name in expected:
        assert got[name] == pytest.approx(expected[name])


def test_evaluate_model_precision_bf16_on_torch_and_refused_on_an_export(torch_model, onnx_model, tmp_path):
    from mtst.evaluation import evaluate_model

    rows = [f"{t}\t{'abc'[i % 3]}\n" for i, t in enumerate(t for t in TEXTS if t)]
    (tmp_path / "d.tsv").write_text("text\tlabel\n" + "".join(rows))
    cfg = MTSTConfig.from_dict(
        {"tasks": [{"name": "topic", "type": "classification", "train": "d.tsv", "dev": "d.tsv"}]}, base_dir=tmp_path
    )
    fp32 = evaluate_model(torch_model, cfg)
    assert evaluate_model(onnx_model, cfg)["topic"] == pytest.approx(fp32["topic"])
    bf16 = evaluate_model(torch_model, cfg, precision="bf16")  # fp32 with a warning where bf16 is not native
    assert bf16.keys() == fp32.keys() and 0.0 <= bf16["topic"]["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="precision='bf16' applies to torch models"):
        evaluate_model(onnx_model, cfg, precision="bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        evaluate_model(torch_model, cfg, precision="fp16")


def test_int8_export_loads_and_runs(model_dir, torch_model, tmp_path):
    with dynamo_fails():
        report = export_model(model_dir, tmp_path / "int8", quantize="int8", force=True)
    assert report.quantize == "int8" and set(report.check.agreement) == {"topic", "sentiment", "entities"}
    assert report.check.mean_cosine > 0.9
    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    model = MultiTaskModel.load(tmp_path / "int8")
    preds = model.predict(TEXTS)
    assert [set(p) for p in preds] == [{"topic", "sentiment", "entities"}] * len(TEXTS)
    assert all(p["topic"]["label"] in "abc" for p in preds)
    emb = model.encoder.encode(TEXTS)
    ref = torch_model.encoder.encode(TEXTS, precision="fp32")
    cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.mean() > 0.9


def test_keep_heads_fp32_leaves_only_the_backbone_quantized(fp32_export, tmp_path):
    src = fp32_export.folder / "model.onnx"
    heads = set(head_nodes(src))
    head_matmuls = [n.name for n in onnx.load(str(src)).graph.node if n.name in heads and n.op_type == "MatMul"]
    assert head_matmuls  # the token head's projection (3-d input: MatMul, which quantize_dynamic converts)

    def float_matmuls(path):
        return {n.name for n in onnx.load(str(path)).graph.node if n.op_type == "MatMul"}

    quantize_graph(src, tmp_path / "kept.onnx", exclude=sorted(heads))
    quantize_graph(src, tmp_path / "all.onnx")
    assert set(head_matmuls) <= float_matmuls(tmp_path / "kept.onnx")
    assert not set(head_matmuls) & float_matmuls(tmp_path / "all.onnx")
    for path in (tmp_path / "kept.onnx", tmp_path / "all.onnx"):  # the backbone is quantized either way
        assert "MatMulInteger" in {n.op_type for n in onnx.load(str(path)).graph.node}


def test_keep_fp32_patterns_pick_modules_by_their_torch_names(fp32_export, tiny_model_dir, tmp_path):
    src = fp32_export.folder / "model.onnx"
    nodes = {n.name: n for n in onnx.load(str(src)).graph.node}
    picked = matching_nodes(src, ["*.layer.1.output.dense"])  # the last layer's feed-forward output only
    assert len(picked) == 1 and node_module(nodes[picked[0]]) == "encoder.backbone.encoder.layer.1.output.dense"
    both = matching_nodes(src, ["*.layer.*.output.dense"])  # attention outputs match too: "*" spans dots
    assert set(picked) < set(both) and len(both) == 4
    with pytest.raises(ValueError, match=r"'\*.layer.9.\*' matches no weight product .* as in: encoder"):
        matching_nodes(src, ["*.layer.9.*"])
    quantize_graph(src, tmp_path / "kept.onnx", exclude=picked)
    ops = {n.name: n.op_type for n in onnx.load(str(tmp_path / "kept.onnx")).graph.node}
    assert ops[picked[0]] == "MatMul" and "MatMulInteger" in ops.values()  # kept in fp32, the rest int8
    with dynamo_fails():  # the TorchScript exporter's node names carry the module path instead
        report = export_model(
            tiny_model_dir, tmp_path / "ts", quantize="int8", keep_fp32=["*.layer.0.attention.self.query"]
        )
    conf = json.loads((tmp_path / "ts" / "mtst_export.json").read_text())
    assert report.exporter == "torchscript" and conf["keep_fp32"] == ["*.layer.0.attention.self.query"]
    kept = [
        n for n in onnx.load(str(tmp_path / "ts" / "model.onnx")).graph.node if "layer.0/attention/self/query" in n.name
    ]
    assert [n.op_type for n in kept if n.op_type.startswith("MatMul")] == ["MatMul"]


def test_check_data_judges_each_head_on_its_own_dev_examples(model_dir, tiny_model_dir, tmp_path):
    import yaml
    from toydata import write_toy_data

    from mtst.export_check import task_check_texts

    data = write_toy_data(tmp_path / "data")
    tasks = [
        {"name": "topic", "type": "classification", "train": str(data / "cls.tsv"), "dev_fraction": 0.25},
        {"name": "entities", "type": "token_classification", "train": str(data / "ner.conll"),
         "dev": str(data / "ner.conll")},
        {"name": "other", "type": "classification", "train": str(data / "cls.tsv"), "dev_fraction": 0.5},
    ]  # fmt: skip
    cfg = tmp_path / "check.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"backbone": str(tiny_model_dir)}, "tasks": tasks}))
    texts = task_check_texts(cfg, ["topic", "sentiment", "entities"], n=50)
    assert sorted(texts) == ["entities", "topic"]  # "other" is no task of the model; sentiment has no data here
    rows = {line.split("\t")[0] for line in (data / "cls.tsv").read_text().splitlines()[1:]}
    assert len(texts["topic"]) == 24 and set(texts["topic"]) <= rows  # the 25% held out of 96 rows
    vocab = {"the", "cat", "sat", "on", "paris", "london", "mat"}
    assert len(texts["entities"]) == 50 and all(set(t.split()) <= vocab for t in texts["entities"])
    with dynamo_fails():
        report = export_model(model_dir, tmp_path / "int8", quantize="int8", check_data=cfg, force=True)
    conf = json.loads((tmp_path / "int8" / "mtst_export.json").read_text())["check"]
    assert conf["agreement_on"] == {"topic": "24 dev examples", "entities": "80 dev examples"}
    assert list(conf["agreement"]) == ["topic", "sentiment", "entities"]  # sentiment: on the sample sentences
    assert any(line.startswith("agreement topic (24 dev examples): ") for line in report.check.lines())
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"model": {"backbone": str(tiny_model_dir)}, "tasks": tasks[2:]}))
    with pytest.raises(ValueError, match=r"none of its tasks \(other\) is a task of this model"):
        export_model(model_dir, tmp_path / "x", quantize="int8", check_data=other)
    with pytest.raises(ValueError, match="judges task heads: this model is an encoder"):
        export_model(tiny_model_dir, tmp_path / "x", check_data=cfg)
    assert not (tmp_path / "x").exists()


def test_encoder_export_loads_as_encoder_and_says_it_fell_back(tiny_model_dir, tiny_encoder, tmp_path, caplog):
    with dynamo_fails(), caplog.at_level(logging.WARNING, logger="mtst.export"):
        report = export_model(tiny_model_dir, tmp_path / "enc")
    assert report.kind == "encoder" and report.exporter == "torchscript" and report.check.passed
    assert "dynamo ONNX exporter failed" in caplog.text and "TorchScript" in caplog.text
    enc = SentenceEncoder.from_pretrained(tmp_path / "enc")
    assert isinstance(enc, OnnxSentenceEncoder)
    assert (enc.dim, enc.pooling, enc.max_length) == (tiny_encoder.dim, "mean", tiny_encoder.max_length)
    assert np.abs(enc.encode(TEXTS) - tiny_encoder.encode(TEXTS, precision="fp32")).max() <= 1e-4
    assert enc.encode("paris").shape == (tiny_encoder.dim,)
    with pytest.raises(ValueError, match="without task heads: load it with SentenceEncoder.from_pretrained"):
        MultiTaskModel.load(tmp_path / "enc")
    with pytest.raises(ValueError, match="pools with 'mean' inside its graph"):
        SentenceEncoder.from_pretrained(tmp_path / "enc", pooling="cls")
    with pytest.raises(ValueError, match="run on the CPU"):
        SentenceEncoder.from_pretrained(tmp_path / "enc", device="cuda")
    with pytest.raises(ValueError, match="precision='bf16' applies to torch models"):
        enc.encode(["x"], precision="bf16")
    with pytest.raises(ValueError, match="already an ONNX export"):
        export_model(tmp_path / "enc", tmp_path / "again")
    with pytest.raises(FileExistsError, match="not empty"):
        export_model(tiny_model_dir, tmp_path / "enc")


def test_a_failed_self_check_writes_nothing_unless_forced(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("mtst.export_check.FP32_MAX_ABS_DIFF", 0.0)  # no graph can meet it
    with dynamo_fails(), pytest.raises(ValueError, match=r"self-check failed .*differs from torch .*--force keeps"):
        export_model(tiny_model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with dynamo_fails():
        report = export_model(tiny_model_dir, tmp_path / "out", force=True)
    assert not report.check.passed and (tmp_path / "out" / "model.onnx").exists()
    assert json.loads((tmp_path / "out" / "mtst_export.json").read_text())["check"]["passed"] is False


def test_bad_options_are_refused_before_any_work(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="quantize must be one of none, int8; got 'int4'"):
        export_model(tiny_model_dir, tmp_path / "x", quantize="int4")
    with pytest.raises(ValueError, match="keep_heads_fp32 applies to quantize='int8'"):
        export_model(tiny_model_dir, tmp_path / "x", keep_heads_fp32=True)
    with pytest.raises(ValueError, match="keep_fp32 applies to quantize='int8'"):
        export_model(tiny_model_dir, tmp_path / "x", keep_fp32=["*"])
    (tmp_path / "few.txt").write_text("one\ntwo\n")
    with pytest.raises(ValueError, match="needs at least 10 texts, found 2"):
        export_model(tiny_model_dir, tmp_path / "x", calibration=tmp_path / "few.txt")
    assert not (tmp_path / "x").exists()


@pytest.fixture
def export_copy(fp32_export, tmp_path):
    return shutil.copytree(fp32_export.folder, tmp_path / "copy")


def test_corrupted_graph_gives_a_clear_error(export_copy):
    graph = export_copy / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    graph.write_bytes(bytes(data))
    with pytest.raises(OSError, match="damaged or was changed.*mtst export .* --overwrite"):
        MultiTaskModel.load(export_copy)
    conf_file = export_copy / "mtst_export.json"
    conf = json.loads(conf_file.read_text())
    conf_file.write_text(json.dumps({**conf, "graph_sha256": None}))
    graph.write_bytes(b"not a protobuf at all")
    with pytest.raises(OSError, match="onnxruntime could not load .*damaged or incomplete"):
        SentenceEncoder.from_pretrained(export_copy)


def test_newer_format_version_gives_a_clear_error(export_copy):
    conf_file = export_copy / "mtst_export.json"
    conf_file.write_text(json.dumps({**json.loads(conf_file.read_text()), "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99 is newer than this mtst reads .*Upgrade mtst"):
        MultiTaskModel.load(export_copy)


def test_missing_onnxruntime_says_how_to_install_it(fp32_export, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ImportError, match=r"needs onnxruntime, which is not installed: pip install 'mtst\[onnx\]'"):
        MultiTaskModel.load(fp32_export.folder)
    with pytest.raises(ImportError, match=r"mtst export needs onnxruntime.*pip install 'mtst\[onnx\]'"):
        export_model(tiny_model_dir, tmp_path / "x")


def test_cli_export_then_every_command_runs_the_export(model_dir, fp32_export, torch_model, tmp_path):
    args = ["export", str(model_dir), "-o", str(tmp_path / "cli"), "--quantize", "int8", "--keep-heads-fp32", "--force"]
    with dynamo_fails():
        res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Self-check on" in res.output and "agreement entities" in res.output and "multitask export" in res.output
    res = runner.invoke(app, ["export", str(model_dir), "--output", str(tmp_path / "bad"), "--quantize", "int2"])
    assert res.exit_code == 2 and "quantize must be one of none, int8" in res.output
    export = str(fp32_export.folder)
    res = runner.invoke(app, ["predict", "paris and london", "the cat", "--model", export, "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    expected = torch_model.predict(["paris and london", "the cat"], precision="fp32")
    assert [r["topic"]["label"] for r in rows] == [e["topic"]["label"] for e in expected]
    assert [r["entities"] for r in rows] == json.loads(json.dumps([e["entities"] for e in expected]))
    out = tmp_path / "emb.npy"
    res = runner.invoke(app, ["encode", "paris", "the cat", "--model", export, "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert np.abs(np.load(out) - torch_model.encoder.encode(["paris", "the cat"], precision="fp32")).max() <= 1e-4
    res = runner.invoke(app, ["similarity", "paris", "london", "--model", export])
    assert res.exit_code == 0 and "Cosine similarity" in res.output
    res = runner.invoke(app, ["demo", "--model", export])
    assert res.exit_code == 0 and "ONNX (fp32, onnxruntime" in " ".join(res.output.split())  # rich wraps lines
    res = runner.invoke(app, ["encode", "paris", "--model", export, "--precision", "bf16"])
    assert res.exit_code == 1 and "precision='bf16' applies to torch models" in " ".join(res.output.split())


def test_serve_backend_runs_an_export(fp32_export, torch_model):
    from mtst.serve.backend import load_backend

    backend = load_backend(fp32_export.folder)
    info = backend.info()
    assert info["backend"] == "onnx" and [t["name"] for t in info["tasks"]] == ["topic", "sentiment", "entities"]
    expected = torch_model.predict(["paris"], precision="fp32")[0]["topic"]["label"]
    assert backend.predict(["paris"])[0]["topic"]["label"] == expected
    assert backend.embed(["paris"], normalize=True).shape == (1, torch_model.encoder.dim)


@pytest.mark.real_model
def test_default_encoder_int8_export_keeps_its_cosine(default_encoder, tmp_path):
    report = export_model("default", tmp_path / "minilm", quantize="int8")
    assert report.check.passed and report.check.mean_cosine >= 0.99
    enc = SentenceEncoder.from_pretrained(tmp_path / "minilm")
    texts = ["A man is playing a guitar.", "The stock market fell sharply on Monday.", "Where is the Eiffel Tower?"]
    a, b = enc.encode(texts), default_encoder.encode(texts, precision="fp32")
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.98
    assert report.graph_mb < 40  # int8 weights and embedding tables (fp32: 91 MB)
