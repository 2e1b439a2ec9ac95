"""The corpus stage at paper scale (issue 18): lines/s and peak RSS of `build_corpus` at 0.2M, 1M and 5M
synthetic lines, side by side with the in-memory implementation it replaced and with a datatrove pipeline.

Input: synthetic English-like lines (`synth_lines`: 1-40 words from a 100-word Bible vocabulary, 5% exact
repeats, 2% with a 40-character token, 2% mostly digits, 1% German), written once to ``--work`` as text
(for `build_corpus`) and Parquet (for datatrove's ParquetReader). Filters: config.yaml's (dedup,
min_tokens, avg_token_length, max_token_length, alpha_ratio, fastText lid not_foreign).

Implementations, each in a fresh process (peak RSS = ``ru_maxrss`` of that process and, separately, of its
children):
- ``before``: `build_corpus` of the revision ``--before`` (default cbce87c, the last one with the in-memory
  corpus stage), from a ``git worktree`` of it.
- ``ours-1`` / ``ours-2``: `build_corpus` now, ``workers=1`` (one process) and ``workers=2`` (fastText LID
  in a helper process one batch ahead; the corpus rule's 2 threads).
- ``datatrove-1``: a datatrove 0.10 pipeline in one task (ParquetReader -> the same normalisation, dedup,
  token and alphabetic filters per document, fastText LID through datatrove's batched ``filter_batch``
  with the same lid.176 model and batch size -> ParquetWriter), LocalPipelineExecutor. Per-filter counts are
  compared with ours; ``datatrove-2`` (two tasks over two shards, 2 cores) is timed too, its dedup is per
  shard (datatrove's global exact dedup is a multi-stage signature/sort pipeline), so its counts differ.

Also (``--embedded``): the filter stats of the 23 embedded corpora under config.yaml's filters and under the
vocabulary paper's (configs/vocab-specialization.yaml), ``before`` against now, must be identical, and so
must the written corpora.

The CPU time other processes used meanwhile is reported beside each timing.

    .venv/bin/pip install datatrove==0.10.1 -c constraints.txt   # requirements-bench.txt
    .venv/bin/python benchmarks/corpus_stream.py [--sizes 200000 1000000 5000000] [--embedded]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_budget import children_cpu_seconds, cpu_busy_seconds  # noqa: E402

BEFORE = "cbce87c"
WORDS = (
    "the and of to in that he shall unto for his lord they be is him not them it with all thou thy was god "
    "which my me said but ye their have will thee from as are when this out were upon man by you israel king "
    "son up there hath then people came had house into on her come one children s before your also day land "
    "so men against shalt if at let go hand us saying made went even do no behold now father saith therefore "
    "every these because or after our things jesus great sons over Jerusalem Moses David"
).split()


def synth_lines(n: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    lens, kinds, picks = rng.integers(1, 40, n), rng.random(n), rng.integers(0, 1 << 62, n)
    out: list[str] = []
    for i in range(n):
        k = kinds[i]
        if k < 0.05 and out:
            out.append(out[picks[i] % len(out)])
            continue
        w = " ".join(words[rng.integers(0, len(words), lens[i])])
        if k < 0.07:
            w += " " + "x" * 40
        elif k < 0.09:
            w = "123 456 789 000 " + w[:5]
        elif k < 0.10:
            w = "Der Herr sprach zu Mose und sagte ihm alles was er wusste"
        out.append(f"{w} {i}")
    return out


def inputs(work: Path, n: int) -> tuple[Path, Path]:
    """(text file, folder with two Parquet shards) of `n` synthetic lines, made once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    txt, shards = work / f"synth_{n}.txt", work / f"synth_{n}_parquet"
    if not txt.exists():
        lines = synth_lines(n)
        tmp = txt.with_suffix(".tmp")
        tmp.write_text("".join(t + "\n" for t in lines), encoding="utf-8")
        shards.mkdir(parents=True, exist_ok=True)
        half = n // 2
        for i, part in enumerate((lines[:half], lines[half:])):
            pq.write_table(
                pa.table({"text": part, "id": [str(j) for j in range(i * half, i * half + len(part))]}),
                shards / f"part{i}.parquet",
            )
        tmp.rename(txt)
    return txt, shards


# ------------------------------------------------------------------------------------------ runners
# Peak memory of a measurement process: ru_maxrss is useless here (Linux carries the high-water mark of the
# parent across fork + exec), so a thread samples VmRSS of the process plus the private memory of its
# children (the LID helper, datatrove's workers; forked, they share the parent's pages) every 20 ms.
MEMORY_SAMPLER = """
import os, threading, time
PEAK = {"total": 0.0, "self": 0.0}
def _kb(path, keys):
    try:
        return sum(int(l.split()[1]) for l in open(path) if l.split(":")[0] in keys)
    except OSError:
        return 0
def _children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids = open(f"/proc/{pid}/task/{task}/children").read().split()
        except OSError:
            continue
        for k in kids:
            out += [int(k), *_children(int(k))]
    return out
def _sample():
    me = os.getpid()
    while True:
        own = _kb(f"/proc/{me}/status", {"VmRSS"})
        kids = sum(_kb(f"/proc/{c}/smaps_rollup", {"Private_Clean", "Private_Dirty"}) for c in _children(me))
        PEAK["self"] = max(PEAK["self"], own / 1024)
        PEAK["total"] = max(PEAK["total"], (own + kids) / 1024)
        time.sleep(0.02)
threading.Thread(target=_sample, daemon=True).start()
"""

