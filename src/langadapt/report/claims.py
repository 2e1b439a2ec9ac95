"""The claims table (issue 19 §4): the papers' headline claims next to what this run measured.

A claim (``evaluation.report.claims``, a list) compares two sides, each a recipe evaluated on a task::

    - paper: LangSAMP
      claim: Language and script embeddings improve zero-shot transfer over plain continued pretraining
      where: Table 1 (all languages)
      paper_result: Taxi1500 macro-F1 49.4 -> 53.6
      task: taxi1500_standin              # the task of both sides (a side may name its own: {recipe, task})
      a: langsamp                         # the side the paper says is better
      b: lapt
      metric: macro_f1                    # default: the task's main metric (report.aggregate.main_metric)
      relation: better                    # or `matches` (with `reference`)
      languages: [nya_Latn]               # default: every language both sides were evaluated on
      exclude_languages: [eng_Latn]
      note: ...                           # printed beside the verdict

Per side: the mean over the claim's languages within each evaluation seed, then mean and sample sd over
seeds (as the ``avg`` rows of the result tables). ``better``: the claim agrees when side a's mean is better
than side b's (higher, or lower for :data:`~langadapt.report.aggregate.LOWER_IS_BETTER` metrics).
``matches`` (e.g. "HyperOFA matches OFA"): a matches b when their gap is smaller than the gap between b and
the ``reference`` recipe (e.g. random initialisation) on the same task: a scale-free criterion that needs no
tolerance to be chosen. ``wins`` counts the languages where a is better than b (means over seeds): with one
seed it is the only spread the table can show.

Everything is read from ``results.csv``; the verdict is computed, never set: a claim that does not hold at
this scale says "no".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import ConfigError, DataError
from langadapt.report.aggregate import LOWER_IS_BETTER, latex_escape, main_metric, metric_scale

REQUIRED = ("paper", "claim", "where", "paper_result", "a", "b")
OPTIONAL = ("task", "metric", "relation", "reference", "languages", "exclude_languages", "note")
RELATIONS = ("better", "matches")
COLUMNS = ["paper", "claim", "where", "paper_result", "measure", "a", "b", "a_mean", "a_sd", "b_mean", "b_sd",
           "difference", "reference_mean", "languages", "wins", "seeds", "agrees", "ours", "note"]  # fmt: skip


@dataclass(frozen=True)
class Side:
    recipe: str
    task: str


def _side(value: Any, task: Any, where: str) -> Side:
    if isinstance(value, str):
        recipe, side_task = value, task
    elif isinstance(value, Mapping) and set(value) <= {"recipe", "task"} and "recipe" in value:
        recipe, side_task = value["recipe"], value.get("task", task)
    else:
        raise ConfigError(f"{where} must be a recipe name or {{recipe: NAME, task: TASK}}, got {value!r}")
    if not isinstance(side_task, str):
        raise ConfigError(f"{where}: no task (give the claim a task, or the side {{recipe, task}})")
    return Side(str(recipe), side_task)


def parse_claim(spec: Any, where: str) -> dict[str, Any]:
    """One claim's spec with sides as :class:`Side` (ConfigError naming `where` and the key when malformed)."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {spec!r}")
    unknown = sorted(set(spec) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (known: {sorted(REQUIRED + OPTIONAL)})")
    missing = [k for k in REQUIRED if k not in spec]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    for key in ("paper", "claim", "where", "paper_result"):
        if not isinstance(spec[key], str) or not spec[key].strip():
            raise ConfigError(f"{where}.{key} must be a non-empty string, got {spec[key]!r}")
    relation = spec.get("relation", "better")
    if relation not in RELATIONS:
        raise ConfigError(f"{where}.relation must be one of {list(RELATIONS)}, got {relation!r}")
    if (relation == "matches") != ("reference" in spec):
        raise ConfigError(f"{where}: relation matches needs a reference recipe (and only it takes one)")
    out = dict(spec, relation=relation, a=_side(spec["a"], spec.get("task"), f"{where}.a"),
               b=_side(spec["b"], spec.get("task"), f"{where}.b"))  # fmt: skip
    if relation == "matches":
        out["reference"] = _side(spec["reference"], out["b"].task, f"{where}.reference")
    for key in ("languages", "exclude_languages"):
        langs = spec.get(key)
        if langs is not None and (not isinstance(langs, list) or not all(isinstance(x, str) for x in langs)):
            raise ConfigError(f"{where}.{key} must be a list of language codes, got {langs!r}")
    if spec.get("languages") == []:
        raise ConfigError(f"{where}.languages must not be empty")
    return out


def check_claims(claims: Any, recipes: Sequence[str], tasks: Mapping[str, Any], where: str) -> None:
    """Torch-free config check: every claim well formed, its recipes evaluated and its tasks configured
    (a side's recipe among the task's own ``recipes:`` when it has them)."""
    if claims is None:
        return
    if not isinstance(claims, list):
        raise ConfigError(f"{where} must be a list of claims, got {claims!r}")
    from langadapt.core.languages import parse_lang

    for i, spec in enumerate(claims):
        claim = parse_claim(spec, f"{where}[{i}]")
        for key in ("a", "b", "reference"):
            side = claim.get(key)
            if side is None:
                continue
            if side.task not in tasks:
                raise ConfigError(f"{where}[{i}].{key}: task {side.task!r} is not in evaluation.tasks")
            allowed = tasks[side.task].get("recipes") or recipes
            if side.recipe not in allowed:
                raise ConfigError(f"{where}[{i}].{key}: recipe {side.recipe!r} is not evaluated on task "
                                  f"{side.task!r} (evaluated: {sorted(allowed)})")  # fmt: skip
        for key in ("languages", "exclude_languages"):
            for j, code in enumerate(claim.get(key) or []):
                parse_lang(code, where=f"{where}[{i}].{key}[{j}]")


# ------------------------------------------------------------------------------------------ verdicts
def _rows(results: pd.DataFrame, side: Side, metric: str | None, where: str) -> pd.DataFrame:
    rows = results[(results["recipe"] == side.recipe) & (results["task"] == side.task)]
    if rows.empty:
        raise DataError(f"{where}: results.csv has no rows of recipe {side.recipe!r} on task {side.task!r}")
    metric = metric or main_metric(rows["metric"])
    rows = rows[rows["metric"] == metric]
    if rows.empty:
        raise DataError(f"{where}: recipe {side.recipe!r} on task {side.task!r} has no metric {metric!r}")
    return rows


def _per_seed(rows: pd.DataFrame) -> np.ndarray:
    return rows.groupby("seed")["value"].mean().to_numpy(dtype=float)


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def judge(results: pd.DataFrame, claim: Mapping[str, Any], where: str = "claim") -> dict[str, Any]:
    """The verdict row of one parsed claim (:func:`parse_claim`) on the long-format results."""
    a_rows = _rows(results, claim["a"], claim.get("metric"), f"{where}.a")
    metric = str(a_rows["metric"].iloc[0])
    b_rows = _rows(results, claim["b"], metric, f"{where}.b")
    langs = set(claim.get("languages") or (set(a_rows["language"]) & set(b_rows["language"])))
    langs -= set(claim.get("exclude_languages") or [])
    for name, rows in (("a", a_rows), ("b", b_rows)):
        missing = sorted(langs - set(rows["language"]))
        if missing:
            raise DataError(f"{where}.{name}: recipe {claim[name].recipe!r} on task {claim[name].task!r} has no "
                            f"{metric} for {missing}")  # fmt: skip
    if not langs:
        raise DataError(f"{where}: the two sides share no language")
    a_rows, b_rows = a_rows[a_rows["language"].isin(langs)], b_rows[b_rows["language"].isin(langs)]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0  # > 0: better
    (a_mean, a_sd), (b_mean, b_sd) = _stats(_per_seed(a_rows)), _stats(_per_seed(b_rows))
    per_lang = (a_rows.groupby("language")["value"].mean() - b_rows.groupby("language")["value"].mean()) * sign
    ref_mean = float("nan")
    if claim["relation"] == "better":
        agrees = sign * (a_mean - b_mean) > 0
    else:
        ref_rows = _rows(results, claim["reference"], metric, f"{where}.reference")
        ref_rows = ref_rows[ref_rows["language"].isin(langs)]
        ref_mean = _stats(_per_seed(ref_rows))[0]
        agrees = abs(a_mean - b_mean) < abs(b_mean - ref_mean)
    a, b = claim["a"], claim["b"]
    a_name = a.recipe if a.task == b.task else f"{a.recipe} ({a.task})"
    b_name = b.recipe if a.task == b.task else f"{b.recipe} ({b.task})"
    measure = f"{a.task}: {metric}" + (f" vs {b.task}" if b.task != a.task else "")
    wins = int((per_lang > 0).sum())
    seeds = sorted(set(a_rows["seed"]) | set(b_rows["seed"]))
    return {
        "paper": claim["paper"], "claim": claim["claim"], "where": claim["where"],
        "paper_result": claim["paper_result"],
        "measure": measure, "a": a_name, "b": b_name,
        "a_mean": a_mean, "a_sd": a_sd, "b_mean": b_mean, "b_sd": b_sd, "difference": a_mean - b_mean,
        "reference_mean": ref_mean, "languages": len(langs), "wins": wins, "seeds": len(seeds),
        "agrees": "yes" if agrees else "no",
        "ours": _ours(claim, metric, measure, (a_name, a_mean, a_sd), (b_name, b_mean, b_sd), ref_mean, wins,
                      len(langs)),
        "note": claim.get("note", ""),
    }  # fmt: skip


def _ours(claim: Mapping[str, Any], metric: str, measure: str, a: tuple[str, float, float],
          b: tuple[str, float, float], ref_mean: float, wins: int, n_langs: int) -> str:
    """``A 47.3 ± 1.2 vs B 45.0 ± 0.8 (task: macro_f1; 23 languages, better on 15)``."""
    scale, digits = metric_scale(metric)

    def num(mean: float, sd: float) -> str:
        return f"{mean * scale:.{digits}f}" + ("" if np.isnan(sd) else f" ± {sd * scale:.{digits}f}")

    text = f"{a[0]} {num(a[1], a[2])} vs {b[0]} {num(b[1], b[2])}"
    if claim["relation"] == "matches":
        text += f"; {claim['reference'].recipe} {num(ref_mean, float('nan'))}"
    lower = ", lower is better" if metric in LOWER_IS_BETTER else ""
    where = f"{n_langs} language{'s' if n_langs != 1 else ''}"
    return f"{text} ({measure}{lower}; {where}, better on {wins})"


def claims_table(results: pd.DataFrame, claims: Sequence[Mapping[str, Any]], where: str = "claims") -> pd.DataFrame:
    """One verdict row per claim spec (parsed and checked against the results before any is judged)."""
    parsed = [parse_claim(spec, f"{where}[{i}]") for i, spec in enumerate(claims)]
    rows = [judge(results, claim, f"{where}[{i}]") for i, claim in enumerate(parsed)]
    return pd.DataFrame(rows, columns=COLUMNS)


def to_markdown(table: pd.DataFrame) -> str:
    """The table a person reads (README, report): paper, claim, the paper's result, ours, verdict."""
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| Paper | Claim | Paper's result | This run | Holds here? |", "|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        verdict = r.agrees + (f" — {r.note}" if r.note else "")
        lines.append(f"| {cell(r.paper)} | {cell(r.claim)} | {cell(r.paper_result)} ({cell(r.where)}) | "
                     f"{cell(r.ours)} | {cell(verdict)} |")  # fmt: skip
    agree = int((table["agrees"] == "yes").sum())
    lines += ["", f"{agree} of {len(table)} claims hold in this run."]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A booktabs table of the same columns as :func:`to_markdown`."""
    head = ["Paper", "Claim", "Paper's result", "This run", "Holds"]
    body = []
    for r in table.itertuples(index=False):
        cells = [r.paper, r.claim, f"{r.paper_result} ({r.where})", r.ours, r.agrees]
        body.append(" & ".join(latex_escape(str(c)) for c in cells) + r" \\")
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small",
        r"\begin{tabular}{p{0.12\linewidth}p{0.25\linewidth}p{0.22\linewidth}p{0.3\linewidth}l}", r"\toprule",
        " & ".join(head) + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
        *([rf"\caption{{{latex_escape(caption)}}}"] if caption else []), r"\end{table}", "",
    ])  # fmt: skip


def write_claims(results_csv: Path, claims: Sequence[Mapping[str, Any]], out_csv: Path, out_md: Path,
                 out_tex: Path) -> pd.DataFrame:
    """Judge every claim on ``results.csv`` and write the CSV (all numbers), Markdown and LaTeX tables."""
    results = pd.read_csv(results_csv)
    table = claims_table(results, claims, where=f"claims (on {results_csv})")
    write_text_atomic(table.to_csv(index=False, float_format="%.6g"), Path(out_csv))
    write_text_atomic(to_markdown(table), Path(out_md))
    caption = "The papers' claims in this run: mean over languages per seed, mean ± sd over seeds"
    write_text_atomic(to_latex(table, caption), Path(out_tex))
    return table
