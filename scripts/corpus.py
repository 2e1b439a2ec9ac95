"""Build one language's filtered, split corpus (thin wrapper over langadapt.data.corpus)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.data.corpus import build_corpus

j = job(snakemake)
filters = j.param_json("filters")
build_corpus(
    snakemake.wildcards.lang,
    source_cfg=j.param_json("source"),
    filters_cfg={name: filters[name] for name in snakemake.params.filter_order},
    split_cfg=j.param_json("splits"),
    out_parquet=Path(snakemake.output.corpus),
    out_stats=Path(snakemake.output.stats),
    cap_cfg=j.param_json("cap"),
    workers=snakemake.threads,
)
