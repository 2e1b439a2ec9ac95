"""Continued MLM pretraining (LangSAMP / LAPT variants; torchrun on several GPUs; resumable)."""

from pathlib import Path

from langadapt.train.checkpoint import training_job
from langadapt.train.mlm import pretrain_job

j = training_job(snakemake, snakemake.params.run_dir)
spec = j.param_json("spec")
paths = dict(zip(snakemake.params.langs, map(Path, snakemake.input.corpora), strict=True))
pretrain_job(spec, Path(snakemake.input.model), paths, Path(snakemake.output[0]),
             Path(snakemake.params.run_dir), snakemake.params.inventory, j.provenance(spec),
             threads=snakemake.threads, gpus=snakemake.resources.get("gpu", 0), log=j.log)
