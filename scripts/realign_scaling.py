"""Transfer score vs number of realignment languages, per selector and base model (paper Figure 5)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.aggregate import collect
from langadapt.report.realign import realign_scaling

j = job(snakemake)  # noqa: F821
df = collect([Path(p) for p in snakemake.input.evals])  # noqa: F821
realign_scaling(df, j.param_json("design"), [Path(p) for p in snakemake.input.selections],  # noqa: F821
                Path(snakemake.output.csv), Path(snakemake.output.plot))  # noqa: F821
