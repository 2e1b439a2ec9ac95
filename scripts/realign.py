"""Realignment on translation pairs or word-aligned pairs (resumable from results/runs/)."""

import json
from pathlib import Path

from langadapt.realign.trainer import realign
from langadapt.train.checkpoint import training_job

j = training_job(snakemake, snakemake.params.run_dir)
spec = j.param_json("spec")
cfg = {k: v for k, v in spec.items() if k not in ("name", "data", "aligner")}
inputs = snakemake.input
if "selection" in inputs.keys():  # languages chosen by a selector (select_languages rule)
    cfg["languages"] = json.loads(Path(inputs.selection).read_text())["languages"]
realign(Path(inputs.model), Path(inputs.parallel), Path(snakemake.output[0]),
        Path(snakemake.params.run_dir), cfg, provenance=j.provenance(spec),
        alignments_path=Path(inputs.alignments) if "alignments" in inputs.keys() else None)
