"""Declarative tables in the layouts of the papers' main tables (``evaluation.report.tables``).

A table spec (config ``evaluation.report.tables.NAME``; keys documented in
workflow/schemas/config.schema.yaml) lists **rows** and **column levels** (outer to inner). Every entry sets
*selector keys* -- ``recipe``, ``task``, ``metric``, ``group`` (``all`` or ``BY=VALUE`` with ``BY`` a grouping
of :func:`langadapt.report.stats.language_groups`), ``language`` -- plus a label, and optionally ``vars`` (named
strings for placeholders) and ``mean_of`` (a list of key mappings the cell averages over, e.g. one
``{recipe, language}`` pair per language for an ``Avg`` column). A cell merges the keys of its row and of one
entry per column level, in this order (later keys override earlier ones). A string value may hold
placeholders: ``{task}`` in the value of ``task`` itself is the value ``task`` had before (``"{task}_donor"``
in a column turns the row's ``taxi1500`` into ``taxi1500_donor``); any other ``{name}`` is the cell's final
value of the selector key or var ``name`` (``recipe: "{lang}_focus_ident_full"`` in a row, with
``vars: {lang: hye}`` in a column). ``{each: recipe|task|language}`` expands to one entry per value present
in the rows (sorted).

Cell value (from the long-format evaluation rows only): rows of the cell's recipe / task / metric (default:
the task's main metric, :func:`langadapt.report.aggregate.main_metric`), restricted to the languages of the group
and / or the language (none: all languages); per seed the mean over languages. List values and ``mean_of``
give several combinations: per seed the mean over the combinations, on the seeds every combination has (a
combination without rows makes the cell missing, ``–``). Then mean and sample sd (ddof=1) over seeds, times
``scale``.

Outputs per table (:func:`write_tables`): ``NAME.csv`` (label columns ``label`` or ``label1``, ``label2``,
...; then one column per column combination, its header the labels of the levels joined by ``" / "``),
``NAME_cells.csv`` (one row per cell: labels, resolved keys, ``mean``/``sd`` already times ``scale``,
``n_seeds``, ``n_languages``, ``best``) and ``NAME.tex`` (booktabs; ``\\multicolumn`` + ``\\cmidrule`` for the
outer column levels, section rows in italics, the best cells in bold).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import ConfigError
from langadapt.report.aggregate import MISSING, latex_escape, main_metric
from langadapt.report.paper_spec import (
    CELL_SEP,
    PLACEHOLDER,
    SELECTORS,
    KeyValue,
    cell_alternatives,
)
from langadapt.report.stats import language_groups

# ------------------------------------------------------------------------------------- key resolution


# ----------------------------------------------------------------------------------------------- checks


# ------------------------------------------------------------------------------------------------ build


@dataclass
class _Entry:
    """An expanded row or column entry: its labels and its keys (an ``each:`` value filled in)."""

    labels: list[str]
    where: str = ""
    keys: dict[str, Any] = field(default_factory=dict)
    section: bool = False
    baseline: bool = False


def _default_label(entry: Mapping[str, Any]) -> str:
    parts = []
    for key in SELECTORS:
        if key in entry:
            v = entry[key]
            parts.append("+".join(map(str, v)) if isinstance(v, list) else str(v))
    return " ".join(parts) or "mean_of" * ("mean_of" in entry)


def _present(rows: pd.DataFrame, key: str, entry: Mapping[str, Any]) -> list[str]:
    """Sorted values of `key` in the rows matching the entry's own placeholder-free string keys."""
    sel = rows
    for k in ("recipe", "task", "metric", "language"):
        v = entry.get(k)
        if isinstance(v, str) and not PLACEHOLDER.search(v):
            sel = sel[sel[k] == v]
        elif isinstance(v, list) and all(isinstance(x, str) and not PLACEHOLDER.search(x) for x in v):
            sel = sel[sel[k].isin(v)]
    return sorted(sel[key].unique())


