"""Resolve and check every remote input of the config; write the coverage table and the lock (a local rule:
it reaches the hub). Thin wrapper over langadapt.dag.preflight."""

from langadapt.core.runtime import go_online, job

go_online()  # before huggingface_hub is imported: this job may reach the network

from pathlib import Path  # noqa: E402

from langadapt.dag.preflight import run_preflight  # noqa: E402
from langadapt.data.remote import HubListing  # noqa: E402

j = job(snakemake)
report = run_preflight(j.param_json("spec"), HubListing(), snakemake.params.lock,
                       out_dir=Path(snakemake.output.csv).parent)  # fmt: skip
j.log.info("coverage (lock %s):\n%s", snakemake.params.lock, report.markdown(j.param_json("spec")["languages"]))
