"""Language sampling probabilities with temperature alpha."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.sampling import write_sampling_table

job(snakemake)  # noqa: F821
paths = dict(zip(snakemake.params.langs, map(Path, snakemake.input), strict=True))  # noqa: F821
write_sampling_table(paths, float(snakemake.params.alpha), Path(snakemake.output[0]))  # noqa: F821
