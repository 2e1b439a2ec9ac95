"""Workflow configuration: the schema with defaults (`schema`), semantic checks before any job (`checks`)
and recipes resolved into stages, paths and job lists (`recipes`).

The Snakefile calls :func:`prepare_config` before any job is scheduled, so that an unknown key, a wrong
type, an unknown language code or a dangling reference fails at once with a message naming it. This
package re-exports the public functions of its modules (the rules read them as ``lc.NAME``); library
modules import the module itself (e.g. ``langadapt.config.recipes``)."""

from langadapt.config.checks import check_selector, check_semantics, load_config, prepare_config
from langadapt.config.recipes import (
    DEFAULT_HYPERNET_DIM,
    STAGES,
    adapted_languages,
    base_model_dir,
    card_recipes,
    card_specs,
    eval_jobs,
    eval_recipes,
    eval_threads,
    final_model_dir,
    hypernet_dir,
    hypernet_dirs,
    hypernet_train,
    job_languages,
    own_stages,
    push_repo,
    recipe_chain,
    recipe_hypernet,
    recipe_languages,
    recipe_spec,
    recipe_stage_pairs,
    root_base,
    run_dir_of,
    stage_dir,
    stage_input_dir,
    stage_spec,
    step_eval_jobs,
    step_selection,
    task_languages,
    task_uses_pivot,
)
from langadapt.config.schema import SCHEMA_PATH, read_yaml, validate_schema
from langadapt.core.provenance import canonical, code_version, config_hash

__all__ = [
    "DEFAULT_HYPERNET_DIM", "SCHEMA_PATH", "STAGES", "adapted_languages", "base_model_dir", "canonical",
    "card_recipes", "card_specs", "check_selector", "push_repo",
    "check_semantics", "code_version", "config_hash", "eval_jobs", "eval_recipes", "eval_threads", "final_model_dir",
    "hypernet_dir", "hypernet_dirs", "hypernet_train", "job_languages", "load_config", "own_stages",
    "prepare_config", "read_yaml", "recipe_chain", "recipe_hypernet", "recipe_languages", "recipe_spec",
    "recipe_stage_pairs", "root_base", "run_dir_of", "stage_dir", "stage_input_dir", "stage_spec",
    "step_eval_jobs", "step_selection", "task_languages", "task_uses_pivot", "validate_schema",
]
