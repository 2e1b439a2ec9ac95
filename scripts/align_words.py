"""Word alignments of translation pairs (eflomal, or Pharaoh files) for word-level realignment."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.realign.word_align import align_job

j = job(snakemake)
inputs = snakemake.input
align_job(j.param_json("spec"), Path(inputs.parallel) if "parallel" in inputs.keys() else None,
          snakemake.params.langs, Path(snakemake.output[0]))
