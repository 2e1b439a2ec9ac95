"""OFA (Liu, Lin, Wang & Schütze, NAACL Findings 2024, "OFA: A framework of initializing unseen subword
embeddings for efficient large-scale multilingual continued pretraining"), the baseline of HyperOFA
(hyperofa.txt §1-§3, §4.3). Registered as ``ofa`` in `langadapt.vocab.base.INIT_METHODS`.

1. *Matching* (HyperOFA §3.3): a piece is matched with a word of the external multilingual vectors
   (``word_vectors``: an entry of the config's ``word_vectors`` section, `langadapt.vectors.base`) if the
   word contains it as a subword. ``match="tokenize"`` (default; OFA's ``get_subword_embeddings_in_word
   _embedding_space``): the piece occurs in the tokenizer's segmentation of the word, of the word after a
   space, or of the capitalized word after a space (the external words are lower-cased, the vocabulary
   is cased). ``match="substring"`` (HyperOFA's wording, literally): the piece's string without the
   leading ``▁`` occurs in the word, case-insensitively; a ``▁`` piece only at the start of a word.
   ColexNet+ word-boundary markers (``$``) become spaces first (`langadapt.vectors.base.surface_form`).
2. A piece's vector is the *mean* of its matched words' vectors ("in OFA, we simply do the average"),
   target pieces over the words of ``langs`` and source pieces over the words of ``source_langs``
   (language codes ``iso_Script`` or ``iso``, compared by ISO 639-3 code; default: every word, as OFA's
   released run ``source_language_set=None, target_language_set=None``); ``max_words`` reads only the
   first n words (OFA's ``max_n_word_vectors``).
3. Every still unassigned (non-special) target piece with a vector gets the convex combination of the
   source embeddings of its ``k`` most cosine-similar source pieces, with weights
   ``softmax(cos / temperature)`` (OFA ``create_target_embeddings``; defaults ``neighbors=10,
   temperature=0.1``). With ``dim`` the combination is taken in the factorized coordinate space
   (``factorize(source_emb, dim)``, OFA §3 / HyperOFA §3.2: 100, 200 or 400 in both papers) and mapped
   back with the primitives, i.e. the result lies in the span of the top-``dim`` primitives; without it
   (OFA's full-dimension variant, ``keep_dim=768`` for XLM-R) in the embedding space itself. Use the same
   value as the recipe's ``factorize`` key so that these rows are exact in the factorized model.
4. Pieces without any matched word stay unassigned: the chain's next method takes them (OFA and HyperOFA:
   ``random``, N(source mean, source std); HyperOFA §3.5). OFA copies overlapping pieces first, so the
   recipe is ``init: [ident, {ofa: {word_vectors: NAME}}, random]``.

Report (``init_stats.json`` -> ``report.ofa``, HyperOFA Table 2): ``candidates`` (unassigned non-special
pieces offered), ``predicted`` ("wise"), ``unmatched`` (left to the next method), ``source_pieces``
(source pieces with a vector: the neighbour pool), ``target_words`` / ``source_words`` (words read on each
side), ``mean_top_similarity``, and the settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from langadapt.core.errors import ConfigError
from langadapt.models.factorization import factorize
from langadapt.vectors.base import iso_filter, lang_iso, load_word_vectors, read_meta, surface_form
from langadapt.vocab.base import INIT_METHODS, InitContext

log = logging.getLogger(__name__)

MATCH_MODES = ("tokenize", "substring")
_CHUNK = 1024  # target pieces per similarity block
_ENCODE_BATCH = 8192


def _special_ids(tokenizer, specials: dict[str, int]) -> set[int]:
    return set(specials.values()) | set(getattr(tokenizer, "all_special_ids", None) or [])


def _pairs_tokenize(tokenizer, forms: list[str], words: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(piece ids, word indices) such that the piece is in a segmentation of the word (OFA's variants)."""
    pieces: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for start in range(0, len(words), _ENCODE_BATCH):
        texts, who = [], []
        for i in words[start:start + _ENCODE_BATCH]:
            s = forms[i].lstrip()
            if not s:
                continue
            for v in {forms[i], " " + s, " " + s[:1].upper() + s[1:]}:
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


def _word_subset(langs: list[str], codes: Sequence[str] | None, max_words: int | None) -> np.ndarray:
    n = len(langs) if max_words is None else min(max_words, len(langs))
    keep = iso_filter(codes)
    if keep is None:
        return np.arange(n, dtype=np.int64)
    return np.asarray([i for i in range(n) if lang_iso(langs[i]) in keep], dtype=np.int64)


def _check(word_vectors: Any, k: Any, temperature: Any, dim: Any, match: Any, max_words: Any) -> None:
    if not isinstance(word_vectors, str):
        raise ConfigError(f"ofa: 'word_vectors' must name an entry of the config's word_vectors, got {word_vectors!r}")
    for name, v in (("k", k), ("dim", dim), ("max_words", max_words)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"ofa: {name} must be a positive integer, got {v!r}")
    if k is None:
        raise ConfigError("ofa: k must be a positive integer, got None")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or temperature <= 0:
        raise ConfigError(f"ofa: temperature must be > 0, got {temperature!r}")
    if match not in MATCH_MODES:
        raise ConfigError(f"ofa: match must be one of {MATCH_MODES}, got {match!r}")


