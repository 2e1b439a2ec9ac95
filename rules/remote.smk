# Remote objects (langadapt.dag.preflight): the preflight resolves every hub repo of the config to a commit
# (remote.lock) and checks that every language x source / task is served; one download job per consumer fetches
# its files at those commits into remote.cache. Both are local rules, so they run on the submit host: the only
# jobs that reach the network. Every other job runs offline (HF_HUB_OFFLINE=1, rules/common.smk) and reads the
# downloads through its download marker (langadapt.core.runtime.job pins the commits).


rule preflight:
    # `snakemake preflight` (or `langadapt preflight --configfile ...`): coverage table + lock, or one error
    # listing every gap. Reruns when the config's remote inputs change; the lock keeps its pins (see --update).
    # The downloads read its outputs as ancient() inputs, so that a rerun does not redo them; Snakemake then runs
    # only the preflight in that invocation (it skips the jobs after an ancient() input whose producer reruns
    # for changed params): run snakemake again to continue.
    output:
        csv=COVERAGE,
        md="results/remote/coverage.md",
    params:
        spec=lambda w: REMOTE_SPEC,  # a function: its {lang} placeholders are not wildcards
        lock=os.path.abspath(config["remote"]["lock"]),
    log:
        "results/logs/preflight.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/preflight.py"


rule download:
    input:
        ancient(COVERAGE),
    output:
        f"results/{DOWNLOAD_MARKERS}/{{consumer}}.json",
    wildcard_constraints:
        consumer=_alt(sorted(REMOTE_CONSUMERS)),
    params:
        spec=lambda w: REMOTE_SPEC,  # a function: its {lang} placeholders are not wildcards
        lock=os.path.abspath(config["remote"]["lock"]),
        cache=REMOTE_CACHE,
    log:
        "results/logs/download/{consumer}.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=lambda wc, attempt: 120 * attempt,
    script:
        "../scripts/download.py"
