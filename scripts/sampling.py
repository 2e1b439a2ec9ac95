"""Language sampling probabilities with temperature alpha."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.sampling import write_sampling_table

job(snakemake)
paths = dict(zip(snakemake.params.langs, map(Path, snakemake.input), strict=True))
write_sampling_table(paths, float(snakemake.params.alpha), Path(snakemake.output[0]))
