"""Keep the pretraining step with the best average downstream score (select: downstream, LangSAMP §4.1)."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.steps import select_step_job

job(snakemake)
select_step_job(Path(snakemake.input.steps), list(snakemake.input.evals), list(snakemake.params.tasks),
                Path(snakemake.output[0]))
