"""Train a SentencePiece vocabulary on the target languages; report fertility and UNK rate."""

from pathlib import Path

from langadapt.runtime import job
from langadapt.workflow import train_tokenizer_job

j = job(snakemake)  # noqa: F821
spec = j.param_json("spec")
paths = dict(zip(spec["languages"], map(Path, snakemake.input), strict=True))  # noqa: F821
train_tokenizer_job(spec, paths, Path(snakemake.output[0]), log=j.log)  # noqa: F821
