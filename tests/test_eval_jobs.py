"""Which evaluation jobs a config asks for (task-level `recipes` / `seeds`) and config-time task checks."""

from __future__ import annotations

import copy

import pytest
import yaml

from langadapt import config as lc
from langadapt.errors import ConfigError

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
