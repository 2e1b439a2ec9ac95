"""Cross-language similarity of parallel sentences for one recipe's model, and its difference to the
recipe's base model (LangSAMP slides: similarity heatmap and improvement over the baseline)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.plots import plot_similarity, similarity_matrix, write_matrix_csv

j = job(snakemake)
sm = snakemake
settings = j.param_json("settings")
langs = list(sm.params.langs)


def matrix(model_dir):
    return similarity_matrix(
        Path(model_dir), Path(sm.input.parallel), langs, settings["layer"], settings["max_sentences"],
        settings["seed"], pivot=sm.params.pivot, split=settings["split"],
    )


ours = matrix(sm.input.model)
write_matrix_csv(ours, langs, Path(sm.output.csv))
has_baseline = "baseline" in sm.input.keys()
baseline = matrix(sm.input.baseline) if has_baseline else None
layer = "last layer" if settings["layer"] is None else f"layer {settings['layer']}"
plot_similarity(
    ours, langs, Path(sm.output.plot), baseline=baseline,
    title=f"{sm.wildcards.recipe}: cosine similarity of parallel sentences ({layer})",
    baseline_name=f"base model {Path(sm.input.baseline).name}" if has_baseline else "baseline",
)
j.log.info("mean off-diagonal similarity %.4f", (ours.sum() - ours.trace()) / max(ours.size - len(langs), 1))
