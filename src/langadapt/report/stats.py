"""Statistics over evaluation rows: language groupings, grouped means, paired significance tests.

Everything works on the long-format evaluation rows of :mod:`langadapt.report.aggregate`
(``recipe, task, language, seed, metric, value``).

* :func:`language_groups` maps languages to groups: ``seen`` / ``unseen`` in the pretraining data of
  XLM-R or mBERT (the head / tail languages of LangSAMP, the seen / unseen split of the realignment
  paper), ``Latin`` / ``non-Latin`` script, the ISO 15924 script itself, and the language family, Joshi
  class and resource group (HRL / MRL / LRL) of the 65-language table of the realignment paper;
* :func:`grouped_means` averages over a group's languages within each seed, then gives mean and sample
  sd over seeds (the rule of the ``avg`` row of :func:`langadapt.report.aggregate.summary_tables`);
* :func:`paired_test` compares two recipes on paired units (languages, or seeds) with the Wilcoxon
  signed-rank test and the paired t-test;
* :func:`grouped_tables`, :func:`significance_table` and :func:`write_report` turn these into the
  ``grouped/{task}_{metric}_by_{grouping}.csv|.tex`` tables and ``significance.csv``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.realign.pool import load_pool, pool_code, seen_languages
from langadapt.report.aggregate import AVG, MISSING, format_cell, main_metric, metric_scale, to_latex

log = logging.getLogger(__name__)

GROUPINGS = ("seen", "script", "script_name", "family", "joshi", "resource")
SEEN_MODELS = ("xlmr", "mbert")
UNITS = ("language", "seed")
UNKNOWN = "unknown"
# Display order of the groups of a grouping (others, and unknown last, sorted).
_ORDER = {
    "seen": ["seen", "unseen"],
    "script": ["Latin", "non-Latin"],
    "resource": ["HRL", "MRL", "LRL"],
    "joshi": ["5", "4", "3", "2", "1", "0"],
}
SIGNIFICANCE_COLUMNS = [
    "task", "metric", "recipe", "baseline", "unit", "n", "recipe_mean", "baseline_mean", "mean_diff",
    "wilcoxon_p", "ttest_p", "wilcoxon_p_bh", "ttest_p_bh", "wilcoxon_min_p", "note",
]
ALPHA = 0.05  # the level the `note` column of significance.csv checks reachability against


def _check_by(by: str) -> None:
    if by not in GROUPINGS:
        raise ConfigError(f"unknown language grouping {by!r}; choose one of: {', '.join(GROUPINGS)}")


def _split(code: str) -> tuple[str, str] | None:
    """(ISO 639-3, ISO 15924) of a valid language code, else None."""
    try:
        lang = parse_lang(code)
    except ConfigError:
        return None
    return lang.iso, lang.script


def language_groups(languages: Iterable[str], by: str, model: str | None = None) -> dict[str, str]:
    """Group of each language code (``iso639-3_Script``) under grouping `by`.

    * ``seen``: ``seen`` / ``unseen`` in the pretraining languages of `model` (``xlmr``, the default, or
      ``mbert``; ``langadapt.realign.pool.seen_languages``), matched on the ISO code (``pool_code``
      spelling, so ``swa`` and ``swh`` both match);
    * ``script``: ``Latin`` when the code's script is ``Latn``, else ``non-Latin``;
    * ``script_name``: the ISO 15924 script of the code (``Latn``, ``Deva``, ...);
    * ``family`` / ``joshi`` / ``resource``: family (``isolate`` for the table's N/A), Joshi class
      (``"0"``-``"5"``) and resource group (``HRL``/``MRL``/``LRL``) from the packaged 65-language table of
      the realignment paper; languages outside it (English among them): ``unknown``.

    A malformed or unknown code is ``unknown`` under every grouping. Unknown `by` or `model`: ConfigError.
    """
    _check_by(by)
    if by == "seen":
        model = model or "xlmr"
        if model not in SEEN_MODELS:
            raise ConfigError(f"unknown model {model!r} for the seen grouping; choose one of: {', '.join(SEEN_MODELS)}")
        seen = seen_languages(model)
    table = {lang.code: lang for lang in load_pool().languages} if by in ("family", "joshi", "resource") else {}
    out: dict[str, str] = {}
    for code in languages:
        parts = _split(code)
        if parts is None:
            out[code] = UNKNOWN
            continue
        iso, script = parts
        if by == "seen":
            out[code] = "seen" if pool_code(iso) in seen else "unseen"
        elif by == "script":
            out[code] = "Latin" if script == "Latn" else "non-Latin"
        elif by == "script_name":
            out[code] = script
        else:
            entry = table.get(pool_code(iso))
            if entry is None:
                out[code] = UNKNOWN
            elif by == "family":
                # N/A in the table marks a language isolate (Basque)
                out[code] = "isolate" if entry.family == "N/A" else entry.family or UNKNOWN
            elif by == "joshi":
                out[code] = str(entry.joshi_class)
            else:
                out[code] = entry.resource_group or UNKNOWN
    return out


def _group_order(by: str, groups: Iterable[str]) -> list[str]:
    groups = set(groups)
    fixed = [g for g in _ORDER.get(by, []) if g in groups]
    rest = sorted(groups - set(fixed) - {UNKNOWN})
    return fixed + rest + ([UNKNOWN] if UNKNOWN in groups else [])


def grouped_means(
    rows: pd.DataFrame, by: str, model: str | None = None, groups: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Per task / metric / recipe / group: the mean over the group's languages within each seed, then
    ``mean`` and sample ``sd`` (ddof=1; NaN for one seed) of these per-seed averages over seeds, the
    number of seeds ``n_seeds`` and of languages ``n_languages``.

    `groups` (language -> group) overrides the grouping computed by :func:`language_groups`.
    """
    _check_by(by)
    cols = ["task", "metric", "recipe", "group", "mean", "sd", "n_seeds", "n_languages"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    langs = sorted(rows["language"].unique())
    mapping = dict(groups) if groups is not None else language_groups(langs, by, model)
    df = rows[["task", "metric", "recipe", "language", "seed", "value"]].copy()
    df["group"] = df["language"].map(lambda x: mapping.get(x, UNKNOWN))
    keys = ["task", "metric", "recipe", "group"]
    per_seed = df.groupby(keys + ["seed"], sort=True)["value"].mean().reset_index()
    stats = per_seed.groupby(keys, sort=True)["value"].agg(mean="mean", sd="std", n_seeds="count")
    n_langs = df.groupby(keys, sort=True)["language"].nunique().rename("n_languages")
    out = stats.join(n_langs).reset_index()
    order = {g: i for i, g in enumerate(_group_order(by, out["group"]))}
    out = out.sort_values(["task", "metric", "recipe", "group"], key=lambda s: s.map(order) if s.name == "group" else s,
                          kind="stable")
    return out[cols].reset_index(drop=True)


def grouped_tables(
    rows: pd.DataFrame,
    by: str,
    model: str | None = None,
    scale: float = 100.0,
    digits: int = 1,
) -> dict[str, pd.DataFrame]:
    """One string table per ``{task}_{metric}_by_{by}``: index = groups then ``avg`` (all languages),
    a ``languages`` column (number of languages of the group) then one column per recipe; cells as in
    :func:`langadapt.report.aggregate.summary_tables` (mean x `scale` over seeds, ``± sd`` for several seeds)."""
    g = grouped_means(rows, by, model)
    allrows = rows.assign(language=rows["language"].astype(str))
    every = grouped_means(allrows, by, groups=dict.fromkeys(allrows["language"].unique(), AVG))
    both = pd.concat([g, every], ignore_index=True)
    tables: dict[str, pd.DataFrame] = {}
    for (task, metric), part in both.groupby(["task", "metric"], sort=True):
        m_scale, m_digits = metric_scale(str(metric), scale, digits)
        recipes = sorted(part["recipe"].unique())
        index = _group_order(by, set(part["group"]) - {AVG}) + [AVG]
        table = pd.DataFrame(MISSING, index=pd.Index(index, name=by), columns=["languages", *recipes])
        for row in part.itertuples(index=False):
            table.loc[row.group, row.recipe] = format_cell(row.mean, row.sd, int(row.n_seeds), m_scale, m_digits)
        n = part.groupby("group")["n_languages"].max()
        table["languages"] = [str(int(n[i])) for i in index]
        table.columns.name = "recipe"
        tables[f"{task}_{metric}_by_{by}"] = table
    return tables


def _nan_result(**extra: Any) -> dict[str, Any]:
    return {"n": 0, "recipe_mean": math.nan, "baseline_mean": math.nan, "mean_diff": math.nan,
            "wilcoxon_p": math.nan, "ttest_p": math.nan, **extra}


def _paired_arrays(
    rows: pd.DataFrame, method: str, baseline: str, task: str, metric: str, unit: str
) -> tuple[np.ndarray, np.ndarray]:
    cols = list(dict.fromkeys([method, baseline]))  # one column when a recipe is compared with itself
    sel = rows[(rows["task"] == task) & (rows["metric"] == metric) & rows["recipe"].isin([method, baseline])]
    if unit == "language":
        # per language: the mean over seeds of each recipe
        wide = sel.groupby(["language", "recipe"])["value"].mean().unstack("recipe")
    else:
        # per seed: the mean over the languages both recipes have for that seed
        per = sel.groupby(["seed", "language", "recipe"])["value"].mean().unstack("recipe")
        per = per.reindex(columns=cols).dropna()
        wide = per.groupby(level="seed").mean()
    wide = wide.reindex(columns=cols).dropna()
    return wide[method].to_numpy(dtype=float), wide[baseline].to_numpy(dtype=float)


def paired_test(
    rows: pd.DataFrame, method: str, baseline: str, task: str, metric: str, unit: str = "language"
) -> dict[str, Any]:
    """Paired comparison of recipe `method` against recipe `baseline` on one task and metric.

    ``unit="language"``: the pairs are the languages both recipes have, each the mean over seeds;
    ``unit="seed"``: the pairs are the seeds both have, each the average over the languages both recipes
    have for that seed. Returns ``n`` (pairs), ``recipe_mean`` / ``baseline_mean`` (over the pairs),
    ``mean_diff`` (method - baseline), ``wilcoxon_p`` (two-sided Wilcoxon signed-rank test,
    ``scipy.stats.wilcoxon``; 1.0 when every difference is zero) and ``ttest_p`` (two-sided paired t-test,
    ``scipy.stats.ttest_rel``; NaN when the differences have no variance). Fewer than 2 pairs: NaN p-values.
    """
    from scipy import stats as sps

    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r} for a paired test; choose one of: {', '.join(UNITS)}")
    info = {"task": task, "metric": metric, "recipe": method, "baseline": baseline, "unit": unit}
    a, b = _paired_arrays(rows, method, baseline, task, metric, unit)
    n = len(a)
    if n == 0:
        return {**info, **_nan_result()}
    d = a - b
    res = {**info, "n": n, "recipe_mean": float(a.mean()), "baseline_mean": float(b.mean()),
           "mean_diff": float(d.mean()), "wilcoxon_p": math.nan, "ttest_p": math.nan}
    if n < 2:
        return res
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples, ties, zero variance: reported as p-values or NaN
        if np.all(d == 0):
            res["wilcoxon_p"] = 1.0
        else:
            res["wilcoxon_p"] = float(sps.wilcoxon(a, b).pvalue)
        res["ttest_p"] = float(sps.ttest_rel(a, b).pvalue)
    return res


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give on `n` pairs: every
    difference of one sign, ``2 / 2**n`` (5 pairs: 0.0625, never below 0.05)."""
    return min(1.0, 2.0 / 2.0**n) if n > 0 else math.nan


def bh_adjust(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``) of one family;
    NaN p-values stay NaN and do not count in the family's size."""
    from scipy import stats as sps

    p = np.asarray(p, dtype=float)
    out = np.full(len(p), math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out


def _reach_note(n: int) -> str:
    if n < 2:
        return "fewer than 2 pairs: no test"
    low = wilcoxon_min_p(n)
    if low >= ALPHA:
        return (f"cannot reach p < {ALPHA:g}: {n} pairs, the Wilcoxon test's smallest two-sided p is {low:.4g}; "
                f"more languages or seeds are needed")
    return ""


def significance_table(rows: pd.DataFrame, baseline: str | None, unit: str = "language") -> pd.DataFrame:
    """Every recipe against `baseline` per task on the task's main metric (``aggregate.main_metric``):
    one :func:`paired_test` row each (columns ``SIGNIFICANCE_COLUMNS``). No baseline: no rows.

    A family of comparisons is one task (all its recipes against the baseline): ``*_p_bh`` are its
    Benjamini-Hochberg adjusted p-values. ``wilcoxon_min_p`` is the smallest p the Wilcoxon test can give on
    ``n`` pairs, and ``note`` says when a test cannot reach p < :data:`ALPHA` at all (a warning is logged).
    A baseline that no row has: DataError naming the recipes there are."""
    if baseline is None:
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    recipes = sorted(rows["recipe"].unique())
    if baseline not in recipes:
        raise DataError(f"evaluation.report.baseline: no evaluation rows of recipe {baseline!r}; "
                        f"recipes with rows: {', '.join(recipes)}")
    out = []
    for task in sorted(rows["task"].unique()):
        t = rows[rows["task"] == task]
        metric = main_metric(t["metric"])
        have = set(t.loc[t["metric"] == metric, "recipe"])
        if baseline not in have:
            continue
        family = [paired_test(rows, recipe, baseline, task, metric, unit=unit)
                  for recipe in sorted(have - {baseline})]
        for key in ("wilcoxon_p", "ttest_p"):
            for row, adj in zip(family, bh_adjust([r[key] for r in family]), strict=True):
                row[f"{key}_bh"] = float(adj)
        for row in family:
            row["wilcoxon_min_p"], row["note"] = wilcoxon_min_p(row["n"]), _reach_note(row["n"])
            if row["note"]:
                log.warning("significance %s, %s vs %s (%s): %s", task, row["recipe"], baseline, unit, row["note"])
        out += family
    return pd.DataFrame(out, columns=SIGNIFICANCE_COLUMNS)


def write_report(
    rows: pd.DataFrame,
    grouped_dir: Path,
    significance_csv: Path,
    report: Mapping[str, Any] | None = None,
    scale: float = 100.0,
    digits: int = 1,
) -> list[Path]:
    """Write ``grouped_dir/{task}_{metric}_by_{grouping}.csv|.tex`` for each grouping of
    ``report["groupings"]`` (default ``[script]``) and `significance_csv` (every recipe against
    ``report["baseline"]``; header only without a baseline). Return the paths written."""
    report = dict(report or {})
    groupings: Sequence[str] = report.get("groupings", ["script"])
    model = report.get("seen_model") or "xlmr"
    unit = report.get("unit") or "language"
    for by in groupings:
        _check_by(by)
    grouped_dir = Path(grouped_dir)
    grouped_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for by in groupings:
        for name, table in grouped_tables(rows, by, model=model, scale=scale, digits=digits).items():
            csv_path, tex_path = grouped_dir / f"{name}.csv", grouped_dir / f"{name}.tex"
            write_text_atomic(table.to_csv(), csv_path)
            what = f" ({model})" if by == "seen" else ""
            caption = (f"{name}{what}: average over the group's languages per seed, mean over seeds (scores "
                       f"x{scale:g}; losses, fertility, similarities as they are), ± sd when more than one seed")
            write_text_atomic(to_latex(table, caption), tex_path)
            written += [csv_path, tex_path]
    sig = significance_table(rows, report.get("baseline"), unit=unit)
    write_text_atomic(sig.to_csv(index=False, float_format="%.6g"), Path(significance_csv))
    written.append(Path(significance_csv))
    return written
