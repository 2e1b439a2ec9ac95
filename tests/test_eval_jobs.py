"""Which evaluation jobs a config asks for (task-level `recipes` / `seeds`) and config-time task checks."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO

from langadapt import config as lc
from langadapt.errors import ConfigError


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


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda t: t["jpn_ner"].update(recipes=["nope"]), "evaluation.tasks.jpn_ner.recipes must be"),
    (lambda t: t["jpn_ner"].update(seeds=[]), "evaluation.tasks.jpn_ner.seeds must be"),
    (lambda t: t["jpn_ner"].update(protocol="few_shot"), "evaluation.tasks.jpn_ner: "),
    (lambda t: t["jpn_ner"]["dataset"].update(kind="conll2003"), "unknown evaluation dataset 'conll2003'"),
    (lambda t: t["srb_bible"].update(layerz=2), "evaluation.tasks.srb_bible: unknown parameter(s) 'layerz'"),
], ids=["unknown-recipe", "empty-seeds", "bad-protocol", "unknown-dataset", "unknown-param"])
def test_task_errors_before_any_job(mutate, fragment):
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    mutate(raw["evaluation"]["tasks"])
    with pytest.raises(ConfigError) as exc:
        lc.prepare_config(raw, source="smoke.yaml")
    assert fragment in str(exc.value)
