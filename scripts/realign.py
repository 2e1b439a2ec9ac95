"""Realignment on translation pairs (resumable from results/runs/)."""

from pathlib import Path

from langadapt.runtime import job
from langadapt.train.realign import realign

j = job(snakemake)  # noqa: F821
spec = j.param_json("spec")
cfg = {k: v for k, v in spec.items() if k not in ("name", "loss")}
realign(Path(snakemake.input.model), Path(snakemake.input.parallel), Path(snakemake.output[0]),  # noqa: F821
        Path(snakemake.params.run_dir), cfg, provenance=j.provenance(spec))  # noqa: F821
