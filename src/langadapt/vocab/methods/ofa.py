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

from langadapt.core.checks import check_int, check_number
from langadapt.core.errors import ConfigError
from langadapt.models.factorization import factorize
from langadapt.vectors.base import iso_filter, lang_iso, load_word_vectors, read_meta, surface_form
from langadapt.vectors.matching import piece_vectors, special_ids
from langadapt.vocab.base import INIT_METHODS, InitContext

log = logging.getLogger(__name__)

MATCH_MODES = ("tokenize", "substring")
_CHUNK = 1024  # target pieces per similarity block


def _word_subset(langs: list[str], codes: Sequence[str] | None, max_words: int | None) -> np.ndarray:
    n = len(langs) if max_words is None else min(max_words, len(langs))
    keep = iso_filter(codes)
    if keep is None:
        return np.arange(n, dtype=np.int64)
    return np.asarray([i for i in range(n) if lang_iso(langs[i]) in keep], dtype=np.int64)


def _check(word_vectors: Any, k: Any, temperature: Any, dim: Any, match: Any, max_words: Any) -> None:
    if not isinstance(word_vectors, str):
        raise ConfigError(f"ofa: 'word_vectors' must name an entry of the config's word_vectors, got {word_vectors!r}")
    check_int(k, "ofa: k")
    check_int(dim, "ofa: dim", optional=True)
    check_int(max_words, "ofa: max_words", optional=True)
    check_number(temperature, "ofa: temperature", 0, low_open=True)
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
    src_allowed[[i for i in special_ids(ctx.source_tokenizer, ctx.source_specials) if 0 <= i < n_src]] = False
    n_tgt = max(ctx.target_vocab.values()) + 1
    tgt_special = special_ids(ctx.target_tokenizer, ctx.target_specials)
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
