"""What each paper asks of a cluster: jobs, GPU jobs and the time limits Slurm reserves (first attempt).

Reads the dry run of the four-paper DAG (`workflow/reproduce.smk`, rules named PAPER_RULE) and sums, per paper,
the jobs, the jobs with a GPU, and `runtime` x (1, or `gpu`) over them: the CPU-hours and GPU-hours of the
time limits the rules request (an upper bound: jobs end earlier; a retried job asks for more). Prints a
Markdown table (README "Run one paper on your cluster").

    .venv/bin/python benchmarks/cluster_budget.py [--dry-run-output FILE]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PAPERS = ("langsamp", "realignment", "vocab", "hyperofa")
REPO = Path(__file__).resolve().parent.parent


def parse(text: str) -> dict[str, dict[str, float]]:
    """Per paper: jobs, gpu_jobs, cpu_hours (runtime of jobs without a GPU), gpu_hours (gpu x runtime)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m or m.group(1) == "all":
            continue
        paper = next((p for p in PAPERS if m.group(1).startswith(f"{p}_")), "other")
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        values = dict(kv.split("=", 1) for kv in res.group(1).split(", ") if "=" in kv) if res else {}
        minutes = float(values.get("runtime", 0))
        gpus = int(values.get("gpu", 0) or 0)
        row = out[paper]
        row["jobs"] += 1
        if gpus:
            row["gpu_jobs"] += 1
            row["gpu_hours"] += gpus * minutes / 60
        else:
            row["cpu_hours"] += minutes / 60
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dry-run-output", help="a saved `snakemake -s workflow/reproduce.smk -n` output")
    args = ap.parse_args()
    if args.dry_run_output:
        text = Path(args.dry_run_output).read_text()
    else:
        snakemake = str(Path(sys.executable).parent / "snakemake")
        proc = subprocess.run([snakemake, "-s", "workflow/reproduce.smk", "-n", "--cores", "1"], cwd=REPO,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
            return 1
        text = proc.stdout
    rows = parse(text)
    print("| paper | jobs | GPU jobs | GPU-hours requested | CPU-hours requested |")
    print("|---|---|---|---|---|")
    for paper in (*PAPERS, "other"):
        if paper in rows:
            r = rows[paper]
            print(f"| {paper} | {int(r['jobs']):,} | {int(r['gpu_jobs']):,} | {r['gpu_hours']:,.0f} | "
                  f"{r['cpu_hours']:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
