"""Tests on the embedded all-MiniLM-L6-v2 weights: parity with sentence-transformers and the README demo."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from needs import need_module

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
    st_mod = need_module("sentence_transformers")
    from mtst.encoder import default_model_path

    st = st_mod.SentenceTransformer(str(default_model_path()), device="cpu")
    ours = default_encoder.encode(TEXTS, batch_size=batch_size)
    theirs = st.encode(TEXTS, batch_size=batch_size)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    assert np.abs(ours - theirs).max() <= 1e-5


PARITY_WORDS = (
    "the a man woman plays guitar Paris capital of France Émile said twice quick brown fox jumps over lazy dog "
    "日本語 テキスト café naïve Zoë São Paulo — !! ? , . ; 123 4.5 e-mail co-operate don't U.S.A. #tag @user"
)


def parity_texts(n: int = 256) -> list[str]:
    """``n`` seeded texts: the cases above, then mixed lengths, scripts, accents, digits and punctuation."""
    rng = np.random.default_rng(0)
    words = PARITY_WORDS.split()
    texts = list(TEXTS)
    while len(texts) < n:
        texts.append(" ".join(rng.choice(words, size=int(rng.integers(1, 30)))))
    return texts


@pytest.fixture(scope="module")
def st_transformer():
    """The default model's transformer as a sentence-transformers module (shared by the pooling variants)."""
    need_module("sentence_transformers")
    from sentence_transformers.sentence_transformer.modules import Transformer

    from mtst.encoder import default_model_path

    return Transformer(str(default_model_path()), max_seq_length=256)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_parity_with_sentence_transformers_per_pooling(default_encoder, st_transformer, pooling):
    """Within 1e-5 of sentence-transformers (Transformer + Pooling + Normalize) for each pooling, 256 texts."""
    st_mod = need_module("sentence_transformers")
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    from mtst.encoder import SentenceEncoder

    ours_encoder = SentenceEncoder.from_pretrained("default", pooling=pooling, device="cpu")
    assert (ours_encoder.pooling, ours_encoder.normalize, ours_encoder.max_length) == (pooling, True, 256)
    st = st_mod.SentenceTransformer(
        modules=[st_transformer, Pooling(default_encoder.dim, pooling_mode=pooling), Normalize()], device="cpu"
    )
    texts = parity_texts()
    ours = ours_encoder.encode(texts, batch_size=32)
    theirs = st.encode(texts, batch_size=32)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert np.abs(ours - theirs).max() <= 1e-5


def test_saved_default_loads_in_sentence_transformers(default_encoder, tmp_path):
    st_mod = need_module("sentence_transformers")
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


@pytest.mark.timeout(900)
def test_readme_demo_command_runs():
    """Run the README's demo command as a user would (reusing this environment's virtualenv, never reinstalling)."""
    cmd = _readme_command("demo").split()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VENV": sys.prefix}
    # -o: take the virtualenv and its install stamp as up to date, even if pyproject.toml is newer than the stamp
    cmd = [cmd[0], "-o", f"{sys.prefix}/.installed", "-o", f"{sys.prefix}/bin/python", *cmd[1:]]
    plan = subprocess.run([cmd[0], "-n", *cmd[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0 and "pip" not in plan.stdout, plan.stdout + plan.stderr  # nothing would install
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pip" not in res.stdout.split("mtst demo", 1)[0]  # make ran no install step before the demo
    assert "shape (9, 384)" in res.stdout
    assert "most similar first" in res.stdout
    assert "Predictions" in res.stdout and "Held-out figures of this model" in res.stdout


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


@pytest.mark.real_data
def test_demo_head_quality_recomputed_on_real_data(datasets_dir):
    """The dev metrics shipped with the demo heads, recomputed now on 200 seeded dev examples per task."""
    from realdata import held_out_samples

    from mtst.evaluation import evaluate
    from mtst.model import MultiTaskModel, demo_heads_path

    model = MultiTaskModel.load(demo_heads_path())
    data = held_out_samples(model, datasets_dir, 200)
    measured = evaluate(model, data)
    shipped = model.extra["dev_metrics"]
    for name, metric in (("topic", "accuracy"), ("sentiment", "accuracy"), ("entities", "entity_f1")):
        # 200 of the same dev examples: within 0.08 of the full-dev number (about 3 standard errors)
        assert measured[name][metric] == pytest.approx(shipped[name][metric], abs=0.08), (name, measured[name])
    assert measured["sentiment"]["accuracy"] > 0.72 and measured["entities"]["entity_f1"] > 0.6
    assert measured["topic"]["accuracy"] > 0.75
