"""The step a ``select: downstream`` pretraining keeps (LangSAMP §4.1: "early stopping with the best average
performance on downstream tasks"): each exported step's evaluation rows (rule ``evaluate_step``) are averaged
per task over languages on the task's main metric (:func:`langadapt.report.aggregate.main_metric`, as in the
result tables), then over ``select_tasks``; the best step's model becomes the stage's model directory, with
the per-step scores (``step_scores.csv``) and their plot (``step_scores.png``) beside it.

The scores are the evaluation rows of each task's own protocol (test sets): like the paper, the choice is
made on the numbers that are reported, which favours the selected step; ``select: dev_mlm`` is the
held-out alternative.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langadapt.core.atomic import atomic_dir, save_figure, write_text_atomic
from langadapt.core.errors import DataError
from langadapt.models.card import write_provenance
from langadapt.report.aggregate import collect, main_metric
from langadapt.train.stepselect import step_dir

log = logging.getLogger(__name__)


def step_scores(eval_csvs: Mapping[int, Sequence[Path]]) -> dict[int, dict[str, float]]:
    """``{step: {task: mean over languages of the task's main metric}}`` from each step's evaluation rows
    (`langadapt.report.aggregate`: the same main metric as the result tables)."""
    out: dict[int, dict[str, float]] = {}
    for step, paths in sorted(eval_csvs.items()):
        df = collect(paths)
        scores = {}
        for task, rows in df.groupby("task", sort=True):
            metric = main_metric(rows["metric"])
            scores[str(task)] = float(rows.loc[rows["metric"] == metric, "value"].mean())
        out[int(step)] = scores
    return out


def best_step(scores: Mapping[int, Mapping[str, float]], tasks: Sequence[str]) -> tuple[int, dict[int, float]]:
    """(the step with the highest average over `tasks`, ties to the earlier step; {step: average})."""
    avg = {}
    for step, by_task in sorted(scores.items()):
        missing = [t for t in tasks if t not in by_task]
        if missing:
            raise DataError(f"step {step}: no evaluation rows for task(s) {missing}")
        avg[step] = sum(by_task[t] for t in tasks) / len(tasks)
    if not avg:
        raise DataError("downstream selection: no evaluated steps")
    return max(avg, key=lambda s: (avg[s], -s)), avg


def evals_by_step(paths: Sequence[str | Path]) -> dict[int, list[Path]]:
    """``{step: [csv, ...]}`` from ``evaluate_step`` outputs (``.../step{k}_seed{s}.csv``)."""
    out: dict[int, list[Path]] = {}
    for p in map(Path, paths):
        m = re.fullmatch(r"step(\d+)_seed\d+\.csv", p.name)
        if m is None:
            raise DataError(f"{p}: not an evaluate_step output (step<K>_seed<S>.csv)")
        out.setdefault(int(m.group(1)), []).append(p)
    return out


def select_step_job(steps_root: Path, eval_csvs: Mapping[int, Sequence[Path]] | Sequence[str | Path],
                    tasks: Sequence[str], out_dir: Path) -> int:  # fmt: skip
    """The ``select_step`` rule: copy the best step's model to `out_dir` with ``step_scores.csv``,
    ``step_scores.png`` and the choice recorded in its ``langadapt.json`` (``training.selected_step``).
    `eval_csvs`: ``{step: [csv, ...]}`` or the ``evaluate_step`` output paths."""
    if not isinstance(eval_csvs, Mapping):
        eval_csvs = evals_by_step(eval_csvs)
    scores = step_scores(eval_csvs)
    chosen, avg = best_step(scores, tasks)
    src = step_dir(steps_root, chosen)
    if not (src / "config.json").is_file():
        raise DataError(f"{src}: the exported model of step {chosen} is missing")
    lines = ["step,task,score"] + [f"{s},{t},{v:.6f}" for s in sorted(scores) for t, v in sorted(scores[s].items())]
    lines += [f"{s},average,{avg[s]:.6f}" for s in sorted(avg)]
    with atomic_dir(out_dir) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        meta_path = tmp / "langadapt.json"
        meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        meta.setdefault("training", {}).update({"select": "downstream", "selected_step": chosen,
                                                "select_tasks": list(tasks), "step_average": avg})
        write_provenance(tmp, meta, indent=1, final=out_dir)  # langadapt.json + its model card
        write_text_atomic("\n".join(lines) + "\n", tmp / "step_scores.csv")
        _plot(scores, avg, chosen, tasks, tmp / "step_scores.png")
    log.info("selected step %d (average %.4f over %s; steps %s)", chosen, avg[chosen], ", ".join(tasks),
             ", ".join(f"{s}: {v:.4f}" for s, v in sorted(avg.items())))
    return chosen


def _plot(scores: Mapping[int, Mapping[str, float]], avg: Mapping[int, float], chosen: int,
          tasks: Sequence[str], out_png: Path) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(avg)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for t in tasks:
        ax.plot(steps, [scores[s][t] for s in steps], marker=".", alpha=0.6, label=t)
    ax.plot(steps, [avg[s] for s in steps], color="black", linewidth=2, label="average")
    ax.axvline(chosen, color="grey", linestyle="--", label=f"selected: step {chosen}")
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("main metric")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)
