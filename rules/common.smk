# Shared definitions: config validation (before any job), wildcard constraints, path helpers.
import functools
import json
import os
import re
from pathlib import Path

import snakemake.utils

from snakemake.exceptions import WorkflowError

from langadapt import config as lc
from langadapt.core.errors import ConfigError
from langadapt.core.runtime import DOWNLOAD_MARKERS, go_offline
from langadapt.dag.cluster import gpu_resources as dag_gpu_resources
from langadapt.data.corpus import corpus_memory_mb, corpus_threads, stream_memory_mb
from langadapt.dag.preflight import remote_consumers, remote_spec
from langadapt.dag.targets import langsamp_of as dag_langsamp_of
from langadapt.dag.targets import targets

# config.yaml is the default; a --configfile replaces it (instead of being merged into it), while
# --config KEY=VALUE overrides still apply on top of whichever file is used. A module of
# workflow/reproduce.smk passes its paper's config, marked with the file it came from (`_source`).
_MODULE_SOURCE = config.pop("_source", None)
CONFIG_SOURCE = _MODULE_SOURCE or " + ".join(map(str, workflow.configfiles)) or "config.yaml"
try:
    if not workflow.configfiles and not _MODULE_SOURCE:
        _overrides = dict(config)
        config.clear()
        config.update(lc.read_yaml("config.yaml"))
        snakemake.utils.update_config(config, _overrides)
    lc.prepare_config(config, source=CONFIG_SOURCE)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

LANGS = config["languages"]
RECIPES = list(config["recipes"])
EVAL_RECIPES = lc.eval_recipes(config)
TASKS = list(config["evaluation"]["tasks"])
SEEDS = config["evaluation"]["seeds"]
RES = config["resources"]


# Remote inputs (rules/remote.smk): every job runs offline except the local preflight/download rules, whose
# scripts lift these variables; a consumer (`corpus/eng_Latn`, `task/ner`, ...) that reads a hub repo gets a
# download job, and its compute job takes that job's marker as input.
go_offline()
REMOTE_CONSUMERS = set(remote_consumers(config))
REMOTE_CACHE = os.path.abspath(config["remote"]["cache"])
REMOTE_SPEC = lc.canonical(remote_spec(config))
COVERAGE = "results/remote/coverage.csv"


def downloaded(key):
    """The download marker of a consumer when it reads a hub repo (else nothing)."""
    return [f"results/{DOWNLOAD_MARKERS}/{key}.json"] if key in REMOTE_CONSUMERS else []


def _alt(names):
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    selection=_alt([n for n, s in config["realignment"].items() if isinstance(s.get("languages"), dict)]),
    lang=_alt(LANGS),
    recipe=_alt(RECIPES),
    base=_alt(list(config["base_models"])),
    tok=_alt(list(config["tokenizers"])),
    task=_alt(TASKS),
    seed=r"\d+",


def corpus_path(lang):
    return f"results/data/corpora/{lang}.parquet"


def corpora(langs=None):
    """Corpus files of some languages (all by default), as a list for `input:`."""
    return [corpus_path(lang) for lang in (langs or LANGS)]


def base_model_texts(wildcards):
    """A base model trimmed to the corpora's vocabulary depends on every corpus."""
    return corpora() if config["base_models"][wildcards.base].get("trim_vocab") else []


def as_json(obj):
    """Canonical JSON for params: equal settings give equal strings, so nothing reruns spuriously."""
    return lc.canonical(obj)


def stage_langs(section, name):
    return config[section][name].get("languages") or LANGS


# Every output list the rule files share, and `rule all`'s targets, computed once (langadapt.dag.targets).
TARGETS = targets(config)
EVAL_FILES = TARGETS.eval_files
TRAIN_RUNS = TARGETS.train_runs
ALL_TARGETS = TARGETS.all


def gpu_resources(gpus):
    """`gpu` = gpus and, on a Slurm profile, the GPU partition for a job with GPUs (langadapt.dag.cluster)."""
    return dag_gpu_resources(gpus, workflow.resource_settings.default_resources)


def langsamp_of(recipe):
    return dag_langsamp_of(config, recipe)


def init_texts_langs(recipe):
    """Languages whose train texts an init method reads: the recipe tokenizer's, else all."""
    return config["tokenizers"][config["recipes"][recipe]["tokenizer"]].get("languages") or LANGS


def init_inputs(wildcards):
    """Inputs of one recipe's init job: the model and tokenizer, plus what its methods need
    (langadapt.vocab.spec.NEEDS): corpora, word vectors, the base model's hypernetwork."""
    from langadapt.vocab.spec import needs_of, word_vector_names

    recipe = config["recipes"][wildcards.recipe]
    inputs = {
        "model": lc.stage_input_dir(config, wildcards.recipe, "init"),
        "tokenizer": f"results/tokenizers/{recipe['tokenizer']}",
    }
    needs = needs_of(recipe["init"])
    if "texts" in needs:
        inputs["texts"] = corpora(init_texts_langs(wildcards.recipe))
    if "word_vectors" in needs:
        inputs["word_vectors"] = [f"results/word_vectors/{n}" for n in word_vector_names(recipe["init"])]
    if "hypernet" in needs:
        inputs["hypernet"] = lc.hypernet_dir(*lc.recipe_hypernet(config, wildcards.recipe))
    return inputs


