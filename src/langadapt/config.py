"""Workflow configuration: schema validation with defaults, semantic checks, recipes and hashes.

The Snakefile calls :func:`prepare_config` before any job is scheduled, so that an unknown key, a wrong
type, an unknown language code or a dangling reference fails at once with a message naming it.
Recipes (named model variants) are resolved here into chains of stages; each stage's canonical spec is
what rules put in ``params`` so that editing a recipe reruns exactly what depends on it.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from langadapt.errors import ConfigError
from langadapt.init_methods import NEEDS, needs_of, parse_init, word_vector_names
from langadapt.languages import parse_lang

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
STAGES = ("init", "pretrain", "realign")


# ---------------------------------------------------------------------------------------------- schema
def _with_defaults(validator_class: type) -> type:
    """A jsonschema validator that also fills in `default` values (nested objects included)."""
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _path_of(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _message(error: jsonschema.ValidationError, config: dict) -> str:
    """The error message; a key of another kind (schema ``$defs/other_kind``) names the kind."""
    if not (error.validator == "not" and error.validator_value == {}):
        return error.message
    parent: Any = config
    for key in list(error.absolute_path)[:-1]:
        parent = parent[key]
    kind = f" with kind {parent['kind']!r}" if isinstance(parent, dict) and "kind" in parent else ""
    return f"key not allowed here{kind} (value {error.instance!r})"


def validate_schema(config: dict, schema_path: Path = SCHEMA_PATH, source: str = "config") -> dict:
    """Validate `config` in place against the JSON schema, filling defaults; raise one clear error."""
    schema = _load_schema(str(schema_path))
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
    if errors:
        err = errors[0]
        # oneOf/anyOf errors are easier to read through their most specific sub-error
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        raise ConfigError(f"{source}: {_path_of(best)}: {_message(best, config)}")
    return config


# ------------------------------------------------------------------------------------------- semantics
def check_semantics(config: dict, source: str = "config") -> None:
    """Cross-field checks the schema cannot express: language codes, references between sections."""
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

    def check_langs(section: str, name: str, values: list[str] | None) -> None:
        for i, code in enumerate(values or []):
            parse_lang(code, where=f"{source}: {section}.{name}.languages[{i}]")
            if code not in known:
                raise ConfigError(f"{source}: {section}.{name}.languages: {code!r} is not in languages")

    for section in ("tokenizers", "pretraining", "realignment"):
        for name, spec in config.get(section, {}).items():
            if isinstance(spec.get("languages"), dict):
                check_selector(config, f"{source}: {section}.{name}.languages", spec["languages"])
            else:
                check_langs(section, name, spec.get("languages"))
    from langadapt.train.settings import resolve_config  # torch-free

    for name, spec in config.get("pretraining", {}).items():
        trainer_keys = {k: v for k, v in spec.items() if k not in ("objective", "languages")}
        try:
            resolve_config(trainer_keys)
        except ConfigError as e:
            raise ConfigError(f"{source}: pretraining.{name}: {e}") from None
    from langadapt.train.settings import REALIGN_DEFAULTS, check_realign_config, merge_config
    from langadapt.word_align import check_aligner  # torch-free

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

    from langadapt.data.parallel_sources import check_parallel_config  # torch-free, no I/O

    check_parallel_config(config, source)  # parallel_data entries; realignment `data:` references

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
        _chain(config, name)  # raises on cycles
    _check_hypernet_recipes(config, source)
    wanted = config["evaluation"].get("recipes")
    for name in wanted or []:
        if name not in recipes:
            raise ConfigError(f"{source}: evaluation.recipes: unknown recipe {name!r}")
    baseline = config["evaluation"].get("report", {}).get("baseline")
    if baseline is not None and baseline not in eval_recipes(config):
        raise ConfigError(f"{source}: evaluation.report.baseline {baseline!r} is not an evaluated recipe "
                          f"({', '.join(eval_recipes(config))})")
    _check_recipe_languages(config, source)
    from langadapt.evaluation.tasks import build_task, task_inputs  # torch-free: task kinds, dataset specs

    for task, spec in config["evaluation"]["tasks"].items():
        where = f"{source}: evaluation.tasks.{task}"
        try:
            build_task(spec, task)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
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
    from langadapt.selection import SELECTORS, check_params, load_pool, pool_code

    if spec["select"] not in SELECTORS:
        raise ConfigError(f"{where}: unknown selector {spec['select']!r}; known: {', '.join(sorted(SELECTORS))}")
    check_params(spec["select"], spec, where=where)  # e.g. seen/unseen: exactly one of `model` and `seen`
    isos = {pool_code(parse_lang(c).iso) for c in config["languages"]}  # macrolanguage codes as the pool spells them
    pool = [lang.code for lang in load_pool().languages if lang.code in isos]
    if spec["n"] > len(pool):
        raise ConfigError(f"{where}: n = {spec['n']} but only {len(pool)} languages of the selection pool "
                          f"(L65 minus English) are in languages: {pool}")


def prepare_config(config: dict, schema_path: Path = SCHEMA_PATH, source: str = "config") -> dict:
    """Validate (schema + semantics) and fill defaults in place; returns the same dict."""
    validate_schema(config, schema_path, source)
    check_semantics(config, source)
    return config


def read_yaml(path: Path | str) -> dict:
    """Read a YAML config file into a dict (errors name the file)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return config


