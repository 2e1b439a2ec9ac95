"""Per-language table of lines kept and removed by each filter."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.corpus import filter_report

job(snakemake)
filter_report([Path(p) for p in snakemake.input], Path(snakemake.output.csv), Path(snakemake.output.tex))
