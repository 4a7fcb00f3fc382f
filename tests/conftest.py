"""Shared fixtures: a tiny randomly initialised BERT (built once per run, no download) and paths."""

from __future__ import annotations

import copy
import os
import string
from pathlib import Path

import pytest
from needs import missing

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# precision "auto" (the default) is bf16 on a CPU with AVX-512 BF16 / AMX and fp32 elsewhere: the tests compare
# against fp32 references, so they run fp32 on every machine (subprocesses too) unless a test asks for auto itself
os.environ.setdefault("MTST_PRECISION", "fp32")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"

_WORDS = ["the", "cat", "dog", "sat", "on", "mat", "paris", "london", "play", "music", "is", "a", "in", "and"]


def tiny_vocab() -> list[str]:
    """A WordPiece vocabulary that covers any lower-case ASCII text (letters also as ## pieces)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = ["##" + c for c in string.ascii_lowercase + string.digits]
    return list(dict.fromkeys(specials + chars + pieces + _WORDS + ["##ing", "##s"]))


def build_tiny_model(folder: Path, *, hidden: int = 32, layers: int = 2, max_positions: int = 64) -> Path:
    """Write a random-weight BERT and its tokenizer to ``folder`` as a plain Hugging Face model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(tiny_vocab())}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=max_positions)
    if tokenizer.convert_tokens_to_ids("cat") != vocab["cat"]:  # guard: the vocabulary must really be used
        raise RuntimeError("tiny tokenizer did not take its vocabulary")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Folder of the tiny random BERT (a plain Hugging Face model folder)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def _tiny_encoder_once(tiny_model_dir):
    from mtst.encoder import SentenceEncoder

    return SentenceEncoder.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture
def tiny_encoder(_tiny_encoder_once):
    """A fresh deep copy of the tiny encoder (mean pooling, no normalization)."""
    return copy.deepcopy(_tiny_encoder_once)


@pytest.fixture(scope="session")
def default_encoder():
    """The embedded all-MiniLM-L6-v2 (real weights), loaded once."""
    from mtst.encoder import SentenceEncoder

    return SentenceEncoder.from_pretrained("default", device="cpu")


@pytest.fixture
def datasets_dir() -> Path:
    """../shared/datasets: the test is skipped without it (failed under MTST_STRICT_TESTS=1, as in CI)."""
    if not DATASETS.exists():
        missing(f"shared datasets not found at {DATASETS}")
    return DATASETS
