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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import ConfigError
from langadapt.report.aggregate import MISSING, latex_escape, main_metric
from langadapt.report.stats import GROUPINGS, SEEN_MODELS, language_groups

SELECTORS = ("recipe", "task", "metric", "group", "language")
EACH_KEYS = ("recipe", "task", "language")
SPEC_KEYS = ("caption", "metric", "scale", "digits", "sd", "seen_model", "best", "lower_is_better", "missing_ok",
             "rows", "columns")
ROW_KEYS = SELECTORS + ("label", "section", "each", "baseline", "vars", "mean_of")
COLUMN_KEYS = SELECTORS + ("label", "each", "vars", "mean_of")
MEAN_OF_KEYS = SELECTORS + ("vars",)
BEST = ("none", "column", "row", "row_within")
# Known groups of the groupings whose values are a closed set (others are free: family, script_name).
_GROUP_VALUES = {
    "seen": ("seen", "unseen"),
    "script": ("Latin", "non-Latin"),
    "joshi": ("0", "1", "2", "3", "4", "5"),
    "resource": ("HRL", "MRL", "LRL"),
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_NAME = re.compile(r"[A-Za-z_]\w*")
CELL_SEP = " / "


class _Each:
    """The value of an ``each:`` key at check time (known only once the rows are read)."""

    def __repr__(self) -> str:
        return "<each>"


_EACH = _Each()


@dataclass
class _Value:
    """A key's value in a cell under construction, where it was set, and whether a placeholder made it."""

    value: Any
    where: str
    templated: bool = False


# ------------------------------------------------------------------------------------- key resolution


def _self_subst(key: str, value: Any, prev: _Value | None, where: str) -> Any:
    """Replace ``{key}`` in `value` (a string or list of strings) by the previous value of `key`."""
    if isinstance(value, list):
        out = [_self_subst(key, v, prev, where) for v in value]
        return _EACH if any(v is _EACH for v in out) else out
    if not isinstance(value, str) or f"{{{key}}}" not in value:
        return value
    if prev is None:
        raise ConfigError(f"{where}: placeholder {{{key}}} in {value!r} is not set by an earlier row or column level")
    if prev.value is _EACH:
        return _EACH
    if not isinstance(prev.value, str):
        raise ConfigError(f"{where}: placeholder {{{key}}} in {value!r} refers to {prev.value!r}, not one string")
    return value.replace(f"{{{key}}}", prev.value)


def _apply(ctx: dict[str, _Value], keys: Mapping[str, Any], variables: Mapping[str, Any], where: str) -> None:
    """Merge one part's selector keys and vars into `ctx` (self-references resolved against `ctx`)."""
    for key, value in [*keys.items(), *variables.items()]:
        w = f"{where}.{key}" if key in SELECTORS else f"{where}.vars.{key}"
        templated = bool(_PLACEHOLDER.search(str(value))) or (key in ctx and ctx[key].templated)
        ctx[key] = _Value(_self_subst(key, value, ctx.get(key), w), w, templated)


def _merge(parts: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, _Value]]:
    """The alternatives (``mean_of`` x ...) of merged, not yet fully resolved keys of a cell's parts."""
    alts: list[dict[str, _Value]] = [{}]
    for where, entry in parts:
        own = {k: entry[k] for k in SELECTORS if k in entry}
        subs = entry.get("mean_of") or [None]
        new: list[dict[str, _Value]] = []
        for alt in alts:
            for j, sub in enumerate(subs):
                ctx = dict(alt)
                if "each" in entry and entry["each"] not in entry:
                    ctx[entry["each"]] = _Value(_EACH, f"{where}.each")
                _apply(ctx, own, entry.get("vars") or {}, where)
                if sub is not None:
                    _apply(ctx, {k: sub[k] for k in SELECTORS if k in sub}, sub.get("vars") or {},
                           f"{where}.mean_of[{j}]")
                new.append(ctx)
        alts = new
    return alts


