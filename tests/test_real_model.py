"""Tests on the embedded all-MiniLM-L6-v2 weights: parity with sentence-transformers and the README demo."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.real_model
ROOT = Path(__file__).resolve().parents[1]

TEXTS = [
    "A man is playing a guitar.",
    "",
    "Paris is the capital of France, said Émile — twice!",
    "short",
    "The quick brown fox jumps over the lazy dog. " * 60,  # past the 256-token limit: truncated
    "日本語のテキストも大丈夫です。",
    "   leading and trailing spaces   ",
]


def test_default_model_settings(default_encoder):
    assert default_encoder.dim == 384
    assert default_encoder.get_config() == {"pooling": "mean", "normalize": True, "max_length": 256}


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_parity_with_sentence_transformers(default_encoder, batch_size):
    st_mod = pytest.importorskip("sentence_transformers")
    from mtst.encoder import default_model_path

    st = st_mod.SentenceTransformer(str(default_model_path()), device="cpu")
    ours = default_encoder.encode(TEXTS, batch_size=batch_size)
    theirs = st.encode(TEXTS, batch_size=batch_size)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    assert np.abs(ours - theirs).max() <= 1e-5


def test_saved_default_loads_in_sentence_transformers(default_encoder, tmp_path):
    st_mod = pytest.importorskip("sentence_transformers")
    out = default_encoder.save(tmp_path / "minilm")
    st = st_mod.SentenceTransformer(str(out), device="cpu")
    assert np.abs(st.encode(TEXTS) - default_encoder.encode(TEXTS)).max() <= 1e-5


def test_similar_sentences_rank_higher(default_encoder):
    sim = default_encoder.similarity(
        ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market crashed."]
    )
    assert sim[0, 1] > sim[0, 2] + 0.2


def _readme_command(name: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^(make \w+)\s*$", readme, flags=re.M)
    matches = [c for c in commands if c.endswith(name)]
    assert matches, f"README.md shows no 'make {name}' command"
    return matches[0]


def test_readme_demo_command_runs():
    """Run the README's demo command as a user would (reusing this environment's virtualenv)."""
    cmd = _readme_command("demo")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VENV": sys.prefix}
    res = subprocess.run(cmd.split(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "shape (8, 384)" in res.stdout
    assert "most similar first" in res.stdout
    assert "Predictions" in res.stdout and "Dev metrics of these heads" in res.stdout


def test_heads_only_save_for_named_backbone(default_encoder, tmp_path):
    import json

    from mtst.config import TaskConfig
    from mtst.model import MultiTaskModel
    from mtst.tasks import build_task

    tasks = [build_task(TaskConfig(name="t", type="classification"), ["a", "b"])]
    model = MultiTaskModel(default_encoder, tasks)
    out = model.save(tmp_path / "heads", include_encoder=False, extra={"dev_metrics": {"t": {"accuracy": 0.5}}})
    assert not (out / "encoder").exists()
    assert sum(f.stat().st_size for f in out.iterdir()) < 100_000
    loaded = MultiTaskModel.load(out)
    assert loaded.predict(["hello there"]) == model.predict(["hello there"])
    assert loaded.extra["dev_metrics"]["t"]["accuracy"] == 0.5
    conf = json.loads((out / "mtst_config.json").read_text())
    conf["encoder"]["fingerprint"] = "0" * 64
    (out / "mtst_config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match="trained on a different 'default' backbone"):
        MultiTaskModel.load(out)


def test_shipped_demo_heads_load_and_predict():
    from mtst.model import MultiTaskModel, demo_heads_path

    if not (demo_heads_path() / "mtst_config.json").exists():
        pytest.fail("the demo heads are missing from src/mtst/assets/demo_heads (run experiments/train_demo_heads.py)")
    model = MultiTaskModel.load(demo_heads_path())
    preds = model.predict(["Marie Curie was born in Warsaw.", "Where is the Eiffel Tower located?"])
    assert set(preds[0]) == {"topic", "sentiment", "entities"}
    ents = {(e["text"], e["label"]) for e in preds[0]["entities"]}
    assert ("Marie Curie", "PER") in ents and ("Warsaw", "LOC") in ents
    assert preds[1]["topic"]["label"] == "LOC"
    metrics = model.extra["dev_metrics"]
    assert metrics["sentiment"]["accuracy"] > 0.75 and metrics["entities"]["entity_f1"] > 0.5
