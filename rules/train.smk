# Training: continued pretraining (MLM) and realignment. Checkpoints live in results/runs/ (undeclared;
# derived from the output path, see langadapt.config.run_dir_of), so a killed or preempted job resumes
# when it is rerun or retried.


# On Slurm: SIGTERM to the job's steps five minutes before the time limit; the training loop saves a
# checkpoint and exits 143, and the retry (profile `retries`) resumes from it. Part of the workflow's
# checkpoint protocol, so it is set here for every training rule, whatever a module renames it to.
PREEMPT_SIGNAL = "--signal=TERM@300"


# Recipes whose pretraining keeps the step with the best downstream score (`select: downstream`, LangSAMP
# §4.1): their pretraining writes results/models/{recipe}/pretrain_steps (a model per selection step), each
# step is evaluated on the `select_tasks` (rules/eval.smk, evaluate_step) and select_step writes the stage's
# model directory from the best step (langadapt.train.stepselect, langadapt.report.steps).
STEP_SELECTION = {r: sel for r in config["recipes"] if (sel := lc.step_selection(config, r))}
STEP_EVAL_JOBS = lc.step_eval_jobs(config)  # (recipe, task, step, seed)


rule pretrain:
    input:
        model=lambda w: lc.stage_input_dir(config, w.recipe, "pretrain"),
        corpora=lambda w: corpora(stage_langs("pretraining", config["recipes"][w.recipe]["pretrain"])),
    output:
        directory("results/models/{recipe}/pretrain"),
    params:
        spec=lambda w: as_json(lc.stage_spec(config, w.recipe, "pretrain")),
        langs=lambda w: stage_langs("pretraining", config["recipes"][w.recipe]["pretrain"]),
        # LangSAMP tables have one row per configured language variety (and per script of those)
        inventory=lambda w: LANGS if langsamp_of(w.recipe) != "none" else [],
        run_dir=lambda w, output: lc.run_dir_of(output[0]),
    log:
        "results/logs/models/{recipe}/pretrain.log",
    benchmark:
        "results/benchmarks/models/{recipe}/pretrain.tsv"
    conda:
        "../envs/train.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=16000,
        runtime=lambda wc, attempt: 120 * attempt,
        **gpu_resources(RES["gpus"]),  # torchrun: one data-parallel process per GPU
        slurm_extra=PREEMPT_SIGNAL,
    wildcard_constraints:
        recipe=_alt([r for r in config["recipes"] if r not in STEP_SELECTION]),
    script:
        "../scripts/pretrain.py"


use rule pretrain as pretrain_steps with:
    output:
        directory("results/models/{recipe}/pretrain_steps"),
    log:
        "results/logs/models/{recipe}/pretrain_steps.log",
    benchmark:
        "results/benchmarks/models/{recipe}/pretrain_steps.tsv"
    wildcard_constraints:
        recipe=_alt(list(STEP_SELECTION)),


rule select_step:
    input:
        steps="results/models/{recipe}/pretrain_steps",
        evals=lambda w: [f"results/eval_steps/{r}/{t}/step{s}_seed{seed}.csv"
                         for r, t, s, seed in STEP_EVAL_JOBS if r == w.recipe],
    output:
        directory("results/models/{recipe}/pretrain"),
    params:
        tasks=lambda w: STEP_SELECTION[w.recipe]["tasks"],
    log:
        "results/logs/models/{recipe}/select_step.log",
    conda:
        "../envs/data.yaml"
    wildcard_constraints:
        recipe=_alt(list(STEP_SELECTION)),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 30 * attempt,
    script:
        "../scripts/select_step.py"


rule realign:
    input:
        unpack(realign_inputs),
    output:
        directory("results/models/{recipe}/realign"),
    params:
        spec=lambda w: as_json(lc.stage_spec(config, w.recipe, "realign")),
        run_dir=lambda w, output: lc.run_dir_of(output[0]),
    log:
        "results/logs/models/{recipe}/realign.log",
    benchmark:
        "results/benchmarks/models/{recipe}/realign.tsv"
    conda:
        "../envs/train.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=16000,
        runtime=lambda wc, attempt: 120 * attempt,
        **gpu_resources(min(RES["gpus"], 1)),  # single-process training
        slurm_extra=PREEMPT_SIGNAL,
    script:
        "../scripts/realign.py"