RUN_BUILD = """
import json, sys, time, yaml
from pathlib import Path
sys.path.insert(0, {src!r})
from langadapt.data.corpus import build_corpus
cfg = yaml.safe_load(open({config!r}))["data"]
kw = {{"workers": {workers}}} if {workers} else {{}}
t = time.perf_counter()
build_corpus("eng_Latn", {{"kind": "local", "path": {path!r}}}, cfg["filters"], cfg["splits"],
             Path({out!r}) / "c.parquet", Path({out!r}) / "c.csv", **kw)
wall = time.perf_counter() - t
rows = [l.split(",") for l in open(Path({out!r}) / "c.csv").read().splitlines()[1:]]
time.sleep(0.05)
print(json.dumps({{"wall_s": wall, "peak_mb": PEAK["total"], "peak_self_mb": PEAK["self"],
                  "removed": {{r[1]: int(r[3]) for r in rows[1:]}}}}))
"""


def run_build(src: Path, path: Path, workers: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    code = MEMORY_SAMPLER + RUN_BUILD.format(
        src=str(src), config=str(REPO / "config.yaml"), path=str(path), out=str(out), workers=workers
    )
    return _timed([sys.executable, "-c", code])


def _timed(cmd: list[str]) -> dict:
    """Run one measurement process; its JSON plus our CPU time and the other processes' load meanwhile."""
    busy0, ours0, t0 = cpu_busy_seconds(), children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{cmd[:2]} failed:\n{proc.stderr[-3000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    busy, ours = cpu_busy_seconds() - busy0, children_cpu_seconds() - ours0
    rec["cpu_s"] = round(ours, 1)
    rec["other_load_cores"] = round(max(0.0, busy - ours) / wall, 2)
    return rec


def worktree(rev: str, work: Path) -> Path:
    dest = work / f"rev-{rev}"
    if not dest.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(dest), rev], cwd=REPO, check=True, capture_output=True
        )
    return dest / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000, 5_000_000])
    ap.add_argument("--before", default=BEFORE)
    ap.add_argument("--work", type=Path, default=REPO / "results/benchmarks/corpus_stream")
    ap.add_argument("--skip", nargs="*", default=[], help="implementations to leave out")
    ap.add_argument(
        "--embedded", action="store_true", help="also compare the embedded corpora's filter stats"
    )
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    before_src = worktree(args.before, args.work)
    results: list[dict] = []
    for n in args.sizes:
        txt, shards = inputs(args.work, n)
        runs = {
            "before": (run_build, before_src, txt, 0),
            "ours-1": (run_build, REPO / "src", txt, 1),
            "ours-2": (run_build, REPO / "src", txt, 2),
            "datatrove-1": (run_datatrove, shards, 1),
            "datatrove-2": (run_datatrove, shards, 2),
        }
        base = None
        for name, (fn, *fn_args) in runs.items():
            if name in args.skip:
                continue
            rec = {"impl": name, "lines": n, **fn(*fn_args, args.work / f"out_{name}")}
            rec["lines_per_s"] = round(n / rec["wall_s"])
            if name == "before":
                base = rec
            if base is not None:
                rec["speedup_vs_before"] = round(rec["lines_per_s"] / base["lines_per_s"], 2)
                common = sorted(set(rec["removed"]) & set(base["removed"]))
                rec["counts_equal_before"] = all(rec["removed"][k] == base["removed"][k] for k in common)
            results.append(rec)
            print(json.dumps(rec), flush=True)
    if args.embedded:
        results.append(compare_embedded(before_src, args.work))
        print(json.dumps(results[-1]), flush=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.work / 'results.json'}")


# ---------------------------------------------------------------------------------------- datatrove
def run_datatrove(shards: Path, tasks: int, out: Path) -> dict:
    return _timed([sys.executable, __file__, "--_datatrove", str(shards), str(out), str(tasks)])


