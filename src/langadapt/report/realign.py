"""Realignment reports: the language subsets the selectors chose (realignment paper, Appendix Table 6) and
the scaling of cross-lingual transfer with the number of realignment languages (Section 5, Figure 5).

* :func:`subset_rows` / :func:`subsets_table` read the ``results/selection/{entry}.json`` files of the
  ``select_languages`` rule and write one row per (heuristic with its distinguishing parameters, n):
  the chosen ISO 639-3 codes, the objective value and whether the solver proved it optimal;
* `langadapt.dag.targets.realign_design` describes, from the config, every evaluated recipe for the scaling plot: its root
  base model, its (nearest) realignment entry and that entry's ``languages`` (selector, list or null);
* :func:`scaling_table` / :func:`plot_scaling` / :func:`realign_scaling` turn the evaluation rows into
  the Figure 5 numbers and plot: per recipe, the main metric of each task (``aggregate.main_metric``)
  averaged over the non-pivot languages, then over tasks, per seed; mean and sd over seeds.

Rules where the paper is silent: ``random`` entries that differ only in their selection seed form one
series (the paper draws one "random" line, its subsets seeded like its runs), so their point is the mean
and sd over all (subset seed, run seed) pairs. Solver settings (``method``, ``time_limit``) and the
local-search ``seed`` of the optimizing heuristics do not name a variant.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.atomic import save_figure, write_text_atomic
from langadapt.core.errors import DataError
from langadapt.report.aggregate import latex_escape, main_metric

# Paper order of the heuristics (Table 6: featural, phylogenetic, script, then the ablation pools).
HEURISTIC_ORDER = ("uriel_diversity", "family_diverse", "single_family", "script_diverse", "latin_diverse",
                   "latin_least_diverse", "joshi", "seen", "unseen", "random", "donor")
# Parameters that name a variant of a heuristic even when left at their default (read from the record).
SHOWN = {"uriel_diversity": ("direction",), "single_family": ("family", "direction"), "joshi": ("classes",),
         "seen": ("model",), "unseen": ("model",), "random": ("seed",)}
# Spec keys that never name a variant: the selector itself, its size, solver settings.
HIDDEN = frozenset({"select", "n", "seed", "method", "time_limit"})
SUBSET_COLUMNS = ["heuristic", "params", "n", "size", "languages", "objective", "optimal", "solver", "entry"]
KINDS = ("selector", "realign_fixed", "finetune_only")  # scaling rows: series, dotted line, dashed line
SCALING_COLUMNS = ["base", "kind", "series", "heuristic", "params", "n", "recipes", "mean", "sd", "runs"]


# ----------------------------------------------------------------------------------------- variants
def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def variant_params(spec: Mapping[str, Any], record: Mapping[str, Any], with_seed: bool = True) -> dict[str, Any]:
    """The parameters that distinguish a selector entry (see ``SHOWN`` / ``HIDDEN``); ``with_seed=False``
    drops the seed of ``random`` (used to pool random subsets into one scaling series)."""
    heuristic = str(spec.get("select") or record.get("heuristic"))
    out: dict[str, Any] = {}
    for key in SHOWN.get(heuristic, ()):
        if key == "seed" and not with_seed:
            continue
        value = record.get(key, spec.get(key, _default(heuristic, key)))
        if value is not None:
            out[key] = sorted(value) if key == "classes" else value
    for key, value in spec.items():
        if key not in HIDDEN and key not in out:
            out[key] = f"{len(value)} given" if key == "seen" and isinstance(value, (list, tuple)) else value
    return out


def _default(heuristic: str, key: str) -> Any:
    """The value a selector uses for ``key`` when the spec leaves it out (``selection_job`` passes seed 0)."""
    if key == "seed":
        return 0
    from langadapt.realign.selection import SELECTORS

    if heuristic not in SELECTORS:
        return None
    param = inspect.signature(SELECTORS.get(heuristic)).parameters.get(key)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return list(param.default) if isinstance(param.default, tuple) else param.default


def format_params(params: Mapping[str, Any]) -> str:
    """``key=value; ...`` in key order (lists comma-joined), ``""`` for none."""
    return "; ".join(f"{k}={_fmt(params[k])}" for k in sorted(params))


def series_label(heuristic: str, params: Mapping[str, Any]) -> str:
    text = format_params(params)
    return f"{heuristic} ({text})" if text else heuristic


def _heuristic_rank(name: str) -> tuple[int, str]:
    return (HEURISTIC_ORDER.index(name) if name in HEURISTIC_ORDER else len(HEURISTIC_ORDER), name)


# ------------------------------------------------------------------------------------------ subsets
def read_selection(path: Path) -> dict[str, Any]:
    """A selection JSON (``selection_job``), DataError naming the file when unreadable or incomplete."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"selection file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"selection file {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("record"), dict) or "languages" not in doc:
        raise DataError(f"selection file {path}: expected an object with 'languages' and 'record'")
    return doc


