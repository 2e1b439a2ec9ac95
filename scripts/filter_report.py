"""Per-language table of lines kept and removed by each filter."""

from pathlib import Path

from langadapt.data.corpus import filter_report
from langadapt.runtime import job

job(snakemake)  # noqa: F821
filter_report([Path(p) for p in snakemake.input], Path(snakemake.output.csv), Path(snakemake.output.tex))  # noqa: F821
