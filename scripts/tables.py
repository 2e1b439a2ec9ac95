"""Long-format result rows -> CSV + LaTeX tables (per task, per language group, paper layouts) -> significance
-> plot."""

import json
from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.aggregate import collect, plot_results, write_tables
from langadapt.report.paper_tables import write_tables as write_paper_tables
from langadapt.report.stats import write_report

job(snakemake)
out = snakemake.output
report = json.loads(snakemake.params.report)
df = collect([Path(p) for p in snakemake.input])
write_tables(df, Path(out.by_task), all_rows_csv=Path(out.csv))
write_report(df, Path(out.grouped), Path(out.significance), report)
write_paper_tables(df, report.get("tables", {}), Path(out.paper), seen_model=report.get("seen_model") or "xlmr")
plot_results(df, Path(out.plot))
