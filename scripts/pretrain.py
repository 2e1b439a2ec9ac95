"""Continued MLM pretraining (LangSAMP / LAPT variants; torchrun on several GPUs; resumable)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.train.mlm import pretrain_job

j = job(snakemake, run_dir=snakemake.params.run_dir)  # noqa: F821
spec = j.param_json("spec")
paths = dict(zip(snakemake.params.langs, map(Path, snakemake.input.corpora), strict=True))  # noqa: F821
pretrain_job(spec, Path(snakemake.input.model), paths, Path(snakemake.output[0]),  # noqa: F821
             Path(snakemake.params.run_dir), snakemake.params.inventory, j.provenance(spec),  # noqa: F821
             threads=snakemake.threads, gpus=snakemake.resources.get("gpu", 0), log=j.log)  # noqa: F821
