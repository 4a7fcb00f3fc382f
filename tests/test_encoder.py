import logging

import numpy as np
import pytest
import torch
from needs import need_module

from mtst.encoder import SentenceEncoder, read_sentence_transformers_config
from mtst.similarity import cosine_similarity, ranked_pairs

TEXTS = ["the cat sat on the mat", "a dog", "", "paris and london are playing music in the mat", "x"]


def test_shape_dtype_and_order(tiny_encoder):
    emb = tiny_encoder.encode(TEXTS, batch_size=2)
    assert emb.shape == (len(TEXTS), tiny_encoder.dim)
    assert emb.dtype == np.float32
    for i, t in enumerate(TEXTS):  # input order is restored after length sorting
        np.testing.assert_allclose(emb[i], tiny_encoder.encode([t])[0], atol=1e-5)


def test_padding_invariance(tiny_encoder):
    """A text's embedding does not depend on its batch-mates (and hence on padding)."""
    short = "a dog"
    alone = tiny_encoder.encode([short])[0]
    with_long = tiny_encoder.encode([short, "the cat sat on the mat " * 5], batch_size=2)[0]
    np.testing.assert_allclose(alone, with_long, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_padding_invariance_every_pooling(tiny_model_dir, pooling):
    enc = SentenceEncoder.from_pretrained(tiny_model_dir, pooling=pooling, device="cpu")
    alone = enc.encode(["a cat"])[0]
    batched = enc.encode(["a cat", "the dog sat on the mat and the cat sat on the dog"], batch_size=8)[0]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_poolings_differ(tiny_model_dir):
    outs = {
        p: SentenceEncoder.from_pretrained(tiny_model_dir, pooling=p).encode(["the cat sat"])
        for p in ("mean", "cls", "max")
    }
    assert not np.allclose(outs["mean"], outs["cls"])
    assert not np.allclose(outs["mean"], outs["max"])


def test_empty_list_and_empty_string(tiny_encoder):
    assert tiny_encoder.encode([]).shape == (0, tiny_encoder.dim)
    emb = tiny_encoder.encode([""])
    assert emb.shape == (1, tiny_encoder.dim) and np.isfinite(emb).all()


def test_single_string_gives_vector(tiny_encoder):
    assert tiny_encoder.encode("a dog").shape == (tiny_encoder.dim,)


def test_non_string_names_index(tiny_encoder):
    with pytest.raises(TypeError, match=r"texts\[2\] is int"):
        tiny_encoder.encode(["a", "b", 3])


def test_convert_to_torch_and_bad_value(tiny_encoder):
    out = tiny_encoder.encode(["a dog"], convert_to="torch")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="convert_to must be one of numpy, torch"):
        tiny_encoder.encode(["a"], convert_to="list")


def test_bad_batch_size(tiny_encoder):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tiny_encoder.encode(["a"], batch_size=0)


def test_normalize(tiny_encoder):
    emb = tiny_encoder.encode(TEXTS, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    raw = tiny_encoder.encode(TEXTS, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_truncation_is_logged_and_equals_cut_text(tiny_model_dir, caplog):
    enc = SentenceEncoder.from_pretrained(tiny_model_dir, max_length=8)
    long_text = "the cat sat on the mat and the dog sat on the cat"
    cut = "the cat sat on the mat"  # 6 word tokens + [CLS] + [SEP] = 8
    with caplog.at_level(logging.WARNING, logger="mtst.encoder"):
        a = enc.encode([long_text])
    assert "reached the limit of 8 tokens" in caplog.text
    np.testing.assert_allclose(a, enc.encode([cut]), atol=1e-6)


def test_max_length_beyond_positions(tiny_model_dir):
    with pytest.raises(ValueError, match="exceeds the backbone's limit of 64 positions"):
        SentenceEncoder.from_pretrained(tiny_model_dir, max_length=100)


def test_unknown_pooling(tiny_model_dir):
    with pytest.raises(ValueError, match="Valid pooling modes are: mean, cls, max"):
        SentenceEncoder.from_pretrained(tiny_model_dir, pooling="weighted")


def test_missing_folder_names_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=f"Model folder {missing} does not exist"):
        SentenceEncoder.from_pretrained(missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SentenceEncoder.from_pretrained("./no/such/model/")


def test_wrong_folder_says_what_was_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match=r"expected config.json .* or modules.json"):
        SentenceEncoder.from_pretrained(tmp_path)
    with pytest.raises(NotADirectoryError, match="is a file"):
        SentenceEncoder.from_pretrained(tmp_path / "notes.txt")


def test_folder_without_weights(tiny_model_dir, tmp_path):
    import shutil

    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(OSError, match=f"Could not load the backbone from {tmp_path}"):
        SentenceEncoder.from_pretrained(tmp_path)


def test_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="could not be fetched from the Hugging Face hub"):
        SentenceEncoder.from_pretrained("someone/model-that-is-not-cached-here")