def _iso_of(doc: Mapping[str, Any]) -> list[str]:
    if "iso" in doc:
        return list(doc["iso"])
    return list(dict.fromkeys(str(c).split("_")[0] for c in doc["languages"]))


def _n_of(spec: Mapping[str, Any], record: Mapping[str, Any], iso: Sequence[str]) -> int:
    heuristic = spec.get("select") or record.get("heuristic")
    if heuristic == "donor":  # n is ignored by the donor selector
        return len(iso)
    return int(spec.get("n", record.get("n", len(iso))))


def subset_rows(paths: Iterable[Path]) -> pd.DataFrame:
    """One row per selection file (``SUBSET_COLUMNS``), sorted by heuristic (paper order), parameters, n.

    ``languages`` are the chosen ISO 639-3 codes in pool order, comma-separated; ``objective`` and
    ``optimal`` are empty where the heuristic has none (random, donor); ``entry`` is the realignment entry.
    """
    rows = []
    for path in map(Path, paths):
        doc = read_selection(path)
        spec, record = doc.get("spec") or {}, doc["record"]
        heuristic = str(spec.get("select") or record.get("heuristic"))
        iso = _iso_of(doc)
        objective = record.get("objective")
        rows.append({
            "heuristic": heuristic,
            "params": format_params(variant_params(spec, record)),
            "n": _n_of(spec, record, iso),
            "size": len(iso),
            "languages": ", ".join(iso),
            "objective": None if objective is None else float(objective),
            "optimal": record.get("optimal"),
            "solver": record.get("solver"),
            "entry": path.stem,
        })
    df = pd.DataFrame(rows, columns=SUBSET_COLUMNS)
    if df.empty:
        return df
    order = sorted(range(len(df)), key=lambda i: (_heuristic_rank(df.at[i, "heuristic"]), df.at[i, "params"],
                                                  int(df.at[i, "n"]), df.at[i, "entry"]))
    return df.iloc[order].reset_index(drop=True)


def _tex_cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "--"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return latex_escape(str(value))


def subsets_latex(df: pd.DataFrame) -> str:
    """Booktabs table of :func:`subset_rows` (a rule between heuristics; languages in a wrapping column)."""
    lines = ["% Realignment language subsets per heuristic and size (cf. the realignment paper, Table 6)",
             "\\begin{tabular}{llrp{9cm}rl}", "\\toprule",
             "Heuristic & Parameters & $n$ & Languages (ISO 639-3) & Objective & Optimal \\\\", "\\midrule"]
    previous = None
    for row in df.itertuples(index=False):
        if previous is not None and row.heuristic != previous:
            lines.append("\\midrule")
        previous = row.heuristic
        optimal = None if row.optimal is None or pd.isna(row.optimal) else bool(row.optimal)
        cells = [_tex_cell(row.heuristic), _tex_cell(row.params), str(int(row.n)), _tex_cell(row.languages),
                 _tex_cell(row.objective), _tex_cell(optimal)]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def subsets_table(paths: Iterable[Path], out_csv: Path, out_tex: Path) -> pd.DataFrame:
    """Write :func:`subset_rows` as CSV and booktabs LaTeX; returns the rows."""
    df = subset_rows(paths)
    write_text_atomic(df.to_csv(index=False), Path(out_csv))
    write_text_atomic(subsets_latex(df), Path(out_tex))
    return df


