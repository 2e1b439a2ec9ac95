"""HyperOFA (hyperofa.txt, §3.5): new target pieces predicted by the trained hypernetwork.

Recipe: ``init: [ident, {hyperofa: {word_vectors: <entry>}}, random]`` -- the paper's three steps:
pieces shared with the source are copied (``ident``), every remaining piece that matches at least one word
of the external word vectors gets ``HN(W_{t_j}) @ P`` (the hypernetwork's coordinates mapped back by the
primitives of the factorized source embeddings, `langadapt.hypernet.training`), and the rest stays unassigned for
the chain's ``random`` (§3.5: "randomly initialized from N(E[F^s], Var[F^s])", our ``random``).
The word vectors must be the entry the hypernetwork was trained on (``hypernetwork.word_vectors``);
matching (`langadapt.hypernet.sets.piece_word_sets`) uses the target tokenizer and the hypernetwork's mode.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.vocab.base import INIT_METHODS, InitContext

log = logging.getLogger(__name__)


@INIT_METHODS.register("hyperofa")
def hyperofa(ctx: InitContext, unassigned: set[int], rng: torch.Generator, word_vectors: str | None = None,
             batch_size: int = 512, device: str = "auto"):
    """Predict the unassigned, non-special target pieces with >= 1 matched word (HyperOFA §3.5 step 2).

    Parameters: ``word_vectors`` (name of the config's ``word_vectors`` entry; required), ``batch_size``
    (sets per forward pass) and ``device`` (``auto``: CUDA when available). ``ctx.report["hyperofa"]``:
    ``copied`` (target ids assigned before this method: kept source rows and earlier methods such as
    ``ident``), ``predicted``, ``unmatched`` (unassigned pieces without a matched word, left to later
    methods, i.e. HyperOFA Table 2's "random"), ``special`` (unassigned special tokens, also left), the
    median number of matched words of the predicted pieces, the hypernetwork's directory and metrics.
    """
    from langadapt.hypernet.sets import piece_word_sets
    from langadapt.hypernet.training import load_trained_hypernet
    from langadapt.vectors.base import load_word_vectors, read_meta

    check_int(batch_size, "init method 'hyperofa': batch_size")
    if not isinstance(word_vectors, str):
        raise ConfigError("init method 'hyperofa' needs a 'word_vectors' parameter naming an entry of the "
                          "config's word_vectors section, e.g. {hyperofa: {word_vectors: colexnet}}")
    hn_dir = ctx.resources.hypernet_dir
    if hn_dir is None:
        raise ConfigError("init method 'hyperofa' needs the trained hypernetwork (resources.hypernet_dir)")
    if word_vectors not in ctx.resources.word_vectors:
        raise ConfigError(f"init method 'hyperofa': word vectors {word_vectors!r} are not among the inputs "
                          f"({sorted(ctx.resources.word_vectors)})")
    if ctx.target_tokenizer is None:
        raise ConfigError("init method 'hyperofa' needs the target tokenizer (InitContext.target_tokenizer)")
    wv_dir = ctx.resources.word_vectors[word_vectors]
    trained = load_trained_hypernet(hn_dir)
    trained_on = trained.meta["word_vectors"]["name"]
    if trained_on != word_vectors:
        raise ConfigError(f"init method 'hyperofa': word vectors {word_vectors!r}, but the hypernetwork in "
                          f"{hn_dir} was trained on {trained_on!r} (hypernetwork.word_vectors)")
    wv = load_word_vectors(wv_dir)
    d_in = trained.meta["model_params"]["d_in"]
    if wv.dim != d_in:
        raise DataError(f"init method 'hyperofa': word vectors {wv_dir} have dimension {wv.dim}, the "
                        f"hypernetwork in {hn_dir} expects {d_in}")
    if trained.primitives.shape[1] != ctx.dim:
        raise DataError(f"init method 'hyperofa': the hypernetwork in {hn_dir} predicts embeddings of size "
                        f"{trained.primitives.shape[1]}, the source model has {ctx.dim}")
    tok = ctx.target_tokenizer
    special = set(ctx.target_specials.values()) | {int(i) for i in getattr(tok, "all_special_ids", [])}
    candidates = sorted(i for i in unassigned if i not in special)
    sets = piece_word_sets(wv.words, tok, pieces=candidates, match=trained.cfg["match"],
                           boundary_marker=read_meta(wv_dir).get("boundary_marker"))
    keep = np.isin(sets.ids, candidates)  # ids beyond the vocabulary dict never reach here; be safe
    ids = sets.ids[keep]
    lists = [s for s, k in zip(sets.as_lists(), keep, strict=True) if k]
    if candidates and not len(ids):
        raise DataError(f"init method 'hyperofa': none of the {len(candidates)} unassigned target pieces "
                        f"matches a word of {wv_dir} ({len(wv)} words, match={trained.cfg['match']}); do the "
                        f"word vectors cover the target languages?")
    rows = trained.embeddings(torch.from_numpy(wv.vectors), lists, batch_size=batch_size, device=device)
    n_total = max(ctx.target_vocab.values()) + 1
    ctx.report["hyperofa"] = {
        "copied": n_total - len(unassigned),
        "predicted": len(ids),
        "unmatched": len(candidates) - len(ids),
        "special": len(unassigned) - len(candidates),
        "median_words_per_piece": float(np.median([len(s) for s in lists])) if lists else 0.0,
        "hypernet": str(hn_dir),
        "hypernet_heldout_cosine": trained.meta["metrics"].get("heldout_cosine"),
        "hypernet_baseline_cosine": trained.meta["metrics"].get("baseline_cosine"),
    }
    log.info("hyperofa: %s", ctx.report["hyperofa"])
    return torch.from_numpy(ids.astype(np.int64)), rows
