"""Recipes (named model variants) resolved into chains of stages, and the paths and job lists the rules
read: each stage's canonical spec is what rules put in ``params``, so that editing a recipe reruns exactly
what depends on it. Torch-free: the workflow calls these while it builds the DAG."""

from __future__ import annotations

import fnmatch
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from langadapt.core.errors import ConfigError
from langadapt.core.provenance import canonical
from langadapt.vocab.spec import needs_of

STAGES = ("init", "pretrain", "realign")


def recipe_chain(config: dict, recipe: str, seen: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The recipes a recipe builds on, root first, as (recipe, stage) pairs of its own stages."""
    if recipe in seen:
        raise ConfigError(f"recipes: cycle through 'from': {' -> '.join((*seen, recipe))}")
    spec = config["recipes"][recipe]
    parent = recipe_chain(config, spec["from"], (*seen, recipe)) if "from" in spec else []
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
DEFAULT_HYPERNET_DIM = 100  # langadapt.hypernet.settings.DEFAULT_CFG["dim"] (tested there)


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
    chain = recipe_chain(config, recipe)
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
        "stages": [{"recipe": r, "stage": s, **stage_spec(config, r, s)} for r, s in recipe_chain(config, recipe)],
    }


def adapted_languages(config: dict, recipe: str) -> list[str]:
    """The languages a recipe's stages trained on, in config order: the union of the stages' own language
    lists; every language of the config when a stage takes them all (or a selector's subset) or when the
    recipe is a base model (its MLM head trains on every corpus)."""
    langs: set[str] = set()
    for r, stage in recipe_chain(config, recipe):
        spec = stage_spec(config, r, stage)
        own = spec.get("languages") if stage != "init" else spec["tokenizer_spec"].get("languages")
        if not isinstance(own, list):
            return list(config["languages"])
        langs |= set(own)
    return [c for c in config["languages"] if c in langs] if langs else list(config["languages"])


def push_repo(config: dict, recipe: str) -> str | None:
    """The Hub repository ``{namespace}/{prefix}{recipe}`` a recipe is pushed to (``push:``), else None."""
    push = config.get("push") or {}
    if recipe not in (push.get("recipes") or []):
        return None
    return f"{push['namespace']}/{push.get('prefix', '')}{recipe}"


def card_recipes(config: dict) -> list[str]:
    """The recipes that get a full model card: those with at least one evaluation job (sorted: the order of
    the model_cards job's params, which must not change when the config's recipes are reordered)."""
    return sorted({r for r, _, _ in eval_jobs(config)})


def card_specs(config: dict) -> dict[str, dict[str, Any]]:
    """Per recipe of :func:`card_recipes`: its full spec, the languages it was adapted to and its Hub
    repository (None unless pushed): the params of the model_cards job."""
    return {r: {"spec": recipe_spec(config, r), "languages": adapted_languages(config, r),
                "repo_id": push_repo(config, r)} for r in card_recipes(config)}


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


@lru_cache(maxsize=256)
def _task_is_light(spec_json: str) -> bool:
    from langadapt.evaluation.tasks import build_task  # torch-free

    return build_task(json.loads(spec_json)).light


def eval_threads(config: dict, task: str) -> int:
    """Threads of a task's evaluation jobs: 1 for light kinds (``Task.light``: inference over a few hundred
    sentences), else ``resources.eval_threads``."""
    if _task_is_light(canonical(config["evaluation"]["tasks"][task])):
        return 1
    return int(config["resources"]["eval_threads"])


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


def step_selection(config: dict, recipe: str) -> dict | None:
    """``select: downstream`` of the recipe's own pretraining stage (`langadapt.train.stepselect`):
    ``{"steps": [...], "tasks": [...]}``, else None."""
    from langadapt.train.settings import resolve_config, selection_steps  # torch-free

    name = config["recipes"][recipe].get("pretrain")
    if name is None:
        return None
    spec = config["pretraining"][name]
    cfg = resolve_config({k: v for k, v in spec.items() if k not in ("objective", "languages")})
    if cfg["select"] != "downstream":
        return None
    return {"steps": selection_steps(cfg), "tasks": list(cfg["select_tasks"])}


def step_eval_jobs(config: dict) -> list[tuple[str, str, int, int]]:
    """(recipe, task, step, seed) of every step evaluation of ``select: downstream`` (the first seed of each
    task): for every recipe whose pretraining exports its steps, whether or not the recipe is evaluated."""
    jobs = []
    for recipe in config["recipes"]:
        sel = step_selection(config, recipe)
        if sel is None:
            continue
        for task in sel["tasks"]:
            seed = int((config["evaluation"]["tasks"][task].get("seeds") or config["evaluation"]["seeds"])[0])
            jobs += [(recipe, task, step, seed) for step in sel["steps"]]
    return jobs
