# Data: sources -> filtered, split corpora per lang_Script -> translation pairs, sampling, filter report.


rule corpus:
    input:
        remote=lambda w: downloaded(f"corpus/{w.lang}"),
    output:
        corpus="results/data/corpora/{lang}.parquet",
        stats="results/data/filter_stats/{lang}.csv",
    params:
        source=lambda w: as_json(config["data"]["sources"][w.lang]),
        filters=as_json(config["data"]["filters"]),
        filter_order=list(config["data"]["filters"]),  # canonical JSON sorts keys; order matters
        splits=as_json(config["data"]["splits"]),
        cap=as_json(config["data"]["cap"]),
    log:
        "results/logs/corpus/{lang}.log",
    conda:
        "../envs/data.yaml"
    # 2 threads for sources that can be large: fastText LID in a helper process (langadapt.data.lid.with_lid)
    threads: lambda wc: corpus_threads(config["data"]["sources"][wc.lang])
    resources:
        # streaming: flat working set + a few bytes per source line (langadapt.data.corpus.corpus_memory_mb,
        # from the download marker's byte count; benchmarks/corpus_stream.py measures it)
        mem_mb=lambda wc, input, attempt: corpus_memory_mb(wc.lang, config["data"]["sources"][wc.lang], input.remote)
        * attempt,
        runtime=lambda wc, attempt: 20 * attempt,
    script:
        "../scripts/corpus.py"


rule filter_report:
    input:
        expand("results/data/filter_stats/{lang}.csv", lang=LANGS),
    output:
        csv=report("results/data/filter_report.csv", caption="../workflow/report/filter_report.rst", category="Data"),
        tex="results/data/filter_report.tex",
    log:
        "results/logs/filter_report.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/filter_report.py"


rule parallel:
    input:
        corpora(),
    output:
        "results/data/parallel.parquet",
    params:
        pivot=config["pivot"],
        langs=LANGS,
    log:
        "results/logs/parallel.log",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 10 * attempt,
    script:
        "../scripts/parallel.py"


rule sampling:
    input:
        corpora(),
    output:
        report("results/data/sampling.csv", caption="../workflow/report/sampling.rst", category="Data"),
    params:
        langs=LANGS,
        alpha=config["data"]["sampling"]["alpha"],
    log:
        "results/logs/sampling.log",
    conda:
        "../envs/data.yaml"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/sampling.py"


rule parallel_data:
    input:
        files=parallel_data_inputs,
        remote=lambda w: downloaded(f"parallel_data/{w.name}"),
    output:
        pairs="results/parallel/{name}.parquet",
        report="results/parallel/{name}.json",
    wildcard_constraints:
        name=_alt(list(config.get("parallel_data", {}))),
    params:
        spec=lambda w: as_json(config["parallel_data"][w.name]),
        pivot=config["pivot"],
        langs=LANGS,
    log:
        "results/logs/parallel_data/{name}.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        # streamed in two passes: flat working set + the sample's index arrays (stream_memory_mb)
        mem_mb=lambda wc, input, attempt: stream_memory_mb([*input.files, *input.remote]) * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    script:
        "../scripts/parallel_data.py"
