"""FOCUS (Dobler & de Melo, EMNLP 2023), as used by the vocabulary-specialization paper (Sec. 3.2,
"FOCUS Re-initialization", footnote 4).

An auxiliary fastText model is trained on the target texts *tokenized with the new tokenizer* (one line =
the new tokenizer's pieces separated by spaces; footnote 4: "trained on the same set as the vocabulary
training data"), so that pieces of the new vocabulary get vectors in one space. *Overlapping* pieces are
target pieces whose string is a source piece (special tokens excluded, as in `embedding_init.ident_pairs`);
their source embeddings are known, and FOCUS copies them (FOCUS §3: "we copy the embeddings of overlapping
tokens"; vocabulary paper §3.2). Every other piece ``t`` still unassigned gets the convex combination

    e_t = sum_j sparsemax(cos(f_t, f_j))_j * E_src[j]      over the overlapping pieces j,

``f`` being the fastText vectors. Registered as ``focus`` in `langadapt.vocab.base.INIT_METHODS`. The
overlapping pieces still unassigned when FOCUS runs are copied here, so ``init: [focus, random]`` is FOCUS
as the paper has it; with ``[ident, focus, random]`` IDENT has copied them (and the special tokens) first.
``random``, the N(source mean, source std) fallback, takes the pieces without a fastText vector, as the
reference implementation does.

Overlap rule: identical piece strings, which on five language pairs (Latin, Hangul, Cyrillic, Devanagari +
Bengali, Han + Kana; benchmarks/focus_vs_deepfocus.py) finds exactly the pairs of ``deepfocus``'s canonical
forms. One deliberate difference: ``deepfocus`` also uses special tokens as anchors when the fastText model
has a vector for them, and fastText appends ``</s>`` to every training line, so that vector means "end of a
line"; it then blends the source model's ``</s>`` row into pieces that close sentences (Korean 셀라,
"Selah", ending psalm verses: 1 row of 3,519 on Swahili + Korean). Special tokens stay out of the
combination here: their rows are copied by role, and FOCUS (§3) combines the overlapping *pieces*.

Defaults follow the reference implementation ``deepfocus`` 1.0.1 (``deepfocus.FOCUS`` and
``deepfocus.fasttext_embs.train_fasttext``): fastText CBOW ("more closely aligned with Masked Language
Modeling"), ``dim=100``, ``epochs=3``, ``min_count=10``, ``neg=10``, everything else fastText's default
(``bucket=2,000,000``, character n-grams 3-6, lr 0.05, window 5). Like ``deepfocus``, a piece that is not
in the fastText vocabulary (fewer than ``min_count`` occurrences) or whose vector is zero has no auxiliary
vector: such a new piece is left to the next method of the chain and such an overlapping piece is not used
in the combination (``oov="skip"``). ``oov="ngrams"`` instead gives every piece fastText's out-of-vocabulary
vector built from its character n-grams (not what ``deepfocus`` does).

The fastText model is trained by `langadapt.vectors.fasttext.train_fasttext` (a fresh interpreter with zeroed
large allocations; ``threads=1``, the default here, is bit-for-bit reproducible; more threads are faster
but not). Lines are shuffled with the chain's seed (``rng.initial_seed()``; the generator is not advanced).

Report (``init_stats.json`` -> ``report.focus``): ``overlap`` (overlapping pieces), ``anchors`` (those with
a fastText vector, i.e. the candidates of the combination), ``assigned``, ``mean_nonzero`` / ``max_nonzero``
(nonzero sparsemax weights per assigned piece), ``no_vector`` (new pieces left unassigned for lack of a
fastText vector), ``copied`` (overlapping pieces this method found unassigned and copied),
``oov``, ``fasttext`` (training settings, fastText vocabulary size and lines; or the given model's path).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.vocab.base import INIT_METHODS, InitContext, ident_pairs

log = logging.getLogger(__name__)

#: FOCUS defaults (deepfocus 1.0.1: ``FOCUS(fasttext_model_epochs=3, fasttext_model_dim=100,
#: fasttext_model_min_count=10)``; ``train_fasttext``: ``model="cbow", neg=10``; bucket = fastText default).
DEFAULTS: dict[str, Any] = {
    "dim": 100,
    "epochs": 3,
    "min_count": 10,
    "model": "cbow",
    "neg": 10,
    "bucket": 2_000_000,
}
OOV_MODES = ("skip", "ngrams")
_CHUNK = 2048  # new pieces per similarity block ([chunk, n_anchors] float64)
_TOPK = 64  # partial sort first in sparsemax (FOCUS supports are ~10-60 of thousands of anchors)


def sparsemax(z: torch.Tensor, dim: int = -1, k: int | None = None) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo, 2016): the Euclidean projection of `z` onto the probability simplex
    along `dim`. ``p_i = max(z_i - tau, 0)`` with ``tau`` chosen so that ``sum(p) = 1``; entries more than
    about 1 below the largest get exactly 0. Tied entries get equal weights.

    `k` (optional, exact either way): find the threshold among the `k` largest entries first (a partial
    sort, much faster when the support is small, as FOCUS's is); rows whose support may be larger are
    redone with a full sort.
    """
    z = z.transpose(dim, -1)
    z = z - z.max(dim=-1, keepdim=True).values  # shift-invariant; as entmax does, for stability
    tau = _sparsemax_threshold(z, k if k and k < z.shape[-1] else None)
    return (z - tau).clamp_min(0).transpose(dim, -1)


