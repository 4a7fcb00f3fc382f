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
    assert "shape (6, 384)" in res.stdout
    assert "most similar first" in res.stdout
