"""Word-level heads on subword models (token classification): encode pre-split sentences, pool each word's subword states (first or mean), word logits, and the vocabulary paper's O-class down-weighting of the loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE = -100
POOLINGS = ("first", "mean")


@dataclass
class Encoded:
    """A tokenized batch of word-split sentences and its subword -> word alignment.

    ``tok_word[b, t]`` is the batch-global index of the word that token t of sentence b belongs to
    (-1: special or padding token); ``first[b, t]`` marks the first subword of each word;
    ``present[w]`` says whether word w kept at least one subword; ``offsets[b]`` is the global index
    of the first word of sentence b (``offsets[-1]`` = number of words).
    """

    inputs: dict[str, Any]
    tok_word: Any
    first: Any
    present: np.ndarray
    offsets: list[int]

    @property
    def n_words(self) -> int:
        return self.offsets[-1]


def encode_words(tokenizer: Any, sentences: list[list[str]], max_length: int) -> Encoded:
    """Tokenize word-split sentences (``is_split_into_words``) and align subwords to words."""
    import torch

    enc = tokenizer(
        sentences,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    offsets = [0]
    for words in sentences:
        offsets.append(offsets[-1] + len(words))
    tok_word = torch.full(enc["input_ids"].shape, -1, dtype=torch.long)
    first = torch.zeros(enc["input_ids"].shape, dtype=torch.bool)
    present = np.zeros(offsets[-1], dtype=bool)
    for b in range(len(sentences)):
        previous = None
        for t, w in enumerate(enc.word_ids(b)):
            if w is None:
                previous = None
                continue
            tok_word[b, t] = offsets[b] + w
            if w != previous:
                first[b, t] = True
                present[offsets[b] + w] = True
            previous = w
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return Encoded(inputs, tok_word, first, present, offsets)


def first_subword_labels(word_ids: list[int | None], word_labels: list[int]) -> list[int]:
    """Token labels of the ``first`` scheme: a word's label on its first subword, -100 elsewhere."""
    out, previous = [], None
    for w in word_ids:
        out.append(IGNORE if w is None or w == previous else word_labels[w])
        previous = w
    return out


def pool_words(hidden: Any, enc: Encoded, pooling: str) -> Any:
    """Word vectors ``[n_words, H]`` from token states ``[B, T, H]`` (rows of absent words are 0)."""
    import torch

    flat = hidden.reshape(-1, hidden.shape[-1])
    tok_word = enc.tok_word.reshape(-1).to(hidden.device)
    out = torch.zeros(enc.n_words, hidden.shape[-1], dtype=hidden.dtype, device=hidden.device)
    if pooling == "first":
        sel = enc.first.reshape(-1).to(hidden.device)
        return out.index_copy(0, tok_word[sel], flat[sel])
    if pooling == "mean":
        sel = tok_word >= 0
        out = out.index_add(0, tok_word[sel], flat[sel])
        counts = torch.zeros(enc.n_words, dtype=hidden.dtype, device=hidden.device)
        counts = counts.index_add(0, tok_word[sel], torch.ones_like(tok_word[sel], dtype=hidden.dtype))
        return out / counts.clamp(min=1).unsqueeze(-1)
    raise ValueError(f"unknown word pooling {pooling!r}; known: {POOLINGS}")


def word_logits(model: Any, enc: Encoded, pooling: str) -> Any:
    """Logits ``[n_words, num_labels]``: backbone -> word pooling -> the model's dropout + classifier."""
    device = next(model.parameters()).device
    base = getattr(model, model.base_model_prefix)
    hidden = base(**{k: v.to(device) for k, v in enc.inputs.items()})[0]
    return model.classifier(model.dropout(pool_words(hidden, enc, pooling)))


def word_weights(labels: Any, o_id: int | None, o_weight: float | str | None) -> Any:
    """Per-word loss weights: 1, except O words (``o_id``) get ``o_weight`` (``"balanced"``: total O
    weight = number of non-O words of the batch; no re-weighting when the batch lacks either class)."""
    import torch

    weights = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    if o_id is None or o_weight is None:
        return weights
    is_o = labels == o_id
    if o_weight == "balanced":
        n_o, n_ent = int(is_o.sum()), int((~is_o).sum())
        if n_o == 0 or n_ent == 0:
            return weights
        return torch.where(is_o, torch.tensor(n_ent / n_o, device=labels.device), weights)
    return torch.where(is_o, torch.tensor(float(o_weight), device=labels.device), weights)


def weighted_loss(logits: Any, labels: Any, weights: Any, total_weight: float) -> Any:
    """``sum_i weights_i * CE(logits_i, labels_i) / total_weight``."""
    import torch.nn.functional as F

    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    return (ce * weights).sum() / total_weight
