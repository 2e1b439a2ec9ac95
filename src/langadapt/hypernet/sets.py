"""The hypernetwork's inputs and loss (HyperOFA §3.3-3.4): for each tokenizer piece the set of external words that contain it, sampled to a bounded set size, padded into a batch; the network's prediction and the contrastive + MSE loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from langadapt.core.errors import ConfigError
from langadapt.hypernet.settings import MATCH_MODES


@dataclass
class WordSets:
    """Matched words of token ids, compressed: the set of ``ids[k]`` is ``members[offsets[k]:offsets[k+1]]``
    (word indices, ascending). Only ids with at least one word appear; `ids` ascend."""

    ids: np.ndarray  # int64 [n]
    offsets: np.ndarray  # int64 [n + 1]
    members: np.ndarray  # int64 [offsets[-1]]

    def __len__(self) -> int:
        return len(self.ids)

    def words_of(self, k: int) -> np.ndarray:
        return self.members[self.offsets[k] : self.offsets[k + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def as_lists(self) -> list[np.ndarray]:
        return [self.words_of(k) for k in range(len(self))]


def piece_word_sets(words: Sequence[str], tokenizer: Any, pieces: Sequence[int] | None = None,
                    match: str = "tokenize", boundary_marker: str | None = None) -> WordSets:
    """For each token id of `tokenizer` (the non-special ones, or those of `pieces`), the indices of the
    `words` that contain it (HyperOFA §3.3: "a token is matched with a word if that word contains the token
    as a subword").

    The matching itself is OFA's (`langadapt.vocab.methods.ofa`, shared so that both methods see the same
    sets): ``match="tokenize"`` (OFA/HyperOFA code): the piece occurs in the tokenizer's segmentation of
    the word, of the word after a space, or of the capitalized word after a space (external words are
    lower-cased, vocabularies are cased: ``▁The`` matches ``the``); ``match="substring"``: the piece
    without ``▁`` occurs in the word, case-insensitively, a ``▁`` piece only at the start of a word.
    `boundary_marker` (word-vector ``meta.json``; ColexNet+ ``$``) becomes spaces first
    (`langadapt.vectors.base.surface_form`). Special tokens never match.
    """
    from langadapt.vectors.base import surface_form
    from langadapt.vectors.matching import piece_word_pairs

    if match not in MATCH_MODES:
        raise ConfigError(f"piece matching: unknown mode {match!r}; known: {', '.join(MATCH_MODES)}")
    vocab: dict[str, int] = dict(tokenizer.get_vocab())
    n_ids = max(vocab.values(), default=-1) + 1
    allowed = np.zeros(n_ids, dtype=bool)
    allowed[[i for i in (vocab.values() if pieces is None else pieces) if 0 <= i < n_ids]] = True
    allowed[[i for i in getattr(tokenizer, "all_special_ids", []) if 0 <= i < n_ids]] = False
    forms = [surface_form(w, boundary_marker) for w in words]
    all_words = np.arange(len(forms), dtype=np.int64)
    pid, wid = piece_word_pairs(tokenizer, vocab, forms, all_words, allowed, match)
    n = max(len(forms), 1)
    pairs = np.unique(pid * n + wid)  # sorted by piece, then word; duplicates removed
    pid, wid = pairs // n, pairs % n
    ids, starts = np.unique(pid, return_index=True)
    return WordSets(ids.astype(np.int64), np.append(starts, len(pid)).astype(np.int64), wid.astype(np.int64))


def choose_words(members: np.ndarray, cfg: dict[str, Any], rng: np.random.Generator | None) -> np.ndarray:
    """The words of one set that the network sees.

    Training (`rng` given; HyperOFA §3.4, App. A.3): the set is shuffled; with probability
    ``augment_prob`` a set of more than ``augment_min_size`` words keeps a random ``ceil(u * n)`` of them,
    ``u ~ U(augment_min_fraction, 1)`` (so at least 50% by default); then at most ``max_set``.
    Evaluation/inference (``rng=None``): deterministic, the words in index order, thinned evenly to
    ``max_set``.
    """
    n, max_set = len(members), cfg["max_set"]
    if rng is None:
        if n > max_set:
            members = members[np.linspace(0, n - 1, max_set).round().astype(np.int64)]
        return members
    chosen = rng.permutation(members)
    if n > cfg["augment_min_size"] and rng.random() < cfg["augment_prob"]:
        keep = max(1, math.ceil(n * rng.uniform(cfg["augment_min_fraction"], 1.0)))
        chosen = chosen[:keep]
    return chosen[:max_set]


def collate(chosen: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Word indices ``[B, n]`` (padded with 0) and a left-aligned mask ``[B, n]`` for a batch of sets."""
    n = max(1, max((len(c) for c in chosen), default=1))
    idx = torch.zeros(len(chosen), n, dtype=torch.long)
    mask = torch.zeros(len(chosen), n, dtype=torch.bool)
    for b, c in enumerate(chosen):
        idx[b, : len(c)] = torch.from_numpy(np.asarray(c, dtype=np.int64))
        mask[b, : len(c)] = True
    return idx, mask


@torch.no_grad()
def predict(net: nn.Module, vectors: torch.Tensor, sets: Sequence[np.ndarray], cfg: dict[str, Any],
            batch_size: int = 512, device: torch.device | str = "cpu") -> torch.Tensor:
    """Network outputs ``[len(sets), d_out]`` (eval mode, deterministic word choice, batches by set size)."""
    net.eval()
    chosen = [choose_words(s, cfg, None) for s in sets]
    order = np.argsort([len(c) for c in chosen], kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        idx, mask = collate([chosen[k] for k in part])
        pred = net(vectors[idx.to(vectors.device)].to(device), mask.to(device)).float().cpu()
        if out is None:
            out = torch.zeros(len(chosen), pred.shape[1])
        out[torch.from_numpy(part)] = pred
    return out if out is not None else torch.zeros(0, 0)


def hyperofa_loss(
    pred: torch.Tensor, target: torch.Tensor, lam: float, tau: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HyperOFA §3.4: ``lam * L_c + (1 - lam) * L_L1``; returns (loss, L_c, L_L1).

    ``L_c`` is InfoNCE over the batch: for prediction i the positive is target i and the other targets are
    negatives, with cosine similarity / `tau`. ``L_L1`` is the *normalized* L1 loss of the authors' code:
    mean absolute error divided by the mean absolute target value (scale-free).
    """
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / tau
    l_c = F.cross_entropy(logits, torch.arange(len(pred), device=pred.device))
    l_1 = (pred - target).abs().mean() / target.abs().mean().clamp(min=1e-12)
    return lam * l_c + (1 - lam) * l_1, l_c, l_1
