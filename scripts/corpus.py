"""Build one language's filtered, split corpus (thin wrapper over langadapt.data.corpus)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.corpus import build_corpus

j = job(snakemake)  # noqa: F821
filters = j.param_json("filters")
build_corpus(
    snakemake.wildcards.lang,  # noqa: F821
    source_cfg=j.param_json("source"),
    filters_cfg={name: filters[name] for name in snakemake.params.filter_order},  # noqa: F821
    split_cfg=j.param_json("splits"),
    out_parquet=Path(snakemake.output.corpus),  # noqa: F821
    out_stats=Path(snakemake.output.stats),  # noqa: F821
)
