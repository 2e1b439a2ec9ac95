"""Transfer score vs number of realignment languages, per selector and base model (paper Figure 5)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.aggregate import collect
from langadapt.report.realign import realign_scaling

j = job(snakemake)
df = collect([Path(p) for p in snakemake.input.evals])
realign_scaling(df, j.param_json("design"), [Path(p) for p in snakemake.input.selections],
                Path(snakemake.output.csv), Path(snakemake.output.plot))
