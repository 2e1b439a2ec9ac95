"""Translation pairs of one parallel_data entry (hub OPUS-100 / NLLB fallback / local files)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.parallel_data import build_parallel_data

j = job(snakemake)
build_parallel_data(
    j.param_json("spec"),
    pivot=snakemake.params.pivot,
    config_langs=list(snakemake.params.langs),
    out_parquet=Path(snakemake.output.pairs),
    out_json=Path(snakemake.output.report),
    name=snakemake.wildcards.name,
)
