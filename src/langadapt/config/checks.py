"""Semantic checks of a config (what the schema cannot express), run before any job: language codes,
references between sections, and each stage's settings through that stage's own torch-free checker.
`prepare_config` / `load_config` = schema validation with defaults + these checks."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langadapt.config.recipes import eval_recipes, recipe_chain
from langadapt.config.schema import SCHEMA_PATH, read_yaml, validate_schema
from langadapt.core.errors import ConfigError
from langadapt.core.languages import parse_lang
from langadapt.vocab.spec import NEEDS, needs_of, parse_init, word_vector_names


def prepare_config(config: dict, schema_path: Path = SCHEMA_PATH, source: str = "config") -> dict:
    """Validate (schema + semantics) and fill defaults in place; returns the same dict."""
    validate_schema(config, schema_path, source)
    check_semantics(config, source)
    return config



def load_config(path: Path | str) -> dict:
    """Read a YAML config file and prepare it (errors name the file)."""
    return prepare_config(read_yaml(path), source=str(path))


def check_semantics(config: dict, source: str = "config") -> None:
    """Cross-field checks the schema cannot express: language codes, references between sections, each
    stage's settings (checked by the stage's own torch-free checker). `source` names the file."""
    known = _check_languages(config, source)
    _check_language_lists(config, source, known)
    _check_training(config, source)
    _check_hypernetwork(config, source)
    from langadapt.data.parallel_data import check_parallel_config  # torch-free, no I/O

    check_parallel_config(config, source)  # parallel_data entries; realignment `data:` references
    from langadapt.realign.uriel import uriel_settings  # numpy only

    uriel_settings(config.get("uriel"), where=f"{source}: uriel")
    _check_recipes(config, source)
    _check_hypernet_recipes(config, source)
    _check_evaluation(config, source, known)
    _check_push(config, source)
    from langadapt.core.tracking import check_installed, settings_of

    check_installed(settings_of(config.get("tracking"), f"{source}: tracking"), f"{source}: tracking")


def _check_push(config: dict, source: str) -> None:
    push = config.get("push") or {}
    if unknown := [r for r in push.get("recipes") or [] if r not in config["recipes"]]:
        raise ConfigError(f"{source}: push.recipes: unknown recipe(s) {unknown}; known: {sorted(config['recipes'])}")
    if push.get("recipes") and not push.get("namespace"):
        raise ConfigError(f"{source}: push.namespace (your Hub user or organisation) is needed to push "
                          f"{push['recipes']}")


def _check_languages(config: dict, source: str) -> set[str]:
    """``languages``, ``pivot`` and ``data.sources`` (``default_source`` filled in); the known codes."""
    langs = config["languages"]
    for i, code in enumerate(langs):
        parse_lang(code, where=f"{source}: languages[{i}]")
    known = set(langs)
    parse_lang(config["pivot"], where=f"{source}: pivot")
    if config["pivot"] not in known:
        raise ConfigError(f"{source}: pivot {config['pivot']!r} is not in languages")
    sources = config["data"]["sources"]
    default = config["data"].get("default_source")
    if default is not None:
        for lang in langs:
            sources.setdefault(lang, copy.deepcopy(default))
    for lang in sources:
        parse_lang(lang, where=f"{source}: data.sources")
        if lang not in known:
            raise ConfigError(f"{source}: data.sources.{lang}: language is not in languages")
    missing = [lang for lang in langs if lang not in sources]
    if missing:
        raise ConfigError(f"{source}: data.sources has no source for {', '.join(missing)}")
    return known


def _check_language_lists(config: dict, source: str, known: set[str]) -> None:
    """The ``languages`` of tokenizers, pretraining and realignment entries: codes of the config, or a
    selector spec (`check_selector`)."""
    for section in ("tokenizers", "pretraining", "realignment"):
        for name, spec in config.get(section, {}).items():
            values = spec.get("languages")
            if isinstance(values, dict):
                check_selector(config, f"{source}: {section}.{name}.languages", values)
                continue
            for i, code in enumerate(values or []):
                parse_lang(code, where=f"{source}: {section}.{name}.languages[{i}]")
                if code not in known:
                    raise ConfigError(f"{source}: {section}.{name}.languages: {code!r} is not in languages")


def _check_training(config: dict, source: str) -> None:
    """Trainer keys of every pretraining and realignment entry, and the aligners word-level realignment reads."""
    from langadapt.realign.word_align import check_aligner  # torch-free
    from langadapt.train.settings import REALIGN_DEFAULTS, check_realign_config, merge_config, resolve_config

    for name, spec in config.get("pretraining", {}).items():
        trainer_keys = {k: v for k, v in spec.items() if k not in ("objective", "languages")}
        try:
            cfg = resolve_config(trainer_keys)
        except ConfigError as e:
            raise ConfigError(f"{source}: pretraining.{name}: {e}") from None
        unknown = [t for t in cfg["select_tasks"] if t not in config["evaluation"]["tasks"]]
        if unknown:
            raise ConfigError(f"{source}: pretraining.{name}.select_tasks: {unknown} are not evaluation tasks "
                              f"(defined: {sorted(config['evaluation']['tasks'])})")
    for name, spec in config.get("aligners", {}).items():
        check_aligner(spec, f"{source}: aligners.{name}")
    for name, spec in config.get("realignment", {}).items():
        where = f"{source}: realignment.{name}"
        trainer_keys = {k: v for k, v in spec.items() if k not in ("data", "aligner", "languages")}
        try:
            check_realign_config(merge_config(trainer_keys, REALIGN_DEFAULTS, "realign"))
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        if spec["loss"] == "word" and spec.get("aligner") not in config.get("aligners", {}):
            raise ConfigError(f"{where}: loss 'word' needs `aligner:` naming an entry of aligners, "
                              f"got {spec.get('aligner')!r} (defined: {sorted(config.get('aligners', {}))})")
        if spec["loss"] != "word" and "aligner" in spec:
            raise ConfigError(f"{where}: `aligner` is only read by loss 'word' (loss is {spec['loss']!r})")


def _check_hypernetwork(config: dict, source: str) -> None:
    hyper = config.get("hypernetwork", {})
    if hyper.get("enabled"):
        if hyper.get("base") not in config["base_models"]:
            raise ConfigError(f"{source}: hypernetwork.base {hyper.get('base')!r} is not in base_models")
        if hyper.get("word_vectors") not in config.get("word_vectors", {}):
            raise ConfigError(f"{source}: hypernetwork.word_vectors {hyper.get('word_vectors')!r} is not "
                              f"defined in word_vectors")
    for base in hyper.get("per_base", {}):
        if base not in config["base_models"]:
            raise ConfigError(f"{source}: hypernetwork.per_base.{base}: not in base_models")
    for dim in hyper.get("per_dim", {}):
        if not str(dim).isdigit() or int(dim) < 1:
            raise ConfigError(f"{source}: hypernetwork.per_dim.{dim}: keys are factorization dimensions D' "
                              f"(positive integers)")


def _check_recipes(config: dict, source: str) -> None:
    """Every recipe's references (base model, tokenizer, settings, parent recipe, word vectors) exist, its
    keys go together, and its ``from`` chain has no cycle."""
    recipes = config["recipes"]
    refs = {"base": "base_models", "tokenizer": "tokenizers", "pretrain": "pretraining", "realign": "realignment"}
    for name, recipe in recipes.items():
        where = f"{source}: recipes.{name}"
        for key, section in refs.items():
            if key in recipe and recipe[key] not in config.get(section, {}):
                raise ConfigError(f"{where}.{key}: {recipe[key]!r} is not defined in {section}")
        if "from" in recipe and recipe["from"] not in recipes:
            raise ConfigError(f"{where}.from: unknown recipe {recipe['from']!r}")
        if ("tokenizer" in recipe) != ("init" in recipe):
            raise ConfigError(f"{where}: 'tokenizer' and 'init' go together (a new vocabulary needs an init)")
        if "init" in recipe:
            for wv in word_vector_names(recipe["init"], where=f"{where}.init"):  # also checks every entry
                if wv not in config.get("word_vectors", {}):
                    raise ConfigError(f"{where}.init: word_vectors {wv!r} is not defined in word_vectors")
            if "hypernet" in needs_of(recipe["init"]) and not config.get("hypernetwork", {}).get("enabled"):
                raise ConfigError(f"{where}.init: a method needs the hypernetwork; set hypernetwork.enabled")
        if "vocab" in recipe and "tokenizer" not in recipe:
            raise ConfigError(
                f"{where}.vocab: {recipe['vocab']!r} needs a 'tokenizer' (and 'init') in recipe {name!r}: "
                f"'vocab' says whether that tokenizer replaces or extends the vocabulary"
            )
        recipe_chain(config, name)  # raises on cycles


def _check_evaluation(config: dict, source: str, known: set[str]) -> None:
    """Evaluated recipes, the report's baseline, ``recipe_languages`` and every task (its kind's own check)."""
    for name in config["evaluation"].get("recipes") or []:
        if name not in config["recipes"]:
            raise ConfigError(f"{source}: evaluation.recipes: unknown recipe {name!r}")
    baseline = config["evaluation"].get("report", {}).get("baseline")
    if baseline is not None and baseline not in eval_recipes(config):
        raise ConfigError(f"{source}: evaluation.report.baseline {baseline!r} is not an evaluated recipe "
                          f"({', '.join(eval_recipes(config))})")
    _check_recipe_languages(config, source)
    for task, spec in config["evaluation"]["tasks"].items():
        _check_task(config, f"{source}: evaluation.tasks.{task}", task, spec, known)
    from langadapt.report.paper_spec import check_tables  # torch-free, reads no results

    check_tables(config["evaluation"].get("report", {}).get("tables"), eval_recipes(config),
                 config["evaluation"]["tasks"], where=f"{source}: evaluation.report.tables")
    from langadapt.report.claims import check_claims  # torch-free, reads no results

    check_claims(config["evaluation"].get("report", {}).get("claims"), eval_recipes(config),
                 config["evaluation"]["tasks"], where=f"{source}: evaluation.report.claims")


def _check_task(config: dict, where: str, task: str, spec: dict, known: set[str]) -> None:
    from langadapt.evaluation.tasks import build_task, task_inputs  # torch-free: task kinds, dataset specs

    try:
        build_task(spec, task)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    check_donor_task(config, task, spec, where)
    task_langs = spec.get("languages")
    if task_langs is not None:
        if not isinstance(task_langs, list) or not task_langs:
            raise ConfigError(f"{where}.languages must be a non-empty list of language codes, got {task_langs!r}")
        for i, code in enumerate(task_langs):
            parse_lang(code, where=f"{where}.languages[{i}]")
        if "corpora" in task_inputs(spec) and (unknown := [c for c in task_langs if c not in known]):
            raise ConfigError(f"{where}.languages: {unknown} are not in languages (the task reads their corpora)")
    task_recipes, seeds = spec.get("recipes"), spec.get("seeds")
    if task_recipes is not None and (not isinstance(task_recipes, list) or not task_recipes
                                     or any(r not in eval_recipes(config) for r in task_recipes)):
        raise ConfigError(f"{where}.recipes must be a non-empty list of evaluated recipes, got {task_recipes!r}")
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds)):
        raise ConfigError(f"{where}.seeds must be a non-empty list of integers, got {seeds!r}")


def _check_recipe_languages(config: dict, source: str) -> None:
    """``evaluation.recipe_languages``: every pattern matches an evaluated recipe, every value is a
    non-empty list of known language codes (the config's or a task's)."""
    mapping = config["evaluation"].get("recipe_languages") or {}
    where = f"{source}: evaluation.recipe_languages"
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where} must be a mapping of recipe-name patterns to language lists, got {mapping!r}")
    known = set(config["languages"])
    for spec in config["evaluation"]["tasks"].values():
        known.update(spec.get("languages") or [])
    recipes = eval_recipes(config)
    for pattern, langs in mapping.items():
        if not any(fnmatch.fnmatchcase(r, str(pattern)) for r in recipes):
            raise ConfigError(f"{where}: pattern {pattern!r} matches no evaluated recipe")
        if not isinstance(langs, list) or not langs:
            raise ConfigError(f"{where}.{pattern} must be a non-empty list of language codes, got {langs!r}")
        for i, code in enumerate(langs):
            parse_lang(code, where=f"{where}.{pattern}[{i}]")
            if code not in known:
                raise ConfigError(f"{where}.{pattern}[{i}]: {code!r} is neither in languages nor in a task's "
                                  f"languages")


def _check_hypernet_recipes(config: dict, source: str) -> None:
    """Recipes whose init reads a hypernetwork (HyperOFA) name the word vectors it is trained on. (Each gets
    the hypernetwork of its root base model and its own factorization dimension: `recipe_hypernet`.)"""
    hyper = config.get("hypernetwork", {})
    for name, recipe in config["recipes"].items():
        if "init" not in recipe or "hypernet" not in needs_of(recipe["init"]):
            continue
        where = f"{source}: recipes.{name}.init"
        for method, params in parse_init(recipe["init"], where=where):
            if "hypernet" in NEEDS[method] and params.get("word_vectors") != hyper.get("word_vectors"):
                raise ConfigError(f"{where}: {method} reads word_vectors {params.get('word_vectors')!r}, but "
                                  f"the hypernetwork is trained on {hyper.get('word_vectors')!r} "
                                  f"(hypernetwork.word_vectors)")


def check_selector(config: dict, where: str, spec: dict) -> None:
    """A ``{select: name, n: k, ...}`` subset spec: known selector, and a pool (the L65 languages among the
    config's languages) large enough for n (the selection itself runs in the select_languages rule)."""
    from langadapt.realign.pool import load_pool, pool_code
    from langadapt.realign.selection import SELECTORS, check_params

    if spec["select"] not in SELECTORS:
        raise ConfigError(f"{where}: unknown selector {spec['select']!r}; known: {', '.join(sorted(SELECTORS))}")
    check_params(spec["select"], spec, where=where)  # e.g. seen/unseen: exactly one of `model` and `seen`
    isos = {pool_code(parse_lang(c).iso) for c in config["languages"]}  # macrolanguage codes as the pool spells them
    pool = [lang.code for lang in load_pool().languages if lang.code in isos]
    if spec["n"] > len(pool):
        raise ConfigError(f"{where}: n = {spec['n']} but only {len(pool)} languages of the selection pool "
                          f"(L65 minus English) are in languages: {pool}")


def check_donor_task(config: dict, task_name: str, spec: Mapping[str, Any], where: str) -> None:
    """ConfigError (prefixed by `where`) when task `task_name` has ``source: donor`` but evaluates a recipe
    whose final model cannot hold LangSAMP language embeddings. Torch-free, no I/O.

    The tables are written only by a pretraining stage with ``langsamp: language|both`` (the ``init`` and
    ``realign`` stages, and a pretraining stage with another variant, write a model directory without
    them), so a recipe qualifies when the LAST stage of its chain (``config.recipes.recipe_chain``, parents included) is
    such a pretraining stage. The recipes checked are the task's ``recipes`` or else every evaluated one.
    """
    from langadapt.evaluation.donor import DONOR

    if not isinstance(spec, Mapping) or spec.get("source") != DONOR:
        return
    recipes = spec.get("recipes") or eval_recipes(config)
    bad = [
        r for r in recipes if r in config.get("recipes", {}) and not _final_has_language_embeddings(config, r)
    ]
    if bad:
        raise ConfigError(
            f"{where}: task {task_name!r} has source 'donor' (LangSAMP §5.3), which reads the evaluated model's "
            f"LangSAMP language embeddings, but the final model of recipe(s) {bad} has none (its last stage "
            f"is not a pretraining with langsamp: language|both; chains: "
            f"{ {r: [f'{x}/{s}' for x, s in recipe_chain(config, r)] for r in bad} }); restrict the task with "
            f"`recipes:` or use a fixed source"
        )


def _final_has_language_embeddings(config: dict, recipe: str) -> bool:
    chain = recipe_chain(config, recipe)
    if not chain or chain[-1][1] != "pretrain":
        return False
    from langadapt.evaluation.donor import LANGUAGE_EMBEDDING_VARIANTS

    return (
        pretrain_variant(config, config["recipes"][chain[-1][0]]["pretrain"]) in LANGUAGE_EMBEDDING_VARIANTS
    )


def pretrain_variant(config: dict, name: str) -> str:
    """The LangSAMP variant of ``pretraining.<name>`` (its ``langsamp`` key, over its preset, over the
    trainer default ``none``)."""
    from langadapt.train.settings import PRESETS, PRETRAIN_DEFAULTS  # torch-free

    spec = config.get("pretraining", {}).get(name, {})
    preset = PRESETS.get(spec.get("preset", PRETRAIN_DEFAULTS["preset"]), {})
    return str({**PRETRAIN_DEFAULTS, **preset, **spec}["langsamp"])