def _final(ctx: Mapping[str, _Value]) -> dict[str, _Value]:
    """Fill every remaining placeholder from the cell's final keys and vars (cycles: ConfigError)."""
    done: dict[str, _Value] = {}

    def get(name: str, stack: tuple[str, ...]) -> Any:
        if name not in done:
            if name in stack:
                raise ConfigError(f"{ctx[name].where}: placeholders refer to each other: {' -> '.join(stack)}")
            v = ctx[name]
            done[name] = _Value(fill(v.value, v.where, (*stack, name)), v.where, v.templated)
        return done[name].value

    def fill(value: Any, where: str, stack: tuple[str, ...]) -> Any:
        if isinstance(value, list):
            out = [fill(v, where, stack) for v in value]
            return _EACH if any(v is _EACH for v in out) else out
        if not isinstance(value, str):
            return value
        subs: dict[str, str] = {}
        for name in _PLACEHOLDER.findall(value):
            if name not in ctx:
                raise ConfigError(f"{where}: placeholder {{{name}}} in {value!r} is not set by the cell's row or "
                                  f"columns (selector keys: {', '.join(SELECTORS)}; or a var)")
            got = get(name, stack)
            if got is _EACH:
                return _EACH
            if not isinstance(got, str):
                raise ConfigError(f"{where}: placeholder {{{name}}} in {value!r} refers to {got!r}, not one string")
            subs[name] = got
        return _PLACEHOLDER.sub(lambda m: subs[m.group(1)], value) if subs else value

    for name in ctx:
        get(name, ())
    return {k: v for k, v in done.items() if k in SELECTORS}


def _cell_alternatives(parts: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, _Value]]:
    """Fully resolved selector keys of each ``mean_of`` alternative of a cell."""
    return [_final(ctx) for ctx in _merge(parts)]


# ----------------------------------------------------------------------------------------------- checks


def _check_group(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: group must be 'all' or 'BY=VALUE', got {value!r}")
    if value == "all":
        return
    by, sep, val = value.partition("=")
    if not sep or not val:
        raise ConfigError(f"{where}: malformed group {value!r}; expected 'all' or 'BY=VALUE', e.g. 'seen=unseen'")
    if by not in GROUPINGS:
        raise ConfigError(f"{where}: unknown grouping {by!r} in group {value!r}; choose one of: "
                          f"{', '.join(GROUPINGS)}")
    if by in _GROUP_VALUES and val not in _GROUP_VALUES[by]:
        raise ConfigError(f"{where}: unknown {by} group {val!r} in {value!r}; choose one of: "
                          f"{', '.join(_GROUP_VALUES[by])}")


def _check_value(key: str, v: _Value, recipes: Sequence[str], tasks: Mapping[str, Any], missing_ok: bool) -> None:
    """Validate one resolved selector value (a string, or a non-empty list of strings)."""
    if v.value is _EACH:
        return
    if isinstance(v.value, list) and not v.value:
        raise ConfigError(f"{v.where}: empty list")
    for x in v.value if isinstance(v.value, list) else [v.value]:
        if key == "group":
            _check_group(x, v.where)
            continue
        if not isinstance(x, str):
            raise ConfigError(f"{v.where}: {key} must be a string (or a list of strings), got {x!r}")
        lenient = missing_ok and v.templated
        if key == "recipe" and x not in recipes and not lenient:
            raise ConfigError(f"{v.where}: unknown recipe {x!r}; evaluated recipes: {', '.join(recipes)}")
        if key == "task" and x not in tasks and not lenient:
            raise ConfigError(f"{v.where}: unknown task {x!r}; tasks: {', '.join(tasks)}")
        if key == "language":
            from langadapt.core.languages import parse_lang

            parse_lang(x, where=v.where)


def _check_label(label: Any, where: str) -> int:
    """Number of label columns of a row label (a string or a non-empty list of strings)."""
    if isinstance(label, str):
        return 1
    if isinstance(label, list) and label and all(isinstance(x, str) for x in label):
        return len(label)
    raise ConfigError(f"{where}.label must be a string or a non-empty list of strings, got {label!r}")


def _check_vars(variables: Any, where: str) -> None:
    if not isinstance(variables, Mapping):
        raise ConfigError(f"{where}.vars must be a mapping name: string, got {variables!r}")
    for name, value in variables.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in SELECTORS:
            raise ConfigError(f"{where}.vars: bad name {name!r} (an identifier, not one of {', '.join(SELECTORS)})")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}.vars.{name} must be a string, got {value!r}")


