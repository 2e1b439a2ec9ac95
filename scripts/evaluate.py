"""Evaluate one model on one task with one seed; all languages of the task in this job.

The job's inputs are what the task reads (rules/common.smk `task_eval_inputs`): the model, plus the corpora
of the task's languages (`params.langs` order) and the verse pairs only for kinds that read them.
"""

from pathlib import Path

from langadapt.core.provenance import code_version
from langadapt.core.runtime import job
from langadapt.evaluation.tasks import evaluate
from langadapt.train.stepselect import step_dir

j = job(snakemake)
sm = snakemake
langs = list(sm.params.langs)
corpora = sm.input.get("corpora")  # one file comes back as a plain string
corpora = [corpora] if isinstance(corpora, str) else corpora
parallel = sm.input.get("parallel")
model = Path(sm.input.model)
if "step" in sm.wildcards.keys():  # evaluate_step: one exported step of a `select: downstream` pretraining
    model = step_dir(model, int(sm.wildcards.step))
evaluate(
    model,
    sm.wildcards.task,
    j.param_json("task"),
    corpus_paths=dict(zip(langs, map(Path, corpora), strict=True)) if corpora else None,
    parallel_path=Path(parallel) if parallel else None,
    pivot=sm.params.pivot,
    seed=int(sm.wildcards.seed),
    recipe=sm.wildcards.recipe,
    config_hash=sm.params.recipe_hash,
    code_version=code_version(),
    out_csv=Path(sm.output[0]),
    languages=langs,
)
