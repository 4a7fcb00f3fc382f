"""Token-label alignment: words of a raw text with character offsets, and word-level tags on sub-words.

Both functions need a *fast* tokenizer (one backed by the Rust ``tokenizers`` library), because only
those report character offsets into the original text and which word each sub-word came from.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from mtst.losses import IGNORE_INDEX


def _require_fast(tokenizer: Any, what: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{what} needs a fast tokenizer (backed by the 'tokenizers' library) for offsets and word ids; "
            f"got {type(tokenizer).__name__}. Load it with AutoTokenizer.from_pretrained(..., use_fast=True)."
        )


def words_from_text(tokenizer: Any, text: str) -> list[tuple[str, int, int]]:
    """Split ``text`` into the words its pre-tokenizer sees, as ``(word, start, end)`` with offsets into ``text``.

    ``text[start:end] == word`` always holds, whatever the normalizer does (lower-casing, accent stripping).
    Characters the tokenizer drops entirely (e.g. a lone zero-width space) belong to no word.
    """
    _require_fast(tokenizer, "words_from_text")
    if not isinstance(text, str):
        raise TypeError(f"words_from_text expects a str, got {type(text).__name__}.")
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False, truncation=False, verbose=False)
    spans: dict[int, list[int]] = {}  # word id -> [start, end], in order of appearance
    for word_id, (start, end) in zip(enc.word_ids(), enc["offset_mapping"], strict=True):
        if word_id is None or start == end:
            continue
        span = spans.setdefault(word_id, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    words = []
    for start, end in spans.values():
        # Byte-level BPE tokenizers without trim_offsets count the leading space in the offset: drop it.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            words.append((text[start:end], start, end))
    return words


def _encode(tokenizer: Any, words: list[str], max_length: int) -> tuple[Any, list[int | None], int]:
    """Tokenize pre-split words; return the encoding, its word ids and how many leading words survived truncation."""
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    word_ids = enc.word_ids()
    truncated = bool(enc.encodings[0].overflowing)
    seen = [w for w in word_ids if w is not None]
    n_kept = (max(seen) + 1 if seen else 0) if truncated else len(words)
    return enc, word_ids, n_kept


def encode_words(
    tokenizer: Any,
    words: Sequence[str],
    *,
    tags: Sequence[int] | None = None,
    max_length: int,
) -> dict[str, Any]:
    """Tokenize a pre-split sentence and put each word's tag id on its first sub-word (``-100`` elsewhere).

    Returns ``input_ids``, ``attention_mask``, ``word_ids`` (``None`` on special tokens), ``labels`` (only when
    ``tags`` is given) and ``n_words_kept``: how many leading words survived truncation to ``max_length`` tokens,
    so ``n_words_kept < len(words)`` tells the caller that words were cut off. A word the tokenizer turns into no
    sub-word at all (an empty string, a lone zero-width space) is encoded as the unknown token, so every kept
    word carries its tag.
    """
    _require_fast(tokenizer, "encode_words")
    if isinstance(words, str):
        raise TypeError("encode_words expects a list of words, not a str; split the text first (words_from_text).")
    words = [str(w) for w in words]
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}.")
    tag_ids: list[int] | None = None
    if tags is not None:
        if len(tags) != len(words):
            raise ValueError(f"encode_words got {len(words)} words but {len(tags)} tags; they must match one to one.")
        try:
            tag_ids = [operator.index(t) for t in tags]
        except TypeError as e:
            raise TypeError(
                f"encode_words expects tag ids (ints), got {tags[:5]!r}...; map tag names with LabelSet.id first."
            ) from e

    enc, word_ids, n_kept = _encode(tokenizer, words, max_length)
    seen = set(word_ids)
    empty = [i for i in range(n_kept) if i not in seen]
    if empty:
        if tokenizer.unk_token is None:
            raise ValueError(
                f"words {[words[i] for i in empty]!r} produce no tokens and the tokenizer has no unknown token."
            )
        for i in empty:
            words[i] = tokenizer.unk_token
        enc, word_ids, n_kept = _encode(tokenizer, words, max_length)

    out: dict[str, Any] = {
        "input_ids": list(enc["input_ids"]),
        "attention_mask": list(enc["attention_mask"]),
        "word_ids": list(word_ids),
        "n_words_kept": n_kept,
    }
    if tag_ids is not None:
        labels, previous = [], None
        for word_id in word_ids:
            first = word_id is not None and word_id != previous
            labels.append(tag_ids[word_id] if first else IGNORE_INDEX)
            previous = word_id
        out["labels"] = labels
    return out
