"""Keep the pretraining step with the best average downstream score (select: downstream, LangSAMP §4.1)."""

import re
from pathlib import Path

from langadapt.core.runtime import job
from langadapt.report.steps import select_step_job

job(snakemake)
by_step = {}
for path in snakemake.input.evals:
    by_step.setdefault(int(re.search(r"/step(\d+)_seed\d+\.csv$", path).group(1)), []).append(Path(path))
select_step_job(Path(snakemake.input.steps), by_step, list(snakemake.params.tasks), Path(snakemake.output[0]))
