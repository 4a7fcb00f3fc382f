"""Small synthetic data sets for training tests (written to a temp folder; the words are in the tiny vocab)."""

from __future__ import annotations

import random
from pathlib import Path

ANIMALS = ["cat", "dog", "mat"]
PLACES = ["paris", "london", "music"]


def write_toy_data(folder: Path, seed: int = 0) -> Path:
    """Write cls.tsv (2 classes), ner.conll (LOC entities), sim.tsv (scored pairs), pairs.tsv (anchor, positive)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "cls.tsv", "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for _ in range(96):
            label = rng.choice(["animal", "place"])
            words = rng.choices(ANIMALS if label == "animal" else PLACES, k=rng.randint(2, 6))
            f.write(" ".join(words) + "\t" + label + "\n")
    with open(folder / "ner.conll", "w", encoding="utf-8") as f:
        for _ in range(80):
            for tok in rng.choices(["the", "cat", "sat", "on", "paris", "london", "mat"], k=rng.randint(3, 8)):
                f.write(f"{tok}\t{'B-LOC' if tok in ('paris', 'london') else 'O'}\n")
            f.write("\n")
    with open(folder / "sim.tsv", "w", encoding="utf-8") as f:
        f.write("sentence1\tsentence2\tscore\n")
        for _ in range(80):
            a = " ".join(rng.choices(ANIMALS + PLACES, k=4))
            same = rng.random() < 0.5
            b = a if same else " ".join(rng.choices(ANIMALS + PLACES, k=4))
            f.write(f"{a}\t{b}\t{5.0 if same else 1.0}\n")
    with open(folder / "pairs.tsv", "w", encoding="utf-8") as f:
        f.write("anchor\tpositive\n")
        for _ in range(64):
            topic = rng.choice([ANIMALS, PLACES])
            f.write(" ".join(rng.choices(topic, k=3)) + "\t" + " ".join(rng.choices(topic, k=3)) + " s\n")
    return folder
