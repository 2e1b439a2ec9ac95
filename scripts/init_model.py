"""Replace or extend a model's vocabulary and initialize the new embeddings (IDENT, RANDOM, ...)."""

from pathlib import Path

from langadapt.embedding_init import initialize_embeddings
from langadapt.runtime import job

j = job(snakemake)  # noqa: F821
spec = j.param_json("spec")
stats = initialize_embeddings(
    Path(snakemake.input.model),  # noqa: F821
    Path(snakemake.input.tokenizer),  # noqa: F821
    methods=spec["init"],
    out_dir=Path(snakemake.output[0]),  # noqa: F821
    seed=0,
    provenance=j.provenance(spec),
    vocab=spec.get("vocab", "replace"),
)
j.log.info("init stats: %s", stats)
