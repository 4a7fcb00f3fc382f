"""Tests for mtst.data (readers, loaders), mtst.labels (LabelSet, BIO) and mtst.alignment (offsets, sub-word labels)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mtst.alignment import encode_words, words_from_text
from mtst.bio import normalize_bio
from mtst.data.examples import SentenceExample, TokenExample
from mtst.data.loaders import load_sentence_examples, load_token_examples
from mtst.data.readers import read_conll, read_hf, read_jsonl, read_table
from mtst.labels import LabelSet
from mtst.losses import IGNORE_INDEX

BIO_TAGS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def m(text: str) -> str:
    """A literal string as a regular expression for pytest.raises(match=...)."""
    return re.escape(text)


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded all-MiniLM-L6-v2 tokenizer (lower-cases and strips accents)."""
    from transformers import AutoTokenizer

    from mtst.encoder import default_model_path

    return AutoTokenizer.from_pretrained(default_model_path())


# ------------------------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_sst2(datasets_dir):
    train = load_sentence_examples(datasets_dir / "sst2" / "train.tsv")
    dev = load_sentence_examples(datasets_dir / "sst2" / "dev.tsv")
    assert (len(train), len(dev)) == (67_349, 872)
    assert LabelSet.infer(ex.label for ex in train).to_list() == ["negative", "positive"]
    first = train[0]
    assert first == SentenceExample(
        "hide new secretions from the parental units", "negative", None, f"{datasets_dir}/sst2/train.tsv:2"
    )


@pytest.mark.real_data
def test_trec_coarse_and_fine_labels(datasets_dir):
    path = datasets_dir / "trec" / "train.tsv"
    coarse = load_sentence_examples(path)
    fine = load_sentence_examples(path, label_column="fine_label")
    assert len(coarse) == len(fine) == 5_452
    assert LabelSet.infer(ex.label for ex in coarse).to_list() == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert 40 < len(LabelSet.infer(ex.label for ex in fine)) <= 50
    rows = read_table(path, columns=["label"])
    assert len(rows) == 5_452 and rows[0] == (2, {"label": "DESC"})


@pytest.mark.real_data
def test_stsb_pairs_with_scores_and_literal_quotes(datasets_dir):
    kwargs = dict(text_column="sentence1", pair_column="sentence2", label_column="score", label_type="number")
    train = load_sentence_examples(datasets_dir / "stsb" / "train.tsv", **kwargs)
    dev = load_sentence_examples(datasets_dir / "stsb" / "dev.tsv", **kwargs)
    assert (len(train), len(dev)) == (5_749, 1_500)
    assert all(isinstance(ex.label, float) and 0.0 <= ex.label <= 5.0 for ex in train + dev)
    assert train[0].text == "A plane is taking off." and train[0].text_pair == "An air plane is taking off."
    # Unquoted TSV: a '"' is an ordinary character, kept as written.
    assert any(ex.text.count('"') == 2 for ex in train)


@pytest.mark.real_data
def test_wikiann(datasets_dir, tokenizer):
    counts = {}
    for split in ("train", "dev", "test"):
        path = datasets_dir / "wikiann_en" / f"{split}.conll"
        examples = load_token_examples(path)
        counts[split] = len(examples)
        assert LabelSet.infer_bio(ex.tags for ex in examples).to_list() == BIO_TAGS
    assert counts == {"train": 20_000, "dev": 10_000, "test": 10_000}
    raw = read_conll(datasets_dir / "wikiann_en" / "dev.conll")
    assert raw[0].source.endswith("dev.conll:1") and all(len(ex.tokens) == len(ex.tags) for ex in raw)
    # Every kept word of real sentences carries its tag exactly once, on its first sub-word.
    labels = LabelSet(BIO_TAGS)
    for ex in raw[:300]:
        tag_ids = [labels.id(t, source=ex.source) for t in ex.tags]
        enc = encode_words(tokenizer, ex.tokens, tags=tag_ids, max_length=128)
        assert [x for x in enc["labels"] if x != IGNORE_INDEX] == tag_ids[: enc["n_words_kept"]]


# ------------------------------------------------------------------------------------------- tables


def test_read_table_tsv_keeps_quotes_and_line_numbers(tmp_path):
    path = write(tmp_path / "a.tsv", 'text\tlabel\tid\nsay "hi"\tpos\t1\n\n"odd\tneg\t2\n')
    assert read_table(path, columns=["label", "text"]) == [
        (2, {"label": "pos", "text": 'say "hi"'}),
        (4, {"label": "neg", "text": '"odd'}),
    ]


def test_read_table_csv_uses_quoting(tmp_path):
    path = write(tmp_path / "a.csv", 'text,label\n"one, two",pos\n"say ""hi""\nthere",neg\nplain,neg\n')
    assert read_table(path, columns=["text"]) == [
        (2, {"text": "one, two"}),
        (3, {"text": 'say "hi"\nthere'}),
        (5, {"text": "plain"}),
    ]


