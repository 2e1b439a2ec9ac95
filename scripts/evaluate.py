"""Evaluate one model on one task with one seed; all languages of the task in this job."""

from pathlib import Path

from langadapt.config import code_version
from langadapt.evaluation.tasks import evaluate
from langadapt.runtime import job

j = job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
evaluate(
    Path(sm.input.model),
    sm.wildcards.task,
    j.param_json("task"),
    corpus_paths=dict(zip(sm.params.langs, map(Path, sm.input.corpora), strict=True)),
    parallel_path=Path(sm.input.parallel),
    pivot=sm.params.pivot,
    seed=int(sm.wildcards.seed),
    recipe=sm.wildcards.recipe,
    config_hash=sm.params.recipe_hash,
    code_version=code_version(),
    out_csv=Path(sm.output[0]),
)