# ------------------------------------------------------------------------------------------ scaling
def scaling_recipes(design: Mapping[str, Any]) -> list[str]:
    """Recipes that the scaling plot shows: those realigned on a selector subset, plus every recipe of
    the same root base models (the baselines); empty when no recipe uses a selector."""
    recipes = design["recipes"]
    bases = {r["base"] for r in recipes.values() if isinstance(r["languages"], Mapping)}
    return [name for name, r in recipes.items() if r["base"] in bases]


def _point_of(recipe: str, info: Mapping[str, Any], selections: Mapping[str, Mapping[str, Any]]) -> dict:
    """(kind, series, heuristic, params, n) of one recipe."""
    languages = info["languages"]
    if info["realign"] is None:
        return {"kind": "finetune_only", "series": f"fine-tuning only ({recipe})", "heuristic": "", "params": "",
                "n": np.nan}
    if not isinstance(languages, Mapping):
        what = f"{len(languages)} languages" if languages else "all languages"
        return {"kind": "realign_fixed", "series": f"{recipe} (realign {what})", "heuristic": "", "params": "",
                "n": float(len(languages)) if languages else np.nan}
    doc = selections.get(info["realign"], {})
    record = doc.get("record", {})
    heuristic = str(languages["select"])
    params = variant_params(languages, record, with_seed=False)
    n = _n_of(languages, record, _iso_of(doc) if doc else [])
    return {"kind": "selector", "series": series_label(heuristic, params), "heuristic": heuristic,
            "params": format_params(params), "n": float(n)}


def run_scores(df: pd.DataFrame, pivot: str, recipes: Iterable[str], scale: float = 100.0) -> pd.DataFrame:
    """Per (recipe, task, seed): the task's main metric averaged over the non-pivot languages (x scale)."""
    df = df[df["recipe"].isin(list(recipes)) & (df["language"] != pivot)]
    if df.empty:
        return pd.DataFrame(columns=["recipe", "task", "seed", "metric", "value"])
    main = {task: main_metric(group["metric"]) for task, group in df.groupby("task")}
    df = df[df["metric"] == df["task"].map(main)]
    out = df.groupby(["recipe", "task", "seed"], sort=True)["value"].mean().reset_index()
    out["metric"] = out["task"].map(main)
    out["value"] *= scale
    return out[["recipe", "task", "seed", "metric", "value"]]


def scaling_table(df: pd.DataFrame, design: Mapping[str, Any],
                  selections: Mapping[str, Mapping[str, Any]] | None = None, scale: float = 100.0) -> pd.DataFrame:
    """The Figure 5 numbers: one row per (base, kind, series, n) (``SCALING_COLUMNS`` plus one
    ``{task}/{metric}`` column per task with its mean over runs).

    A run is one (recipe, seed); its score is the mean over tasks of :func:`run_scores`. ``mean`` / ``sd``
    (sample sd, empty for one run) are over the runs of the point's recipes; ``recipes`` lists them.
    """
    selections = selections or {}
    shown = scaling_recipes(design)
    scores = run_scores(df, design["pivot"], shown, scale)
    tasks = sorted(set(scores["task"]))
    task_cols = {t: f"{t}/{scores.loc[scores['task'] == t, 'metric'].iloc[0]}" for t in tasks}
    points: dict[tuple, dict[str, Any]] = {}
    for recipe in shown:
        info = design["recipes"][recipe]
        mine = scores[scores["recipe"] == recipe]
        if mine.empty:
            continue
        point = {"base": info["base"], **_point_of(recipe, info, selections)}
        key = (point["base"], point["kind"], point["series"], point["n"])
        entry = points.setdefault(key, {**point, "recipes": [], "runs": [], "tasks": {t: [] for t in tasks}})
        entry["recipes"].append(recipe)
        entry["runs"] += list(mine.groupby("seed")["value"].mean())
        for task, group in mine.groupby("task"):
            entry["tasks"][task] += list(group["value"])
    rows = []
    for p in points.values():
        runs = np.asarray(p["runs"], dtype=float)
        row = {k: p[k] for k in ("base", "kind", "series", "heuristic", "params", "n")}
        row.update(recipes=";".join(p["recipes"]), mean=float(runs.mean()),
                   sd=float(runs.std(ddof=1)) if len(runs) > 1 else np.nan, runs=len(runs))
        for task, col in task_cols.items():
            row[col] = float(np.mean(p["tasks"][task])) if p["tasks"][task] else np.nan
        rows.append(row)
    out = pd.DataFrame(rows, columns=SCALING_COLUMNS + list(task_cols.values()))
    if out.empty:
        return out
    order = sorted(range(len(out)), key=lambda i: (
        out.at[i, "base"], KINDS.index(out.at[i, "kind"]), _heuristic_rank(out.at[i, "heuristic"]),
        out.at[i, "params"], out.at[i, "series"], np.nan_to_num(out.at[i, "n"], nan=0.0)))
    out = out.iloc[order].reset_index(drop=True)
    out["n"] = out["n"].astype("Int64")
    return out