@INIT_METHODS.register("ofa")
def ofa(
    ctx: InitContext,
    unassigned: set[int],
    rng: torch.Generator,
    word_vectors: str | None = None,
    k: int = 10,  # OFA create_target_embeddings(neighbors=10); run_ofa default --neighbors 10
    temperature: float = 0.1,  # OFA create_target_embeddings(temperature=0.1)
    dim: int | None = None,  # OFA/HyperOFA factorized dimension D' in {100, 200, 400}; None = full dimension
    match: str = "tokenize",
    langs: Sequence[str] | None = None,
    source_langs: Sequence[str] | None = None,
    max_words: int | None = None,
):
    """OFA: convex combinations of the top-k source embeddings by external word-vector similarity."""
    _check(word_vectors, k, temperature, dim, match, max_words)
    t0 = time.perf_counter()
    if word_vectors not in ctx.resources.word_vectors:
        raise ConfigError(f"ofa: word vectors {word_vectors!r} were not provided to the init job")
    directory = ctx.resources.word_vectors[word_vectors]
    wv = load_word_vectors(directory)
    marker = read_meta(directory).get("boundary_marker")
    forms = [surface_form(w, marker) for w in wv.words]

    n_src = len(ctx.source_emb)
    src_allowed = np.ones(n_src, dtype=bool)
    src_allowed[[i for i in _special_ids(ctx.source_tokenizer, ctx.source_specials) if 0 <= i < n_src]] = False
    n_tgt = max(ctx.target_vocab.values()) + 1
    tgt_special = _special_ids(ctx.target_tokenizer, ctx.target_specials)
    candidates = sorted(i for i in unassigned if i not in tgt_special)
    tgt_allowed = np.zeros(n_tgt, dtype=bool)
    tgt_allowed[candidates] = True
    if match == "tokenize" and (ctx.source_tokenizer is None or ctx.target_tokenizer is None):
        raise ConfigError("ofa: match='tokenize' needs both tokenizers in the init context")

    tgt_words = _word_subset(wv.langs, langs, max_words)
    src_words = _word_subset(wv.langs, source_langs, max_words)
    t_ids, t_vec, n_tw = piece_vectors(ctx.target_tokenizer, ctx.target_vocab, forms, tgt_words, wv.vectors,
                                       tgt_allowed, match)
    s_ids, s_vec, n_sw = piece_vectors(ctx.source_tokenizer, ctx.source_vocab, forms, src_words, wv.vectors,
                                       src_allowed, match)
    report: dict[str, Any] = {
        "word_vectors": word_vectors, "match": match, "k": k, "temperature": temperature, "dim": dim,
        "target_words": len(tgt_words), "source_words": len(src_words), "target_words_matched": n_tw,
        "source_words_matched": n_sw, "source_pieces": len(s_ids), "candidates": len(candidates),
    }  # fmt: skip
    ctx.report["ofa"] = report
    if len(t_ids) == 0 or len(s_ids) == 0:
        report.update(predicted=0, unmatched=len(candidates), seconds=round(time.perf_counter() - t0, 2))
        log.warning("ofa: no target piece (%d) or no source piece (%d) matched a word of %s", len(t_ids),
                    len(s_ids), word_vectors)
        return {}

    if dim is not None and dim != ctx.dim:
        coords, prims = factorize(ctx.source_emb, dim)  # ConfigError unless 1 <= dim <= min(V, d)
        pool = coords[s_ids]
    else:
        pool, prims = ctx.source_emb[s_ids], None
    kk = min(k, len(s_ids))
    s_unit = torch.nn.functional.normalize(s_vec, dim=1)
    rows, top_sims = [], []
    for start in range(0, len(t_ids), _CHUNK):
        t_unit = torch.nn.functional.normalize(t_vec[start:start + _CHUNK], dim=1)
        top = (t_unit @ s_unit.T).topk(kk, dim=1)
        weights = torch.softmax(top.values.double() / temperature, dim=1).float()
        rows.append(torch.einsum("nk,nkd->nd", weights, pool[top.indices]))
        top_sims.append(top.values[:, 0])
    out = torch.cat(rows)
    if prims is not None:
        out = out @ prims
    report.update(predicted=len(t_ids), unmatched=len(candidates) - len(t_ids),
                  mean_top_similarity=round(float(torch.cat(top_sims).mean()), 4),
                  seconds=round(time.perf_counter() - t0, 2))
    log.info("ofa: %d of %d candidate pieces predicted from %s (k=%d, temperature=%g, dim=%s)", len(t_ids),
             len(candidates), word_vectors, kk, temperature, dim)
    return t_ids, out
