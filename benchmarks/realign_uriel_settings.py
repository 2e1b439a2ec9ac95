"""How well each URIEL+ preparation reproduces the realignment paper's Table 6 (langadapt.realign.uriel,
langadapt.realign.table6).

For every combination of database integration (none / all), aggregation (union U / average A), filling a
dialect from its parent language (on / off) and imputation (none / mean / softimpute), the featural
distances of L65 + English are prepared once and every Table 6 row's selector runs on them. Reported per
setting: the mean overlap over the goal rows (featural, family, script, Latin rows with n <= 20), the mean
over all rows, per-group means, preparation and selection wall time, and the CPU time other processes used
meanwhile (shared machine). Results: results/benchmarks/realign_uriel_settings.{json,csv}.

    .venv/bin/python benchmarks/realign_uriel_settings.py [--only databases=all,imputation=softimpute]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from workflow_budget import cpu_busy_seconds  # noqa: E402

from langadapt.realign.pool import ENGLISH, load_pool  # noqa: E402
from langadapt.realign.table6 import compare_with_paper, goal_overlap  # noqa: E402
from langadapt.realign.uriel import prepare_distances, uriel_settings, write_distances  # noqa: E402

GRID = {
    "databases": ["none", "all"],
    "aggregation": ["U", "A"],
    "fill_with_base_lang": [True, False],
    "imputation": ["none", "mean", "softimpute"],  # knn: see langadapt.realign.uriel.IMPUTATIONS
}


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(spec: dict, codes: list[str], tmp: Path, method: str, time_limit: float) -> dict:
    busy0, own0, t0 = cpu_busy_seconds(), own_cpu(), time.perf_counter()
    s = uriel_settings(spec, where="benchmark")
    try:
        d, record = prepare_distances(s, codes)
    except Exception as e:  # a preparation URIEL+ cannot do is a result, not a crash
        return {**spec, "error": f"{type(e).__name__}: {e}"[:300]}
    prep = time.perf_counter() - t0
    path = tmp / "distances.npz"
    write_distances(path, codes, d, record)
    t1 = time.perf_counter()
    rows = compare_with_paper(path, method=method, time_limit=time_limit)
    other = max(0.0, (cpu_busy_seconds() - busy0) - (own_cpu() - own0))
    return {
        **spec, **summarize(rows),
        "pairs_without_shared_features": record["pairs_without_shared_features"],
        "prepare_s": round(prep, 1), "select_s": round(time.perf_counter() - t1, 1),
        "other_cpu_s": round(other, 1), "rows": rows,
    }


def rescore(path: Path) -> None:
    """Recompute the overlaps of a previous run's selections against the packaged Table 6 (after a change
    to resources/realign_table6.tsv) and rewrite its JSON / CSV."""
    from langadapt.realign.table6 import compare_row, load_table6

    doc = json.loads(path.read_text())
    table = {(r.row, r.n): r for r in load_table6()}
    for res in doc["results"]:
        if "rows" not in res:
            continue
        res["rows"] = [compare_row(table[(r["row"], int(r["n"]))], r["ours"].split(", ")) for r in res["rows"]]
        res.update(summarize(res["rows"]))
    ok = [r for r in doc["results"] if "error" not in r]
    doc["best"] = max(ok, key=lambda r: r["goal_overlap"]) if ok else None
    write(doc, path.with_suffix(""))


def summarize(rows: list[dict]) -> dict:
    groups: dict[str, list[float]] = {}
    for r in rows:
        if r["group"] != "pool" and r["n"] <= 20:
            groups.setdefault(r["group"], []).append(r["overlap"])
    return {"goal_overlap": round(goal_overlap(rows), 4),
            "goal_overlap_as_printed": round(goal_overlap(rows, "overlap_as_printed"), 4),
            "all_overlap": round(sum(r["overlap"] for r in rows) / len(rows), 4),
            **{f"{g}_overlap": round(sum(v) / len(v), 4) for g, v in groups.items()}}


def write(doc: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    results = doc["results"]
    keys = [k for r in results for k in r if k != "rows"]
    keys = list(dict.fromkeys(keys))
    with out.with_suffix(".csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(results)
    best = doc.get("best")
    if best:
        print(f"best goal overlap {best['goal_overlap']:.3f} with {({k: best[k] for k in GRID})}; wrote {out}.json/.csv")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="key=value,... restricting the grid")
    ap.add_argument("--method", default="auto", help="subset search: auto (CBC) or local")
    ap.add_argument("--time-limit", type=float, default=2.0)
    ap.add_argument("--out", default=str(REPO / "results/benchmarks/realign_uriel_settings"))
    ap.add_argument("--rescore", type=Path, help="a previous run's JSON: recompute its overlaps, run nothing")
    args = ap.parse_args()
    if args.rescore:
        return rescore(args.rescore)
    warnings.filterwarnings("ignore")
    grid = dict(GRID)
    for kv in filter(None, args.only.split(",")):
        k, v = kv.split("=", 1)
        grid[k] = [{"true": True, "false": False}.get(v.lower(), v)]
    codes = [*load_pool().codes, ENGLISH]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for values in itertools.product(*grid.values()):
            spec = dict(zip(grid, values, strict=True))
            res = measure(spec, codes, Path(tmp), args.method, args.time_limit)
            results.append(res)
            print(json.dumps({k: v for k, v in res.items() if k != "rows"}), flush=True)
    ok = [r for r in results if "error" not in r]
    best = max(ok, key=lambda r: r["goal_overlap"]) if ok else None
    write({"cores": os.cpu_count(), "method": args.method, "best": best, "results": results}, Path(args.out))

if __name__ == "__main__":
    main()
