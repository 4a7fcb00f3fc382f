import json
import math

import pytest
import torch

from mtst.config import TaskConfig
from mtst.encoder import SentenceEncoder
from mtst.model import MultiTaskModel
from mtst.tasks import build_task

NER_TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _tasks(crf: bool = False):
    return [
        build_task(TaskConfig(name="topic", type="classification", head="mlp", hidden_size=16), ["a", "b", "c"]),
        build_task(TaskConfig(name="sentiment", type="regression")),
        build_task(TaskConfig(name="entities", type="token_classification", crf=crf), NER_TAGS),
        build_task(TaskConfig(name="sim", type="similarity")),
    ]


@pytest.fixture
def model(tiny_encoder):
    torch.manual_seed(0)
    return MultiTaskModel(tiny_encoder, _tasks()).eval()


def _count_backbone_calls(model):
    calls = []
    handle = model.encoder.backbone.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_forward_shapes_and_one_backbone_pass(model):
    features = model.encoder.tokenize(["the cat sat", "a dog in paris"])
    calls, handle = _count_backbone_calls(model)
    out = model(features)
    handle.remove()
    assert len(calls) == 1
    seq = features["input_ids"].shape[1]
    assert out["topic"].shape == (2, 3)
    assert out["sentiment"].shape == (2,)
    assert out["entities"].shape == (2, seq, 5)
    assert out["sim"].shape == (2, model.encoder.dim)


def test_forward_subset_and_unknown_task(model):
    out = model(model.encoder.tokenize(["x"]), tasks=["topic"])
    assert list(out) == ["topic"]
    with pytest.raises(
        ValueError, match="Unknown task 'nope'; this model's tasks are: topic, sentiment, entities, sim"
    ):
        model(model.encoder.tokenize(["x"]), tasks=["nope"])


