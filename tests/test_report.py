"""`snakemake --report`: the smoke workflow's HTML report on a finished state of its report outputs.

Snakemake builds the report from the DAG of the targets and needs only the files marked with
``report(...)`` to exist (missing job metadata is a warning), so the test writes those few files
instead of running the workflow, then checks that the captions and the marked files are in the HTML.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CAPTIONS = REPO / "workflow" / "report"


def _png(path: Path) -> None:
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [0, 1])
    fig.savefig(path)


def _report(workdir: Path, out: str, *targets: str) -> str:
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "1", "--configfile", "configs/smoke.yaml", "--report", out, *targets],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = workdir / out
    assert html.is_file()
    return html.read_text(encoding="utf-8")


def _first_line(caption: str) -> str:
    """The start of a caption's first line (plain text, no reST markup, rendered as written)."""
    return (CAPTIONS / caption).read_text().splitlines()[0].strip()[:40]


def test_report_of_the_default_targets_has_every_marked_output_and_caption(workdir):
    # the report-marked outputs of the default DAG of the smoke config
    for png in ("results/plots/results.png", "results/plots/loss_curves.png",
                "results/plots/langsamp/ext_ident.png",
                "results/plots/per_language/srb_bible.png", "results/plots/per_language/jpn_ner.png"):
        _png(workdir / png)
    (workdir / "results/tables/paper").mkdir(parents=True)
    (workdir / "results/tables/results.csv").write_text("recipe,task,language,seed,metric,value\n")
    (workdir / "results/tables/significance.csv").write_text("task,metric,recipe,baseline,unit,n\n")
    (workdir / "results/tables/claims.csv").write_text("paper,claim,agrees\nP,C,yes\n")
    for name in ("smoke_table1.csv", "smoke_table1_cells.csv", "smoke_table1.tex"):
        (workdir / "results/tables/paper" / name).write_text("label,all\nSR-B,1.0\n")

    html = _report(workdir, "report.html")
    for caption in ("workflow.rst", "claims.rst", "results_table.rst", "results_plot.rst", "loss_curves.rst",
                    "langsamp_pca.rst", "per_language.rst", "paper_tables.rst", "significance.rst"):
        assert _first_line(caption) in html, caption
    for name in ("results.png", "loss_curves.png", "ext_ident.png", "srb_bible.png", "jpn_ner.png",
                 "results.csv", "significance.csv", "smoke_table1.csv", "claims.csv"):
        assert name in html, name
    assert "smoke_table1_cells.csv" not in html  # the per-cell file stays beside the layout
    for category in ("Claims", "Results", "Training", "LangSAMP embeddings", "Paper tables"):
        assert category in html


def test_a_missing_marked_output_fails_the_report(workdir):
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "1", "--configfile", "configs/smoke.yaml", "--report", "r.html"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "marked for report but does not exist" in proc.stdout + proc.stderr


@pytest.mark.parametrize("recipe", ["tiny_lapt"])
def test_similarity_heatmap_is_in_the_report_of_its_explicit_target(workdir, recipe):
    target = f"results/plots/similarity/{recipe}.png"
    _png(workdir / target)
    html = _report(workdir, "similarity.html", target)
    assert _first_line("similarity.rst") in html
    assert f"{recipe}.png" in html
