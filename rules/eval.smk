# Evaluation: one job per model x task x seed; every language of the task inside the job (narrowed to the
# recipe's own languages by evaluation.recipe_languages; langadapt.config.job_languages).
# A job declares only what its task reads (langadapt.evaluation.tasks.task_inputs): the corpora of the
# task's languages for kinds reading the Bible corpora, nothing of the pretraining data for dataset-backed
# kinds (plus their existing local dataset files), so a changed corpus reruns only the tasks that read it.


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        "results/eval/{recipe}/{task}/seed{seed}.csv",
    params:
        task=lambda w: as_json(config["evaluation"]["tasks"][w.task]),
        recipe_hash=lambda w: lc.config_hash(lc.recipe_spec(config, w.recipe)),
        langs=lambda w: lc.job_languages(config, w.recipe, w.task),
        pivot=config["pivot"],
    log:
        "results/logs/eval/{recipe}/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/eval/{recipe}/{task}/seed{seed}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: lambda w: lc.eval_threads(config, w.task)  # 1 for light kinds (mlm_loss, fertility)
    resources:
        mem_mb=8000,
        runtime=lambda wc, attempt: 60 * attempt,
        **gpu_resources(min(RES["gpus"], 1)),  # one process per job
    script:
        "../scripts/evaluate.py"


# One exported step of a `select: downstream` pretraining on one selection task (first seed; the jobs:
# STEP_EVAL_JOBS in rules/train.smk).
use rule evaluate as evaluate_step with:
    input:
        unpack(step_eval_inputs),
    output:
        "results/eval_steps/{recipe}/{task}/step{step}_seed{seed}.csv",
    log:
        "results/logs/eval_steps/{recipe}/{task}/step{step}_seed{seed}.log",
    benchmark:
        "results/benchmarks/eval_steps/{recipe}/{task}/step{step}_seed{seed}.tsv"
