"""Upload a recipe's final model with its model card to the Hugging Face Hub (`snakemake push`)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.models.card import push_job

job(snakemake)
push_job(snakemake.wildcards.recipe, Path(snakemake.input.model), Path(snakemake.input.card),
         snakemake.params.repo_id, bool(snakemake.params.private), Path(snakemake.output[0]))
