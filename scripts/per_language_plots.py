"""Per-language grouped bars of every task (its main metric), one PNG per task."""

from pathlib import Path

from langadapt.aggregate import collect
from langadapt.plots import plot_all_per_language
from langadapt.runtime import job

j = job(snakemake)  # noqa: F821
written = plot_all_per_language(collect([Path(p) for p in snakemake.input]), Path(snakemake.output[0]))  # noqa: F821
j.log.info("wrote %s", ", ".join(map(str, written)))