def load_config(path: Path | str) -> dict:
    """Read a YAML config file and prepare it (errors name the file)."""
    return prepare_config(read_yaml(path), source=str(path))


# --------------------------------------------------------------------------------------------- recipes
def _chain(config: dict, recipe: str, seen: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The recipes a recipe builds on, root first, as (recipe, stage) pairs of its own stages."""
    if recipe in seen:
        raise ConfigError(f"recipes: cycle through 'from': {' -> '.join((*seen, recipe))}")
    spec = config["recipes"][recipe]
    parent = _chain(config, spec["from"], (*seen, recipe)) if "from" in spec else []
    return parent + [(recipe, stage) for stage in own_stages(config, recipe)]


def own_stages(config: dict, recipe: str) -> list[str]:
    """Stages this recipe adds on top of its base model or parent recipe, in DAG order."""
    spec = config["recipes"][recipe]
    stages = []
    if "tokenizer" in spec:
        stages.append("init")
    if "pretrain" in spec:
        stages.append("pretrain")
    if "realign" in spec:
        stages.append("realign")
    return stages


def root_base(config: dict, recipe: str) -> str:
    spec = config["recipes"][recipe]
    return spec["base"] if "base" in spec else root_base(config, spec["from"])


def base_model_dir(base: str) -> str:
    return f"results/base/{base}"


# ------------------------------------------------------------------------------------ hypernetworks
DEFAULT_HYPERNET_DIM = 100  # langadapt.hypernet.DEFAULT_CFG["dim"] (tested there)


def hypernet_train(config: dict, base: str, dim: int | None = None) -> dict:
    """Training settings of the hypernetwork of (`base`, D' = `dim`): ``train``, overlaid with
    ``per_base[base]``, then ``per_dim[dim]`` (HyperOFA App. Table 6: the depth and temperature follow the base
    model, the hidden size the dimension); `dim` None = the base's own ``dim`` (default 100)."""
    hyper = config.get("hypernetwork", {})
    train = {**hyper.get("train", {}), **hyper.get("per_base", {}).get(base, {})}
    dim = int(dim if dim is not None else train.get("dim", DEFAULT_HYPERNET_DIM))
    per_dim = hyper.get("per_dim", {})
    return {**train, **per_dim.get(dim, per_dim.get(str(dim), {})), "dim": dim}


def hypernet_dir(base: str, dim: int) -> str:
    return f"results/hypernet/{base}_d{int(dim)}"


def recipe_hypernet(config: dict, recipe: str) -> tuple[str, int]:
    """(base, D') of the hypernetwork a HyperOFA recipe reads: its root base model, and its `factorize`
    dimension (else the base's hypernetwork ``dim``) — the coordinates the hypernetwork predicts."""
    base = root_base(config, recipe)
    factorize = config["recipes"][recipe].get("factorize")
    return base, int(factorize) if factorize is not None else hypernet_train(config, base)["dim"]


def hypernet_dirs(config: dict) -> list[str]:
    """Every hypernetwork the config builds: that of ``hypernetwork.base`` (when enabled) and those the
    HyperOFA recipes read, in first-use order."""
    hyper = config.get("hypernetwork", {})
    dirs = []
    if hyper.get("enabled"):
        dirs.append(hypernet_dir(hyper["base"], hypernet_train(config, hyper["base"])["dim"]))
    for name, recipe in config["recipes"].items():
        if "init" in recipe and "hypernet" in needs_of(recipe["init"]):
            dirs.append(hypernet_dir(*recipe_hypernet(config, name)))
    return list(dict.fromkeys(dirs))


def stage_dir(recipe: str, stage: str) -> str:
    return f"results/models/{recipe}/{stage}"


def run_dir_of(model_dir: str | Path) -> str:
    """Training run directory (checkpoints, loss log) of a stage's model directory:
    ``RESULTS/models/{recipe}/{stage}`` -> ``RESULTS/runs/{recipe}/{stage}``. Derived from the output path,
    so that a module of workflow/reproduce.smk (which moves ``results/`` to ``results/PAPER/``) keeps its
    runs apart from the other papers'."""
    model_dir = Path(model_dir)
    if model_dir.parent.parent.name != "models":
        raise ValueError(f"{model_dir} is not a stage directory RESULTS/models/RECIPE/STAGE")
    return str(model_dir.parents[2] / "runs" / model_dir.parent.name / model_dir.name)


def final_model_dir(config: dict, recipe: str) -> str:
    """Directory of a recipe's finished model (its last stage, or its parent's / base model)."""
    chain = _chain(config, recipe)
    if chain:
        return stage_dir(*chain[-1])
    return base_model_dir(root_base(config, recipe))


def stage_input_dir(config: dict, recipe: str, stage: str) -> str:
    """The model directory a stage starts from."""
    stages = own_stages(config, recipe)
    if stage not in stages:
        raise ConfigError(f"recipe {recipe!r} has no stage {stage!r}")
    i = stages.index(stage)
    if i > 0:
        return stage_dir(recipe, stages[i - 1])
    spec = config["recipes"][recipe]
    if "from" in spec:
        return final_model_dir(config, spec["from"])
    return base_model_dir(spec["base"])


def recipe_stage_pairs(config: dict) -> list[tuple[str, str]]:
    return [(r, s) for r in config["recipes"] for s in own_stages(config, r)]


def stage_spec(config: dict, recipe: str, stage: str) -> dict:
    """Canonical settings of one stage (what its rule's params carry)."""
    spec = config["recipes"][recipe]
    if stage == "init":
        tok = spec["tokenizer"]
        out = {"tokenizer": tok, "tokenizer_spec": config["tokenizers"][tok], "init": spec["init"]}
        # `vocab` only when not the default, so that existing replace recipes keep their spec (no rerun)
        if spec.get("vocab", "replace") != "replace":
            out["vocab"] = spec["vocab"]
        if spec.get("factorize") is not None:  # likewise only when set
            out["factorize"] = spec["factorize"]
        return out
    if stage == "pretrain":
        return {"name": spec["pretrain"], **config["pretraining"][spec["pretrain"]]}
    if stage == "realign":
        return {"name": spec["realign"], **config["realignment"][spec["realign"]]}
    raise ConfigError(f"unknown stage {stage!r}")


def recipe_spec(config: dict, recipe: str) -> dict:
    """Full canonical spec of a recipe: base model and every stage down the chain."""
    base = root_base(config, recipe)
    return {
        "base": {"name": base, **config["base_models"][base]},
        "stages": [{"recipe": r, "stage": s, **stage_spec(config, r, s)} for r, s in _chain(config, recipe)],
    }


def eval_recipes(config: dict) -> list[str]:
    wanted = config["evaluation"].get("recipes")
    return list(wanted) if wanted else list(config["recipes"])


def task_languages(config: dict, task: str) -> list[str]:
    """The languages of an evaluation task: its own `languages` or the config's, the pivot included
    (appended when missing), in config order. A dataset-backed task may name languages without a corpus."""
    langs = list(config["evaluation"]["tasks"][task].get("languages") or config["languages"])
    return langs if config["pivot"] in langs else [*langs, config["pivot"]]


def recipe_languages(config: dict, recipe: str) -> list[str] | None:
    """The languages `recipe` is evaluated on by ``evaluation.recipe_languages`` (the first pattern that
    matches the recipe name, fnmatch-style, case-sensitive), or None (every language of each task)."""
    for pattern, langs in (config["evaluation"].get("recipe_languages") or {}).items():
        if fnmatch.fnmatchcase(recipe, pattern):
            return list(langs)
    return None


@lru_cache(maxsize=256)
def _task_uses_pivot(spec_json: str) -> bool:
    from langadapt.evaluation.tasks import build_task  # torch-free

    return build_task(json.loads(spec_json)).uses_pivot


def task_uses_pivot(config: dict, task: str) -> bool:
    """Whether the task's jobs evaluate the pivot too (retrieval queries, zero-shot transfer); False for
    in-language fine-tuning, whose languages are exactly the requested ones (``Task.uses_pivot``)."""
    return _task_uses_pivot(canonical(config["evaluation"]["tasks"][task]))


def job_languages(config: dict, recipe: str, task: str) -> list[str]:
    """The languages of one evaluation job, in config order: the task's languages, narrowed to the recipe's
    ``evaluation.recipe_languages`` when a pattern matches it, plus the pivot where the task uses it (an
    empty list: the recipe is not evaluated on the task, see :func:`eval_jobs`)."""
    pivot, uses_pivot = config["pivot"], task_uses_pivot(config, task)
    langs = list(config["evaluation"]["tasks"][task].get("languages") or config["languages"])
    own = recipe_languages(config, recipe)
    if own is not None:
        langs = [c for c in langs if c in own]
        if not [c for c in langs if c != pivot or not uses_pivot]:
            return []  # none of the recipe's own languages is one of the task's
    return [*langs, pivot] if uses_pivot and pivot not in langs else langs


def eval_jobs(config: dict) -> list[tuple[str, str, int]]:
    """(recipe, task, seed) of every evaluation job: the evaluated recipes x tasks x seeds, where a task's
    own `recipes` / `seeds` keys narrow (recipes) or replace (seeds) the evaluation-wide ones, and a recipe
    whose ``evaluation.recipe_languages`` share no language with a task is not evaluated on it."""
    jobs = []
    default_recipes = eval_recipes(config)
    for task, spec in config["evaluation"]["tasks"].items():
        recipes = [r for r in default_recipes if r in spec["recipes"]] if spec.get("recipes") else default_recipes
        for recipe in recipes:
            if recipe_languages(config, recipe) is not None and not job_languages(config, recipe, task):
                continue
            jobs += [(recipe, task, int(seed)) for seed in spec.get("seeds") or config["evaluation"]["seeds"]]
    return jobs


# ---------------------------------------------------------------------------------------- provenance
def canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace): equal settings give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical(obj).encode("utf-8")).hexdigest()[:12]


@lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe` of the repository (with -dirty), or the package version outside git."""
    from langadapt import __version__

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True,
        )
        return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__
