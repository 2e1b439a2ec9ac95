"""Which evaluation jobs a config asks for (task-level `recipes` / `seeds`) and config-time task checks."""

from __future__ import annotations

import copy

import pytest
import yaml

from langadapt import config as lc
from langadapt.core.errors import ConfigError

from conftest import REPO


@pytest.fixture(scope="module")
def smoke() -> dict:
    return lc.prepare_config(yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text()))


def test_task_recipes_narrow_and_task_seeds_replace(smoke):
    cfg = copy.deepcopy(smoke)
    jobs = lc.eval_jobs(cfg)
    n_recipes = len(cfg["recipes"])
    # srb_bible and taxi1500_standin on every recipe; jpn_ner only on its two recipes
    assert len(jobs) == 2 * n_recipes + 2
    assert sorted(j for j in jobs if j[1] == "jpn_ner") == [("tiny", "jpn_ner", 1), ("tiny_lapt", "jpn_ner", 1)]
    cfg["evaluation"]["tasks"]["jpn_ner"]["seeds"] = [3, 4]
    cfg["evaluation"]["recipes"] = ["tiny", "tiny_spm"]
    jobs = lc.eval_jobs(cfg)
    assert sorted(j for j in jobs if j[1] == "jpn_ner") == [("tiny", "jpn_ner", 3), ("tiny", "jpn_ner", 4)]
    assert sorted(j for j in jobs if j[1] == "srb_bible") == [("tiny", "srb_bible", 1), ("tiny_spm", "srb_bible", 1)]


def test_recipe_languages_narrow_jobs_to_a_recipes_own_languages(smoke):
    cfg = copy.deepcopy(smoke)
    cfg["evaluation"]["recipe_languages"] = {"tiny_*": ["nya_Latn"], "tiny_spm": ["jpn_Jpan"],
                                             "ext_ident": ["jpn_Jpan"]}
    lc.check_semantics(cfg)
    # retrieval uses the pivot (queries): appended; the first matching pattern wins (tiny_spm -> nya)
    assert lc.job_languages(cfg, "tiny_spm", "srb_bible") == ["nya_Latn", "eng_Latn"]
    assert lc.job_languages(cfg, "tiny", "srb_bible") == cfg["languages"]  # no pattern: every language
    # in-language NER evaluates exactly the recipe's languages (no pivot); ext_ident: Japanese only
    assert not lc.task_uses_pivot(cfg, "jpn_ner") and lc.task_uses_pivot(cfg, "srb_bible")
    assert lc.job_languages(cfg, "ext_ident", "jpn_ner") == ["jpn_Jpan"]
    assert lc.job_languages(cfg, "tiny_lapt", "jpn_ner") == ["nya_Latn"]  # jpn_ner: every config language
    cfg["evaluation"]["tasks"]["jpn_ner"]["languages"] = ["jpn_Jpan"]
    assert lc.job_languages(cfg, "tiny_lapt", "jpn_ner") == []  # nya is no longer a language of jpn_ner ...
    jobs = lc.eval_jobs(cfg)
    # ... so that job is dropped; a pattern never adds languages a task lacks
    assert ("tiny_lapt", "jpn_ner", 1) not in jobs and ("tiny", "jpn_ner", 1) in jobs
    cfg["evaluation"]["recipe_languages"] = {"tiny_*": ["eng_Latn"]}  # only the pivot: nothing to retrieve
    assert lc.job_languages(cfg, "tiny_lapt", "srb_bible") == []
    assert ("tiny_lapt", "srb_bible", 1) not in lc.eval_jobs(cfg)


@pytest.mark.parametrize(("value", "fragment"), [
    ({"zzz_*": ["nya_Latn"]}, "pattern 'zzz_*' matches no evaluated recipe"),
    ({"tiny": []}, "recipe_languages.tiny: [] should be non-empty"),  # the schema
    ({"tiny": ["nya"]}, "recipe_languages.tiny[0]"),
    ({"tiny": ["fra_Latn"]}, "'fra_Latn' is neither in languages nor in a task's languages"),
])
def test_recipe_languages_errors_before_any_job(value, fragment):
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["evaluation"]["recipe_languages"] = value
    with pytest.raises(ConfigError) as exc:
        lc.prepare_config(raw, source="smoke.yaml")
    assert fragment in str(exc.value) and "smoke.yaml: evaluation.recipe_languages" in str(exc.value)


def test_vocab_config_evaluates_each_specialized_model_in_its_own_language():
    cfg = lc.prepare_config(yaml.safe_load((REPO / "configs" / "vocab-specialization.yaml").read_text()))
    assert lc.job_languages(cfg, "hye_focus_ident_full", "pos") == ["hye_Armn"]
    assert lc.job_languages(cfg, "rus_random_emb", "ner") == ["rus_Cyrl"]  # the pivot, in-language
    assert len(lc.job_languages(cfg, "multi_ident_full", "pos")) == 8
    assert len(lc.job_languages(cfg, "xlmr", "pos")) == 10
    jobs = lc.eval_jobs(cfg)
    assert not [j for j in jobs if j[0].startswith("sme_") and j[1] == "ner"]  # Table 2: no Sami NER
    assert {s for r, t, s in jobs} == {1, 2, 3, 4}


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda e: e["tasks"]["jpn_ner"].update(recipes=["nope"]), "evaluation.tasks.jpn_ner.recipes must be"),
    (lambda e: e["tasks"]["jpn_ner"].update(seeds=[]), "evaluation.tasks.jpn_ner.seeds must be"),
    (lambda e: e["tasks"]["jpn_ner"].update(protocol="few_shot"), "evaluation.tasks.jpn_ner: "),
    (lambda e: e["tasks"]["jpn_ner"]["dataset"].update(kind="conll2003"), "unknown evaluation dataset 'conll2003'"),
    (lambda e: e["tasks"]["srb_bible"].update(layerz=2), "evaluation.tasks.srb_bible: unknown parameter(s) 'layerz'"),
    (lambda e: e.update(report={"baseline": "nope"}), "evaluation.report.baseline 'nope' is not an evaluated"),
], ids=["unknown-recipe", "empty-seeds", "bad-protocol", "unknown-dataset", "unknown-param", "bad-baseline"])
def test_evaluation_errors_before_any_job(mutate, fragment):
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    mutate(raw["evaluation"])
    with pytest.raises(ConfigError) as exc:
        lc.prepare_config(raw, source="smoke.yaml")
    assert fragment in str(exc.value)


def test_light_tasks_take_one_thread(smoke):
    """mlm_loss and fertility (Task.light: inference only) run on one thread, so two share a 2-core machine."""
    cfg = copy.deepcopy(smoke)
    cfg["resources"]["eval_threads"] = 4
    cfg["evaluation"]["tasks"]["held_out"] = {"kind": "mlm_loss", "languages": ["nya_Latn"]}
    cfg["evaluation"]["tasks"]["pieces"] = {"kind": "fertility"}
    assert [lc.eval_threads(cfg, t) for t in ("held_out", "pieces", "srb_bible", "taxi1500_standin")] == [1, 1, 4, 4]
