"""Dry-run cost of the full four-paper reproduction (issue 7): `snakemake -n` <= 2 ms per job, start-up included.

Runs, in one process each and side by side:

- ``reproduce``: ``snakemake -s workflow/reproduce.smk -n`` — the four paper configs of configs/ as shipped,
  in one DAG (each paper under results/PAPER/);
- ``reproduce-2x-seeds``: the same with every task's seed list doubled (e.g. LangSAMP 5 -> 10 fine-tuning
  seeds), the size at which the budget is set (>= 5,000 jobs);
- ``naive``: what the same DAG costs when shaped naively — a generated Snakefile with the same rules and job
  counts where every evaluation job lists the model and one corpus per language as inputs (instead of the
  task-specific inputs of rules/eval.smk), params are plain strings and no input function is cached.

Each is run `--repeat` times on a quiet-enough machine; reported: jobs, wall seconds (best and median),
ms per job, peak RSS of the snakemake process, and the CPU time other processes used meanwhile (this
machine is shared and noisy). Results go to ``results/benchmarks/dryrun_budget.json``.

    .venv/bin/python benchmarks/dryrun_budget.py [--repeat 3] [--which reproduce reproduce-2x-seeds naive]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from workflow_budget import PARTS, REPO, copy_workflow, cpu_busy_seconds

PAPERS = ("langsamp", "realignment", "vocab-specialization", "hyperofa")
BUDGET_MS_PER_JOB = 2.0
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def timed(cmd: list[str], cwd: Path) -> dict:
    """Run `cmd`, return wall time, its peak RSS, its CPU time and the other processes' CPU time."""
    busy0, t0 = cpu_busy_seconds(), time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    ours = usage.ru_utime + usage.ru_stime
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    m = re.search(r"^total\s+(\d+)$", out, re.M)
    return {"jobs": int(m.group(1)) if m else 0, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
            "cpu_s": ours, "other_cpu_s": max(0.0, cpu_busy_seconds() - busy0 - ours)}


def double_seeds(workdir: Path) -> None:
    for paper in PAPERS:
        path = workdir / "configs" / f"{paper}.yaml"
        cfg = yaml.safe_load(path.read_text())
        ev = cfg["evaluation"]
        ev["seeds"] = [*ev["seeds"], *(max(ev["seeds"]) + 1 + i for i in range(len(ev["seeds"])))]
        for task in ev["tasks"].values():
            if task.get("seeds"):
                task["seeds"] = [*task["seeds"], *(max(task["seeds"]) + 1 + i for i in range(len(task["seeds"])))]
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def job_table(workdir: Path) -> dict[str, int]:
    """rule -> job count of the reproduction's dry run (the shape the naive workflow copies)."""
    out = subprocess.run([SNAKEMAKE, "-s", "workflow/reproduce.smk", "-n", "--quiet", "rules"], cwd=workdir,
                         capture_output=True, text=True, check=True).stdout
    return {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines()
            if len(ln.split()) == 2 and ln.split()[1].isdigit() and ln.split()[0] not in ("total", "all")}


def naive_snakefile(counts: dict[str, int]) -> str:
    """One synthetic rule per rule of the reproduction, with its job count; each paper's corpus jobs are
    the leaves, every other job reads one of them, and evaluation jobs read every corpus of their paper
    (one input per corpus)."""
    modules = sorted({rule.split("_")[0] for rule in counts})
    lines = ["rule all:", "    input:"]
    rules = []
    for rule, n in sorted(counts.items()):
        module = rule.split("_")[0]
        if rule == f"{module}_corpus":
            continue
        corpora = f"expand('results/{module}/corpora/{{l}}.txt', l=range({counts.get(f'{module}_corpus', 1)}))"
        inputs = corpora if rule.endswith("_evaluate") else f"'results/{module}/corpora/0.txt'"
        rules.append(f"""
rule {rule}:
    input: {inputs}
    output: 'results/{rule}/{{i}}.txt'
    params: spec=lambda w: '{{"rule": "{rule}", "i": ' + w.i + '}}'
    resources: mem_mb=4000, runtime=lambda wc, attempt: 60 * attempt
    shell: 'touch {{output}}'
""")
        lines.append(f"        expand('results/{rule}/{{i}}.txt', i=range({n})),")
    for module in modules:
        rules.append(f"""
rule {module}_corpus:
    output: 'results/{module}/corpora/{{l}}.txt'
    shell: 'touch {{output}}'
""")
    return "\n".join(lines) + "\n" + "".join(rules)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--which", nargs="+", default=["reproduce", "reproduce-2x-seeds", "naive"])
    ap.add_argument("--out", default=str(REPO / "results/benchmarks/dryrun_budget.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="langadapt-dryrun-"))
    dirs = {name: copy_workflow(tmp / name, (*PARTS, "data")) for name in ("reproduce", "reproduce-2x-seeds")}
    double_seeds(dirs["reproduce-2x-seeds"])
    cmds = {name: [SNAKEMAKE, "-s", "workflow/reproduce.smk", "-n"] for name in dirs}
    if "naive" in args.which:
        dirs["naive"] = tmp / "naive"
        dirs["naive"].mkdir()
        (dirs["naive"] / "Snakefile").write_text(naive_snakefile(job_table(dirs["reproduce-2x-seeds"])))
        cmds["naive"] = [SNAKEMAKE, "-n", "--cores", "1"]
    results = {}
    for rep in range(args.repeat):
        for name in args.which:  # interleaved, so that a noisy spell hits every variant alike
            r = timed(cmds[name], dirs[name])
            results.setdefault(name, []).append(r)
            print(f"[{rep + 1}/{args.repeat}] {name}: {r['jobs']} jobs, {r['wall_s']:.2f} s "
                  f"({1000 * r['wall_s'] / max(r['jobs'], 1):.2f} ms/job), peak RSS {r['peak_rss_mb']:.0f} MB, "
                  f"other CPU {r['other_cpu_s']:.1f} s", flush=True)
    summary = {}
    for name, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        jobs = runs[0]["jobs"]
        summary[name] = {
            "jobs": jobs, "wall_s_best": round(min(walls), 3), "wall_s_median": round(statistics.median(walls), 3),
            "ms_per_job_best": round(1000 * min(walls) / jobs, 3),
            "ms_per_job_median": round(1000 * statistics.median(walls) / jobs, 3),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
            "other_load_cores": round(statistics.mean(r["other_cpu_s"] / r["wall_s"] for r in runs), 2),
            "within_budget": 1000 * statistics.median(walls) / jobs <= BUDGET_MS_PER_JOB,
        }
    if "naive" in summary and "reproduce-2x-seeds" in summary:
        summary["naive_over_ours_ms_per_job"] = round(
            summary["naive"]["ms_per_job_median"] / summary["reproduce-2x-seeds"]["ms_per_job_median"], 2)
    summary["budget_ms_per_job"] = BUDGET_MS_PER_JOB
    summary["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
