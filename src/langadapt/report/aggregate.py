"""Aggregation of evaluation rows into tables (CSV + LaTeX) and plots.

Everything here is derived only from the long-format evaluation CSVs
(``recipe, task, language, seed, metric, value, config_hash, code_version, packages``;
docs/architecture.md).

* :func:`collect` reads and validates the per-job CSVs;
* :func:`seed_stats` gives mean / sd / number of seeds per (task, metric, recipe, language);
* :func:`summary_tables` makes one table per task and metric: rows = languages plus an ``avg`` row,
  columns = recipes, cells = mean over seeds (x ``scale``), with ``± sd`` when there is more than one
  seed. The ``avg`` row averages over languages within each seed first, then gives mean and sd of
  these per-seed averages over seeds (the usual "average over languages, mean ± sd over seeds");
* :func:`write_tables` writes all rows (``results.csv``) and ``{task}_{metric}.csv|.tex`` (booktabs);
* :func:`plot_results` draws one grouped bar chart per task (its main metric).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from langadapt.core.atomic import save_figure, write_text_atomic
from langadapt.core.errors import DataError
from langadapt.evaluation.tasks import ROW_COLUMNS

KEY_COLUMNS = ["recipe", "task", "language", "seed", "metric"]
# The metric plotted for a task: the first of these it has (top-10 accuracy is the SR-B metric and
# F1 the Taxi1500 metric of LangSAMP Table 2), else its first metric in alphabetical order.
MAIN_METRICS = ("top10", "macro_f1", "f1", "accuracy", "top1")
#: metrics where lower is better (held-out MLM loss in nats, tokenizer pieces per word, UNK share)
LOWER_IS_BETTER = frozenset({"mlm_loss", "fertility", "unk_rate"})
#: metrics shown as they are (not x100 as the accuracies and F1 scores): nats, pieces per word, cosine
RAW_METRICS = frozenset({"mlm_loss", "fertility", "donor_similarity"})
AVG = "avg"
MISSING = "–"


def collect(csv_paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate evaluation CSVs; DataError naming the file on a missing column, bad value, duplicate."""
    frames = []
    for path in map(Path, csv_paths):
        if not path.is_file():
            raise DataError(f"evaluation rows file {path} does not exist")
        try:
            df = pd.read_csv(
                path,
                dtype={
                    "recipe": str,
                    "task": str,
                    "language": str,
                    "metric": str,
                    "config_hash": str,
                    "code_version": str,
                    "packages": str,
                },
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read evaluation rows file {path}: {exc}") from exc
        if "packages" not in df.columns:  # rows written before package versions were recorded
            df["packages"] = ""
        missing = [c for c in ROW_COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"evaluation rows file {path} lacks column(s) {missing}; expected {ROW_COLUMNS}")
        if df.empty:
            raise DataError(f"evaluation rows file {path} has no rows")
        for col in ("seed", "value"):
            num = pd.to_numeric(df[col], errors="coerce")
            bad = np.flatnonzero(~np.isfinite(num.to_numpy(dtype=float)))
            if len(bad):
                raise DataError(
                    f"{path}, line {bad[0] + 2}: {col} {df[col].iloc[bad[0]]!r} is not a finite number"
                )
            df[col] = num
        for col in KEY_COLUMNS:
            if df[col].isna().any():
                line = int(np.flatnonzero(df[col].isna().to_numpy())[0]) + 2
                raise DataError(f"{path}, line {line}: empty {col}")
        df["seed"] = df["seed"].astype("int64")
        df["_file"] = str(path)
        frames.append(df[ROW_COLUMNS + ["_file"]])
    if not frames:
        raise DataError("no evaluation rows files given")
    out = pd.concat(frames, ignore_index=True)
    dup = out.duplicated(KEY_COLUMNS, keep=False)
    if dup.any():
        first = out[dup].iloc[0]
        files = sorted(set(out.loc[dup & (out[KEY_COLUMNS] == first[KEY_COLUMNS]).all(axis=1), "_file"]))
        raise DataError(f"duplicate evaluation row {first[KEY_COLUMNS].to_dict()} in {', '.join(files)}")
    out = out.drop(columns="_file")
    return out.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)


