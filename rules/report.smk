# Aggregation: long-format result rows -> CSV + LaTeX tables -> plots. `snakemake tables` regenerates
# them from existing result rows without rerunning any model job.


rule tables:
    input:
        EVAL_FILES,
    output:
        csv="results/tables/results.csv",
        by_task=directory("results/tables/by_task"),
        plot="results/plots/results.png",
    log:
        "results/logs/tables.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/tables.py"


rule loss_curves:
    input:
        TRAIN_RUNS,
    output:
        "results/plots/loss_curves.png",
    log:
        "results/logs/loss_curves.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/loss_curves.py"