def test_read_table_errors(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.tsv is empty: expected a header line naming the columns text"):
        read_table(write(tmp_path / "empty.tsv", ""), columns=["text"])
    path = write(tmp_path / "cols.tsv", "text\tscore\na\t1\n")
    with pytest.raises(
        ValueError, match=r"cols\.tsv, line 1: no column 'label' in the header; the header has: text, score"
    ):
        read_table(path, columns=["text", "label"])
    path = write(tmp_path / "fields.tsv", "text\tlabel\na\tpos\nb\tpos\textra\n")
    with pytest.raises(ValueError, match=r"fields\.tsv, line 3: expected 2 fields as in the header, got 3"):
        read_table(path, columns=["text"])
    path = write(tmp_path / "comma.tsv", "text,label\na,pos\n")
    with pytest.raises(ValueError, match=r"is the delimiter '\\t' right"):
        read_table(path, columns=["label"])
    with pytest.raises(FileNotFoundError, match=r"nope\.tsv does not exist"):
        read_table(tmp_path / "nope.tsv", columns=["text"])


# ------------------------------------------------------------------------------------------- JSONL


def test_read_jsonl(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": "x"}\n')
    assert read_jsonl(path) == [(1, {"text": "a", "label": 1}), (3, {"text": "b", "label": "x"})]
    examples = load_sentence_examples(path)
    assert [ex.label for ex in examples] == ["1", "x"] and examples[1].source == f"{path}:3"


def test_read_jsonl_errors(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"text": "a"}\n{"text": "b",\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: malformed JSON: "):
        read_jsonl(path)
    path = write(tmp_path / "list.jsonl", '{"text": "a"}\n["b"]\n')
    with pytest.raises(ValueError, match=r"list\.jsonl, line 2: expected a JSON object, got list"):
        read_jsonl(path)
    with pytest.raises(ValueError, match=r"blank\.jsonl is empty: expected one JSON object per line"):
        read_jsonl(write(tmp_path / "blank.jsonl", "\n  \n"))
    path = write(tmp_path / "keys.jsonl", '{"text": "a", "label": "x"}\n{"sentence": "b", "label": "y"}\n')
    with pytest.raises(ValueError, match=r"keys\.jsonl:2: no key 'text'; the object has: sentence, label"):
        load_sentence_examples(path)


# ------------------------------------------------------------------------------------------- sentence loader


def test_load_sentence_examples_errors(tmp_path):
    path = write(tmp_path / "s.tsv", "text\tscore\ngood\t4.5\nbad\thigh\n")
    with pytest.raises(ValueError, match=r"s\.tsv:3: 'score' must be a number, got 'high'"):
        load_sentence_examples(path, label_column="score", label_type="number")
    path = write(tmp_path / "nan.tsv", "text\tscore\ngood\tnan\n")
    with pytest.raises(ValueError, match=r"nan\.tsv:2: 'score' must be a finite number"):
        load_sentence_examples(path, label_column="score", label_type="number")
    path = write(tmp_path / "e.tsv", "text\tlabel\n  \tpos\n")
    with pytest.raises(ValueError, match=r"e\.tsv:2: empty text in column 'text'"):
        load_sentence_examples(path)
    path = write(tmp_path / "nolabel.tsv", "text\tlabel\nfine\t\n")
    with pytest.raises(ValueError, match=r"nolabel\.tsv:2: empty label in column 'label'"):
        load_sentence_examples(path)
    with pytest.raises(ValueError, match=r"header\.tsv: no examples"):
        load_sentence_examples(write(tmp_path / "header.tsv", "text\tlabel\n"))
    with pytest.raises(ValueError, match=r"label_type must be one of: class, number; got 'float'"):
        load_sentence_examples(path, label_type="float")


def test_load_sentence_examples_unlabeled_and_csv(tmp_path):
    path = write(tmp_path / "u.tsv", "text\nhello\nworld\n")
    assert [ex.label for ex in load_sentence_examples(path, require_labels=False)] == [None, None]
    # no label column asked for: no label needed, even with the default require_labels=True
    assert [ex.label for ex in load_sentence_examples(path, label_column=None)] == [None, None]
    path = write(tmp_path / "c.csv", 'text,label\n"a, b", positive \n')
    assert load_sentence_examples(path)[0] == SentenceExample("a, b", "positive", None, f"{path}:2")


# ------------------------------------------------------------------------------------------- CoNLL / tokens


def test_read_conll_docstart_spaces_and_extra_columns(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\n"
    examples = read_conll(write(tmp_path / "c03.txt", text))
    assert examples == [
        TokenExample(["EU", "rejects"], ["B-ORG", "O"], f"{tmp_path}/c03.txt:3"),
        TokenExample(["Peter"], ["B-PER"], f"{tmp_path}/c03.txt:7"),
    ]


def test_read_conll_errors(tmp_path):
    path = write(tmp_path / "one.conll", "Paris\tB-LOC\nis\n")
    with pytest.raises(
        ValueError, match=r"one\.conll, line 2: expected a token and a tag separated by a tab or spaces"
    ):
        read_conll(path)
    path = write(tmp_path / "tag.conll", "Paris\tB-LOC\n\nAnn\tPER\n")
    with pytest.raises(ValueError, match=r"tag\.conll, line 3: invalid tag 'PER'; expected BIO tags"):
        read_conll(path)
    with pytest.raises(ValueError, match=r"empty\.conll is empty"):
        read_conll(write(tmp_path / "empty.conll", "\n\n"))


def test_i_after_o_is_repaired():
    assert normalize_bio(["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-LOC", "I-LOC"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-LOC", "I-LOC",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"tag 1: invalid tag 'X-PER'"):
        normalize_bio(["O", "X-PER"])


def test_load_token_examples_repairs_bio(tmp_path):
    path = write(tmp_path / "r.conll", "in\tO\nParis\tI-LOC\n")
    assert load_token_examples(path)[0].tags == ["O", "B-LOC"]
    assert load_token_examples(path, repair_bio=False)[0].tags == ["O", "I-LOC"]


def test_load_token_examples_jsonl(tmp_path):
    rows = [{"tokens": ["Ann", "smiled"], "ner_tags": ["B-PER", "O"]}, {"tokens": [], "ner_tags": []}]
    path = write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_token_examples(path) == [TokenExample(["Ann", "smiled"], ["B-PER", "O"], f"{path}:1")]
    rows.append({"tokens": ["a", "b", "c"], "ner_tags": ["O", "O"]})
    path = write(tmp_path / "mismatch.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError, match=r"mismatch\.jsonl:3: 3 tokens but 2 tags in 'tokens' / 'ner_tags'"):
        load_token_examples(path)
    path = write(tmp_path / "ints.jsonl", json.dumps({"tokens": ["a"], "ner_tags": [0]}) + "\n")
    with pytest.raises(ValueError, match=r"ints\.jsonl:1: tags must be names such as 'B-PER', got 0"):
        load_token_examples(path)


# ------------------------------------------------------------------------------------------- labels


def test_unknown_label_names_file_line_task_and_known_labels():
    labels = LabelSet(["negative", "positive"])
    expected = "sst2.tsv:7: unknown label 'neutral' for task 'sentiment'; known labels: negative, positive."
    with pytest.raises(ValueError, match=m(expected)):
        labels.id("neutral", source="sst2.tsv:7", task="sentiment")
    with pytest.raises(ValueError, match=m("Did you mean 'positive'?")):
        labels.id("Positive", source="sst2.tsv:8", task="sentiment")


def test_label_set_roundtrip_and_checks():
    labels = LabelSet.infer(["b", "a", "c", "a"])
    assert labels.to_list() == ["a", "b", "c"] and len(labels) == 3
    assert [labels.name(labels.id(x)) for x in "cab"] == list("cab")
    assert LabelSet(labels.to_list()) == labels
    assert LabelSet.infer(["10", "2", "1"]).to_list() == ["1", "2", "10"]
    with pytest.raises(ValueError, match="Duplicate labels: a"):
        LabelSet(["a", "b", "a"])
    with pytest.raises(ValueError, match=m("Label id 3 out of range: this label set has ids 0..2")):
        labels.name(3)
    with pytest.raises(TypeError, match="Labels must be strings, got int 1"):
        LabelSet([1, 2])


def test_infer_bio_order():
    labels = LabelSet.infer_bio([["I-PER"], ["B-LOC", "O"], ["O", "B-ORG", "I-ORG"]])
    assert labels.to_list() == BIO_TAGS


# ------------------------------------------------------------------------------------------- HF datasets


def test_hf_saved_dataset_with_class_label(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
        }
    )
    data = {
        "tokens": [["Ann", "Lee", "ran"], ["ok"]],
        "ner_tags": [[1, 2, 0], [0]],
        "text": ["a", "b"],
        "label": [1, 0],
    }
    train = datasets.Dataset.from_dict(data, features=features)
    datasets.DatasetDict({"train": train, "validation": train.select([1])}).save_to_disk(str(tmp_path / "dd"))
    train.save_to_disk(str(tmp_path / "single"))

    tokens = load_token_examples(tmp_path / "dd")
    assert [(ex.tokens, ex.tags) for ex in tokens] == [
        (["Ann", "Lee", "ran"], ["B-PER", "I-PER", "O"]),
        (["ok"], ["O"]),
    ]
    assert tokens[0].source == f"{tmp_path / 'dd'} (train) row 0"
    assert [ex.label for ex in load_sentence_examples(tmp_path / "dd", split="validation")] == ["neg"]
    assert [ex.label for ex in load_sentence_examples(tmp_path / "single")] == ["pos", "neg"]
    assert read_hf(str(tmp_path / "dd"), "train")[0]["ner_tags"] == [1, 2, 0]
    with pytest.raises(ValueError, match=r"no split 'test'; available splits: train, validation"):
        read_hf(str(tmp_path / "dd"), "test")
    with pytest.raises(ValueError, match=r"no column 'sentence'; the dataset has: tokens, ner_tags, text, label"):
        load_sentence_examples(tmp_path / "dd", text_column="sentence")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no dataset saved with save_to_disk"):
        read_hf(str(tmp_path / "plain"), "train")
    with pytest.raises(ValueError, match=r"expected 'hf:NAME' or 'hf:NAME:CONFIG'"):
        read_hf("hf:", "train")


# ------------------------------------------------------------------------------------------- alignment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Émile  went to   Zürich.", ["Émile", "went", "to", "Zürich", "."]),
        ("a naïve café in the U.S.!", ["a", "naïve", "café", "in", "the", "U", ".", "S", ".", "!"]),
        ("  I ❤️ NY 🙂 ", None),
        ("", []),
    ],
)
def test_words_from_text_offsets_slice_the_original(tokenizer, text, expected):
    words = words_from_text(tokenizer, text)
    assert all(text[start:end] == word for word, start, end in words)
    assert [start for _, start, _ in words] == sorted(start for _, start, _ in words)
    if expected is not None:
        assert [w for w, _, _ in words] == expected
    else:
        assert {"I", "NY", "🙂"} <= {w for w, _, _ in words}


def test_words_from_text_works_with_the_tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    tiny = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Cats  sat, on MATS"
    assert words_from_text(tiny, text) == [
        ("Cats", 0, 4),
        ("sat", 6, 9),
        (",", 9, 10),
        ("on", 11, 13),
        ("MATS", 14, 18),
    ]


def test_encode_words_labels_first_subword_only(tokenizer):
    words = ["Kaczyński", "met", "unbelievably", "Zürich"]
    enc = encode_words(tokenizer, words, tags=[1, 0, 0, 3], max_length=32)
    word_ids = enc["word_ids"]
    assert word_ids[0] is None and word_ids[-1] is None  # [CLS] ... [SEP]
    assert word_ids.count(0) > 1 and word_ids.count(2) > 1  # split into several sub-words
    expected = [
        IGNORE_INDEX if w is None or w == p else [1, 0, 0, 3][w]
        for p, w in zip([None, *word_ids], word_ids, strict=False)
    ]
    assert enc["labels"] == expected
    assert [x for x in enc["labels"] if x != IGNORE_INDEX] == [1, 0, 0, 3]
    assert enc["n_words_kept"] == 4 and enc["attention_mask"] == [1] * len(enc["input_ids"])
    assert "labels" not in encode_words(tokenizer, words, max_length=32)


def test_encode_words_reports_truncation_and_keeps_empty_words(tokenizer):
    words = ["Kaczyński", "met", "unbelievably", "Zürich"]
    enc = encode_words(tokenizer, words, tags=[1, 2, 3, 4], max_length=8)
    assert len(enc["input_ids"]) == 8 and enc["n_words_kept"] < 4
    assert [x for x in enc["labels"] if x != IGNORE_INDEX] == [1, 2, 3, 4][: enc["n_words_kept"]]
    # A word the tokenizer turns into nothing still gets one ([UNK]) token carrying its tag.
    enc = encode_words(tokenizer, ["a", "\u200b", "", "b"], tags=[1, 2, 3, 4], max_length=16)
    assert [x for x in enc["labels"] if x != IGNORE_INDEX] == [1, 2, 3, 4] and enc["n_words_kept"] == 4


def test_encode_words_errors(tokenizer):
    with pytest.raises(ValueError, match="got 2 words but 1 tags"):
        encode_words(tokenizer, ["a", "b"], tags=[0], max_length=8)
    with pytest.raises(TypeError, match="map tag names with LabelSet.id first"):
        encode_words(tokenizer, ["a"], tags=["O"], max_length=8)
    with pytest.raises(TypeError, match="not a str; split the text first"):
        encode_words(tokenizer, "a b", max_length=8)
    with pytest.raises(ValueError, match="max_length must be a positive int, got 0"):
        encode_words(tokenizer, ["a"], max_length=0)

    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="words_from_text needs a fast tokenizer"):
        words_from_text(Slow(), "a")
