# Figures beyond the summary bar chart: LangSAMP embedding PCA (LangSAMP Figure 3), cross-language
# similarity of parallel sentences (LangSAMP slides) and per-language bars of every task.
# The similarity heatmaps encode sentences with the models, so they are not in `all`: ask for them with
# `snakemake results/plots/similarity/{recipe}.png` (one recipe) or `snakemake similarity_all`.
from langadapt.evaluation.retrieval import BibleRetrieval
from langadapt.dag.targets import similarity_inputs

LANGSAMP_RECIPES = TARGETS.langsamp_recipes  # final model = a LangSAMP pretraining run

# similarity: the layer of the (first) SR-B task, else the model's last layer; 100 verses of the test split
SRB_TASKS = [t for t, s in config["evaluation"]["tasks"].items() if s["kind"] == BibleRetrieval.kind]
SIMILARITY = {
    "layer": (config["evaluation"]["tasks"][SRB_TASKS[0]].get("layer", BibleRetrieval.defaults["layer"])
              if SRB_TASKS else None),
    "max_sentences": 100,
    "seed": 0,
    "split": "test",
}


rule langsamp_pca:
    input:
        lambda w: lc.final_model_dir(config, w.recipe),
    output:
        report(
            "results/plots/langsamp/{recipe}.png",
            caption="../workflow/report/langsamp_pca.rst",
            category="LangSAMP embeddings",
            labels={"recipe": "{recipe}"},
        ),
    log:
        "results/logs/plots/langsamp/{recipe}.log",
    conda:
        "../envs/eval.yaml"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/langsamp_pca.py"


rule similarity:
    input:
        unpack(lambda w: similarity_inputs(config, w.recipe, parallel_path())),
    output:
        plot=report(
            "results/plots/similarity/{recipe}.png",
            caption="../workflow/report/similarity.rst",
            category="Cross-language similarity",
            labels={"recipe": "{recipe}"},
        ),
        csv="results/plots/similarity/{recipe}.csv",
    params:
        settings=as_json(SIMILARITY),
        langs=LANGS,
        pivot=config["pivot"],
    log:
        "results/logs/plots/similarity/{recipe}.log",
    conda:
        "../envs/eval.yaml"
    threads: RES["eval_threads"]
    resources:
        mem_mb=8000,
        runtime=30,
        **gpu_resources(min(RES["gpus"], 1)),
    script:
        "../scripts/similarity.py"


rule similarity_all:
    input:
        [f"results/plots/similarity/{r}.png" for r in EVAL_RECIPES],
    localrule: True


rule per_language_plots:
    input:
        EVAL_FILES,
    output:
        report(
            directory("results/plots/per_language"),
            patterns=["{task}.png"],
            caption="../workflow/report/per_language.rst",
            category="Results",
            subcategory="Per language",
            labels={"task": "{task}"},
        ),
    log:
        "results/logs/per_language_plots.log",
    conda:
        "../envs/eval.yaml"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/per_language_plots.py"
