"""PCA of the language and script embeddings of a LangSAMP model (LangSAMP Figure 3)."""

from pathlib import Path

from langadapt.plots import plot_langsamp_embeddings
from langadapt.runtime import job

job(snakemake)  # noqa: F821
plot_langsamp_embeddings(Path(snakemake.input[0]), Path(snakemake.output[0]))  # noqa: F821
