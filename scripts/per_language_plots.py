"""Per-language grouped bars of every task (its main metric), one PNG per task."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.aggregate import collect
from langadapt.report.plots import plot_all_per_language

j = job(snakemake)
written = plot_all_per_language(collect([Path(p) for p in snakemake.input]), Path(snakemake.output[0]))
j.log.info("wrote %s", ", ".join(map(str, written)))
