"""Continued MLM pretraining (resumable from results/runs/)."""

from pathlib import Path

from langadapt.runtime import job
from langadapt.train.mlm import pretrain

j = job(snakemake)  # noqa: F821
spec = j.param_json("spec")
cfg = {k: v for k, v in spec.items() if k not in ("name", "objective", "languages")}
paths = dict(zip(snakemake.params.langs, map(Path, snakemake.input.corpora), strict=True))  # noqa: F821
pretrain(Path(snakemake.input.model), paths, Path(snakemake.output[0]), Path(snakemake.params.run_dir),  # noqa: F821
         cfg, provenance=j.provenance(spec))
