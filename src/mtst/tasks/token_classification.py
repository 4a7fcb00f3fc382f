"""Token classification (named entities): BIO tags per word on each word's first sub-word, optional CRF."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mtst import losses, metrics
from mtst.alignment import encode_words
from mtst.batching import EncodedData
from mtst.bio import entities_from_words
from mtst.data.examples import TokenExample
from mtst.data.loaders import load_token_examples
from mtst.heads import TokenClassificationHead
from mtst.labels import LabelSet
from mtst.losses import IGNORE_INDEX
from mtst.padding import features_for, pad_ids
from mtst.tasks.base import PredictBatch, Task
from mtst.viterbi import CRFParams, viterbi_paths


class TokenClassificationTask(Task):
    """BIO tags per word (named entities): the tag sits on each word's first sub-word; optional CRF."""

    type = "token_classification"
    hub_task = "token-classification"
    losses = ("cross_entropy",)  # with crf: true the CRF negative log-likelihood is used
    main_metric = "entity_f1"
    metric_names = ("entity_f1", "entity_precision", "entity_recall")
    needs_labels = True
    cache_kind = "token"

    @classmethod
    def validate_config(cls, config: Any) -> None:
        """Every key applies (``crf`` included)."""

    @classmethod
    def read_examples(cls, config: Any, source: str, split: str) -> list[TokenExample]:
        return load_token_examples(
            source, tokens_column=config.tokens_column, tags_column=config.label_column, split=split
        )

    @classmethod
    def infer_labels(cls, examples: Sequence[TokenExample]) -> LabelSet:
        """``O``, then ``B-X``, ``I-X`` for each entity type X in sorted order."""
        return LabelSet.infer_bio(ex.tags for ex in examples)

    def encode(self, examples: Sequence[TokenExample], tokenizer: Any, max_length: int) -> EncodedData:
        ids, targets, n_words, word_targets = [], [], [], []
        for ex in examples:
            tag_ids = [self.labels.id(t, source=ex.source, task=self.name) for t in ex.tags]
            enc = encode_words(tokenizer, ex.tokens, tags=tag_ids, max_length=max_length)
            ids.append(enc["input_ids"])
            targets.append(enc["labels"])
            n_words.append(len(ex.tokens))
            word_targets.append(tag_ids)  # the whole sentence: metrics score the words truncation cut off too
        return EncodedData(ids, targets, n_words=n_words, word_targets=word_targets)

    def collate(self, data: EncodedData, index: Sequence[int], pad_id: int) -> tuple[dict[str, torch.Tensor], Any]:
        features = features_for([data.input_ids[i] for i in index], pad_id)
        return features, pad_ids([data.targets[i] for i in index], IGNORE_INDEX)

    def build_head(self, dim: int) -> nn.Module:
        c = self.config
        return TokenClassificationHead(dim, len(self.labels), hidden_size=c.hidden_size, dropout=c.dropout, crf=c.crf)

    def forward(self, head: nn.Module | None, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        return head(encoded["token_embeddings"])  # [batch, seq, n_tags] emissions

    def loss(self, head: nn.Module | None, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if getattr(head, "crf", None) is not None:
            return losses.crf_nll(head.crf, output, targets)
        return losses.cross_entropy(output, targets)

    # ------------------------------------------------------------------ frozen-backbone cache
    def cache_inputs(self, examples: Sequence[TokenExample]) -> list[list[str]]:
        return [ex.tokens for ex in examples]

    def cached_batch(
        self, inputs: Any, data: EncodedData, index: Sequence[int], device: torch.device
    ) -> tuple[torch.Tensor, Any]:
        """Token states ``[batch, seq, dim]`` (zero-padded) and their labels ``[batch, seq]``."""
        states = [inputs[i] for i in index]
        width = max(len(s) for s in states)
        x = torch.zeros((len(states), width, states[0].shape[1]))  # [batch, seq, dim]
        for r, s in enumerate(states):
            x[r, : len(s)] = torch.from_numpy(s)
        labels = pad_ids([data.targets[i] for i in index], IGNORE_INDEX)[:, :width].to(device)
        return x.to(device), labels

    # ------------------------------------------------------------------ decoding and metrics
    def crf_params(self, head: nn.Module | None) -> CRFParams | None:
        crf = getattr(head, "crf", None)
        return CRFParams.from_module(crf) if crf is not None else None

    def decode_words(
        self, output: torch.Tensor, first_subword: torch.Tensor, crf: CRFParams | None = None
    ) -> list[list[tuple[str, float]]]:
        """Emissions ``[batch, seq, n_tags]`` to one ``(tag, probability)`` per word, per row.

        With a CRF the tags are the Viterbi path; the score is the tag's softmax probability at that word.
        """
        word_scores, _, word_mask = losses.gather_words(output.float(), first_subword)  # [batch, words, n_tags]
        probs = word_scores.softmax(dim=-1)
        if crf is not None and word_mask.any():
            tag_ids = viterbi_paths(crf, word_scores.detach().cpu().numpy(), word_mask.cpu().numpy())
        else:
            best = probs.argmax(dim=-1)
            tag_ids = [best[i, : int(n)].tolist() for i, n in enumerate(word_mask.sum(dim=1))]
        # Python-level lookups on a numpy copy: indexing the tensor makes a 0-d tensor per word.
        probs_np = probs.cpu().numpy()  # [batch, words, n_tags]
        name = self.labels.name
        out = []
        for i, ids in enumerate(tag_ids):
            tag_probs = probs_np[i, np.arange(len(ids)), ids].tolist() if ids else []
            out.append([(name(t), p) for t, p in zip(ids, tag_probs, strict=True)])
        return out

    def predict(self, output: torch.Tensor, batch: PredictBatch, *, crf: Any = None) -> list[dict[str, Any]]:
        """Entities ``{"text", "label", "start", "end", "score"}`` with offsets into each text (and word tags)."""
        first = first_subword_mask(batch.word_ids, output.shape[1]).to(output.device)
        out = []
        for r, tagged in enumerate(self.decode_words(output, first, crf)):
            text = batch.texts[r]
            words = word_offsets(batch.word_ids[r], batch.offsets[r])
            entities = entities_from_words(text, words, tagged)
            row: dict[str, Any] = {self.name: [e for e in entities if e["score"] >= batch.min_entity_score]}
            if batch.word_tags:
                row[f"{self.name}_words"] = [
                    {"text": text[s:e], "tag": tag, "start": s, "end": e, "score": round(p, 4)}
                    for (s, e), (tag, p) in zip(words, tagged, strict=True)
                ]
            out.append(row)
        return out

    def eval_predictions(self, output: torch.Tensor, targets: Any, *, crf: Any = None) -> list[list[str]]:
        first = targets != IGNORE_INDEX  # [batch, seq]: labels sit on each word's first sub-word
        return [[tag for tag, _ in words] for words in self.decode_words(output, first.to(output.device), crf)]

    def metrics(self, preds: Sequence[list[str]], data: EncodedData) -> dict[str, float]:
        """Entity precision, recall and F1 against every word's gold tag, the words past ``max_length`` included."""
        if data.word_targets is None:
            raise ValueError(f"task {self.name!r}: the encoded data has no word tags; encode it with this task.")
        pred_tags, gold_tags = [], []
        for p, gold in zip(preds, data.word_targets, strict=True):
            # words cut off by max_length got no prediction: they count as "O", a miss for a gold entity there
            pred_tags.append(p + ["O"] * (len(gold) - len(p)))
            gold_tags.append([self.labels.name(t) for t in gold])
        return metrics.entity_metrics(pred_tags, gold_tags)


def first_subword_mask(word_ids: Sequence[Sequence[int | None]], width: int) -> torch.Tensor:
    """``[batch, width]`` booleans: True on the first sub-word of each word."""
    mask = np.zeros((len(word_ids), width), dtype=bool)
    for r, wids in enumerate(word_ids):
        w = np.array([-1 if x is None else x for x in wids], dtype=np.int64)  # [seq]
        prev = np.concatenate([[-1], w[:-1]])
        mask[r, : len(w)] = (w >= 0) & (w != prev)
    return torch.from_numpy(mask)


def word_offsets(word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character span ``(start, end)`` of each word, in order of first sub-word."""
    spans: dict[int, list[int]] = {}
    for w, (s, e) in zip(word_ids, offsets, strict=True):
        if w is None:
            continue
        if w in spans:
            spans[w][1] = e
        else:
            spans[w] = [s, e]
    return [(s, e) for s, e in spans.values()]