@functools.cache
def task_eval_inputs(task, langs):
    """What an evaluation task reads besides the model for the languages `langs` (a tuple; computed once
    per task and language set): `corpora` (their corpora, in that order), `parallel` (the Bible verse
    pairs), `data` (existing local dataset files / folders)."""
    from langadapt.evaluation.tasks import task_inputs, task_local_inputs

    spec = config["evaluation"]["tasks"][task]
    reads = task_inputs(spec)
    inputs = {}
    if "corpora" in reads:
        inputs["corpora"] = corpora(list(langs))
    if "parallel" in reads:
        inputs["parallel"] = parallel_path()
    local = task_local_inputs(spec, list(langs))
    if local:
        inputs["data"] = local
    return inputs


def eval_inputs(wildcards):
    """Inputs of one evaluation job: the recipe's final model plus `task_eval_inputs` of its task on the
    job's languages (`lc.job_languages`: the task's, narrowed by evaluation.recipe_languages)."""
    return task_job_inputs(wildcards, lc.final_model_dir(config, wildcards.recipe))


def step_eval_inputs(wildcards):
    """`eval_inputs` for one exported pretraining step: the recipe's pretrain_steps directory (the script
    reads its steps/step{step} model)."""
    return task_job_inputs(wildcards, f"results/models/{wildcards.recipe}/pretrain_steps")


def task_job_inputs(wildcards, model):
    langs = tuple(lc.job_languages(config, wildcards.recipe, wildcards.task))
    return {"model": model, **task_eval_inputs(wildcards.task, langs), "remote": downloaded(f"task/{wildcards.task}")}


def selection_inputs(wildcards):
    """The prepared URIEL+ distances, for a selector that reads them (langadapt.realign.selection.uses_uriel)."""
    from langadapt.realign.selection import uses_uriel

    spec = config["realignment"][wildcards.selection]["languages"]
    return {"distances": "results/selection/uriel_distances.npz"} if uses_uriel(spec) else {}


def parallel_path(data=None):
    """Translation pairs: a parallel_data entry, or (None / 'bible') the verse pairs of the corpora."""
    return "results/data/parallel.parquet" if data in (None, "bible") else f"results/parallel/{data}.parquet"


def realign_inputs(wildcards):
    """Model and parallel pairs, plus the selected subset when the entry's languages is a selector,
    plus the word alignments of those pairs for loss `word`."""
    name = config["recipes"][wildcards.recipe]["realign"]
    entry = config["realignment"][name]
    inputs = {"model": lc.stage_input_dir(config, wildcards.recipe, "realign"),
              "parallel": parallel_path(entry.get("data"))}
    if isinstance(entry.get("languages"), dict):
        inputs["selection"] = f"results/selection/{name}.json"
    if entry["loss"] == "word":
        inputs["alignments"] = f"results/alignments/{entry.get('data') or 'bible'}/{entry['aligner']}.parquet"
    return inputs


def parallel_data_inputs(wildcards):
    """Local pair files of a parallel_data entry (hub sources are fetched inside the job)."""
    from langadapt.data.parallel_data import local_inputs

    return local_inputs(config["parallel_data"][wildcards.name], config["pivot"], LANGS)


def aligned_langs(data, aligner):
    """Languages to align: the union of the explicit lists of the entries that read this file; every
    language (None) when one of them uses all languages or a selector."""
    langs = set()
    for entry in config["realignment"].values():
        if entry["loss"] != "word" or entry["aligner"] != aligner or (entry.get("data") or "bible") != data:
            continue
        if not isinstance(entry.get("languages"), list):
            return None
        langs.update(entry["languages"])
    return sorted(langs)


def align_langs(data, aligner):
    """`aligned_langs`, where a Pharaoh aligner (which reads one file per language) needs every non-pivot
    language in place of None."""
    langs = aligned_langs(data, aligner)
    if langs is None and config["aligners"][aligner]["kind"] == "pharaoh":
        return [lang for lang in LANGS if lang != config["pivot"]]
    return langs


def align_inputs(wildcards):
    """Pharaoh aligner: its text and alignment files; eflomal: the translation pairs it aligns."""
    from langadapt.realign.word_align import pharaoh_inputs

    spec = config["aligners"][wildcards.aligner]
    if spec["kind"] == "pharaoh":
        return {"files": pharaoh_inputs(spec, align_langs(wildcards.data, wildcards.aligner))}
    return {"parallel": parallel_path(wildcards.data)}
