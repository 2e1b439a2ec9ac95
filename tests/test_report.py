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
    (workdir / "results/data").mkdir(parents=True)
    (workdir / "results/data/filter_report.csv").write_text("lang,source,kept\neng_Latn,10,9\n")
    (workdir / "results/data/sampling.csv").write_text("lang,lines,p\neng_Latn,10,1.0\n")
    for recipe in ("ext_ident", "tiny_ofa", "tiny_spm"):  # init directories with the PCA figure ...
        _png(workdir / f"results/models/{recipe}/init/pca.png")
    (workdir / "results/models/tiny_hyperofa/init").mkdir(parents=True)  # ... and one without (it is optional)

    html = _report(workdir, "report.html")
    for caption in ("workflow.rst", "claims.rst", "results_table.rst", "results_plot.rst", "loss_curves.rst",
                    "langsamp_pca.rst", "per_language.rst", "paper_tables.rst", "significance.rst",
                    "filter_report.rst", "vocab_pca.rst", "sampling.rst"):
        assert _first_line(caption) in html, caption
    for name in ("results.png", "loss_curves.png", "ext_ident.png", "srb_bible.png", "jpn_ner.png",
                 "results.csv", "significance.csv", "smoke_table1.csv", "claims.csv", "filter_report.csv",
                 "sampling.csv"):
        assert name in html, name
    assert html.count("pca.png") >= 3 and all(r in html for r in ("ext_ident", "tiny_ofa", "tiny_spm"))
    assert "smoke_table1_cells.csv" not in html  # the per-cell file stays beside the layout
    for category in ("Claims", "Results", "Training", "LangSAMP embeddings", "Paper tables", "Data",
                     "Vocabulary initialization"):
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


def test_every_plot_and_table_the_rules_write_is_marked_for_the_report():
    """Each figure (.png) and each table (.csv under results/tables/, and the filter report) named in a
    rule's `output:` sits inside a report(...) flag, so `snakemake --report` shows everything."""
    import re

    unmarked = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.findall(r"^    output:\n((?:        .*\n|\n)+?)^    \w", text, re.M):
            # the output items, one per top-level `name=...,` entry of the block
            items = re.split(r",\n(?=        \S)", block)
            for item in items:
                for path in re.findall(r'"(results/[^"]+)"', item):
                    table = path.endswith(".csv") and path.startswith(("results/tables/", "results/data/sampling"))
                    if (path.endswith(".png") or table or path.endswith("filter_report.csv")) and "report(" not in item:
                        unmarked.append(f"{smk.name}: {path}")
    assert unmarked == [], unmarked


def test_realignment_reports_are_in_the_report_of_their_targets(workdir):
    targets = ["results/tables/realign_subsets.csv", "results/tables/realign_subsets_vs_paper.csv",
               "results/tables/realign_scaling.csv", "results/plots/realign_scaling.png"]
    (workdir / "results/tables").mkdir(parents=True)
    for t in targets[:3]:
        (workdir / t).write_text("selector,n\nuriel_diversity,5\n")
    _png(workdir / targets[3])
    html = _report(workdir, "realign.html", *targets)
    for caption in ("realign_subsets.rst", "realign_subsets_vs_paper.rst", "realign_scaling.rst"):
        assert _first_line(caption) in html, caption
    for name in ("realign_subsets.csv", "realign_subsets_vs_paper.csv", "realign_scaling.csv",
                 "realign_scaling.png", "Realignment"):
        assert name in html, name
