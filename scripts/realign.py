"""Realignment on translation pairs (resumable from results/runs/)."""

import json
from pathlib import Path

from langadapt.runtime import job
from langadapt.train.realign import realign

j = job(snakemake)  # noqa: F821
spec = j.param_json("spec")
cfg = {k: v for k, v in spec.items() if k not in ("name", "loss")}
if "selection" in snakemake.input.keys():  # noqa: F821  languages chosen by a selector (select_languages rule)
    cfg["languages"] = json.loads(Path(snakemake.input.selection).read_text())["languages"]  # noqa: F821
realign(Path(snakemake.input.model), Path(snakemake.input.parallel), Path(snakemake.output[0]),  # noqa: F821
        Path(snakemake.params.run_dir), cfg, provenance=j.provenance(spec))  # noqa: F821