def _sparsemax_threshold(z: torch.Tensor, k: int | None) -> torch.Tensor:
    top = z.topk(k, dim=-1).values if k else torch.sort(z, dim=-1, descending=True).values
    cums = top.cumsum(-1) - 1
    rank = torch.arange(1, top.shape[-1] + 1, dtype=z.dtype, device=z.device)
    support = (rank * top > cums).sum(-1, keepdim=True)  # the support is a prefix of the sorted entries
    tau = cums.gather(-1, support - 1) / support.to(z.dtype)
    if k:
        redo = (support == k).squeeze(-1)  # the condition held for all k: the support may go on
        if redo.any():
            tau[redo] = _sparsemax_threshold(z[redo], None)
    return tau


def focus_combine(
    new_vectors: torch.Tensor, anchor_vectors: torch.Tensor, anchor_embeddings: torch.Tensor, chunk: int = _CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """FOCUS's combination step: rows ``[n_new, d]`` (float32) and the number of nonzero weights per row.

    Row ``i`` is ``sum_j w_ij * anchor_embeddings[j]`` with ``w_i = sparsemax(cos(new_vectors[i],
    anchor_vectors[j]))``; similarities, weights and sums are computed in float64. Vectors must be nonzero.
    """
    anchors = torch.nn.functional.normalize(anchor_vectors.double(), dim=1)
    emb = anchor_embeddings.double()
    rows, nnz = [], []
    for start in range(0, len(new_vectors), chunk):
        block = torch.nn.functional.normalize(new_vectors[start : start + chunk].double(), dim=1)
        w = sparsemax(block @ anchors.T, k=_TOPK)
        rows.append((w @ emb).float())
        nnz.append((w > 0).sum(1))
    if not rows:
        return torch.zeros(0, anchor_embeddings.shape[1]), torch.zeros(0, dtype=torch.long)
    return torch.cat(rows), torch.cat(nnz)


def tokenized_lines(tokenizer: Any, texts: Sequence[str]) -> list[str]:
    """Each non-empty text as the tokenizer's pieces joined by single spaces (no special tokens added)."""
    lines = [t for t in texts if t and t.strip()]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        encodings = backend.encode_batch(lines, add_special_tokens=False)
        pieces = [e.tokens for e in encodings]
    else:
        pieces = [tokenizer.tokenize(t) for t in lines]
    return [" ".join(p) for p in pieces if p]


def train_token_fasttext(
    tokenizer: Any,
    texts: Sequence[str],
    out_path: Path,
    *,
    dim: int = DEFAULTS["dim"],
    epochs: int = DEFAULTS["epochs"],
    min_count: int = DEFAULTS["min_count"],
    model: str = DEFAULTS["model"],
    neg: int = DEFAULTS["neg"],
    bucket: int = DEFAULTS["bucket"],
    threads: int = 1,
    seed: int = 0,
) -> dict[str, int]:
    """Train FOCUS's auxiliary token-level fastText model on `texts` tokenized by `tokenizer` and save it
    (binary) to `out_path`. Returns ``{"lines", "words", "dim"}``; DataError if no line has a piece."""
    from langadapt.vectors.fasttext import train_fasttext

    lines = tokenized_lines(tokenizer, texts)
    if not lines:
        raise DataError(f"FOCUS: the target texts ({len(texts)} lines) contain no piece to train fastText on")
    info = train_fasttext(
        lines, out_path, dim=dim, epochs=epochs, min_count=min_count, seed=seed, threads=threads,
        model=model, neg=neg, bucket=bucket,
    )  # fmt: skip
    return {"lines": len(lines), **info}


def token_vectors(model_path: Path, pieces: Sequence[str], oov: str = "skip") -> tuple[np.ndarray, np.ndarray]:
    """fastText vectors ``[n, dim]`` of `pieces` and a mask of the pieces that have one: in the fastText
    vocabulary (``oov="skip"``, as deepfocus) or any (``"ngrams"``), and not the zero vector."""
    import fasttext

    ft = fasttext.load_model(str(model_path))
    vecs = np.zeros((len(pieces), ft.get_dimension()), dtype=np.float32)
    has = np.zeros(len(pieces), dtype=bool)
    for i, piece in enumerate(pieces):
        if oov == "skip" and ft.get_word_id(piece) < 0:
            continue
        vecs[i] = ft.get_word_vector(piece)
        has[i] = bool(np.abs(vecs[i]).sum() > 0)
    return vecs, has


def _check_params(p: Mapping[str, Any], oov: str, threads: int) -> None:
    for key in ("dim", "epochs", "min_count", "neg", "bucket"):
        check_int(p[key], f"init method 'focus': {key}")
    if p["model"] not in ("cbow", "skipgram"):
        raise ConfigError(f"init method 'focus': model must be 'cbow' or 'skipgram', got {p['model']!r}")
    if oov not in OOV_MODES:
        raise ConfigError(f"init method 'focus': oov must be one of {', '.join(OOV_MODES)}, got {oov!r}")
    check_int(threads, "init method 'focus': threads (0 = the job's)", low=0)


@INIT_METHODS.register("focus")
def focus(
    ctx: InitContext,
    unassigned: set[int],
    rng: torch.Generator,
    dim: int = DEFAULTS["dim"],
    epochs: int = DEFAULTS["epochs"],
    min_count: int = DEFAULTS["min_count"],
    model: str = DEFAULTS["model"],
    neg: int = DEFAULTS["neg"],
    bucket: int = DEFAULTS["bucket"],
    oov: str = "skip",
    threads: int = 1,
    fasttext_model: str | None = None,
):
    """FOCUS re-initialization of the unassigned non-overlapping pieces (see the module docstring).

    ``threads``: fastText training threads; 1 (default) is reproducible, 0 uses the job's threads.
    ``fasttext_model``: path of an already trained token-level fastText model (``.bin``) to use instead of
    training one (deepfocus's ``fasttext_model_path``); the texts and the training parameters are then unused.

    Raises:
        ConfigError: a bad parameter, no target tokenizer, or no texts given at all.
        DataError: the texts are empty, no overlapping piece, or no overlapping piece has a fastText vector.
    """
    t0 = time.perf_counter()
    ft_params = {"dim": dim, "epochs": epochs, "min_count": min_count, "model": model, "neg": neg,
                 "bucket": bucket}  # fmt: skip
    _check_params(ft_params, oov, threads)
    texts_by_lang = ctx.resources.texts
    texts: list[str] = []
    if fasttext_model is not None:
        if not Path(fasttext_model).is_file():
            raise DataError(f"init method 'focus': fastText model {fasttext_model} does not exist")
    elif texts_by_lang is None:
        raise ConfigError("init method 'focus' needs the target texts (resources.texts) to train fastText on")
    else:
        texts = [t for lang in sorted(texts_by_lang) for t in texts_by_lang[lang]]
        if not any(t and t.strip() for t in texts):
            raise DataError(f"init method 'focus': the target texts of {sorted(texts_by_lang)} are empty")
    if ctx.target_tokenizer is None:
        raise ConfigError("init method 'focus' needs the target tokenizer (InitContext.target_tokenizer)")

    specials = set(ctx.target_specials.values()) | set(getattr(ctx.target_tokenizer, "all_special_ids", []))
    overlap = {t: s for t, s in ident_pairs(ctx).items() if t not in specials}
    if not overlap:
        raise DataError(
            "init method 'focus': the target tokenizer shares no (non-special) piece with the source "
            "tokenizer, so there is nothing to combine; use another method (e.g. random)"
        )
    piece_of = {i: p for p, i in ctx.target_vocab.items()}
    new_ids = sorted(t for t in unassigned if t in piece_of and t not in specials and t not in overlap)
    anchor_ids = sorted(overlap)
    copies: dict[int, Any] = {t: s for t, s in overlap.items() if t in unassigned}  # FOCUS copies them
    report: dict[str, Any] = {"overlap": len(overlap), "copied": len(copies), "oov": oov,
                              "fasttext": dict(ft_params)}  # fmt: skip
    ctx.report["focus"] = report
    if not new_ids:
        report.update(anchors=0, assigned=0, no_vector=0, mean_nonzero=0.0, max_nonzero=0)
        return copies

    pieces = [piece_of[i] for i in anchor_ids + new_ids]
    if fasttext_model is not None:
        report["fasttext"] = {"model_path": str(fasttext_model)}
        vecs, has = token_vectors(Path(fasttext_model), pieces, oov)
    else:
        n_threads = threads or max(1, int(ctx.resources.threads))
        with tempfile.TemporaryDirectory(dir=ctx.resources.workdir, prefix="focus-") as tmp:
            model_path = Path(tmp) / "fasttext.bin"
            info = train_token_fasttext(
                ctx.target_tokenizer, texts, model_path, threads=n_threads, seed=rng.initial_seed(), **ft_params
            )
            report["fasttext"].update(threads=n_threads, words=info["words"], lines=info["lines"])
            vecs, has = token_vectors(model_path, pieces, oov)
    n_a = len(anchor_ids)
    a_has, n_has = has[:n_a], has[n_a:]
    if not a_has.any():
        raise DataError(
            f"init method 'focus': none of the {n_a} overlapping pieces has a fastText vector (oov={oov!r}, "
            f"min_count={min_count}); more target text, a lower min_count or oov='ngrams' would help"
        )
    src_rows = torch.tensor([overlap[t] for t in np.asarray(anchor_ids)[a_has]], dtype=torch.long)
    rows, nnz = focus_combine(
        torch.from_numpy(vecs[n_a:][n_has]), torch.from_numpy(vecs[:n_a][a_has]), ctx.source_emb[src_rows]
    )
    ids = torch.tensor(np.asarray(new_ids)[n_has], dtype=torch.long)
    report.update(
        anchors=int(a_has.sum()),
        assigned=len(ids),
        no_vector=int((~n_has).sum()),
        mean_nonzero=float(nnz.double().mean()) if len(nnz) else 0.0,
        max_nonzero=int(nnz.max()) if len(nnz) else 0,
    )
    log.info("focus: %s (%.1f s)", report, time.perf_counter() - t0)
    return {**copies, **{int(i): row for i, row in zip(ids.tolist(), rows, strict=True)}}
