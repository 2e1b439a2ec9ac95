"""External word vectors of one config entry: read/fetch ColexNet+ (colexnet) or build them (bible_aligned)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.vectors.base import build_word_vectors

j = job(snakemake)  # noqa: F821
name = snakemake.wildcards.name  # noqa: F821
corpora = dict(zip(snakemake.params.langs, map(Path, snakemake.input.corpora), strict=True))  # noqa: F821
build_word_vectors(j.param_json("spec"), Path(snakemake.output[0]), corpora,  # noqa: F821
                   threads=snakemake.threads, where=f"word_vectors.{name}")  # noqa: F821
