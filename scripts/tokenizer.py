"""New vocabulary: train SentencePiece (kind sentencepiece) or fetch a hub tokenizer (kind hf); stats.csv."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.models.tokenizer_jobs import tokenizer_job

j = job(snakemake)
spec = j.param_json("spec")
langs = spec.get("languages") or []
paths = dict(zip(langs, map(Path, snakemake.input.texts), strict=True))
tokenizer_job(spec, paths, Path(snakemake.output[0]), log=j.log)
