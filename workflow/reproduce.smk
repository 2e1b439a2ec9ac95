# All four papers in one DAG, each under its own results/PAPER/ (Snakemake modules with replace_prefix):
#   snakemake -s workflow/reproduce.smk --profile slurm          # the full reproduction on a cluster
#   snakemake -s workflow/reproduce.smk -n                        # what it takes (benchmarks/dryrun_budget.py)
#   snakemake -s workflow/reproduce.smk results/langsamp/tables/results.csv   # one paper's tables
# Each module is the whole workflow (workflow/Snakefile) with one paper config of configs/; rules are
# renamed PAPER_RULE (e.g. langsamp_pretrain; GPU counts come from each paper config's resources.gpus), so
# `--set-resources langsamp_pretrain:mem_mb=64000` and
# `--forcerun vocab_tables` address one paper.
from langadapt.config import read_yaml


module langsamp:
    snakefile:
        "Snakefile"
    config:
        {**read_yaml("configs/langsamp.yaml"), "_source": "configs/langsamp.yaml"}
    replace_prefix:
        {"results/": "results/langsamp/"}


use rule * from langsamp as langsamp_*


module realignment:
    snakefile:
        "Snakefile"
    config:
        {**read_yaml("configs/realignment.yaml"), "_source": "configs/realignment.yaml"}
    replace_prefix:
        {"results/": "results/realignment/"}


use rule * from realignment as realignment_*


module vocab:
    snakefile:
        "Snakefile"
    config:
        {**read_yaml("configs/vocab-specialization.yaml"), "_source": "configs/vocab-specialization.yaml"}
    replace_prefix:
        {"results/": "results/vocab-specialization/"}


use rule * from vocab as vocab_*


module hyperofa:
    snakefile:
        "Snakefile"
    config:
        {**read_yaml("configs/hyperofa.yaml"), "_source": "configs/hyperofa.yaml"}
    replace_prefix:
        {"results/": "results/hyperofa/"}


use rule * from hyperofa as hyperofa_*


rule all:
    default_target: True
    input:
        rules.langsamp_all.input,
        rules.realignment_all.input,
        rules.vocab_all.input,
        rules.hyperofa_all.input,
