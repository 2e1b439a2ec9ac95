"""Language sampling probabilities for multilingual training: multinomial with temperature.

q_i ∝ p_i^α with p_i = n_i / Σ_j n_j (Conneau & Lample 2019, XLM; Conneau et al. 2020, XLM-R).
α = 1 keeps the natural distribution, α = 0 is uniform; smaller α up-samples low-resource languages.
Paper values: LangSAMP samples "from a multinomial distribution with a temperature of 0.3" (langsamp.txt,
§ continued pretraining, α = 0.3); the vocabulary-specialization paper uses "α = 0.2, following Conneau
and Lample (2019)" (vocab-specialization.txt, § multilingual training), sampling sentence-wise.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from langadapt.core.atomic import atomic_files
from langadapt.core.checks import check_number, is_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang


def sampling_probs(sizes: dict[str, int], alpha: float) -> dict[str, float]:
    """Sampling probability per language, q_i = p_i^α / Σ_j p_j^α (languages with n_i = 0 get 0)."""
    check_number(alpha, "sampling alpha", low=0)
    if not all(is_int(n) and n >= 0 for n in sizes.values()):
        raise ConfigError(f"language sizes must be non-negative integers, got {sizes}")
    total = sum(sizes.values())
    if total == 0:
        raise DataError(f"cannot sample languages: every corpus is empty ({sorted(sizes)})")
    weights = {lang: (n / total) ** alpha if n > 0 else 0.0 for lang, n in sizes.items()}
    z = sum(weights.values())
    return {lang: w / z for lang, w in weights.items()}


def train_lines(path: Path) -> int:
    """Number of ``train`` lines of a corpus Parquet file (reads only the split column)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"corpus file not found: {path}")
    try:
        split = pq.read_table(path, columns=["split"]).column("split")
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{path}: not a corpus with a 'split' column ({e})") from None
    return int(pc.sum(pc.equal(split, "train")).as_py() or 0)


def write_sampling_table(corpus_paths: dict[str, Path], alpha: float, out_csv: Path) -> None:
    """Write ``lang, n_train_lines, p_natural, p_sampled`` for the corpora (CSV, languages sorted)."""
    sizes = {parse_lang(code, where="sampling").code: train_lines(p) for code, p in sorted(corpus_paths.items())}
    q = sampling_probs(sizes, alpha)
    total = sum(sizes.values())
    with atomic_files(Path(out_csv), clear_on_error=True) as (tmp,), open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["lang", "n_train_lines", "p_natural", "p_sampled"])
        for lang, n in sizes.items():
            w.writerow([lang, n, round(n / total, 10), round(q[lang], 10)])


def sample_quotas(sizes: Sequence[int], total: int, alpha: float | None) -> list[int]:
    """Lines to take per language so that `total` follow the multinomial ``q_l ∝ (n_l / N)^alpha`` (XLM's
    sampling; ``alpha=None`` or 1: in proportion to the data), never more than a language has: the excess of a
    capped language is shared out among the others in the same proportions."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if total >= sizes.sum():
        return sizes.tolist()
    weights = (sizes / sizes.sum()) ** (1.0 if alpha is None else float(alpha))
    quota = np.zeros(len(sizes), dtype=np.int64)
    open_ = sizes > 0
    left = total
    while left > 0 and open_.any():
        share = weights * open_ / (weights * open_).sum() * left
        take = np.minimum(np.floor(share).astype(np.int64), sizes - quota)
        if take.sum() == 0:  # rounding: one line each to the largest remaining shares
            order = np.argsort(-(share - np.floor(share)) * open_, kind="stable")
            take = np.zeros_like(take)
            take[order[:left]] = 1
            take = np.minimum(take, sizes - quota)
        quota += take
        left = total - int(quota.sum())
        open_ = quota < sizes
    return quota.tolist()
