"""Choose a realignment language subset with a selector (URIEL+ diversity, family, script, ...)."""

from pathlib import Path

from langadapt.runtime import job
from langadapt.selection import selection_job

j = job(snakemake)  # noqa: F821
selection_job(j.param_json("spec"), snakemake.params.langs, Path(snakemake.output[0]))  # noqa: F821