def _check_entry(entry: Any, allowed: Sequence[str], where: str) -> None:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {entry!r}")
    unknown = sorted(set(entry) - set(allowed), key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    if "each" in entry and entry["each"] not in EACH_KEYS:
        raise ConfigError(f"{where}.each must be one of {', '.join(EACH_KEYS)}, got {entry['each']!r}")
    if "each" in entry and entry["each"] in entry:
        raise ConfigError(f"{where}: 'each: {entry['each']}' and '{entry['each']}' in one entry")
    if "vars" in entry:
        _check_vars(entry["vars"], where)
    if "mean_of" in entry:
        subs = entry["mean_of"]
        if not isinstance(subs, list) or not subs:
            raise ConfigError(f"{where}.mean_of must be a non-empty list of key mappings, got {subs!r}")
        for j, sub in enumerate(subs):
            w = f"{where}.mean_of[{j}]"
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{w} must be a mapping, got {sub!r}")
            bad = sorted(set(sub) - set(MEAN_OF_KEYS), key=str)
            if bad:
                raise ConfigError(f"{w}: unknown key(s) {', '.join(map(repr, bad))}; "
                                  f"allowed: {', '.join(MEAN_OF_KEYS)}")
            if "vars" in sub:
                _check_vars(sub["vars"], w)


def _check_literals(entry: Mapping[str, Any], recipes: Sequence[str], tasks: Mapping[str, Any], where: str) -> None:
    """Validate the placeholder-free selector values an entry (and its ``mean_of``) writes down."""
    subs = [(f"{where}.mean_of[{j}]", sub) for j, sub in enumerate(entry.get("mean_of") or [])]
    for w, keys in [(where, entry), *subs]:
        for key in SELECTORS:
            if key in keys and not _PLACEHOLDER.search(str(keys[key])):
                _check_value(key, _Value(keys[key], f"{w}.{key}"), recipes, tasks, False)


def check_tables(
    tables: Mapping[str, Any],
    recipes: Sequence[str],
    tasks: Mapping[str, Mapping[str, Any]],
    where: str = "evaluation.report.tables",
) -> None:
    """Validate table specs at config time (pure: reads no results).

    Checks unknown keys, types of the options, labels (same number of label columns in every row), and,
    for every row x column combination with placeholders resolved (an ``each:`` key counts as set), that the
    cell has a recipe and a task, that recipes and tasks are configured (except values made by a placeholder
    when the spec sets ``missing_ok: true``), groupings and groups, language codes and string metrics.
    Raises ConfigError naming the path (``where.NAME.rows[3].recipe``) and the bad value.
    """
    if tables is None:
        return
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{where} must be a mapping of table name to spec, got {tables!r}")
    recipes = list(recipes)
    for name, spec in tables.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"{where}: table name {name!r} must be letters, digits, '_', '-', '.' (a file name)")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at} must be a mapping, got {spec!r}")
        unknown = sorted(set(spec) - set(SPEC_KEYS), key=str)
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(SPEC_KEYS)}")
        _check_options(spec, tasks, at)
        rows, columns = spec.get("rows"), spec.get("columns")
        if not isinstance(rows, list) or not rows:
            raise ConfigError(f"{at}.rows must be a non-empty list of entries, got {rows!r}")
        if not isinstance(columns, list) or not columns or not all(isinstance(lv, list) and lv for lv in columns):
            raise ConfigError(f"{at}.columns must be a non-empty list of levels (non-empty lists of entries), "
                              f"got {columns!r}")
        n_labels: int | None = None
        row_parts: list[tuple[str, Mapping[str, Any]]] = []
        for i, entry in enumerate(rows):
            w = f"{at}.rows[{i}]"
            _check_entry(entry, ROW_KEYS, w)
            if "section" in entry:
                if set(entry) != {"section"} or not isinstance(entry["section"], str):
                    raise ConfigError(f"{w}: a section row has only 'section: TEXT', got {dict(entry)!r}")
                continue
            if "baseline" in entry and not isinstance(entry["baseline"], bool):
                raise ConfigError(f"{w}.baseline must be true or false, got {entry['baseline']!r}")
            n = _check_label(entry["label"], w) if "label" in entry else 1
            if "each" in entry and "label" in entry:
                n += 1  # the label is a prefix of the expanded value
            if n_labels is None:
                n_labels = n
            elif n != n_labels:
                raise ConfigError(f"{w}.label: {n} label column(s) but earlier rows have {n_labels}: "
                                  f"{entry.get('label')!r}")
            _check_literals(entry, recipes, tasks, w)
            row_parts.append((w, entry))
        if not row_parts:
            raise ConfigError(f"{at}.rows has only section rows")
        levels: list[list[tuple[str, Mapping[str, Any]]]] = []
        for j, level in enumerate(columns):
            entries = []
            for k, entry in enumerate(level):
                w = f"{at}.columns[{j}][{k}]"
                _check_entry(entry, COLUMN_KEYS, w)
                if "label" in entry and not isinstance(entry["label"], str):
                    raise ConfigError(f"{w}.label must be a string, got {entry['label']!r}")
                _check_literals(entry, recipes, tasks, w)
                entries.append((w, entry))
            levels.append(entries)
        missing_ok = bool(spec.get("missing_ok", False))
        for row in row_parts:
            for combo in itertools.product(*levels):
                for keys in _cell_alternatives([row, *combo]):
                    for key in ("recipe", "task"):
                        if key not in keys:
                            cols = ", ".join(w for w, _ in combo)
                            raise ConfigError(f"{at}: the cell of {row[0]} and {cols} has no {key} "
                                              f"(set it in the row or a column entry)")
                    for key, value in keys.items():
                        _check_value(key, value, recipes, tasks, missing_ok)


