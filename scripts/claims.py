"""The papers' headline claims judged on this run's results -> results/tables/claims.{csv,md,tex}."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.claims import write_claims

j = job(snakemake)
out = snakemake.output
write_claims(Path(snakemake.input[0]), j.param_json("claims"), Path(out.csv), Path(out.md), Path(out.tex))