def assert_same_predictions(got, expected, atol=1e-5):
    """Same labels, entity spans and tags; scores equal up to float noise from another batch's padding."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert set(g) == set(e)
        assert g["topic"]["label"] == e["topic"]["label"]
        assert g["topic"]["score"] == pytest.approx(e["topic"]["score"], abs=atol)
        assert g["sentiment"]["score"] == pytest.approx(e["sentiment"]["score"], abs=atol)
        strip = lambda ents: [{k: v for k, v in x.items() if k != "score"} for x in ents]  # noqa: E731
        assert strip(g["entities"]) == strip(e["entities"])
        assert [x["score"] for x in g["entities"]] == pytest.approx([x["score"] for x in e["entities"]], abs=1e-4)


def test_predict_structure_and_one_pass_per_batch(model):
    texts = ["the cat sat on the mat", "paris", "", "a dog in london and paris", "music"]
    calls, handle = _count_backbone_calls(model)
    preds = model.predict(texts, batch_size=2)
    handle.remove()
    assert len(calls) == 3  # 5 texts in batches of 2: one backbone pass per batch, every task from it
    assert len(preds) == 5
    for p in preds:
        assert set(p) == {"topic", "sentiment", "entities"}
        assert p["topic"]["label"] in {"a", "b", "c"} and 0 <= p["topic"]["score"] <= 1
        assert 0 <= p["sentiment"]["score"] <= 1
        assert isinstance(p["entities"], list)
    assert preds[2]["entities"] == []
    # batching (sorted by length, padded, order restored) changes nothing: each text predicted alone agrees
    assert_same_predictions(preds, [model.predict([t])[0] for t in texts])


def _force_tags(model, tag_for_word):
    """Make the NER head predict tags from the token id, so entity decoding can be checked exactly.

    ``tag_for_word`` maps a token to its tag, or to ``(tag, logit)`` for a chosen confidence (default logit 10).
    """
    head = model.heads["entities"]
    vocab = model.encoder.tokenizer.get_vocab()
    with torch.no_grad():
        head.net[-1].weight.zero_()
        head.net[-1].bias.zero_()
        head.net[-1].bias[0] = 1.0  # "O" by default
    table = torch.zeros(len(vocab), len(NER_TAGS))
    table[:, 0] = 1.0
    for word, tag in tag_for_word.items():
        tag, logit = tag if isinstance(tag, tuple) else (tag, 10.0)
        table[vocab[word], NER_TAGS.index(tag)] = logit
    emb = model.encoder.backbone.get_input_embeddings()

    def hook(module, args, output):
        ids = model._last_ids
        return table[ids]

    model._last_ids = None
    pre = emb.register_forward_hook(lambda m, a, o: setattr(model, "_last_ids", a[0]))
    post = head.register_forward_hook(hook)
    return [pre, post]


@pytest.mark.parametrize("crf", [False, True])
def test_entity_offsets_slice_back(tiny_encoder, crf):
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_encoder, _tasks(crf=crf)).eval()
    if crf:  # neutral transitions so the Viterbi path follows the emissions
        for p in model.heads["entities"].crf.parameters():
            torch.nn.init.zeros_(p)
    hooks = _force_tags(model, {"paris": "B-LOC", "london": "B-LOC", "cat": "B-PER", "##s": "I-PER"})
    text = "The  CAT,  is in Paris — and London!!  cats?"
    preds = model.predict([text, "ünïcödé paris"], word_tags=True)
    for h in hooks:
        h.remove()
    ents = preds[0]["entities"]
    assert [(e["text"], e["label"]) for e in ents] == [
        ("CAT", "PER"),
        ("Paris", "LOC"),
        ("London", "LOC"),
        ("cats", "PER"),  # "cat" + "##s": the word's tag comes from its first sub-word, the span covers both
    ]
    for e in ents + preds[1]["entities"]:
        source = text if e in ents else "ünïcödé paris"
        assert source[e["start"] : e["end"]] == e["text"]
    assert [e["text"] for e in preds[1]["entities"]] == ["paris"]
    words = preds[0]["entities_words"]
    assert all(text[w["start"] : w["end"]] == w["text"] for w in words)
    assert [w["text"] for w in words][:3] == ["The", "CAT", ","]


def test_save_load_identical_predictions(model, tmp_path):
    texts = ["the cat sat on the mat", "a dog in london", "paris"]
    before = model.predict(texts, word_tags=True)
    out = model.save(tmp_path / "m")
    assert (out / "encoder" / "modules.json").exists() and (out / "heads.safetensors").exists()
    loaded = MultiTaskModel.load(out)
    assert loaded.predict(texts, word_tags=True) == before
    assert list(loaded.tasks) == list(model.tasks)
    assert loaded.tasks["entities"].labels.names == NER_TAGS
    # the encoder inside stays a plain sentence encoder
    assert SentenceEncoder.from_pretrained(out / "encoder").dim == model.encoder.dim


def test_save_refuses_foreign_folder_but_replaces_own_model(model, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        model.save(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    own = model.save(tmp_path / "own")
    with torch.no_grad():
        model.heads["topic"].net[-1].bias.add_(1.0)  # the second save must write these weights
    model.save(own)  # an existing mtst model folder is replaced without overwrite=True
    loaded = MultiTaskModel.load(own)
    for key, value in model.heads.state_dict().items():
        assert torch.equal(loaded.heads.state_dict()[key], value), key


def test_load_errors(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MultiTaskModel.load(tmp_path / "missing")
    enc_dir = model.encoder.save(tmp_path / "enc")
    with pytest.raises(FileNotFoundError, match="not an mtst model folder.*SentenceEncoder.from_pretrained"):
        MultiTaskModel.load(enc_dir)
    out = model.save(tmp_path / "m")
    (out / "heads.safetensors").rename(tmp_path / "heads.bak")
    with pytest.raises(FileNotFoundError, match="heads.safetensors is missing"):
        MultiTaskModel.load(out)
    (tmp_path / "heads.bak").rename(out / "heads.safetensors")
    conf = json.loads((out / "mtst_config.json").read_text())
    conf["tasks"][0]["labels"] = ["a", "b"]  # head has 3 outputs
    (out / "mtst_config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match="does not match .*wrong shape: topic"):
        MultiTaskModel.load(out)


def test_classification_needs_labels():
    with pytest.raises(ValueError, match="needs its label set"):
        build_task(TaskConfig(name="t", type="classification"))


def test_class_weights_length_checked():
    with pytest.raises(ValueError, match="class_weights has 2 values for 3 labels"):
        build_task(TaskConfig(name="t", type="classification", class_weights=[1, 2]), ["a", "b", "c"])


def test_losses_through_tasks(model):
    """Each task's loss on chosen outputs, against the value worked out by hand."""
    t = model.tasks
    topic = t["topic"].loss(
        model.heads["topic"], torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([0, 2])
    )
    assert float(topic) == pytest.approx((math.log(1 + 2 * math.exp(-2)) + math.log(1 + 2 * math.exp(-1))) / 2)
    sentiment = t["sentiment"].loss(None, torch.zeros(2), torch.tensor([0.1, 0.9]))  # sigmoid(0) = 0.5
    assert float(sentiment) == pytest.approx(0.16)
    emissions = torch.zeros(1, 3, 5)
    emissions[0, 1, 1] = 2.0
    emissions[0, 2, 3] = 50.0  # a position labelled -100: it must not count
    labels = torch.tensor([[-100, 1, -100]])
    assert float(t["entities"].loss(model.heads["entities"], emissions, labels)) == pytest.approx(
        math.log(1 + 4 * math.exp(-2))
    )
    # first sentences e0, e1; second sentences e0, (e0 + e1) / sqrt(2); in-batch softmax over 20 * cosine
    pairs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    c = 20 / math.sqrt(2)
    expected = (math.log(1 + math.exp(c - 20)) + math.log(1 + math.exp(-c))) / 2
    assert float(t["sim"].loss(None, pairs, None)) == pytest.approx(expected, abs=1e-5)


