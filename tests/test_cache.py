import hashlib
import logging
import multiprocessing as mp

import numpy as np
import pytest
import torch

from mtst.cache import EmbeddingCache
from mtst.encoder import SentenceEncoder

TEXTS = ["the cat sat", "a dog", "paris and london", "", "music is on the mat"]


class CountingEncoder:
    """Wraps encode to count how many texts really go through the backbone."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.seen = 0
        original = encoder.encode

        def encode(texts, **kw):
            self.seen += len(texts)
            return original(texts, **kw)

        encoder.encode = encode


def test_hits_and_misses(tiny_encoder, tmp_path):
    counter = CountingEncoder(tiny_encoder)
    cache = EmbeddingCache(tmp_path)
    first = cache.get(tiny_encoder, TEXTS[:3])
    assert counter.seen == 3
    again = cache.get(tiny_encoder, TEXTS)  # 3 hits, 2 misses
    assert counter.seen == 5
    np.testing.assert_array_equal(again[:3], first)
    np.testing.assert_allclose(again, tiny_encoder.encode(TEXTS), atol=1e-6)
    cache.get(tiny_encoder, list(reversed(TEXTS)))
    assert counter.seen == 5 + len(TEXTS)  # the check call above encoded directly; the cache encoded nothing
    assert cache.info()[0]["rows"] == 5 and cache.info()[0]["shards"] == 2


def test_key_separation(tiny_model_dir, tmp_path):
    cache = EmbeddingCache(tmp_path)
    variants = [
        SentenceEncoder.from_pretrained(tiny_model_dir),
        SentenceEncoder.from_pretrained(tiny_model_dir, pooling="cls"),
        SentenceEncoder.from_pretrained(tiny_model_dir, normalize=True),
        SentenceEncoder.from_pretrained(tiny_model_dir, max_length=16),
    ]
    changed = SentenceEncoder.from_pretrained(tiny_model_dir)
    with __import__("torch").no_grad():
        next(changed.backbone.parameters()).add_(0.01)  # a fine-tuned backbone is another model
    variants.append(changed)
    results = [cache.get(enc, TEXTS) for enc in variants]
    assert len(cache.info()) == len(variants)
    for enc, res in zip(variants, results, strict=True):
        np.testing.assert_allclose(res, enc.encode(TEXTS), atol=1e-6)
    assert not np.allclose(results[0], results[1])


def _perturb_in_place(enc):
    with torch.no_grad():
        p = enc.backbone.encoder.layer[0].attention.self.query.weight
        p.add_(torch.randn_like(p))


def _sgd_step(enc):
    opt = torch.optim.SGD(enc.backbone.parameters(), lr=1.0)
    enc(enc.tokenize(TEXTS[:3]))["sentence_embedding"].pow(2).sum().backward()
    opt.step()


def _load_other_weights(enc):
    other = {k: v + torch.randn_like(v) if v.is_floating_point() else v for k, v in enc.backbone.state_dict().items()}
    enc.backbone.load_state_dict(other)


def _replace_parameter(enc):
    attn = enc.backbone.encoder.layer[0].attention.self
    attn.query.weight = torch.nn.Parameter(torch.randn_like(attn.query.weight))


@pytest.mark.parametrize("change", [_perturb_in_place, _sgd_step, _load_other_weights, _replace_parameter])
def test_key_follows_weights_changed_in_place(tiny_encoder, tmp_path, change):
    """The same encoder object with new weights is another entry: its old vectors are not served."""
    cache = EmbeddingCache(tmp_path)
    calls = {"n": 0}
    fingerprint = tiny_encoder.fingerprint

    def counting():
        calls["n"] += 1
        return fingerprint()

    tiny_encoder.fingerprint = counting
    before = cache.get(tiny_encoder, TEXTS)
    cache.get(tiny_encoder, TEXTS)
    assert calls["n"] == 1  # unchanged weights: the fingerprint is not recomputed
    change(tiny_encoder)
    after = cache.get(tiny_encoder, TEXTS)
    np.testing.assert_allclose(after, tiny_encoder.encode(TEXTS), atol=1e-6)
    assert not np.allclose(after, before, atol=1e-5)
    assert len(cache.info()) == 2 and calls["n"] == 2


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "delete"])
def test_damaged_shard_is_detected_and_rebuilt(tiny_encoder, tmp_path, caplog, damage):
    cache = EmbeddingCache(tmp_path)
    good = cache.get(tiny_encoder, TEXTS)
    entry = tmp_path / cache.info()[0]["entry"]
    rows = next(entry.glob("*.rows.npy"))
    data = rows.read_bytes()
    if damage == "truncate":
        rows.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt":
        rows.write_bytes(data[:-8] + b"\x00" * 8)
    else:
        rows.unlink()
    counter = CountingEncoder(tiny_encoder)
    with caplog.at_level(logging.WARNING, logger="mtst.cache"):
        again = cache.get(tiny_encoder, TEXTS)
    assert {"truncate": "truncated", "corrupt": "corrupted", "delete": "missing"}[damage] in caplog.text
    assert counter.seen == len(TEXTS)
    np.testing.assert_allclose(again, good, atol=1e-6)


def test_crash_mid_write_leaves_cache_usable(tiny_encoder, tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    cache.get(tiny_encoder, TEXTS[:2])
    import mtst.cache as cache_mod

    real_save = np.save
    calls = {"n": 0}

    def crashing_save(f, arr, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real_save(f, arr, *a, **k)

    monkeypatch.setattr(cache_mod.np, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        cache.get(tiny_encoder, TEXTS)
    monkeypatch.setattr(cache_mod.np, "save", real_save)
    assert cache.info()[0]["rows"] == 2  # the interrupted shard never entered the index
    np.testing.assert_allclose(cache.get(tiny_encoder, TEXTS), tiny_encoder.encode(TEXTS), atol=1e-6)


def test_token_states_and_float16(tiny_encoder, tmp_path):
    cache = EmbeddingCache(tmp_path, dtype="float16")
    words = [["the", "cat", "sat"], ["paris"], ["unbelievably", "long", "words"]]
    states = cache.get(tiny_encoder, words, kind="token")
    ids = tiny_encoder.tokenizer(words, is_split_into_words=True)["input_ids"]
    assert [s.shape for s in states] == [(len(i), tiny_encoder.dim) for i in ids]
    assert states[0].dtype == np.float32  # stored as float16, returned as float32
    emb = cache.get(tiny_encoder, TEXTS)
    np.testing.assert_allclose(emb, tiny_encoder.encode(TEXTS), atol=2e-3)
    assert {e["kind"] for e in cache.info()} == {"token", "sentence"}
    assert cache.clear() == 2 and cache.info() == []


def _writer(args):
    """Wait for the other writer, then add texts a few at a time (each call a shard and an index update)."""
    import time
    from pathlib import Path

    model_dir, cache_dir, texts, me, other = args
    enc = SentenceEncoder.from_pretrained(model_dir)
    cache = EmbeddingCache(cache_dir)
    Path(cache_dir, f"ready-{me}").touch()
    deadline = time.monotonic() + 120
    while not Path(cache_dir, f"ready-{other}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    for start in range(0, len(texts), 3):
        cache.get(enc, texts[start : start + 3])
    return len(texts)


def test_concurrent_writers_leave_the_union(tiny_model_dir, tmp_path):
    """Two processes add overlapping texts at once: every shard of both stays indexed and valid (no lost update)."""
    from mtst.cache import text_key
    from mtst.diskio import read_json

    texts = [f"text number {i} on the mat" for i in range(48)]
    first, second = texts[:32], texts[16:]  # 16 texts in common
    jobs = [(str(tiny_model_dir), str(tmp_path), first, 0, 1), (str(tiny_model_dir), str(tmp_path), second, 1, 0)]
    with mp.get_context("spawn").Pool(2) as pool:
        assert pool.map(_writer, jobs) == [32, 32]
    enc = SentenceEncoder.from_pretrained(tiny_model_dir)
    cache = EmbeddingCache(tmp_path)
    folder = cache.entry(enc)
    index = read_json(folder / "index.json")
    keys = set()
    for shard in index["shards"]:
        for meta in shard["files"].values():  # every indexed shard is whole: its files are the ones indexed
            data = (folder / meta["name"]).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (meta["size"], meta["sha256"]), meta["name"]
        keys |= {k.tobytes() for k in np.load(folder / shard["files"]["keys"]["name"])}
    assert keys == {text_key(t) for t in texts}  # the index is the union of both writers' texts
    assert len({s["id"] for s in index["shards"]}) == len(index["shards"])
    counter = CountingEncoder(enc)
    got = cache.get(enc, texts)
    assert counter.seen == 0  # all read from the cache
    np.testing.assert_allclose(got, SentenceEncoder.from_pretrained(tiny_model_dir).encode(texts), atol=1e-6)


def test_bad_options(tmp_path, tiny_encoder):
    with pytest.raises(ValueError, match="cache dtype must be one of float32, float16"):
        EmbeddingCache(tmp_path, dtype="int8")
    with pytest.raises(ValueError, match="cache kind must be one of sentence, token"):
        EmbeddingCache(tmp_path).get(tiny_encoder, TEXTS, kind="word")