def seed_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample sd (ddof=1; NaN for one seed) and seed count per task/metric/recipe/language.

    Includes an ``avg`` language per task/metric/recipe computed from per-seed language averages.
    """
    keys = ["task", "metric", "recipe"]
    per_seed_avg = df.groupby(keys + ["seed"], sort=True)["value"].mean().reset_index().assign(language=AVG)
    both = pd.concat([df[keys + ["language", "seed", "value"]], per_seed_avg], ignore_index=True)
    stats = both.groupby(keys + ["language"], sort=True)["value"].agg(mean="mean", sd="std", n="count")
    return stats.reset_index()


def metric_scale(metric: str, scale: float = 100.0, digits: int = 1) -> tuple[float, int]:
    """Display scale and decimals of a metric: `scale`/`digits` for scores in [0, 1], 1 and 2 for
    :data:`RAW_METRICS`."""
    return (1.0, 2) if metric in RAW_METRICS else (scale, digits)


def format_cell(mean: float, sd: float, n: int, scale: float, digits: int) -> str:
    if n > 1:
        return f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f}"


def summary_tables(df: pd.DataFrame, scale: float = 100.0, digits: int = 1) -> dict[str, pd.DataFrame]:
    """One string table per ``{task}_{metric}``: index = languages then ``avg``, columns = recipes.

    Cells are the mean over seeds times `scale` with `digits` decimals (:func:`metric_scale`: raw values with
    2 decimals for losses, fertility and similarities), followed by ``± sd`` (sample sd over seeds) when the
    cell has more than one seed; ``–`` where a recipe lacks the language.
    """
    stats = seed_stats(df)
    tables: dict[str, pd.DataFrame] = {}
    for (task, metric), group in stats.groupby(["task", "metric"], sort=True):
        m_scale, m_digits = metric_scale(str(metric), scale, digits)
        recipes = sorted(group["recipe"].unique())
        langs = sorted(set(group["language"]) - {AVG}) + [AVG]
        table = pd.DataFrame(MISSING, index=pd.Index(langs, name="language"), columns=recipes)
        for row in group.itertuples(index=False):
            table.loc[row.language, row.recipe] = format_cell(row.mean, row.sd, int(row.n), m_scale, m_digits)
        table.columns.name = "recipe"
        tables[f"{task}_{metric}"] = table
    return tables


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (``_`` ``&`` ``%`` ``#`` ``$`` ``{`` ``}`` ``~`` ``^`` ``\\``)."""
    repl = {
        "\\": r"\textbackslash{}",
        "_": r"\_",
        "&": r"\&",
        "%": r"\%",
        "#": r"\#",
        "$": r"\$",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(repl.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``tabular`` of a summary table (``avg`` row below a rule; ``±`` as ``$\\pm$``)."""

    def cell(x: object) -> str:
        return " $\\pm$ ".join(latex_escape(part) for part in str(x).split(" ± "))

    lines = [f"% {latex_escape(caption)}"] if caption else []
    lines += [f"\\begin{{tabular}}{{l{'r' * table.shape[1]}}}", "\\toprule"]
    lines.append(
        " & ".join([latex_escape(table.index.name or "")] + [latex_escape(c) for c in table.columns]) + r" \\"
    )
    lines.append("\\midrule")
    for lang, row in table.iterrows():
        if lang == AVG:
            lines.append("\\midrule")
        lines.append(" & ".join([latex_escape(lang)] + [cell(v) for v in row]) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def write_tables(
    df: pd.DataFrame,
    out_dir: Path,
    all_rows_csv: Path | None = None,
    scale: float = 100.0,
    digits: int = 1,
) -> list[Path]:
    """Write ``{task}_{metric}.csv`` / ``.tex`` into `out_dir` and all rows to `all_rows_csv`
    (default ``out_dir/results.csv``); return the paths written."""
    out_dir = Path(out_dir)
    written = [Path(all_rows_csv) if all_rows_csv is not None else out_dir / "results.csv"]
    write_text_atomic(df.reindex(columns=ROW_COLUMNS).to_csv(index=False), written[0])
    for name, table in summary_tables(df, scale=scale, digits=digits).items():
        csv_path, tex_path = out_dir / f"{name}.csv", out_dir / f"{name}.tex"
        write_text_atomic(table.to_csv(), csv_path)
        caption = f"{name}: mean over seeds (x{scale:g}), ± sd when more than one seed"
        write_text_atomic(to_latex(table, caption), tex_path)
        written += [csv_path, tex_path]
    return written


def main_metric(metrics: Iterable[str]) -> str:
    """The metric shown for a task in plots (see ``MAIN_METRICS``)."""
    metrics = sorted(set(metrics))
    for m in MAIN_METRICS:
        if m in metrics:
            return m
    return metrics[0]


def plot_results(df: pd.DataFrame, out_png: Path, scale: float = 100.0) -> Path:
    """Grouped bar chart (PNG): one subplot per task and its main metric, languages (and ``avg``) on
    the x axis, one bar per recipe (mean over seeds, sd as error bar)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg

    stats = seed_stats(df)
    tasks = sorted(df["task"].unique())
    n_bars = (max(df.groupby("task")["language"].nunique()) + 1) * df["recipe"].nunique()
    fig = Figure(figsize=(min(40.0, max(6.0, 0.25 * n_bars + 2)), 3.2 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 1, squeeze=False)[:, 0]
    for ax, task in zip(axes, tasks, strict=True):
        metric = main_metric(df.loc[df["task"] == task, "metric"])
        m_scale, _ = metric_scale(metric, scale)
        s = stats[(stats["task"] == task) & (stats["metric"] == metric)]
        langs = sorted(set(s["language"]) - {AVG}) + [AVG]
        recipes = sorted(s["recipe"].unique())
        width = 0.8 / len(recipes)
        x = np.arange(len(langs))
        for i, recipe in enumerate(recipes):
            r = s[s["recipe"] == recipe].set_index("language").reindex(langs)
            ax.bar(
                x + (i - (len(recipes) - 1) / 2) * width,
                r["mean"] * m_scale,
                width,
                yerr=(r["sd"].fillna(0.0) * m_scale),
                label=recipe,
                capsize=2,
            )
        ax.set_xticks(x, langs, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{task}: {metric}")
        lower = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        ax.set_ylabel((f"{metric} (x{m_scale:g})" if m_scale != 1 else metric) + lower, fontsize=8)
        ax.legend(fontsize=7, ncols=min(len(recipes), 4))
    return save_figure(fig, out_png)
