"""The realignment paper's Table 6 (App. A.5: the languages each selection strategy chose) against the
selectors of :mod:`langadapt.realign.selection` run on the same 65-language pool
(``results/tables/realign_subsets_vs_paper.csv``)::

    rows = compare_with_paper(distances="results/selection/uriel_distances.npz")
    goal_overlap(rows)   # mean overlap over the featural, family, script and Latin rows with n <= 20

The paper's lists are packaged (``resources/realign_table6.tsv``, with the irregularities of the printed
table noted in its header). Overlap = |ours & paper| / n.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import DataError
from langadapt.realign.pool import Pool, load_pool

log = logging.getLogger(__name__)

TABLE6_RESOURCE = "realign_table6.tsv"
# Rows of the issue's agreement goal: §3.1's featural, phylogenetic (families, within Indo-European),
# script and Latin-script heuristics at the paper's sizes up to 20 (script's largest is 18)
GOAL_GROUPS = {
    "uriel_diversity": "featural", "family_diverse": "family", "single_family": "family",
    "script_diverse": "script", "latin_diverse": "latin", "latin_least_diverse": "latin",
}
GOAL_MAX_N = 20
COLUMNS = ["row", "selector", "params", "n", "group", "paper", "ours", "shared", "overlap", "only_paper", "only_ours",
           "overlap_as_printed", "note"]


@dataclass(frozen=True)
class PaperRow:
    row: str  # Table 6's label
    selector: str
    params: dict[str, Any]
    n: int
    languages: tuple[str, ...]
    note: str = ""  # e.g. the list is printed under another row of the table (see the TSV header)
    printed: tuple[str, ...] | None = None  # the list printed under this row's label, where that differs

    @property
    def group(self) -> str:
        return GOAL_GROUPS.get(self.selector, "pool")

    @property
    def in_goal(self) -> bool:
        return self.selector in GOAL_GROUPS and self.n <= GOAL_MAX_N


def _param_value(v: str) -> Any:
    if "," in v:
        return [_param_value(x) for x in v.split(",")]
    return int(v) if v.lstrip("-").isdigit() else v


def load_table6(path: str | Path | None = None) -> list[PaperRow]:
    """The packaged Table 6 rows (or ``path``, same TSV layout: row, selector, params, n, languages)."""
    src = Path(path) if path else resources.files("langadapt").joinpath("resources", TABLE6_RESOURCE)
    with src.open(encoding="utf-8") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    rows = []
    for k, r in enumerate(csv.DictReader(lines, delimiter="\t"), start=1):
        try:
            params = dict(kv.split("=", 1) for kv in r["params"].split(";") if kv) if r["params"] else {}
            rows.append(PaperRow(r["row"], r["selector"], {k2: _param_value(v) for k2, v in params.items()},
                                 int(r["n"]), tuple(c.strip() for c in r["languages"].split(",")),
                                 (r.get("note") or "").strip()))
        except (KeyError, ValueError, AttributeError) as e:
            raise DataError(f"{src}: row {k} is malformed ({e}): {r}") from None
    return _with_printed(rows, src)


def _with_printed(rows: list[PaperRow], src: Any) -> list[PaperRow]:
    """Rows whose note says the list is printed under another label: the list printed under their own label
    is that other row's (two rows of the same n swapped in the printed table)."""
    out = []
    for r in rows:
        if not r.note.startswith("printed under"):
            out.append(r)
            continue
        label = r.note.split('"')[1]
        partner = [p for p in rows if p.row == label and p.n == r.n]
        if len(partner) != 1:
            raise DataError(f"{src}: row {r.row!r} n={r.n}: note names {label!r}, which is not a row of size {r.n}")
        out.append(PaperRow(r.row, r.selector, r.params, r.n, r.languages, r.note, partner[0].languages))
    return out


def compare_row(row: PaperRow, ours: Sequence[str]) -> dict[str, Any]:
    """One CSV row: the paper's languages, ours, and the overlap |ours & paper| / n (also with the list
    printed under the row's label, where the TSV moved it)."""
    paper, mine = set(row.languages), set(ours)
    shared = paper & mine
    printed = set(row.printed) if row.printed is not None else paper
    return {
        "row": row.row, "selector": row.selector,
        "params": ";".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                           for k, v in row.params.items()),
        "n": row.n, "group": row.group, "paper": ", ".join(sorted(paper)), "ours": ", ".join(sorted(mine)),
        "shared": len(shared), "overlap": round(len(shared) / row.n, 4),
        "only_paper": ", ".join(sorted(paper - mine)), "only_ours": ", ".join(sorted(mine - paper)),
        "overlap_as_printed": round(len(printed & mine) / row.n, 4), "note": row.note,
    }


def compare_with_paper(distances: str | Path | None = None, pool: Pool | None = None,
                       rows: Iterable[PaperRow] | None = None, seed: int = 0,
                       **solver: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Run every Table 6 row's selector on the L65 pool (``distances``: a prepared ``.npz``; None = URIEL+
    as released) and compare with the paper's list. ``solver``: ``method`` / ``time_limit`` of the search."""
    from langadapt.realign.selection import select

    pool = pool or load_pool()
    extra = {"distances": distances} if distances is not None else {}
    out = []
    for row in rows if rows is not None else load_table6():
        sel = select(row.selector, pool, row.n, seed, **row.params, **extra, **solver)
        out.append(compare_row(row, sel.languages))
        log.info("%s n=%d: overlap %.2f", row.row, row.n, out[-1]["overlap"])
    return out


def goal_overlap(rows: Iterable[Mapping[str, Any]], column: str = "overlap") -> float:
    """Mean overlap over the goal rows (featural, family, script and Latin rows with n <= 20); ``column``
    ``overlap_as_printed`` scores the lists as the table prints them."""
    vals = [float(r[column]) for r in rows if r["group"] != "pool" and int(r["n"]) <= GOAL_MAX_N]
    if not vals:
        raise DataError("no Table 6 goal rows to average")
    return sum(vals) / len(vals)


def write_comparison(rows: Sequence[Mapping[str, Any]], out_csv: Path) -> None:
    """``realign_subsets_vs_paper.csv`` (COLUMNS) and a Markdown twin with the goal mean."""
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(buf.getvalue(), out_csv)
    md = ["| Table 6 row | n | paper | ours | overlap |", "|---|---|---|---|---|"]
    md += [f"| {r['row']}{' (*)' if r['note'] else ''} | {r['n']} | {r['paper']} | {r['ours']} | {float(r['overlap']):.2f} |" for r in rows]
    md += ["", f"Mean overlap over the featural, family, script and Latin rows with n <= {GOAL_MAX_N}: "
               f"{goal_overlap(rows):.3f} ({goal_overlap(rows, 'overlap_as_printed'):.3f} against the lists as "
               f"printed, where the two Latin-script n=20 lists are swapped: rows marked (*), `note` in the CSV)"]
    write_text_atomic("\n".join(md) + "\n", out_csv.with_suffix(".md"))


def comparison_job(distances: Path, out_csv: Path) -> float:
    """The ``subsets_vs_paper`` rule: every Table 6 row on the prepared distances; returns the goal mean."""
    rows = compare_with_paper(distances)
    write_comparison(rows, out_csv)
    goal = goal_overlap(rows)
    log.info("Table 6 agreement: mean overlap %.3f over the goal rows, %.3f over all %d rows", goal,
             sum(float(r["overlap"]) for r in rows) / len(rows), len(rows))
    return goal