def test_save_load_roundtrip(tiny_model_dir, tmp_path):
    enc = SentenceEncoder.from_pretrained(tiny_model_dir, pooling="cls", normalize=True, max_length=32)
    out = enc.save(tmp_path / "saved")
    again = SentenceEncoder.from_pretrained(out)
    assert again.get_config() == {"pooling": "cls", "normalize": True, "max_length": 32}
    np.testing.assert_array_equal(enc.encode(TEXTS), again.encode(TEXTS))
    st = read_sentence_transformers_config(out)
    assert st["pooling"] == "cls" and st["normalize"] is True and st["max_length"] == 32


def test_saved_folder_loads_in_sentence_transformers(tiny_model_dir, tmp_path):
    st_mod = need_module("sentence_transformers")
    for pooling, normalize in [("mean", False), ("max", True)]:
        enc = SentenceEncoder.from_pretrained(tiny_model_dir, pooling=pooling, normalize=normalize)
        out = enc.save(tmp_path / f"{pooling}")
        st = st_mod.SentenceTransformer(str(out), device="cpu")
        np.testing.assert_allclose(st.encode(TEXTS), enc.encode(TEXTS), atol=1e-5)


def test_save_refuses_non_empty_folder(tiny_encoder, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "important.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        tiny_encoder.save(target)
    assert (target / "important.txt").read_text() == "keep me"
    tiny_encoder.save(target, overwrite=True)
    assert (target / "modules.json").exists() and not (target / "important.txt").exists()


def test_new_style_pooling_config_is_read(tiny_encoder, tmp_path):
    import json

    out = tiny_encoder.save(tmp_path / "m")
    (out / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 32, "pooling_mode": "max"}))
    assert SentenceEncoder.from_pretrained(out).pooling == "max"
    (out / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "lasttoken"}))
    with pytest.raises(ValueError, match="Unknown pooling mode 'lasttoken'"):
        SentenceEncoder.from_pretrained(out)


def test_similarity_matrix(tiny_encoder):
    sim = tiny_encoder.similarity(["a dog", "a cat", "the mat"], ["a dog"])
    assert sim.shape == (3, 1)
    assert sim[0, 0] == pytest.approx(1.0, abs=1e-5)
    full = tiny_encoder.similarity(["a dog", "a cat", "the mat"])
    np.testing.assert_allclose(full, full.T, atol=1e-6)


def test_cosine_and_ranked_pairs():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=np.float32)
    sim = cosine_similarity(a, a)
    assert sim[0, 1] == pytest.approx(0.0) and sim[0, 2] == pytest.approx(2**-0.5)
    pairs = ranked_pairs(sim)
    assert [(i, j) for i, j, _ in pairs][0] in {(0, 2), (1, 2)} and len(pairs) == 3
    assert pairs[-1][:2] == (0, 1)
    with pytest.raises(ValueError, match="Embedding sizes differ"):
        cosine_similarity(a, np.ones((1, 3)))
