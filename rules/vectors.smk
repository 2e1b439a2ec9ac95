# External word vectors for OFA / HyperOFA (results/word_vectors/{name}; format: langadapt.vectors.base),
# word alignments for word-level realignment (results/alignments/{data}/{aligner}.parquet),
# and realignment language subsets chosen by a selector (results/selection/{name}.json).
# An entry of the config's `word_vectors` section is built only when a recipe's init method names it
# (init_inputs in common.smk); kinds: langadapt.vectors.base.WORD_VECTOR_KINDS.
from langadapt.vectors.base import word_vector_kind

try:
    WORD_VECTOR_SPECS = {
        name: word_vector_kind(spec, where=f"{CONFIG_SOURCE}: word_vectors.{name}")
        for name, spec in config["word_vectors"].items()
    }
    WORD_VECTOR_LANGS = {name: kind.corpus_languages(LANGS) for name, kind in WORD_VECTOR_SPECS.items()}
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
WORD_VECTOR_MEM_MB = {"colexnet": 24000}  # ColexNet+: 4M x 200 float32 (3.2 GB) and the parsed text


rule word_vectors:
    input:
        corpora=lambda w: [corpus_path(lang) for lang in WORD_VECTOR_LANGS[w.name]],
        files=lambda w: WORD_VECTOR_SPECS[w.name].input_files(),
        remote=lambda w: downloaded(f"word_vectors/{w.name}"),
    output:
        directory("results/word_vectors/{name}"),
    params:
        spec=lambda w: as_json(config["word_vectors"][w.name]),
        langs=lambda w: WORD_VECTOR_LANGS[w.name],
    wildcard_constraints:
        name=_alt(list(config["word_vectors"])),
    log:
        "results/logs/word_vectors/{name}.log",
    benchmark:
        "results/benchmarks/word_vectors/{name}.tsv"
    conda:
        "../envs/train.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=lambda w, attempt: WORD_VECTOR_MEM_MB.get(WORD_VECTOR_SPECS[w.name].name, 8000) * attempt,
        runtime=lambda w, attempt: 60 * attempt,
    script:
        "../scripts/word_vectors.py"


# URIEL+ distances over the realignment pool L65 and English, prepared once per the config's `uriel:` section
# (langadapt.realign.uriel): every URIEL selector and the Table 6 comparison read them.
rule uriel_distances:
    output:
        "results/selection/uriel_distances.npz",
    params:
        spec=as_json(config["uriel"]),
        where=f"{CONFIG_SOURCE}: uriel",
    log:
        "results/logs/selection/uriel_distances.log",
    benchmark:
        "results/benchmarks/selection/uriel_distances.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        # measured with the defaults (all databases, softimpute over 26,881 languages): peak RSS 5.1 GB,
        # 12-20 min on one core of a shared 2-core machine (benchmarks/README.md)
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    script:
        "../scripts/uriel_distances.py"


# Language subsets for realignment chosen by a selector (langadapt.realign.selection), one JSON per entry.
rule select_languages:
    input:
        unpack(selection_inputs),
    output:
        "results/selection/{selection}.json",
    params:
        spec=lambda w: as_json(config["realignment"][w.selection]["languages"]),
        langs=LANGS,
    log:
        "results/logs/selection/{selection}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda wc, attempt: 10 * attempt,
    script:
        "../scripts/select_languages.py"


# Word alignments of translation pairs for word-level realignment (langadapt.realign.word_align), one file per
# (parallel data, aligner) that a realignment entry with `loss: word` reads.
rule align_words:
    input:
        unpack(align_inputs),
    output:
        "results/alignments/{data}/{aligner}.parquet",
    params:
        spec=lambda w: as_json(config["aligners"][w.aligner]),
        langs=lambda w: align_langs(w.data, w.aligner),
    wildcard_constraints:
        data=_alt(["bible", *config.get("parallel_data", {})]),
        aligner=_alt(list(config["aligners"])),
    log:
        "results/logs/alignments/{data}/{aligner}.log",
    benchmark:
        "results/benchmarks/alignments/{data}/{aligner}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=lambda wc, attempt: 120 * attempt,
    script:
        "../scripts/align_words.py"
