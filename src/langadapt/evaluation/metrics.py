"""Evaluation metrics: top-k retrieval accuracy (hand-written: its tie rule is ours), accuracy, and
macro-F1 as ``sklearn.metrics.f1_score(average="macro", zero_division=0)``, which is what the Taxi1500 /
SIB200 evaluation scripts report (scikit-learn comes with seqeval, the entity-F1 library).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def topk_accuracy(sim: np.ndarray, gold: np.ndarray | Sequence[int], ks: Iterable[int]) -> dict[int, float]:
    """Fraction of queries whose gold candidate is among the ``k`` most similar, for each ``k``.

    Args:
        sim: similarity matrix ``[n_queries, n_candidates]`` (larger = more similar).
        gold: for every query, the column index of its correct candidate.
        ks: the cut-offs (each >= 1).

    Ties are broken uniformly at random *in expectation*: if ``g`` candidates score strictly higher
    than the gold one and ``t`` candidates (gold included) score exactly the same, the gold one is
    ranked in the top ``k`` with probability ``clip((k - g) / t, 0, 1)``. So a collapsed encoder that
    gives every sentence the same vector scores chance level (``k / n``), not 1.0 as an "optimistic"
    tie rule would give, and a verse duplicated among the candidates is not counted as always wrong.
    """
    sim = np.asarray(sim, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    if sim.ndim != 2:
        raise ValueError(f"sim must be 2-D [n_queries, n_candidates], got shape {sim.shape}")
    n_q, n_c = sim.shape
    if gold.shape != (n_q,):
        raise ValueError(f"gold must have one index per query ({n_q}), got shape {gold.shape}")
    if n_q == 0:
        raise ValueError("top-k accuracy of zero queries is undefined")
    if gold.min() < 0 or gold.max() >= n_c:
        raise ValueError(f"gold indices must lie in [0, {n_c}), got range [{gold.min()}, {gold.max()}]")
    gold_sim = sim[np.arange(n_q), gold][:, None]
    greater = (sim > gold_sim).sum(axis=1)
    tied = (sim == gold_sim).sum(axis=1)  # >= 1: the gold candidate itself
    out: dict[int, float] = {}
    for k in ks:
        k = int(k)
        if k < 1:
            raise ValueError(f"top-k cut-off must be >= 1, got {k}")
        p_hit = np.clip((k - greater) / tied, 0.0, 1.0)
        out[k] = float(p_hit.mean())
    return out


def accuracy(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray) -> float:
    """Fraction of positions where ``y_pred`` equals ``y_true``."""
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean())


def macro_f1(
    y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray, labels: Iterable | None = None
) -> float:
    """Unweighted mean over classes of the per-class F1 score.

    Classes are ``labels`` when given, else every label occurring in ``y_true`` or ``y_pred`` (as
    scikit-learn does). A class with no true and no predicted item has F1 = 0 (scikit-learn's
    ``zero_division=0``); so do classes that are only predicted or only true.
    """
    from sklearn.metrics import f1_score

    t, p = _pair(y_true, y_pred)
    classes = np.unique(np.concatenate([t, p])) if labels is None else np.asarray(list(labels))
    if classes.size == 0:
        raise ValueError("macro-F1 over zero classes is undefined")
    return float(f1_score(t, p, labels=classes, average="macro", zero_division=0))


def _pair(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("metric of zero items is undefined")
    return t, p
