"""Build one language's filtered, split corpus (thin wrapper over langadapt.data.corpus)."""

from pathlib import Path

from langadapt.data.corpus import build_corpus
from langadapt.runtime import job

j = job(snakemake)  # noqa: F821
build_corpus(
    snakemake.wildcards.lang,  # noqa: F821
    source_cfg=j.param_json("source"),
    filters_cfg=j.param_json("filters"),
    split_cfg=j.param_json("splits"),
    out_parquet=Path(snakemake.output.corpus),  # noqa: F821
    out_stats=Path(snakemake.output.stats),  # noqa: F821
)
