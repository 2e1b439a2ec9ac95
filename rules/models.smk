# Models: source model -> new tokenizers -> embedding initialization; the hypernetwork.


rule base_model:
    input:
        texts=base_model_texts,
        remote=lambda w: downloaded(f"base_model/{w.base}"),
    output:
        directory("results/base/{base}"),
    params:
        spec=lambda w: as_json(config["base_models"][w.base]),
        langs=LANGS,
    log:
        "results/logs/base/{base}.log",
    benchmark:
        "results/benchmarks/base/{base}.tsv"
    conda:
        "../envs/train.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=8000,
        runtime=lambda wc, attempt: 30 * attempt,
    script:
        "../scripts/base_model.py"


rule tokenizer:
    input:
        # training text; kind hf: only the corpora of its optional stats languages
        texts=lambda w: [corpus_path(lang) for lang in config["tokenizers"][w.tok].get("languages") or []],
        remote=lambda w: downloaded(f"tokenizer/{w.tok}"),
    output:
        directory("results/tokenizers/{tok}"),
    params:
        spec=lambda w: as_json(config["tokenizers"][w.tok]),
        eval_langs=LANGS,
    log:
        "results/logs/tokenizers/{tok}.log",
    benchmark:
        "results/benchmarks/tokenizers/{tok}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 30 * attempt,
    script:
        "../scripts/tokenizer.py"


rule init_model:
    input:
        unpack(init_inputs),
    output:
        report(
            directory("results/models/{recipe}/init"),
            patterns=["{figure,pca}.png"],  # the PCA of old and new embeddings (langadapt.vocab.diagnostics)
            caption="../workflow/report/vocab_pca.rst",
            category="Vocabulary initialization",
            labels={"recipe": "{recipe}"},
        ),
    params:
        spec=lambda w: as_json(lc.stage_spec(config, w.recipe, "init")),
        texts_langs=lambda w: init_texts_langs(w.recipe),
    log:
        "results/logs/models/{recipe}/init.log",
    benchmark:
        "results/benchmarks/models/{recipe}/init.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=lambda wc, attempt: 20 * attempt,
    script:
        "../scripts/init_model.py"


rule hypernet:
    # HyperOFA's hypernetwork for one base model and factorization dimension D' (langadapt.hypernet.training):
    # external word vectors -> the base model's factorized token embeddings; `train` overlaid with
    # `per_base[base]` and `per_dim[dim]` (langadapt.config.hypernet_train)
    input:
        model="results/base/{base}",
        word_vectors=lambda w: f"results/word_vectors/{config['hypernetwork']['word_vectors']}",
    output:
        directory("results/hypernet/{base}_d{dim}"),
    wildcard_constraints:
        dim=r"\d+",
    params:
        spec=lambda w: as_json(
            {
                "word_vectors": config["hypernetwork"].get("word_vectors"),
                "train": lc.hypernet_train(config, w.base, int(w.dim)),
            }
        ),
    log:
        "results/logs/hypernet/{base}_d{dim}.log",
    benchmark:
        "results/benchmarks/hypernet/{base}_d{dim}.tsv"
    conda:
        "../envs/train.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=16000,
        runtime=lambda wc, attempt: 120 * attempt,
        **gpu_resources(min(1, RES["gpus"])),  # one device
    script:
        "../scripts/hypernet.py"
