"""Paper-table specs (config ``evaluation.report.tables``; the format is described in
`langadapt.report.paper_tables`): key resolution with placeholders, ``each`` expansion and ``mean_of``
combinations, and the checks of a spec against the config's recipes and tasks, run before any job."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from langadapt.core.errors import ConfigError
from langadapt.report.stats import GROUPINGS, SEEN_MODELS

SELECTORS = ("recipe", "task", "metric", "group", "language")


EACH_KEYS = ("recipe", "task", "language")


SPEC_KEYS = ("caption", "metric", "scale", "digits", "sd", "seen_model", "best", "lower_is_better", "missing_ok", "seeds",
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


PLACEHOLDER = re.compile(r"\{(\w+)\}")


_NAME = re.compile(r"[A-Za-z_]\w*")


CELL_SEP = " / "


class _Each:
    """The value of an ``each:`` key at check time (known only once the rows are read)."""

    def __repr__(self) -> str:
        return "<each>"


_EACH = _Each()


@dataclass
class KeyValue:
    """A key's value in a cell under construction, where it was set, and whether a placeholder made it."""

    value: Any
    where: str
    templated: bool = False


def _self_subst(key: str, value: Any, prev: KeyValue | None, where: str) -> Any:
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


def _apply(ctx: dict[str, KeyValue], keys: Mapping[str, Any], variables: Mapping[str, Any], where: str) -> None:
    """Merge one part's selector keys and vars into `ctx` (self-references resolved against `ctx`)."""
    for key, value in [*keys.items(), *variables.items()]:
        w = f"{where}.{key}" if key in SELECTORS else f"{where}.vars.{key}"
        templated = bool(PLACEHOLDER.search(str(value))) or (key in ctx and ctx[key].templated)
        ctx[key] = KeyValue(_self_subst(key, value, ctx.get(key), w), w, templated)


def _merge(parts: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, KeyValue]]:
    """The alternatives (``mean_of`` x ...) of merged, not yet fully resolved keys of a cell's parts."""
    alts: list[dict[str, KeyValue]] = [{}]
    for where, entry in parts:
        own = {k: entry[k] for k in SELECTORS if k in entry}
        subs = entry.get("mean_of") or [None]
        new: list[dict[str, KeyValue]] = []
        for alt in alts:
            for j, sub in enumerate(subs):
                ctx = dict(alt)
                if "each" in entry and entry["each"] not in entry:
                    ctx[entry["each"]] = KeyValue(_EACH, f"{where}.each")
                _apply(ctx, own, entry.get("vars") or {}, where)
                if sub is not None:
                    _apply(ctx, {k: sub[k] for k in SELECTORS if k in sub}, sub.get("vars") or {},
                           f"{where}.mean_of[{j}]")
                new.append(ctx)
        alts = new
    return alts


def _final(ctx: Mapping[str, KeyValue]) -> dict[str, KeyValue]:
    """Fill every remaining placeholder from the cell's final keys and vars (cycles: ConfigError)."""
    done: dict[str, KeyValue] = {}

    def get(name: str, stack: tuple[str, ...]) -> Any:
        if name not in done:
            if name in stack:
                raise ConfigError(f"{ctx[name].where}: placeholders refer to each other: {' -> '.join(stack)}")
            v = ctx[name]
            done[name] = KeyValue(fill(v.value, v.where, (*stack, name)), v.where, v.templated)
        return done[name].value

    def fill(value: Any, where: str, stack: tuple[str, ...]) -> Any:
        if isinstance(value, list):
            out = [fill(v, where, stack) for v in value]
            return _EACH if any(v is _EACH for v in out) else out
        if not isinstance(value, str):
            return value
        subs: dict[str, str] = {}
        for name in PLACEHOLDER.findall(value):
            if name not in ctx:
                raise ConfigError(f"{where}: placeholder {{{name}}} in {value!r} is not set by the cell's row or "
                                  f"columns (selector keys: {', '.join(SELECTORS)}; or a var)")
            got = get(name, stack)
            if got is _EACH:
                return _EACH
            if not isinstance(got, str):
                raise ConfigError(f"{where}: placeholder {{{name}}} in {value!r} refers to {got!r}, not one string")
            subs[name] = got
        return PLACEHOLDER.sub(lambda m: subs[m.group(1)], value) if subs else value

    for name in ctx:
        get(name, ())
    return {k: v for k, v in done.items() if k in SELECTORS}


def cell_alternatives(parts: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, KeyValue]]:
    """Fully resolved selector keys of each ``mean_of`` alternative of a cell."""
    return [_final(ctx) for ctx in _merge(parts)]


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


def _check_value(key: str, v: KeyValue, recipes: Sequence[str], tasks: Mapping[str, Any], missing_ok: bool) -> None:
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
            if key in keys and not PLACEHOLDER.search(str(keys[key])):
                _check_value(key, KeyValue(keys[key], f"{w}.{key}"), recipes, tasks, False)


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
                for keys in cell_alternatives([row, *combo]):
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
    seeds = spec.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
        raise ConfigError(f"{at}.seeds must be a non-empty list of integers, got {seeds!r}")
    for key in ("sd", "lower_is_better", "missing_ok"):
        if key in spec and not isinstance(spec[key], bool):
            raise ConfigError(f"{at}.{key} must be true or false, got {spec[key]!r}")
    if spec.get("seen_model") is not None and spec["seen_model"] not in SEEN_MODELS:
        raise ConfigError(f"{at}.seen_model must be one of {', '.join(SEEN_MODELS)}, got {spec['seen_model']!r}")
    if spec.get("best", "none") not in BEST:
        raise ConfigError(f"{at}.best must be one of {', '.join(BEST)}, got {spec['best']!r}")