def _expand(entry: Mapping[str, Any], rows: pd.DataFrame, where: str) -> list[_Entry]:
    if "section" in entry:
        return [_Entry([str(entry["section"])], where, section=True)]
    keys = {k: entry[k] for k in (*SELECTORS, "vars", "mean_of") if k in entry}
    baseline = bool(entry.get("baseline", False))
    if "each" in entry:
        prefix = entry.get("label", [])
        prefix = [prefix] if isinstance(prefix, str) else list(prefix)
        return [_Entry(prefix + [v], where, {**keys, entry["each"]: v}, baseline=baseline)
                for v in _present(rows, entry["each"], entry)]
    label = entry.get("label", _default_label(entry))
    return [_Entry([label] if isinstance(label, str) else list(label), where, keys, baseline=baseline)]


def _language_set(rows: pd.DataFrame, group: str | None, language: str | None, seen_model: str) -> set[str]:
    langs = set(rows["language"].unique())
    if group is not None and group != "all":
        by, _, val = group.partition("=")
        groups = language_groups(sorted(langs), by, model=seen_model)
        langs = {lang for lang, g in groups.items() if g == val}
    if language is not None:
        langs &= {language}
    return langs


def _combinations(alternatives: Sequence[Mapping[str, KeyValue]]) -> list[dict[str, Any]]:
    """Scalar key combinations of a cell: per alternative, the product of its list values."""
    out: list[dict[str, Any]] = []
    for alt in alternatives:
        listed = {k: (v.value if isinstance(v.value, list) else [v.value]) for k, v in alt.items()}
        for k in ("metric", "group", "language"):
            listed.setdefault(k, [None])
        names = list(listed)
        out += [dict(zip(names, values, strict=True)) for values in itertools.product(*(listed[k] for k in names))]
    return out


def _cell_stats(rows: pd.DataFrame, combos: Sequence[Mapping[str, Any]], default_metric: Any, seen_model: str
                ) -> dict[str, Any]:
    """Mean / sd over seeds (unscaled), n_seeds, n_languages and the keys (joined by ``+``) of one cell."""
    per_seed: list[pd.Series] = []
    langs_used: set[str] = set()
    used: dict[str, list[str]] = {k: [] for k in SELECTORS}
    missing = False
    for combo in combos:
        metric = combo["metric"]
        if metric is None:
            if isinstance(default_metric, Mapping):
                metric = default_metric.get(combo["task"])
            elif isinstance(default_metric, str):
                metric = default_metric
        if metric is None:
            task_metrics = rows.loc[rows["task"] == combo["task"], "metric"]
            metric = main_metric(task_metrics) if len(task_metrics) else None
        for k in SELECTORS:
            value = metric if k == "metric" else combo[k]
            if value is not None:
                used[k].append(str(value))
        sel = rows[(rows["recipe"] == combo["recipe"]) & (rows["task"] == combo["task"]) & (rows["metric"] == metric)]
        sel = sel[sel["language"].isin(_language_set(rows, combo["group"], combo["language"], seen_model))]
        if sel.empty:
            missing = True
            continue
        langs_used |= set(sel["language"])
        per_seed.append(sel.groupby("seed")["value"].mean())
    out: dict[str, Any] = {k: "+".join(dict.fromkeys(v)) or None for k, v in used.items()}
    out.update(mean=np.nan, sd=np.nan, n_seeds=0, n_languages=len(langs_used))
    if missing or not per_seed:
        return out
    common = sorted(set.intersection(*(set(s.index) for s in per_seed)))
    if not common:
        return out
    vals = pd.concat([s.loc[common] for s in per_seed], axis=1).mean(axis=1).to_numpy(dtype=float)
    out.update(mean=float(vals.mean()), sd=float(vals.std(ddof=1)) if len(vals) > 1 else np.nan,
               n_seeds=len(vals))
    return out


def _format(mean: float, sd: float, n: int, digits: int, with_sd: bool) -> str:
    if not np.isfinite(mean):
        return MISSING
    text = f"{mean:.{digits}f}"
    if with_sd and n > 1 and np.isfinite(sd):
        text += f" ± {sd:.{digits}f}"
    return text