def plot_scaling(table: pd.DataFrame, out_png: Path, scale: float = 100.0) -> Path:
    """Figure 5: one panel per root base model; x = number of realignment languages (log scale, ticks at
    the n values), one line per selector series (mean over runs, sd band and error bars); dashed
    horizontal lines for fine-tuning-only recipes, dotted ones for recipes realigned on a fixed list."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    bases = sorted(table.loc[table["kind"] == "selector", "base"].unique())
    if not bases:
        raise DataError("realign_scaling: nothing to plot (no recipe realigned on a selector subset)")
    fig = Figure(figsize=(6.0 * len(bases), 4.6), layout="constrained")
    axes = fig.subplots(1, len(bases), squeeze=False)[0]
    cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    for ax, base in zip(axes, bases, strict=True):
        mine = table[table["base"] == base]
        points = mine[mine["kind"] == "selector"]
        ns = sorted({int(n) for n in points["n"].dropna()})
        for i, (series, group) in enumerate(points.groupby("series", sort=False)):
            g = group.sort_values("n")
            x = g["n"].astype(float).to_numpy()
            y = g["mean"].to_numpy(dtype=float)
            sd = g["sd"].fillna(0.0).to_numpy(dtype=float)
            color = cycle[i % len(cycle)]
            ax.errorbar(x, y, yerr=sd, marker="o", ms=4, capsize=3, lw=1.5, color=color, label=series)
            ax.fill_between(x, y - sd, y + sd, color=color, alpha=0.12, lw=0)
        for j, row in enumerate(mine[mine["kind"] == "realign_fixed"].itertuples(index=False)):
            ax.axhline(row.mean, ls=":", lw=1.6, color=cycle[(len(points["series"].unique()) + j) % len(cycle)],
                       label=row.series)
        greys = ["0.15", "0.45", "0.6", "0.3"]
        for j, row in enumerate(mine[mine["kind"] == "finetune_only"].itertuples(index=False)):
            ax.axhline(row.mean, ls="--", lw=1.4, color=greys[j % len(greys)], label=row.series)
        if ns:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ns, [str(n) for n in ns])
            ax.minorticks_off()
            ax.set_xlim(ns[0] / 1.3, ns[-1] * 1.3)
        ax.set_xlabel("number of realignment languages n")
        ax.set_ylabel(f"avg. transfer score (x{scale:g})" if scale != 1 else "avg. transfer score")
        ax.set_title(f"{base}: main metric per task, non-pivot languages, avg. over tasks", fontsize=9)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if handles:  # selector series first, then the realigned (dotted) and fine-tuning-only (dashed) lines
            rank = {label: i for i, label in enumerate(mine["series"])}
            pairs = sorted(zip(handles, labels, strict=True), key=lambda hl: rank.get(hl[1], len(rank)))
            ax.legend(*zip(*pairs, strict=True), fontsize=7, loc="best")
    return save_figure(fig, out_png)


def realign_scaling(df: pd.DataFrame, design: Mapping[str, Any], selection_paths: Iterable[Path],
                    out_csv: Path, out_png: Path, scale: float = 100.0) -> pd.DataFrame:
    """The ``realign_scaling`` rule: :func:`scaling_table` to CSV and :func:`plot_scaling` to PNG."""
    selections = {Path(p).stem: read_selection(Path(p)) for p in selection_paths}
    table = scaling_table(df, design, selections, scale)
    if table.empty or not (table["kind"] == "selector").any():
        raise DataError("realign_scaling: no evaluation rows of a recipe realigned on a selector subset")
    write_text_atomic(table.to_csv(index=False, float_format="%.4f"), Path(out_csv))
    plot_scaling(table, Path(out_png), scale)
    return table
