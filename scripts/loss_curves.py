"""Loss curves of every training run (the loss.csv inside each trained model directory)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.plots import plot_loss_curves

job(snakemake)
plot_loss_curves([Path(p) for p in snakemake.input], Path(snakemake.output[0]))
