"""Download one consumer's hub files at the locked commits into the shared cache (a local rule: it reaches the
hub). Thin wrapper over langadapt.dag.preflight.download_consumer."""

from langadapt.core.runtime import go_online, job

go_online()  # before huggingface_hub is imported: this job reaches the network

from langadapt.dag.preflight import download_consumer  # noqa: E402

j = job(snakemake)
data = download_consumer(j.param_json("spec"), snakemake.wildcards.consumer, snakemake.params.lock,
                         snakemake.params.cache, snakemake.output[0])  # fmt: skip
j.log.info("%s: %d file(s) in %s", data["consumer"], sum(len(f["files"]) for f in data["fetched"]), data["cache"])
