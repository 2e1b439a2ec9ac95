"""Long-format result rows -> CSV + LaTeX tables -> plot."""

from pathlib import Path

from langadapt.aggregate import collect, plot_results, write_tables
from langadapt.runtime import job

job(snakemake)  # noqa: F821
df = collect([Path(p) for p in snakemake.input])  # noqa: F821
write_tables(df, Path(snakemake.output.by_task), all_rows_csv=Path(snakemake.output.csv))  # noqa: F821
plot_results(df, Path(snakemake.output.plot))  # noqa: F821
