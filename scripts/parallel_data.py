"""Translation pairs of one parallel_data entry (hub OPUS-100 / NLLB fallback / local files)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.parallel_sources import build_parallel_data

j = job(snakemake)  # noqa: F821
build_parallel_data(
    j.param_json("spec"),
    pivot=snakemake.params.pivot,  # noqa: F821
    config_langs=list(snakemake.params.langs),  # noqa: F821
    out_parquet=Path(snakemake.output.pairs),  # noqa: F821
    out_json=Path(snakemake.output.report),  # noqa: F821
    name=snakemake.wildcards.name,  # noqa: F821
)
