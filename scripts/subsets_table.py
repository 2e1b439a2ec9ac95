"""Realignment language subsets chosen by the selectors, one row per heuristic and size (paper Table 6)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.realign import subsets_table

job(snakemake)
subsets_table([Path(p) for p in snakemake.input], Path(snakemake.output.csv), Path(snakemake.output.tex))