def build_table(rows_df: pd.DataFrame, spec: Mapping[str, Any], seen_model: str = "xlmr"
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The layout (string cells) and the long cell table of one spec over evaluation rows.

    Layout: label columns (``label``, or ``label1``.. for multi-label rows) then one column per column
    combination (header: the level labels joined by ``" / "``); section rows have their text in the first
    label column and empty cells. Cells: one row per (non-section row, column combination) with ``row``
    (row position), label columns, ``col1``.. (column labels per level), ``column`` (flattened header),
    ``recipe, task, metric, group, language`` (several values joined by ``+``), ``mean, sd`` (times
    ``scale``), ``n_seeds, n_languages``, ``baseline``, ``col`` (column position), ``section`` (number of
    section rows above) and ``best``.
    """
    if spec.get("seeds"):  # only these runs (e.g. LangSAMP Table 4: one seed for both columns, App. D)
        rows_df = rows_df[rows_df["seed"].isin(spec["seeds"])]
    scale = float(spec.get("scale", 100))
    digits = int(spec.get("digits", 1))
    model = spec.get("seen_model") or seen_model or "xlmr"
    rows_exp = [e for i, entry in enumerate(spec["rows"]) for e in _expand(entry, rows_df, f"rows[{i}]")]
    levels = [[e for k, entry in enumerate(level) for e in _expand(entry, rows_df, f"columns[{j}][{k}]")]
              for j, level in enumerate(spec["columns"])]
    n_labels = max((len(e.labels) for e in rows_exp if not e.section), default=1)
    label_cols = ["label"] if n_labels == 1 else [f"label{i + 1}" for i in range(n_labels)]
    combos = list(itertools.product(*levels))
    col_labels = [[" ".join(e.labels) for e in combo] for combo in combos]
    headers = [CELL_SEP.join(labs) for labs in col_labels]
    cell_records: list[dict[str, Any]] = []
    layout_rows: list[list[str]] = []
    section = 0
    for r, row in enumerate(rows_exp):
        labels = row.labels + [""] * (n_labels - len(row.labels))
        layout_rows.append(labels + [""] * len(combos))
        if row.section:
            section += 1
            continue
        for c, combo in enumerate(combos):
            alternatives = cell_alternatives([(e.where, e.keys) for e in (row, *combo)])
            for alt in alternatives:
                missing_keys = [k for k in ("recipe", "task") if k not in alt]
                if missing_keys:
                    raise ConfigError(f"table cell {labels} x {headers[c]!r} has no {' / '.join(missing_keys)}")
            st = _cell_stats(rows_df, _combinations(alternatives), spec.get("metric"), model)
            rec = {"row": r, **dict(zip(label_cols, labels, strict=True))}
            rec.update({f"col{i + 1}": lab for i, lab in enumerate(col_labels[c])}, column=headers[c])
            rec.update({k: st[k] for k in SELECTORS})
            rec.update(mean=st["mean"] * scale, sd=st["sd"] * scale, n_seeds=st["n_seeds"],
                       n_languages=st["n_languages"], baseline=row.baseline, col=c, section=section)
            cell_records.append(rec)
    cells = pd.DataFrame(cell_records)
    if cells.empty:
        cells = pd.DataFrame(columns=["row", *label_cols, "column", *SELECTORS, "mean", "sd", "n_seeds",
                                      "n_languages", "baseline", "col", "section"])
    cells["best"] = _best(cells, spec, len(levels), digits)
    layout = pd.DataFrame(layout_rows, columns=label_cols + headers, dtype=object)
    layout.attrs["column_labels"] = col_labels
    layout.attrs["n_labels"] = n_labels
    for rec in cells.itertuples(index=False):
        layout.iat[rec.row, n_labels + rec.col] = _format(rec.mean, rec.sd, rec.n_seeds, digits,
                                                        bool(spec.get("sd", False)))
    return layout, cells


def _best(cells: pd.DataFrame, spec: Mapping[str, Any], n_levels: int, digits: int) -> pd.Series:
    """Whether each cell is the best (ties included) of its scope; baseline rows and missing cells never.

    Scopes: ``column`` a column within a section (the rows between section rows), ``row`` a row,
    ``row_within`` a row within one group of the outer column levels.
    """
    best = pd.Series(False, index=cells.index)
    mode = spec.get("best", "none")
    if mode == "none" or cells.empty:
        return best
    value = cells["mean"].round(digits)
    if spec.get("lower_is_better", False):
        value = -value
    ok = ~cells["baseline"].astype(bool) & value.notna()
    if mode == "column":
        scope = [cells["col"], cells["section"]]
    elif mode == "row":
        scope = [cells["row"]]
    else:
        outer = [cells[f"col{i + 1}"] for i in range(n_levels - 1)]
        scope = [cells["row"], *outer]
    cand = value.where(ok)
    top = cand.groupby(scope).transform("max")
    return (ok & (cand == top)).astype(bool)


# ---------------------------------------------------------------------------------------------- output


def to_latex(layout: pd.DataFrame, cells: pd.DataFrame, spec: Mapping[str, Any]) -> str:
    """A booktabs ``tabular`` of a built table (see :func:`build_table`)."""
    n_labels = int(layout.attrs["n_labels"])
    levels: list[list[str]] = layout.attrs["column_labels"]
    n_levels = len(spec["columns"])
    bold = {(int(r.row), int(r.col)) for r in cells.itertuples(index=False) if r.best}

    def cell(x: object) -> str:
        return " $\\pm$ ".join(latex_escape(part) for part in str(x).split(" ± "))

    caption = spec.get("caption")
    lines = [f"% {latex_escape(caption)}"] if caption else []
    lines += [f"\\begin{{tabular}}{{{'l' * n_labels}{'r' * len(levels)}}}", "\\toprule"]
    for lv in range(n_levels - 1):
        spans: list[tuple[str, int]] = []
        for labels in levels:
            key = tuple(labels[: lv + 1])
            if spans and spans[-1][0] == key:
                spans[-1] = (key, spans[-1][1] + 1)
            else:
                spans.append((key, 1))
        parts, rules, col = [""] * n_labels, [], n_labels + 1
        for key, width in spans:
            text = latex_escape(key[-1])
            parts.append(f"\\multicolumn{{{width}}}{{c}}{{{text}}}" if width > 1 else text)
            rules.append(f"\\cmidrule(lr){{{col}-{col + width - 1}}}")
            col += width
        lines.append(" & ".join(parts) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join([""] * n_labels + [latex_escape(lab[-1]) for lab in levels]) + r" \\")
    lines.append("\\midrule")
    width = n_labels + len(levels)
    section_rows = set(_section_flags(layout, cells))
    for i, row in layout.iterrows():
        vals = list(row)
        if i in section_rows:
            if i != 0:
                lines.append("\\midrule")
            lines.append(f"\\multicolumn{{{width}}}{{l}}{{\\textit{{{latex_escape(vals[0])}}}}} \\\\")
            continue
        out = [latex_escape(v) for v in vals[:n_labels]]
        for c, v in enumerate(vals[n_labels:]):
            text = cell(v)
            out.append(f"\\textbf{{{text}}}" if (i, c) in bold else text)
        lines.append(" & ".join(out) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def _section_flags(layout: pd.DataFrame, cells: pd.DataFrame) -> list[int]:
    """Positions of the section rows (rows of the layout without cells)."""
    with_cells = set(cells["row"].astype(int)) if not cells.empty else set()
    return [i for i in range(len(layout)) if i not in with_cells]


def write_tables(rows_df: pd.DataFrame, specs: Mapping[str, Mapping[str, Any]] | None, out_dir: Path,
                 seen_model: str | None = "xlmr") -> list[Path]:
    """Write ``NAME.csv``, ``NAME_cells.csv`` and ``NAME.tex`` per spec into `out_dir` (created even when
    there are no specs); return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, spec in (specs or {}).items():
        layout, cells = build_table(rows_df, spec, seen_model=seen_model or "xlmr")
        paths = out_dir / f"{name}.csv", out_dir / f"{name}_cells.csv", out_dir / f"{name}.tex"
        write_text_atomic(layout.to_csv(index=False), paths[0])
        write_text_atomic(cells.to_csv(index=False, float_format="%.6g"), paths[1])
        write_text_atomic(to_latex(layout, cells, spec), paths[2])
        written += list(paths)
    return written
