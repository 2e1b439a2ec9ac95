"""Train HyperOFA's hypernetwork from external word vectors to the base model's token embeddings."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.hypernet.training import hypernet_job

j = job(snakemake)
hypernet_job(j.param_json("spec"), Path(snakemake.input.model), Path(snakemake.input.word_vectors),
             Path(snakemake.output[0]), threads=snakemake.threads, log=j.log)
