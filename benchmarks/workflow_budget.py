"""Wall-time budgets of the workflow (issue 2): default run <= 15 min, smoke run <= 3 min on 2 cores.

Runs each workflow from scratch in a temporary copy of the repository's workflow files and reports wall
time, the CPU time our jobs used, and the CPU time *other* processes used meanwhile (this machine is
shared and noisy: a timing is only meaningful next to the load beside it).

    .venv/bin/python benchmarks/workflow_budget.py [--which smoke default] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("workflow", "rules", "scripts", "envs", "configs", "config.yaml", "profiles")
BUDGET_S = {"smoke": 180, "default": 900}
CONFIG = {"smoke": "configs/smoke.yaml", "default": "config.yaml"}


def copy_workflow(dest: Path, parts: tuple[str, ...] = PARTS) -> Path:
    """Copy what Snakemake needs (not results/) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        src = REPO / part
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / part)
    return dest


def cpu_busy_seconds() -> float:
    """Busy CPU time of the whole machine so far (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_one(which: str, keep: Path | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"langadapt-{which}-"))
    copy_workflow(tmp)
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", "2", "--configfile", CONFIG[which]]
    busy0, ours0, t0 = cpu_busy_seconds(), children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    busy, ours = cpu_busy_seconds() - busy0, children_cpu_seconds() - ours0
    jobs = {}
    for tsv in (tmp / "results/benchmarks").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        jobs[str(tsv.relative_to(tmp / "results/benchmarks"))] = float(lines[1].split("\t")[0])
    result = {
        "workflow": which, "ok": proc.returncode == 0, "wall_s": round(wall, 1),
        "budget_s": BUDGET_S[which], "within_budget": wall <= BUDGET_S[which],
        "our_cpu_s": round(ours, 1), "other_cpu_s": round(max(0.0, busy - ours), 1),
        "other_load_avg_cores": round(max(0.0, busy - ours) / wall, 2),
        "loadavg_end": Path("/proc/loadavg").read_text().split()[:3], "heavy_jobs_s": jobs,
    }
    if proc.returncode != 0:
        result["stderr_tail"] = proc.stderr[-3000:]
    if keep:
        shutil.copytree(tmp / "results", keep / which, dirs_exist_ok=True)
    shutil.rmtree(tmp)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--which", nargs="+", default=["smoke", "default"], choices=sorted(BUDGET_S))
    ap.add_argument("--keep", type=Path, help="copy each run's results/ here")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "workflow_budget.json")
    args = ap.parse_args()
    results = [run_one(w, args.keep) for w in args.which]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    for r in results:
        print(f"{r['workflow']:8s} ok={r['ok']} wall={r['wall_s']:.0f}s (budget {r['budget_s']}s) "
              f"our_cpu={r['our_cpu_s']:.0f}s other_load={r['other_load_avg_cores']:.2f} cores")
        for name, secs in sorted(r["heavy_jobs_s"].items(), key=lambda kv: -kv[1]):
            print(f"    {secs:7.1f}s  {name}")


if __name__ == "__main__":
    main()
