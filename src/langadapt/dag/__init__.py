"""What the workflow needs while it builds the DAG (torch-free): the targets of ``rule all`` (`targets`) and
a cache that makes Snakemake's per-job inspection of callables cheaper (`snakemake_patch`), and the Slurm
partition of a job that requests GPUs (`cluster`)."""
