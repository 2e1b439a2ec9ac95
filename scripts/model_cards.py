"""The full model card of every evaluated recipe: recipe, languages, data revisions, results (README.md)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.models.card import model_cards_job

j = job(snakemake)
recipes = list(snakemake.params.recipes)
model_cards_job(j.param_json("cards"), dict(zip(recipes, map(Path, snakemake.input.models), strict=True)),
                dict(zip(recipes, map(Path, snakemake.output), strict=True)), j.param_json("sources"),
                snakemake.params.lock, Path(snakemake.input.results), j.param_json("task_kinds"))
