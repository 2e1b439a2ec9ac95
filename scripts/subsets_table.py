"""Realignment language subsets chosen by the selectors, one row per heuristic and size (paper Table 6)."""

from pathlib import Path

from langadapt.realign_report import subsets_table
from langadapt.runtime import job

job(snakemake)  # noqa: F821
subsets_table([Path(p) for p in snakemake.input], Path(snakemake.output.csv), Path(snakemake.output.tex))  # noqa: F821
