"""The shipped default model (src/mtst/assets/default_model, `make default-model`): what `mtst demo`, `mtst predict`
and `mtst serve` run with no --model. It must get the acceptance sentences right, carry no machine path, fit in
git, and score on real data what its shipped.json says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mtst.cli import app
from mtst.demo_cli import SHIPPED_FILE
from mtst.model import MultiTaskModel, default_multitask_path
from tests.needs import need_module

need_module("onnxruntime")
runner = CliRunner()

MERKEL = "Angela Merkel met Emmanuel Macron in Paris on Monday."
POSITIVE = "A wonderful, moving film: the acting is superb and I loved every minute of it."
NEGATIVE = "A dull, tedious mess of a movie; the plot makes no sense and I hated the ending."


@pytest.fixture(scope="module")
def shipped():
    folder = default_multitask_path()
    if not (folder / "mtst_export.json").is_file():
        pytest.fail(f"the shipped model is missing from {folder} (run `make default-model`)")
    return MultiTaskModel.load("default")


def test_the_default_model_is_the_shipped_int8_export(shipped):
    from mtst.runtime.model import OnnxMultiTaskModel

    assert isinstance(shipped, OnnxMultiTaskModel) and set(shipped.tasks) == {"topic", "sentiment", "entities"}
    folder = default_multitask_path()
    conf = json.loads((folder / "mtst_export.json").read_text())
    assert conf["quantize"] == "int8" and conf["check"]["passed"] is True
    size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    assert size_mb <= 26.0, size_mb  # what git carries (issue: ~25 MB)
    for path in folder.glob("*.json"):
        text = path.read_text()
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, path.name  # no machine paths


@pytest.mark.real_model
def test_the_shipped_model_gets_the_acceptance_sentences_right(shipped):
    texts = [MERKEL, POSITIVE, NEGATIVE, "Where is the Eiffel Tower?", "Who wrote Hamlet?"]
    merkel, positive, negative, eiffel, hamlet = shipped.predict(texts)
    assert [(e["text"], e["label"]) for e in merkel["entities"]] == [
        ("Angela Merkel", "PER"),
        ("Emmanuel Macron", "PER"),
        ("Paris", "LOC"),
    ]
    assert all(MERKEL[e["start"] : e["end"]] == e["text"] for e in merkel["entities"])
    assert positive["sentiment"]["label"] == "positive" and negative["sentiment"]["label"] == "negative"
    assert eiffel["topic"]["label"] == "LOC" and hamlet["topic"]["label"] == "HUM"
    assert all(0.5 < p["topic"]["score"] <= 1.0 for p in (eiffel, hamlet))


@pytest.mark.real_model
def test_predict_and_demo_use_the_shipped_model_with_no_model_option():
    res = runner.invoke(app, ["predict", "Who wrote Hamlet?", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0])["topic"]["label"] == "HUM"
    res = runner.invoke(app, ["demo"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    out = res.stdout
    for needed in ("what each was trained on", "TREC questions", "SST-2", "WikiANN", "Held-out figures", "Predictions"):
        assert needed in out, needed
    figures = json.loads((default_multitask_path() / SHIPPED_FILE).read_text())["metrics"]
    assert f"{100 * figures['dev']['topic']['accuracy']:.1f}" in out  # the shipped model's figure, not the old heads'


@pytest.mark.real_model
@pytest.mark.real_data
def test_shipped_figures_recomputed_on_real_data(shipped, datasets_dir):
    """shipped.json's dev figures, recomputed now on 300 seeded examples of each held-out set."""
    from realdata import held_out_samples

    from mtst.evaluation import evaluate

    data = held_out_samples(shipped, datasets_dir, 300)
    measured = evaluate(shipped, data)
    figures = json.loads((default_multitask_path() / SHIPPED_FILE).read_text())["metrics"]["dev"]
    for name, metric in (("topic", "accuracy"), ("sentiment", "accuracy"), ("entities", "entity_f1")):
        # 300 of the same dev examples: within 0.06 of the full-dev figure (about 3 standard errors)
        assert measured[name][metric] == pytest.approx(figures[name][metric], abs=0.06), (name, measured[name])
    assert measured["topic"]["accuracy"] > 0.88 and measured["sentiment"]["accuracy"] > 0.84
    assert measured["entities"]["entity_f1"] > 0.72  # the frozen-backbone heads: 0.83, 0.80, 0.71 on full dev


@pytest.mark.real_model
def test_serve_default_embeds_with_minilm_and_predicts_with_the_shipped_model(default_encoder):
    from mtst.serve.backend import load_backend

    backend = load_backend("default")
    assert backend.kind == "torch" and backend.model.encoder.backend == "onnx"  # see Backend's docstring
    info = backend.info()
    assert info["predict"] == {"backend": "onnx", "max_length": 128, "dim": 384} and info["max_length"] == 256
    assert (backend.limit("embed"), backend.limit("predict")) == (256, 128)
    texts = ["A man is playing a guitar.", "Who wrote Hamlet?"]
    np.testing.assert_allclose(backend.embed(texts, normalize=True), default_encoder.encode(texts), atol=1e-5)
    assert backend.predict(["Who wrote Hamlet?"], ["topic"])[0]["topic"]["label"] == "HUM"
