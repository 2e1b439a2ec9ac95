"""Choose a realignment language subset with a selector (URIEL+ diversity, family, script, ...)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.realign.selection import selection_job

j = job(snakemake)
inputs = snakemake.input
selection_job(j.param_json("spec"), snakemake.params.langs, Path(snakemake.output[0]),
              distances=Path(inputs.distances) if "distances" in inputs.keys() else None)
