# Aggregation: long-format result rows -> CSV + LaTeX tables -> plots. `snakemake tables` regenerates
# them from existing result rows without rerunning any model job.


rule tables:
    input:
        EVAL_FILES,
    output:
        csv=report("results/tables/results.csv", caption="../workflow/report/results_table.rst", category="Results"),
        by_task=directory("results/tables/by_task"),
        grouped=directory("results/tables/grouped"),
        significance=report("results/tables/significance.csv", caption="../workflow/report/significance.rst",
                            category="Results", subcategory="Significance"),
        paper=report(
            directory("results/tables/paper"),
            patterns=["{table,[^/]+(?<!_cells)}.csv"],  # the layouts (NAME_cells.csv and NAME.tex beside them)
            caption="../workflow/report/paper_tables.rst",
            category="Paper tables",
            labels={"table": "{table}"},
        ),
        plot=report("results/plots/results.png", caption="../workflow/report/results_plot.rst", category="Results"),
    params:
        # a function: "{task}" is no wildcard; the claims are the claims job's (editing them reruns only it)
        report=lambda w: as_json({k: v for k, v in config["evaluation"].get("report", {}).items() if k != "claims"}),
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


# The papers' headline claims against this run (langadapt.report.claims): editing evaluation.report.claims
# reruns only this job.
rule claims:
    input:
        "results/tables/results.csv",
    output:
        csv=report("results/tables/claims.csv", caption="../workflow/report/claims.rst", category="Claims"),
        md="results/tables/claims.md",
        tex="results/tables/claims.tex",
    params:
        claims=lambda w: as_json(config["evaluation"]["report"].get("claims", [])),
    log:
        "results/logs/claims.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/claims.py"


rule loss_curves:
    input:
        TRAIN_RUNS,
    output:
        report("results/plots/loss_curves.png", caption="../workflow/report/loss_curves.rst", category="Training"),
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


# Realignment reports (the realignment paper): the language subsets the selectors chose (Table 6), the
# selectors on the paper's whole pool against the lists of its Table 6, and
# the transfer score against the number of realignment languages per selector (Figure 5).
SELECTOR_ENTRIES = TARGETS.selector_entries
SCALING_DESIGN = TARGETS.scaling_design
SCALING_SELECTIONS = TARGETS.scaling_selections


rule subsets_table:
    input:
        [f"results/selection/{name}.json" for name in SELECTOR_ENTRIES],
    output:
        csv=report("results/tables/realign_subsets.csv", caption="../workflow/report/realign_subsets.rst",
                   category="Realignment"),
        tex="results/tables/realign_subsets.tex",
    log:
        "results/logs/subsets_table.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/subsets_table.py"


rule subsets_vs_paper:
    input:
        distances="results/selection/uriel_distances.npz",
    output:
        csv=report("results/tables/realign_subsets_vs_paper.csv",
                   caption="../workflow/report/realign_subsets_vs_paper.rst", category="Realignment"),
        md="results/tables/realign_subsets_vs_paper.md",
    log:
        "results/logs/subsets_vs_paper.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda wc, attempt: 15 * attempt,
    script:
        "../scripts/subsets_vs_paper.py"


rule realign_scaling:
    input:
        evals=[f for r in SCALING_DESIGN["recipes"] for f in EVAL_FILES if f.startswith(f"results/eval/{r}/")],
        selections=SCALING_SELECTIONS,
    output:
        csv=report("results/tables/realign_scaling.csv", caption="../workflow/report/realign_scaling.rst",
                   category="Realignment"),
        plot=report("results/plots/realign_scaling.png", caption="../workflow/report/realign_scaling.rst",
                    category="Realignment"),
    params:
        design=as_json(SCALING_DESIGN),
    log:
        "results/logs/realign_scaling.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/realign_scaling.py"


# Model cards (langadapt.models.card): the full card of every evaluated recipe, with its results, in one job;
# `snakemake push` uploads the `push.recipes` models with their cards to the Hub (not in the default target).
CARD_RECIPES = lc.card_recipes(config)


rule model_cards:
    input:
        models=[lc.final_model_dir(config, r) for r in CARD_RECIPES],
        results="results/tables/results.csv",
    output:
        [f"results/model_cards/{r}/README.md" for r in CARD_RECIPES],
    params:
        recipes=CARD_RECIPES,  # the order of input.models and output (paths come from those: module prefixes)
        # functions: JSON braces are no wildcards
        cards=lambda w: as_json(lc.card_specs(config)),
        sources=lambda w: as_json(config["data"]["sources"]),
        task_kinds=lambda w: as_json({t: s["kind"] for t, s in config["evaluation"]["tasks"].items()}),
        lock=config["remote"]["lock"],
    log:
        "results/logs/model_cards.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/model_cards.py"


rule push_model:
    input:
        model=lambda w: lc.final_model_dir(config, w.recipe),
        card="results/model_cards/{recipe}/README.md",
    output:
        "results/pushed/{recipe}.json",
    params:
        repo_id=lambda w: lc.push_repo(config, w.recipe),
        private=config["push"].get("private", True),
    log:
        "results/logs/push/{recipe}.log",
    conda:
        "../envs/data.yaml"
    localrule: True  # the submit host reaches the Hub; compute nodes may not
    resources:
        mem_mb=2000,
        runtime=60,
    script:
        "../scripts/push.py"


rule push:
    input:
        [f"results/pushed/{r}.json" for r in config["push"].get("recipes", [])],
