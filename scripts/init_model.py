"""Replace or extend a model's vocabulary and initialize the new embeddings (IDENT, RANDOM, ...)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.vocab.chain import init_job

j = job(snakemake)
inp = snakemake.input
texts = dict(zip(snakemake.params.texts_langs, map(Path, inp.texts), strict=True)) if "texts" in inp.keys() else None
init_job(j.param_json("spec"), Path(inp.model), Path(inp.tokenizer), Path(snakemake.output[0]),
         j.provenance(j.param_json("spec")), texts=texts,
         word_vectors=[Path(p) for p in inp.word_vectors] if "word_vectors" in inp.keys() else [],
         hypernet_dir=Path(inp.hypernet) if "hypernet" in inp.keys() else None,
         threads=snakemake.threads, log=j.log)
