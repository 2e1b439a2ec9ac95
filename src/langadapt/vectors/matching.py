"""Which tokenizer pieces correspond to which external words (OFA §3, HyperOFA §3.3): a piece is paired with
the words whose tokenization contains it (``tokenize``) or whose surface form contains its string
(``substring``); a piece's vector is the similarity-weighted mean of its words' vectors."""

from __future__ import annotations

import numpy as np
import torch

_ENCODE_BATCH = 8192  # words per tokenizer call


def special_ids(tokenizer, specials: dict[str, int]) -> set[int]:
    return set(specials.values()) | set(getattr(tokenizer, "all_special_ids", None) or [])


def word_variants(form: str) -> list[str]:
    """The strings a word is tokenized as (OFA's ``get_subword_embeddings_in_word_embedding_space``, which
    HyperOFA reuses): the form, the form after a space, and the capitalised form: without a space for a
    word-initial form (`` haus`` -> ``Haus``: the reference capitalises ``word[1:]``), after one otherwise
    (``haus`` -> `` Haus``)."""
    s = form.lstrip()
    if not s:
        return []
    cap = s[:1].upper() + s[1:]
    return list(dict.fromkeys([form, " " + form, cap if form != s else " " + cap]))


def _pairs_tokenize(tokenizer, forms: list[str], words: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(piece ids, word indices) such that the piece is in a segmentation of the word (`word_variants`)."""
    pieces: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for start in range(0, len(words), _ENCODE_BATCH):
        texts, who = [], []
        for i in words[start:start + _ENCODE_BATCH]:
            for v in word_variants(forms[i]):
                texts.append(v)
                who.append(i)
        if not texts:
            continue
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        lens = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=int(lens.sum()))
        pieces.append(flat)
        owners.append(np.repeat(np.asarray(who, dtype=np.int64), lens))
    if not pieces:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    p, w = np.concatenate(pieces), np.concatenate(owners)
    ok = (p >= 0) & (p < len(allowed))
    ok[ok] = allowed[p[ok]]
    return p[ok], w[ok]


def _pairs_substring(vocab: dict[str, int], forms: list[str], words: np.ndarray, allowed: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(piece ids, word indices) such that the piece (without ``▁``, case-insensitive) occurs in the word."""
    initial: dict[str, list[int]] = {}
    inner: dict[str, list[int]] = {}
    for piece, i in vocab.items():
        if 0 <= i < len(allowed) and allowed[i]:
            key = piece[1:] if piece.startswith("▁") else piece
            if key and not any(c.isspace() or c == "▁" for c in key):
                (initial if piece.startswith("▁") else inner).setdefault(key.lower(), []).append(i)
    longest = max((len(k) for k in (*initial, *inner)), default=0)
    pieces: list[int] = []
    owners: list[int] = []
    for w in words:
        text = forms[w].lower().strip()
        for a in range(len(text)):
            at_start = a == 0 or text[a - 1] == " "
            for b in range(a + 1, min(len(text), a + longest) + 1):
                sub = text[a:b]
                if sub[-1] == " ":
                    break
                for i in inner.get(sub, ()):
                    pieces.append(i)
                    owners.append(int(w))
                if at_start:
                    for i in initial.get(sub, ()):
                        pieces.append(i)
                        owners.append(int(w))
    return np.asarray(pieces, dtype=np.int64), np.asarray(owners, dtype=np.int64)


def piece_word_pairs(tokenizer, vocab: dict[str, int], forms: list[str], words: np.ndarray, allowed: np.ndarray,
                     match: str = "tokenize") -> tuple[np.ndarray, np.ndarray]:
    """(piece ids, word indices) of every match between an allowed piece and one of `words` (indices into
    `forms`), by OFA's rule (``tokenize``) or by substring; shared by OFA and HyperOFA so both see the same
    matches. Pairs may repeat."""
    if match == "tokenize":
        return _pairs_tokenize(tokenizer, forms, words, allowed)
    return _pairs_substring(vocab, forms, words, allowed)


def piece_vectors(tokenizer, vocab: dict[str, int], forms: list[str], words: np.ndarray, vectors: np.ndarray,
                  allowed: np.ndarray, match: str = "tokenize") -> tuple[torch.Tensor, torch.Tensor, int]:
    """(piece ids [n], mean word vectors [n, d_wv], number of words matched to some piece) for the pieces
    with ``allowed[id]`` that match at least one of the words `words` (indices into `forms`/`vectors`)."""
    p, w = piece_word_pairs(tokenizer, vocab, forms, words, allowed, match)
    if len(p) == 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, vectors.shape[1]), 0
    key = np.unique(p * len(forms) + w)
    p, w = key // len(forms), key % len(forms)
    ids, inv = np.unique(p, return_inverse=True)
    counts = np.bincount(inv).astype(np.float32)
    mat = torch.sparse_coo_tensor(torch.from_numpy(np.stack([inv, w])), torch.from_numpy(1.0 / counts[inv]),
                                  (len(ids), len(forms)), check_invariants=True)
    means = torch.sparse.mm(mat, torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)))
    return torch.from_numpy(ids), means, len(np.unique(w))
