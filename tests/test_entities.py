from mtst.bio import bio_spans, entities_from_words


def test_bio_spans():
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    assert bio_spans(["O", "I-ORG", "I-ORG"]) == [("ORG", 1, 3)]  # I after O starts an entity
    assert bio_spans(["B-PER", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 2)]  # type change starts a new one
    assert bio_spans(["B-PER", "B-PER"]) == [("PER", 0, 1), ("PER", 1, 2)]
    assert bio_spans([]) == []


def test_entities_slice_back():
    text = "Ms  Zoë Ünal visited São Paulo."
    words = [(0, 2), (4, 7), (8, 12), (13, 20), (21, 24), (25, 30), (30, 31)]
    tagged = [("O", 0.9), ("B-PER", 0.8), ("I-PER", 0.6), ("O", 0.9), ("B-LOC", 1.0), ("I-LOC", 0.5), ("O", 1.0)]
    ents = entities_from_words(text, words, tagged)
    assert [(e["text"], e["label"]) for e in ents] == [("Zoë Ünal", "PER"), ("São Paulo", "LOC")]
    assert all(text[e["start"] : e["end"]] == e["text"] for e in ents)
    assert ents[0]["score"] == 0.7
