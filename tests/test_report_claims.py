"""The claims table (issue 19 §4): verdicts computed from result rows, both metric directions, the
`matches` criterion, paired languages, seeds, config checks and errors."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from langadapt.core.errors import ConfigError, DataError
from langadapt.report.claims import check_claims, claims_table, parse_claim, to_markdown, write_claims

LANGS = ["eng_Latn", "deu_Latn", "nya_Latn"]


def rows(recipe, task, metric, values_by_seed):
    """Result rows: values_by_seed = {seed: [value per language of LANGS]}."""
    return [
        {"recipe": recipe, "task": task, "language": lang, "seed": seed, "metric": metric, "value": v}
        for seed, values in values_by_seed.items()
        for lang, v in zip(LANGS, values, strict=True)
    ]


RESULTS = pd.DataFrame(
    rows("langsamp", "genre", "macro_f1", {1: [0.6, 0.5, 0.4], 2: [0.7, 0.5, 0.3]})
    + rows("langsamp", "genre", "accuracy", {1: [0.1, 0.1, 0.1], 2: [0.1, 0.1, 0.1]})
    + rows("lapt", "genre", "macro_f1", {1: [0.5, 0.5, 0.2], 2: [0.5, 0.6, 0.2]})
    + rows("langsamp", "genre_donor", "macro_f1", {1: [0.6, 0.6, 0.5], 2: [0.7, 0.5, 0.4]})
    + rows("focus", "mlm", "mlm_loss", {1: [6.0, 6.5, 7.0]})
    + rows("random", "mlm", "mlm_loss", {1: [9.0, 9.5, 11.0]})
    + rows("hyperofa", "mlm", "mlm_loss", {1: [6.2, 6.4, 7.1]})
)
BASE = {"paper": "P", "claim": "C", "where": "Table 1", "paper_result": "49.4 -> 53.6"}


def test_better_uses_per_seed_language_means_then_mean_and_sd_over_seeds():
    t = claims_table(RESULTS, [{**BASE, "task": "genre", "a": "langsamp", "b": "lapt"}])
    r = t.iloc[0]
    # per seed: langsamp (0.5, 0.5), lapt (0.4, 0.4333); main metric macro_f1 (not accuracy)
    assert r["a_mean"] == pytest.approx(0.5) and r["a_sd"] == pytest.approx(0.0)
    assert r["b_mean"] == pytest.approx((0.4 + 1.3 / 3) / 2)
    assert r["b_sd"] == pytest.approx(pd.Series([0.4, 1.3 / 3]).std())
    assert r["difference"] == pytest.approx(r["a_mean"] - r["b_mean"])
    assert r["agrees"] == "yes" and r["seeds"] == 2 and r["languages"] == 3
    assert r["wins"] == 2  # language means: eng 0.65 > 0.5, deu 0.5 < 0.55, nya 0.35 > 0.2
    assert r["measure"] == "genre: macro_f1"
    assert "langsamp 50.0 ± 0.0 vs lapt 41.7 ± 2.4" in r["ours"] and "better on 2" in r["ours"]
    # the reverse claim does not hold, and the table says so
    assert claims_table(RESULTS, [{**BASE, "task": "genre", "a": "lapt", "b": "langsamp"}]).iloc[0]["agrees"] == "no"


def test_lower_is_better_metrics_and_language_selection():
    t = claims_table(RESULTS, [
        {**BASE, "task": "mlm", "a": "focus", "b": "random"},
        {**BASE, "task": "mlm", "a": "random", "b": "focus"},
        {**BASE, "task": "mlm", "a": "focus", "b": "random", "languages": ["nya_Latn"]},
        {**BASE, "task": "mlm", "a": "hyperofa", "b": "focus", "exclude_languages": ["eng_Latn", "nya_Latn"]},
    ])  # fmt: skip
    assert t["agrees"].tolist() == ["yes", "no", "yes", "yes"]  # lower loss is better
    assert t["wins"].tolist() == [3, 0, 1, 1]
    assert t.loc[2, "a_mean"] == 7.0 and t.loc[2, "languages"] == 1
    assert t.loc[3, "a_mean"] == 6.4 and math.isnan(t.loc[3, "a_sd"])  # one seed: no sd
    assert "lower is better" in t.loc[0, "ours"] and "6.50 vs random 9.83" in t.loc[0, "ours"]


def test_matches_compares_the_gap_with_the_reference_gap():
    spec = {**BASE, "task": "mlm", "a": "hyperofa", "b": "focus", "relation": "matches", "reference": "random"}
    r = claims_table(RESULTS, [spec]).iloc[0]
    assert r["agrees"] == "yes" and r["reference_mean"] == pytest.approx(29.5 / 3)  # |0.067| < |3.33|
    r = claims_table(RESULTS, [{**spec, "a": "random", "reference": "hyperofa"}]).iloc[0]
    assert r["agrees"] == "no"  # random is far from focus; hyperofa is close to it


def test_sides_on_different_tasks():
    spec = {**BASE, "a": {"recipe": "langsamp", "task": "genre_donor"}, "b": {"recipe": "langsamp", "task": "genre"},
            "exclude_languages": ["eng_Latn"]}  # fmt: skip
    r = claims_table(RESULTS, [spec]).iloc[0]
    assert r["a"] == "langsamp (genre_donor)" and r["measure"] == "genre_donor: macro_f1 vs genre"
    assert r["a_mean"] == pytest.approx(0.5) and r["b_mean"] == pytest.approx(0.425) and r["agrees"] == "yes"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({**BASE, "a": "x"}, r"missing key\(s\) \['b'\]"),
        ({**BASE, "a": "x", "b": "y", "task": "t", "colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({**BASE, "a": "x", "b": "y"}, "no task"),
        ({**BASE, "a": "x", "b": "y", "task": "t", "relation": "beats"}, "relation must be one of"),
        ({**BASE, "a": "x", "b": "y", "task": "t", "relation": "matches"}, "needs a reference"),
        ({**BASE, "a": "x", "b": "y", "task": "t", "reference": "z"}, "needs a reference"),
        ({**BASE, "a": {"recipe": "x", "seed": 1}, "b": "y", "task": "t"}, r"\.a must be a recipe name"),
        ({**BASE, "paper": "", "a": "x", "b": "y", "task": "t"}, r"\.paper must be a non-empty string"),
        ({**BASE, "a": "x", "b": "y", "task": "t", "languages": []}, "must not be empty"),
    ],
)
def test_malformed_claims(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_claim(spec, "claims[0]")


def test_config_check_names_recipe_task_and_language():
    tasks = {"genre": {"kind": "bible_genre"}, "mlm": {"kind": "mlm_loss", "recipes": ["focus", "random"]}}
    recipes = ["langsamp", "lapt", "focus", "random"]
    check_claims([{**BASE, "task": "genre", "a": "langsamp", "b": "lapt"}], recipes, tasks, "cfg: claims")
    check_claims(None, recipes, tasks, "cfg: claims")
    with pytest.raises(ConfigError, match=r"cfg: claims\[0\]\.b: recipe 'lapt' is not evaluated on task 'mlm'"):
        check_claims([{**BASE, "task": "mlm", "a": "focus", "b": "lapt"}], recipes, tasks, "cfg: claims")
    with pytest.raises(ConfigError, match=r"claims\[0\]\.a: task 'sib' is not in evaluation.tasks"):
        check_claims([{**BASE, "a": {"recipe": "lapt", "task": "sib"}, "b": "lapt", "task": "genre"}], recipes,
                     tasks, "cfg: claims")  # fmt: skip
    with pytest.raises(ConfigError, match=r"languages\[0\]"):
        check_claims([{**BASE, "task": "genre", "a": "langsamp", "b": "lapt", "languages": ["german"]}], recipes,
                     tasks, "cfg: claims")  # fmt: skip
    with pytest.raises(ConfigError, match="must be a list of claims"):
        check_claims({"a": 1}, recipes, tasks, "cfg: claims")


def test_missing_results_name_recipe_task_and_languages():
    with pytest.raises(DataError, match="no rows of recipe 'lapt' on task 'mlm'"):
        claims_table(RESULTS, [{**BASE, "task": "mlm", "a": "focus", "b": "lapt"}])
    with pytest.raises(DataError, match=r"recipe 'focus' on task 'mlm' has no mlm_loss for \['hin_Deva'\]"):
        claims_table(RESULTS, [{**BASE, "task": "mlm", "a": "focus", "b": "random", "languages": ["hin_Deva"]}])
    with pytest.raises(DataError, match="has no metric 'top10'"):
        claims_table(RESULTS, [{**BASE, "task": "genre", "a": "langsamp", "b": "lapt", "metric": "top10"}])


def test_write_claims_files(tmp_path):
    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    specs = [{**BASE, "task": "genre", "a": "langsamp", "b": "lapt", "note": "one | seed"},
             {**BASE, "task": "mlm", "a": "random", "b": "focus"}]  # fmt: skip
    out = [tmp_path / f"claims.{ext}" for ext in ("csv", "md", "tex")]
    table = write_claims(results, specs, *out)
    assert pd.read_csv(out[0])["agrees"].tolist() == ["yes", "no"] == table["agrees"].tolist()
    md = out[1].read_text()
    assert md.startswith("| Paper | Claim |") and "1 of 2 claims hold in this run." in md
    assert "yes — one \\| seed" in md
    tex = out[2].read_text()
    assert "\\toprule" in tex and "49.4 -> 53.6 (Table 1)" in tex
    assert to_markdown(table).count("\n| P |") == 2
