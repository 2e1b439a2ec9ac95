"""The selectors on the realignment paper's pool against the subsets its Table 6 lists."""

from pathlib import Path

from langadapt.core.runtime import job
from langadapt.realign.table6 import comparison_job

job(snakemake)
comparison_job(Path(snakemake.input.distances), Path(snakemake.output.csv))
