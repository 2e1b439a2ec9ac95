"""External word vectors of one config entry: read/fetch ColexNet+ (colexnet) or build them (bible_aligned)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.vectors.base import build_word_vectors

j = job(snakemake)
name = snakemake.wildcards.name
corpora = dict(zip(snakemake.params.langs, map(Path, snakemake.input.corpora), strict=True))
build_word_vectors(j.param_json("spec"), Path(snakemake.output[0]), corpora,
                   threads=snakemake.threads, where=f"word_vectors.{name}")