def datatrove_pipeline(shards: Path, out: Path, tasks: int) -> None:
    """In a fresh process: the same filters as datatrove pipeline steps; prints wall, peak memory, counts."""
    import shutil

    import regex
    import yaml
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    from langadapt.data.filters import build_filters
    from langadapt.data.lid import lid_predict

    ALPHA = regex.compile(r"[\p{L}\p{M}]")  # noqa: N806 - the alphabetic class of our alpha_ratio
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["data"]["filters"]
    ours = {f.name: f for f in build_filters(cfg)}

    class Normalise(BaseFilter):
        name = "normalise"

        def filter(self, doc):  # type: ignore[no-untyped-def]
            doc.text = " ".join(doc.text.split())
            return bool(doc.text)

    class PerDoc(BaseFilter):
        """One of our filter's rules applied to one document at a time (datatrove's unit)."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name, self.f = name, ours[name]
            self.seen: set[int] = set()

        def filter(self, doc):  # type: ignore[no-untyped-def]
            t = doc.text
            if self.name == "dedup":
                h = hash(t)
                new = h not in self.seen
                self.seen.add(h)
                return new
            words = t.split()
            if self.name == "min_tokens":
                return len(words) >= self.f.params["min"]
            if self.name == "avg_token_length":
                return (sum(map(len, words)) / max(len(words), 1)) <= self.f.params["max"]
            if self.name == "max_token_length":
                return max(map(len, words), default=0) <= self.f.params["max"]
            alpha = len(ALPHA.findall(t))
            visible = len(t) - t.count(" ")
            return visible > 0 and alpha / visible >= self.f.params["min"]

    class Lid(BaseFilter):
        """fastText lid.176 (the same .ftz) through datatrove's batched filter hook."""

        name = "lid"

        def __init__(self) -> None:
            super().__init__(batch_size=1 << 16)
            self.t, self.mode = ours["lid"].params["threshold"], ours["lid"].params["mode"]

        def filter(self, doc):  # type: ignore[no-untyped-def]
            return self.filter_batch([doc])[0]

        def filter_batch(self, batch):  # type: ignore[no-untyped-def]
            labels, probs = lid_predict([d.text for d in batch])
            own, sure = labels == "en", probs >= self.t
            return list(own & sure if self.mode == "own" else own | ~sure)

    shutil.rmtree(out, ignore_errors=True)
    sampler: dict = {}
    exec(MEMORY_SAMPLER, sampler)  # noqa: S102 - the same sampler as the build_corpus runs
    steps = [
        ParquetReader(str(shards), glob_pattern="*.parquet", text_key="text", id_key="id"),
        Normalise(),
        *(PerDoc(n) for n in ("dedup", "min_tokens", "avg_token_length", "max_token_length", "alpha_ratio")),
        Lid(),
        ParquetWriter(str(out / "data")),
    ]
    t0 = time.perf_counter()
    LocalPipelineExecutor(steps, tasks=tasks, workers=tasks, logging_dir=str(out / "logs")).run()
    wall = time.perf_counter() - t0
    stats = json.loads((out / "logs" / "stats.json").read_text())
    removed = {}
    for step, (name, _) in zip(stats[2:-1], [(s.name, s) for s in steps[2:-1]], strict=True):
        removed[name] = int(step["stats"].get("dropped", 0))
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_mb": sampler["PEAK"]["total"],
                "peak_self_mb": sampler["PEAK"]["self"],
                "removed": removed,
            }
        )
    )


# ----------------------------------------------------------------------------------------- embedded
RUN_EMBEDDED = """
import json, sys, yaml
from pathlib import Path
sys.path.insert(0, {src!r})
from langadapt.data.corpus import build_corpus
cfg = yaml.safe_load(open({repo!r} + "/config.yaml"))["data"]
vocab = yaml.safe_load(open({repo!r} + "/configs/vocab-specialization.yaml"))["data"]["filters"]
out = {{}}
for fname, filt in (("default", cfg["filters"]), ("vocab", vocab)):
    for lang, src in cfg["sources"].items():
        p = Path({out!r}) / f"{{fname}}_{{lang}}"
        build_corpus(lang, src, filt, cfg["splits"], p.with_suffix(".parquet"), p.with_suffix(".csv"))
        out[f"{{fname}}/{{lang}}"] = p.with_suffix(".csv").read_text()
print(json.dumps(out))
"""


def compare_embedded(before_src: Path, work: Path) -> dict:
    """Filter stats and corpora of the embedded languages, before vs now."""
    import pyarrow.parquet as pq

    got = {}
    for name, src in (("before", before_src), ("now", REPO / "src")):
        t0 = time.perf_counter()
        code = RUN_EMBEDDED.format(src=str(src), repo=str(REPO), out=str(work / f"embedded_{name}"))
        (work / f"embedded_{name}").mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
        )
        got[name] = (json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - t0)
    stats_differ = [k for k in got["before"][0] if got["before"][0][k] != got["now"][0].get(k)]
    tables_differ = [
        k
        for k in got["before"][0]
        if not pq.read_table(work / "embedded_before" / f"{k.replace('/', '_')}.parquet").equals(
            pq.read_table(work / "embedded_now" / f"{k.replace('/', '_')}.parquet")
        )
    ]
    return {
        "impl": "embedded",
        "corpora": len(got["now"][0]),
        "stats_differ": stats_differ,
        "tables_differ": tables_differ,
        "before_s": round(got["before"][1], 1),
        "now_s": round(got["now"][1], 1),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_datatrove":
        datatrove_pipeline(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