def test_class_weights_are_cross_entropy_weights():
    task = build_task(TaskConfig(name="t", type="classification", class_weights=[1.0, 2.0, 3.0]), ["a", "b", "c"])
    logits, targets = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.1, 0.0]]), torch.tensor([0, 2, 1])
    weighted = task.loss(None, logits, targets)
    expected = torch.nn.functional.cross_entropy(logits, targets, weight=torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(weighted, expected)
    per_row = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    assert float(weighted) == pytest.approx(float((per_row * torch.tensor([1.0, 3.0, 2.0])).sum() / 6))
    assert float(weighted) != pytest.approx(float(per_row.mean()))


def test_min_entity_score_keeps_exactly_the_entities_at_or_above_it(model):
    hooks = _force_tags(model, {"paris": ("B-LOC", 4.0), "london": ("B-LOC", 2.0), "cat": ("B-PER", 3.0)})
    text = "the cat in paris and london"
    everything = model.predict([text])[0]["entities"]
    scores = sorted(e["score"] for e in everything)
    assert [e["text"] for e in everything] == ["cat", "paris", "london"] and len(set(scores)) == 3
    for threshold in (scores[0], (scores[0] + scores[1]) / 2, scores[1], (scores[1] + scores[2]) / 2, 1.0):
        kept = model.predict([text], min_entity_score=threshold)[0]["entities"]
        assert kept == [e for e in everything if e["score"] >= threshold], threshold
    assert [e["text"] for e in model.predict([text], min_entity_score=(scores[1] + scores[2]) / 2)[0]["entities"]] == [
        "paris"
    ]
    for h in hooks:
        h.remove()


def test_init_from_starts_heads_from_a_saved_model(model, tiny_model_dir, tmp_path):
    """``init_from`` copies a saved head (and its labels) into a new model; mismatches are refused by name."""
    from mtst.config import MTSTConfig
    from mtst.training.setup import build_model

    saved = model.save(tmp_path / "saved")
    base = {"model": {"backbone": str(tiny_model_dir), "max_length": 32}}

    def build(*tasks):
        return build_model(MTSTConfig.from_dict({**base, "tasks": list(tasks)}, base_dir=tmp_path))

    new = build(
        {"name": "topic", "type": "classification", "head": "mlp", "hidden_size": 16, "init_from": "saved"},
        {"name": "entities", "type": "token_classification", "init_from": str(saved)},
        {"name": "other", "type": "classification", "labels": ["x", "y"]},
    )
    assert new.tasks["topic"].labels.names == ["a", "b", "c"]
    assert new.tasks["entities"].labels.names == NER_TAGS
    for name in ("topic", "entities"):
        for key, value in model.heads[name].state_dict().items():
            assert torch.equal(new.heads[name].state_dict()[key], value), (name, key)
    fresh = build({"name": "topic", "type": "classification", "head": "mlp", "hidden_size": 16, "labels": list("abc")})
    key = next(iter(model.heads["topic"].state_dict()))
    assert not torch.equal(fresh.heads["topic"].state_dict()[key], model.heads["topic"].state_dict()[key])

    with pytest.raises(ValueError, match="no task 'missing'.*topic"):
        build({"name": "missing", "type": "classification", "init_from": "saved"})
    with pytest.raises(ValueError, match="regression task, this one is classification"):
        build({"name": "sentiment", "type": "classification", "labels": ["p", "n"], "init_from": "saved"})
    with pytest.raises(ValueError, match="labels .* differ"):
        build({"name": "topic", "type": "classification", "labels": ["c", "b", "a"], "init_from": "saved"})
    with pytest.raises(ValueError, match="does not fit"):
        build({"name": "topic", "type": "classification", "init_from": "saved"})  # linear head vs saved MLP
    with pytest.raises(FileNotFoundError, match="mtst_config.json is missing"):
        build({"name": "topic", "type": "classification", "init_from": str(tiny_model_dir)})
    with pytest.raises(ValueError, match="similarity task has no head"):
        build({"name": "sim", "type": "similarity", "init_from": "saved"})
