"""Language-subset selection (langadapt.realign.selection): uriel_diversity max/min on the 65-language pool.

For n = 5, 10, 20, 40 and each direction: wall time (target <= 5 s each), objective, whether CBC proved it
optimal, and the greedy+swap objective alone. The gap to exhaustive search is measured on a reduced pool
(the first 20 languages of L65 in pool order; C(20, n) subsets) since C(65, n) is out of reach. CPU time
used by *other* processes during each call is reported next to it (shared machine).

    .venv/bin/python benchmarks/subset_selection.py [--time-limit 3] [--out results/benchmarks/subset_selection.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from workflow_budget import cpu_busy_seconds  # noqa: E402

from langadapt.realign.distances import distance_matrix  # noqa: E402
from langadapt.realign.pool import load_pool  # noqa: E402
from langadapt.realign.solvers import diverse_subset  # noqa: E402

TARGET_S = 5.0


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)  # CBC runs as a child process
    return ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime


def timed(fn):
    busy0, own0, t0 = cpu_busy_seconds(), own_cpu(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    other = max(0.0, (cpu_busy_seconds() - busy0) - (own_cpu() - own0))
    return out, wall, other


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=3.0)
    ap.add_argument("--out", default=str(REPO / "results/benchmarks/subset_selection.json"))
    args = ap.parse_args()

    pool = load_pool()
    (_, source), load_wall, _ = timed(lambda: distance_matrix([*pool.codes, "eng"]))
    rows = []
    for n in (5, 10, 20, 40):
        for direction in ("max", "min"):
            sel, wall, other = timed(
                lambda n=n, direction=direction: diverse_subset(
                    pool, n, seed=17, direction=direction, time_limit=args.time_limit
                )
            )
            loc, lwall, _ = timed(
                lambda n=n, direction=direction: diverse_subset(pool, n, seed=17, direction=direction, method="local")
            )
            row = {
                "pool": 65, "n": n, "direction": direction, "wall_s": round(wall, 3),
                "other_cpu_s": round(other, 2), "objective": sel.record["objective"],
                "optimal": sel.record["optimal"], "solver": sel.record["solver"],
                "local_objective": loc.record["objective"], "local_wall_s": round(lwall, 3),
                "within_target": wall <= TARGET_S, "languages": sel.languages,
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "languages"}), flush=True)

    small = load_pool(codes=pool.codes[:20])
    gaps = []
    for n in (3, 5, 10):
        for direction in ("max", "min"):
            ex, ewall, _ = timed(lambda n=n, d=direction: diverse_subset(small, n, direction=d, method="exhaustive"))
            au, awall, other = timed(lambda n=n, d=direction: diverse_subset(small, n, direction=d,
                                                                             time_limit=args.time_limit))
            lo, lwall, _ = timed(lambda n=n, d=direction: diverse_subset(small, n, direction=d, method="local"))
            e = ex.record["objective"]
            gap = {
                "pool": 20, "n": n, "direction": direction, "exhaustive_objective": e,
                "exhaustive_wall_s": round(ewall, 3), "auto_objective": au.record["objective"],
                "auto_optimal": au.record["optimal"], "auto_wall_s": round(awall, 3),
                "auto_gap_rel": round(abs(au.record["objective"] - e) / abs(e), 6),
                "local_objective": lo.record["objective"], "local_wall_s": round(lwall, 3),
                "local_gap_rel": round(abs(lo.record["objective"] - e) / abs(e), 6),
                "other_cpu_s": round(other, 2),
            }
            gaps.append(gap)
            print(json.dumps(gap), flush=True)

    out = {
        "distance_source": source,
        "distance_matrix_wall_s": round(load_wall, 3),
        "time_limit_s": args.time_limit,
        "cores": os.cpu_count(),
        "target_s": TARGET_S,
        "full_pool": rows,
        "reduced_pool_exhaustive": {"pool": small.codes, "rows": gaps},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
