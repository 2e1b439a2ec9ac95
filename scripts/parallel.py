"""Translation pairs of the pivot language with every other language, by verse id."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.parallel import build_parallel

job(snakemake)
paths = dict(zip(snakemake.params.langs, map(Path, snakemake.input), strict=True))
build_parallel(paths, pivot=snakemake.params.pivot, out=Path(snakemake.output[0]))
