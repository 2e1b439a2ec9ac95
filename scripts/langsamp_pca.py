"""PCA of the language and script embeddings of a LangSAMP model (LangSAMP Figure 3)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.plots import plot_langsamp_embeddings

job(snakemake)
plot_langsamp_embeddings(Path(snakemake.input[0]), Path(snakemake.output[0]))
