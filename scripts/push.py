"""Upload a recipe's final model with its model card to the Hugging Face Hub (`snakemake push`)."""

import json
from pathlib import Path

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import ConfigError
from langadapt.core.runtime import job
from langadapt.models.card import push_model

j = job(snakemake)
if not snakemake.params.repo_id:
    raise ConfigError(f"recipe {snakemake.wildcards.recipe!r} is not in push.recipes (or push.namespace is unset)")
info = push_model(Path(snakemake.input.model), Path(snakemake.input.card), snakemake.params.repo_id,
                  private=bool(snakemake.params.private))
j.log.info("pushed %d files to https://huggingface.co/%s (commit %s)", len(info["files"]), info["repo_id"],
           info["commit"])
write_text_atomic(json.dumps(info, indent=1) + "\n", Path(snakemake.output[0]))