def _check_options(spec: Mapping[str, Any], tasks: Mapping[str, Any], at: str) -> None:
    if "caption" in spec and not isinstance(spec["caption"], str):
        raise ConfigError(f"{at}.caption must be a string, got {spec['caption']!r}")
    metric = spec.get("metric")
    if isinstance(metric, Mapping):
        for task, m in metric.items():
            if task not in tasks:
                raise ConfigError(f"{at}.metric: unknown task {task!r}; tasks: {', '.join(tasks)}")
            if not isinstance(m, str):
                raise ConfigError(f"{at}.metric.{task} must be a metric name (a string), got {m!r}")
    elif metric is not None and not isinstance(metric, str):
        raise ConfigError(f"{at}.metric must be null, a metric name or a mapping task: metric, got {metric!r}")
    scale = spec.get("scale", 100)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale):
        raise ConfigError(f"{at}.scale must be a number, got {scale!r}")
    digits = spec.get("digits", 1)
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ConfigError(f"{at}.digits must be an integer >= 0, got {digits!r}")
    for key in ("sd", "lower_is_better", "missing_ok"):
        if key in spec and not isinstance(spec[key], bool):
            raise ConfigError(f"{at}.{key} must be true or false, got {spec[key]!r}")
    if spec.get("seen_model") is not None and spec["seen_model"] not in SEEN_MODELS:
        raise ConfigError(f"{at}.seen_model must be one of {', '.join(SEEN_MODELS)}, got {spec['seen_model']!r}")
    if spec.get("best", "none") not in BEST:
        raise ConfigError(f"{at}.best must be one of {', '.join(BEST)}, got {spec['best']!r}")


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
        if isinstance(v, str) and not _PLACEHOLDER.search(v):
            sel = sel[sel[k] == v]
        elif isinstance(v, list) and all(isinstance(x, str) and not _PLACEHOLDER.search(x) for x in v):
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


def _combinations(alternatives: Sequence[Mapping[str, _Value]]) -> list[dict[str, Any]]:
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
            alternatives = _cell_alternatives([(e.where, e.keys) for e in (row, *combo)])
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
