"""URIEL+ distances over the realignment pool, prepared once per the config's `uriel:` section."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.realign.uriel import distances_job

j = job(snakemake)
distances_job(j.param_json("spec"), Path(snakemake.output[0]), where=snakemake.params.where)
