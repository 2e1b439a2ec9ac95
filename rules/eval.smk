# Evaluation: one job per model x task x seed; every language of the task inside the job.


rule evaluate:
    input:
        model=lambda w: lc.final_model_dir(config, w.recipe),
        corpora=corpora(),
        parallel="results/data/parallel.parquet",
    output:
        "results/eval/{recipe}/{task}/seed{seed}.csv",
    params:
        task=lambda w: as_json(config["evaluation"]["tasks"][w.task]),
        recipe_hash=lambda w: lc.config_hash(lc.recipe_spec(config, w.recipe)),
        langs=LANGS,
        pivot=config["pivot"],
    log:
        "results/logs/eval/{recipe}/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/eval/{recipe}/{task}/seed{seed}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: RES["eval_threads"]
    resources:
        mem_mb=8000,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=min(RES["gpus"], 1),  # one process per job
    script:
        "../scripts/evaluate.py"
