"""Paper-layout tables (langadapt.report.paper_tables): cell values, layouts, LaTeX, config checks, workflow wiring."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from langadapt.core.errors import ConfigError
from langadapt.report.paper_spec import check_tables
from langadapt.report.paper_tables import build_table, to_latex, write_tables
from langadapt.report.stats import language_groups

from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
LANGS = ["deu_Latn", "hin_Deva", "nya_Latn"]
# (recipe, task, language) -> values of seeds 1 and 2 (metric f1; accuracy is half of it)
VALUES = {
    ("a", "t", "deu_Latn"): [0.6, 0.7], ("a", "t", "hin_Deva"): [0.1, 0.2], ("a", "t", "nya_Latn"): [0.3, 0.5],
    ("b", "t", "deu_Latn"): [0.5, 0.9], ("b", "t", "hin_Deva"): [0.2, 0.2], ("b", "t", "nya_Latn"): [0.4, 0.4],
    ("a", "u", "deu_Latn"): [0.2, 0.4], ("a", "u", "hin_Deva"): [0.2, 0.4], ("a", "u", "nya_Latn"): [0.2, 0.4],
    ("a", "t_donor", "deu_Latn"): [0.9, 0.9], ("a", "t_donor", "hin_Deva"): [0.8, 0.8],
    ("a", "t_donor", "nya_Latn"): [0.7, 0.7],
    ("base", "t", "deu_Latn"): [0.99, 0.99], ("base", "t", "hin_Deva"): [0.99, 0.99],
    ("base", "t", "nya_Latn"): [0.99, 0.99],
    ("b", "v", "deu_Latn"): [0.3],  # only seed 1
}


def make_rows(values: dict = VALUES) -> pd.DataFrame:
    out = []
    for (recipe, task, lang), vals in values.items():
        for seed, v in enumerate(vals, start=1):
            for metric, x in (("f1", v), ("accuracy", v / 2)):
                out.append(dict(recipe=recipe, task=task, language=lang, seed=seed, metric=metric, value=x,
                                config_hash="h", code_version="c"))
    return pd.DataFrame(out)


@pytest.fixture
def rows() -> pd.DataFrame:
    return make_rows()


def one_cell(rows: pd.DataFrame, **keys) -> pd.Series:
    spec = {"rows": [{"label": "r", **keys.pop("row", {})}], "columns": [[{"label": "c", **keys}]]}
    _, cells = build_table(rows, spec)
    assert len(cells) == 1
    return cells.iloc[0]


def test_the_languages_of_the_fixture_fall_into_the_groups_the_tests_assume():
    assert language_groups(LANGS, "seen", "xlmr") == {"deu_Latn": "seen", "hin_Deva": "seen", "nya_Latn": "unseen"}
    assert language_groups(LANGS, "script") == {"deu_Latn": "Latin", "hin_Deva": "non-Latin", "nya_Latn": "Latin"}


@pytest.mark.parametrize(("keys", "mean", "sd", "n_lang"), [
    # all languages: per seed (0.6+0.1+0.3)/3=1/3 and (0.7+0.2+0.5)/3=1.4/3 -> mean 0.4, sd (1.4-1)/3/sqrt(2)
    ({"recipe": "a", "task": "t"}, 40.0, 100 * 0.4 / 3 / math.sqrt(2), 3),
    ({"recipe": "a", "task": "t", "group": "all"}, 40.0, 100 * 0.4 / 3 / math.sqrt(2), 3),
    ({"recipe": "b", "task": "t"}, 100 * (1.1 / 3 + 1.5 / 3) / 2, 100 * 0.4 / 3 / math.sqrt(2), 3),
    ({"recipe": "a", "task": "t", "group": "seen=unseen"}, 40.0, 100 * 0.2 / math.sqrt(2), 1),  # nya only
    ({"recipe": "a", "task": "t", "group": "seen=seen"}, 100 * (0.35 + 0.45) / 2, 100 * 0.1 / math.sqrt(2), 2),
    ({"recipe": "a", "task": "t", "group": "script=non-Latin"}, 15.0, 100 * 0.1 / math.sqrt(2), 1),
    ({"recipe": "a", "task": "t", "group": "script=Latin"}, 100 * (0.45 + 0.6) / 2, 100 * 0.15 / math.sqrt(2), 2),
    ({"recipe": "a", "task": "t", "language": "deu_Latn"}, 65.0, 100 * 0.1 / math.sqrt(2), 1),
    ({"recipe": "a", "task": "t", "metric": "accuracy"}, 20.0, 50 * 0.4 / 3 / math.sqrt(2), 3),
])
def test_cell_mean_and_sd_over_seeds_of_language_means(rows, keys, mean, sd, n_lang):
    cell = one_cell(rows, **keys)
    assert cell["mean"] == pytest.approx(mean)
    assert cell["sd"] == pytest.approx(sd)
    assert cell["n_seeds"] == 2 and cell["n_languages"] == n_lang


def test_default_metric_is_the_main_metric_and_spec_metric_overrides_it(rows):
    assert one_cell(rows, recipe="a", task="t")["metric"] == "f1"  # f1 before accuracy
    spec = {"metric": {"t": "accuracy"}, "rows": [{"label": "r", "task": "t"}], "columns": [[{"recipe": "a"}]]}
    _, cells = build_table(rows, spec)
    assert cells.iloc[0]["metric"] == "accuracy" and cells.iloc[0]["mean"] == pytest.approx(20.0)


def test_scale_and_digits(rows):
    spec = {"scale": 1, "digits": 3, "rows": [{"label": "r", "task": "t", "recipe": "a"}],
            "columns": [[{"label": "c"}]]}
    layout, cells = build_table(rows, spec)
    assert layout.loc[0, "c"] == "0.400" and cells.iloc[0]["mean"] == pytest.approx(0.4)


def test_list_values_average_per_seed_over_combinations(rows):
    # t: per seed 1/3, 1.4/3 ; u: per seed 0.2, 0.4 -> per-seed means (1/3+0.2)/2, (1.4/3+0.4)/2
    cell = one_cell(rows, recipe="a", task=["t", "u"])
    s1, s2 = (1 / 3 + 0.2) / 2, (1.4 / 3 + 0.4) / 2
    assert cell["mean"] == pytest.approx(100 * (s1 + s2) / 2)
    assert cell["sd"] == pytest.approx(100 * abs(s2 - s1) / math.sqrt(2))
    assert cell["task"] == "t+u"
    # recipes as a list: per seed mean of a and b
    cell = one_cell(rows, recipe=["a", "b"], task="t", language="deu_Latn")
    assert cell["mean"] == pytest.approx(100 * ((0.6 + 0.5) / 2 + (0.7 + 0.9) / 2) / 2)


def test_list_uses_only_shared_seeds_and_a_missing_combination_makes_the_cell_missing(rows):
    # b/t has seeds 1, 2; b/v only seed 1 (deu 0.3): only seed 1 is averaged
    cell = one_cell(rows, recipe="b", task=["t", "v"])
    assert cell["n_seeds"] == 1 and cell["mean"] == pytest.approx(100 * (1.1 / 3 + 0.3) / 2)
    assert math.isnan(cell["sd"])
    spec = {"rows": [{"label": "r", "recipe": "b"}], "columns": [[{"label": "both", "task": ["t", "u"]},
                                                                   {"label": "t", "task": "t"}]]}
    layout, cells = build_table(rows, spec)  # b has no rows for u
    assert layout.loc[0, "both"] == "–" and layout.loc[0, "t"] != "–"
    assert cells.iloc[0]["n_seeds"] == 0 and math.isnan(cells.iloc[0]["mean"])


def test_placeholders_take_keys_of_earlier_parts(rows):
    spec = {"rows": [{"label": "Taxi", "task": "t", "recipe": "a"}],
            "columns": [[{"label": "English"}, {"label": "Donor", "task": "{task}_donor"}]]}
    layout, cells = build_table(rows, spec)
    assert list(cells["task"]) == ["t", "t_donor"]
    assert list(layout.iloc[0]) == ["Taxi", "40.0", "80.0"]


def test_vars_fill_placeholders_of_earlier_parts_and_mean_of_averages_paired_keys():
    # per-language recipes (vocabulary paper: hye_x evaluated on hye_Armn, eus_x on eus_Latn)
    values = {("hye_x", "pos", "hye_Armn"): [0.8, 0.6], ("eus_x", "pos", "eus_Latn"): [0.4, 0.4],
              ("hye_x", "pos", "eus_Latn"): [0.0, 0.0], ("eus_x", "pos", "hye_Armn"): [0.0, 0.0],
              ("xlmr", "pos", "hye_Armn"): [0.5, 0.5], ("xlmr", "pos", "eus_Latn"): [0.3, 0.3]}
    rows = make_rows(values)
    spec = {
        "metric": "accuracy", "scale": 200, "missing_ok": True,  # accuracy = value / 2
        "rows": [{"label": "*", "recipe": "xlmr"}, {"label": "X", "recipe": "{lang}_x"},
                 {"label": "Y", "recipe": "{lang}_y"}],
        "columns": [[{"label": "Armenian", "language": "hye_Armn", "vars": {"lang": "hye"}},
                     {"label": "Basque", "language": "eus_Latn", "vars": {"lang": "eus"}},
                     {"label": "Avg", "mean_of": [{"language": "hye_Armn", "vars": {"lang": "hye"}},
                                                  {"language": "eus_Latn", "vars": {"lang": "eus"}}]}]],
    }
    spec["rows"] = [{**r, "task": "pos"} for r in spec["rows"]]
    layout, cells = build_table(rows, spec)
    assert layout.iloc[0].tolist() == ["*", "50.0", "30.0", "40.0"]
    # X: hye 0.8/0.6 -> 70; eus 40; Avg per seed (0.8+0.4)/2, (0.6+0.4)/2 -> 55 (not the cross pairs with 0.0)
    assert layout.iloc[1].tolist() == ["X", "70.0", "40.0", "55.0"]
    assert cells.iloc[5]["recipe"] == "hye_x+eus_x" and cells.iloc[5]["language"] == "hye_Armn+eus_Latn"
    assert cells.iloc[5]["sd"] == pytest.approx(200 * 0.05 * math.sqrt(2) / 2)
    assert layout.iloc[2].tolist()[1:] == ["–", "–", "–"]  # {lang}_y recipes have no rows
    check_tables({"v": spec}, ["xlmr", "hye_x", "eus_x"], {"pos": {}})
    with pytest.raises(ConfigError, match=r"rows\[2\]\.recipe: unknown recipe 'hye_y'"):
        check_tables({"v": {**spec, "missing_ok": False}}, ["xlmr", "hye_x", "eus_x"], {"pos": {}})


def test_layout_sections_multi_labels_each_and_flattened_headers(rows):
    spec = {
        "sd": True,
        "rows": [{"section": "XLM-R"}, {"label": ["FULL", "A"], "recipe": "a"},
                 {"label": ["FULL", "B"], "recipe": "b"}, {"section": "more"}, {"label": "X", "each": "recipe"}],
        "columns": [[{"label": "T", "task": "t"}], [{"label": "tail", "group": "seen=unseen"}, {"label": "all"}]],
    }
    layout, cells = build_table(rows, spec)
    assert list(layout.columns) == ["label1", "label2", "T / tail", "T / all"]
    assert layout["label1"].tolist() == ["XLM-R", "FULL", "FULL", "more", "X", "X", "X"]
    assert layout["label2"].tolist() == ["", "A", "B", "", "a", "b", "base"]  # each: sorted recipes with rows
    assert layout.iloc[0, 2:].tolist() == ["", ""]  # section rows have no cells
    assert layout.loc[1, "T / tail"] == "40.0 ± 14.1" and layout.loc[1, "T / all"] == "40.0 ± 9.4"
    assert layout.loc[6, "T / all"] == "99.0 ± 0.0"
    assert len(cells) == 5 * 2 and set(cells["row"]) == {1, 2, 4, 5, 6}


def test_best_marking_in_latex_skips_baseline_rows(rows):
    spec = {
        "best": "column", "caption": "50% of T_1",
        "rows": [{"label": "A_1", "recipe": "a"}, {"label": "B", "recipe": "b"},
                 {"label": "Base", "recipe": "base", "baseline": True}],
        "columns": [[{"label": "T", "task": "t"}, {"label": "deu", "task": "t", "language": "deu_Latn"}]],
    }
    layout, cells = build_table(rows, spec)
    # column T: a 40.0, b 43.3, base 99.0 (baseline); column deu: a 65.0, b 70.0
    best = cells[cells["best"]]
    assert sorted(zip(best["label"], best["column"], strict=True)) == [("B", "T"), ("B", "deu")]
    tex = to_latex(layout, cells, spec)
    assert r"B & \textbf{43.3} & \textbf{70.0} \\" in tex
    assert r"A\_1 & 40.0 & 65.0 \\" in tex and r"Base & 99.0 & 99.0 \\" in tex
    assert r"% 50\% of T\_1" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    low = build_table(rows, {**spec, "lower_is_better": True})[1]
    assert sorted(low.loc[low["best"], "label"]) == ["A_1", "A_1"]


def test_row_within_marks_the_best_per_outer_group_and_latex_has_spanning_headers(rows):
    spec = {
        "best": "row_within", "sd": True,
        "rows": [{"section": "S"}, {"label": "T", "task": "t"}],
        "columns": [[{"label": "tail", "group": "seen=unseen"}, {"label": "all", "group": "all"}],
                    [{"label": "Baseline", "recipe": "a"}, {"label": "LangSAMP", "recipe": "b"}]],
    }
    layout, cells = build_table(rows, spec)
    # tail: a 40.0 = b 40.0 (tie, both bold); all: a 40.0 < b 43.3
    assert cells["best"].tolist() == [True, True, False, True]
    tex = to_latex(layout, cells, spec)
    assert r"& \multicolumn{2}{c}{tail} & \multicolumn{2}{c}{all} \\" in tex
    assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-5}" in tex
    assert r"\multicolumn{5}{l}{\textit{S}} \\" in tex
    assert (r"T & \textbf{40.0 $\pm$ 14.1} & \textbf{40.0 $\pm$ 0.0} & 40.0 $\pm$ 9.4 & "
            r"\textbf{43.3 $\pm$ 9.4} \\") in tex


def test_write_tables_writes_three_files_per_table_and_nothing_else(rows, tmp_path):
    specs = {"t1": {"rows": [{"label": "r", "task": "t"}], "columns": [[{"recipe": "a"}, {"recipe": "b"}]]},
             "t2": {"rows": [{"each": "task", "recipe": "a"}], "columns": [[{"label": "all"}]]}}
    paths = write_tables(rows, specs, tmp_path / "paper", seen_model="xlmr")
    names = sorted(p.name for p in (tmp_path / "paper").iterdir())
    assert names == sorted(p.name for p in paths) == ["t1.csv", "t1.tex", "t1_cells.csv", "t2.csv", "t2.tex",
                                                       "t2_cells.csv"]
    layout = pd.read_csv(tmp_path / "paper" / "t1.csv", dtype=str, keep_default_na=False)
    assert layout.columns.tolist() == ["label", "a", "b"] and layout.iloc[0].tolist() == ["r", "40.0", "43.3"]
    t2 = pd.read_csv(tmp_path / "paper" / "t2.csv", dtype=str, keep_default_na=False)
    assert t2["label"].tolist() == ["t", "t_donor", "u"]
    cells = pd.read_csv(tmp_path / "paper" / "t1_cells.csv")
    for col in ("recipe", "task", "metric", "group", "language", "mean", "sd", "n_seeds", "n_languages", "best"):
        assert col in cells.columns
    assert write_tables(rows, {}, tmp_path / "empty") == [] and (tmp_path / "empty").is_dir()


def test_seen_model_changes_the_seen_group(rows):
    spec = {"rows": [{"label": "r", "task": "t", "recipe": "a", "group": "seen=unseen"}], "columns": [[{"label": "c"}]]}
    groups = {m: language_groups(LANGS, "seen", m) for m in ("xlmr", "mbert")}
    n_unseen = {m: sum(g == "unseen" for g in groups[m].values()) for m in groups}
    for model in ("xlmr", "mbert"):
        cells = build_table(rows, {**spec, "seen_model": model})[1]
        assert cells.iloc[0]["n_languages"] == n_unseen[model]


# ------------------------------------------------------------------------------------------------ checks

RECIPES = ["a", "b", "base"]
TASKS = {"t": {}, "u": {}, "t_donor": {}}
GOOD = {"rows": [{"label": "T", "task": "t"}], "columns": [[{"label": "A", "recipe": "a"}]]}


def test_check_tables_accepts_good_specs_and_each_and_placeholders():
    assert check_tables({"x": GOOD}, RECIPES, TASKS) is None  # no error: the spec is valid as written
    # the same spec with one unknown recipe is rejected, so the acceptances below are not vacuous
    with pytest.raises(ConfigError, match="zz"):
        check_tables({"x": {**GOOD, "rows": [{"label": "T", "task": "t", "recipe": "zz"}]}}, RECIPES, TASKS)
    check_tables({"x": {"rows": [{"each": "recipe"}, {"section": "s"}], "columns": [[{"task": "t"}]]}},
                 RECIPES, TASKS)
    check_tables({"x": {"rows": [{"label": "T", "task": "t", "recipe": "a"}],
                        "columns": [[{"label": "E"}, {"label": "D", "task": "{task}_donor"}]]}}, RECIPES, TASKS)
    check_tables({"x": {"rows": [{"each": "task", "recipe": "a"}], "columns": [[{"label": "D", "task": "{task}"}]]}},
                 RECIPES, TASKS)
    check_tables({}, RECIPES, TASKS)


@pytest.mark.parametrize(("spec", "fragments"), [
    ({**GOOD, "colour": 1}, ["where.x", "'colour'"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t"}, {"label": "U", "tsak": "u"}]}, ["where.x.rows[1]", "'tsak'"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t"}, {"label": "U", "task": "t", "recipe": "zz"}]},
     ["where.x.rows[1].recipe", "'zz'"]),
    ({**GOOD, "columns": [[{"label": "A", "recipe": "a"}], [{"task": "nope"}]]},
     ["where.x.columns[1][0].task", "'nope'"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t", "group": "colour=red"}]}, ["where.x.rows[0].group", "'colour'"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t", "group": "seen"}]}, ["where.x.rows[0].group", "'seen'"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t", "group": "seen=maybe"}]}, ["where.x.rows[0].group", "'maybe'"]),
    ({**GOOD, "rows": [{"label": ["a", "b"], "task": "t"}, {"label": "c", "task": "t"}]}, ["where.x.rows[1].label"]),
    ({**GOOD, "rows": [{"label": "T", "recipe": "a"}]}, ["where.x", "rows[0]", "columns[0][0]", "no task"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t", "metric": 3}]}, ["where.x.rows[0].metric", "3"]),
    ({**GOOD, "metric": 3}, ["where.x.metric", "3"]),
    ({**GOOD, "metric": {"zz": "f1"}}, ["where.x.metric", "'zz'"]),
    ({**GOOD, "columns": [[{"label": "A", "recipe": "{recipe}_x"}]]}, ["where.x.columns[0][0].recipe", "{recipe}"]),
    ({**GOOD, "columns": [[{"label": "A", "recipe": "a", "task": "{task}_x"}]]},
     ["where.x.columns[0][0].task", "'t_x'"]),
    ({**GOOD, "rows": [{"each": "seed"}]}, ["where.x.rows[0].each", "'seed'"]),
    ({**GOOD, "best": "max"}, ["where.x.best", "'max'"]),
    ({**GOOD, "rows": [{"section": "s", "task": "t"}, {"label": "T", "task": "t"}]}, ["where.x.rows[0]"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t", "language": "english"}]}, ["where.x.rows[0].language", "'english'"]),
    ({**GOOD, "columns": [{"label": "A", "recipe": "a"}]}, ["where.x.columns"]),
    ({**GOOD, "seen_model": "gpt"}, ["where.x.seen_model", "'gpt'"]),
    ({**GOOD, "columns": [[{"label": "A", "recipe": "{who}"}]]}, ["where.x.columns[0][0].recipe", "{who}"]),
    ({**GOOD, "rows": [{"label": "T", "task": "t", "vars": {"task": "u"}}]}, ["where.x.rows[0].vars", "'task'"]),
    ({**GOOD, "columns": [[{"label": "A", "mean_of": [{"recipe": "a", "colour": 1}]}]]},
     ["where.x.columns[0][0].mean_of[0]", "'colour'"]),
    ({**GOOD, "columns": [[{"label": "A", "mean_of": [{"recipe": "zz"}]}]]},
     ["where.x.columns[0][0].mean_of[0].recipe", "'zz'"]),
    ({"rows": [{"label": "T", "task": "{recipe}", "recipe": "{task}"}], "columns": [[{"label": "A"}]]},
     ["where.x.rows[0]", "each other"]),
])
def test_check_tables_errors_name_the_path_and_the_value(spec, fragments):
    with pytest.raises(ConfigError) as exc:
        check_tables({"x": spec}, RECIPES, TASKS, where="where")
    for fragment in fragments:
        assert fragment in str(exc.value), (fragment, str(exc.value))


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/smoke.yaml", "configs/realignment.yaml",
                                        "configs/langsamp.yaml", "configs/hyperofa.yaml",
                                        "configs/vocab-specialization.yaml"])
def test_preset_tables_of_the_configs_pass_the_check(configfile):
    cfg = yaml.safe_load((REPO / configfile).read_text())
    tables = cfg["evaluation"]["report"]["tables"]
    assert tables
    recipes = cfg["evaluation"].get("recipes") or list(cfg["recipes"])
    check_tables(tables, recipes, cfg["evaluation"]["tasks"], where=f"{configfile}: evaluation.report.tables")


def test_realignment_table1_preset_layout():
    spec = yaml.safe_load((REPO / "configs/realignment.yaml").read_text())["evaluation"]["report"]["tables"][
        "realign_table1"]
    rows = []
    for i, entry in enumerate(e for e in spec["rows"] if "recipe" in e):
        recipes = entry["recipe"] if isinstance(entry["recipe"], list) else [entry["recipe"]]
        for task in ("pos", "nli", "ner"):
            for recipe in recipes:
                rows.append(dict(recipe=recipe, task=task, language="deu_Latn", seed=17, metric="f1",
                                 value=0.5 + i / 100))
    # Table 1's pool rows are the mean of 4 seeded random draws (App. A.5), one recipe per seed
    pools = [e for e in spec["rows"] if isinstance(e.get("recipe"), list)]
    assert len(pools) == 12 and all(len(e["recipe"]) == 4 and e["recipe"][0].endswith("_r17") for e in pools)
    layout, cells = build_table(pd.DataFrame(rows), spec)
    assert list(layout.columns) == ["label", "POS", "NLI", "NER", "Avg."]
    assert layout["label"].tolist()[0] == "XLM-R" and layout["label"].tolist()[9] == "mBERT"
    # best per column and model section, baseline rows (the last two of each model) excluded: the highest
    # values are the two baselines of each section, then "Seen Languages"
    best = cells[cells["best"]]
    assert set(best["label"]) == {"Seen Languages"}
    def draws(base: str) -> str:
        return "+".join(f"{base}_seen_{base}_10_r{s}" for s in (17, 23, 42, 66))

    assert sorted(best["recipe"]) == [draws("mbert")] * 4 + [draws("xlmr")] * 4


def _preset(configfile: str, name: str) -> dict:
    return yaml.safe_load((REPO / configfile).read_text())["evaluation"]["report"]["tables"][name]


def test_langsamp_table4_preset_pairs_each_task_with_its_donor_task():
    spec = _preset("configs/langsamp.yaml", "langsamp_table4")
    # English runs: 2 seeds (0.4, 0.6); donor runs: one seed (App. D); deu seen/Latin, nya unseen/Latin,
    # hin seen/non-Latin
    out = []
    for task in ("taxi1500", "sib200", "ner", "pos"):
        for lang, eng, donor in (("deu_Latn", 0.5, 0.7), ("nya_Latn", 0.3, 0.6), ("hin_Deva", 0.4, 0.2)):
            for seed, delta in ((1, -0.1), (2, 0.1)):
                out.append(dict(recipe="langsamp", task=task, language=lang, seed=seed, metric="f1",
                                value=eng + delta))
            out.append(dict(recipe="langsamp", task=f"{task}_donor", language=lang, seed=1, metric="f1",
                            value=donor))
    layout, cells = build_table(pd.DataFrame(out), spec)
    assert list(layout.columns)[:5] == ["label", "tail / English", "tail / Donor", "head / English",
                                        "head / Donor"]
    assert layout["label"].tolist() == ["Taxi1500", "SIB200", "NER", "POS"]
    # App. D: both columns are the seed-1 run (English: eng - 0.1), not English's mean over seeds
    # tail = nya: English 20, donor 60; head = deu + hin: 35 vs 45; all: 30 vs 50
    # Latn = deu + nya: 30 vs 65; non-Latn = hin: 30 vs 20
    assert layout.iloc[0].tolist()[1:] == ["20.0", "60.0", "35.0", "45.0", "30.0", "65.0", "30.0", "20.0",
                                           "30.0", "50.0"]
    assert len(cells) == 4 * 10 and set(cells["n_seeds"]) == {1}
    with pytest.raises(ConfigError, match="seeds must be a non-empty list of integers"):
        check_tables({"t": {**spec, "seeds": []}}, ["langsamp"], {t: {} for t in
                      ("taxi1500", "sib200", "ner", "pos", "taxi1500_donor", "sib200_donor", "ner_donor", "pos_donor")})


def test_vocab_table1_preset_per_language_recipes_missing_full_vocab_and_average():
    spec = _preset("configs/vocab-specialization.yaml", "vocab_table1")
    langs = {"hye_Armn": "hye", "eus_Latn": "eus", "myv_Cyrl": "myv", "est_Latn": "est", "heb_Hebr": "heb",
             "rus_Cyrl": "rus", "sme_Latn": "sme", "tel_Telu": "tel"}
    out = []
    for i, (lang, iso) in enumerate(langs.items()):
        recipes = {"xlmr": 0.5, f"{iso}_focus_ident_full": 0.9 - i / 100, f"{iso}_random_emb": 0.3}
        if iso in ("myv", "heb", "tel"):
            recipes[f"{iso}_fullvocab"] = 0.8
        for recipe, v in recipes.items():
            for seed in (1, 2, 3, 4):
                out.append(dict(recipe=recipe, task="pos", language=lang, seed=seed, metric="accuracy",
                                value=v + (0.01 if seed % 2 else -0.01)))
        # the metric the table does not show, and another language's model on this language
        out.append(dict(recipe="xlmr", task="pos", language=lang, seed=1, metric="f1", value=0.0))
        out.append(dict(recipe=f"{iso}_focus_ident_full", task="pos", language="fin_Latn", seed=1,
                        metric="accuracy", value=0.0))
    layout, cells = build_table(pd.DataFrame(out), spec)
    assert list(layout.columns) == ["label1", "label2", "Armenian", "Basque", "Erzya", "Estonian", "Hebrew",
                                    "Russian", "North Sami", "Telugu", "Avg"]
    by_label = {tuple(r[:2]): r[2:] for r in layout.values.tolist()}
    assert by_label[("*", "*")] == ["50.0 ± 1.2"] * 9
    full_vocab = by_label[("FULL", "*")]
    assert full_vocab[2] == full_vocab[4] == full_vocab[7] == "80.0 ± 1.2"
    assert full_vocab[0] == full_vocab[1] == full_vocab[8] == "–"  # no Armenian/Basque model: no average
    focus = by_label[("FULL", "FOCUS+IDENT")]
    assert focus[0] == "90.0 ± 1.2" and focus[7] == "83.0 ± 1.2" and focus[8] == "86.5 ± 1.2"
    assert by_label[("EMB", "RANDOM")][:8] == ["30.0 ± 1.2"] * 8
    assert by_label[("EMB", "FOCUS+IDENT")] == ["–"] * 9
    # best per column within the FULL / EMB divisions
    best = cells[cells["best"]]
    full = best[best["section"] == 1]  # sections: 0 = the rows before the first section, 1 = FULL, 2 = EMB
    assert len(full) == 9 and full["recipe"].str.contains("focus_ident_full").all()
    assert best.loc[best["section"] == 2, "recipe"].str.endswith("random_emb").sum() == 9  # Avg too


def test_hyperofa_table4_preset_rows_pair_before_and_after():
    spec = _preset("configs/hyperofa.yaml", "hyperofa_table4")
    out = [dict(recipe=e["recipe"], task=task, language="tur_Latn", seed=1, metric=m,
                value=0.2 + 0.5 * e["recipe"].endswith("_cpt"))
           for e in spec["rows"] for task, m in (("sr_t", "top10"), ("sr_b", "top10"), ("pos", "f1"),
                                                 ("ner", "f1"))]
    layout, _ = build_table(pd.DataFrame(out), spec)
    assert list(layout.columns) == ["label1", "label2", "SRT", "SRB", "POS", "NER"]
    assert layout.iloc[0].tolist() == ["HyperOFA-mono-100", "Before", "20.0", "20.0", "20.0", "20.0"]
    assert layout.iloc[1].tolist() == ["", "After", "70.0", "70.0", "70.0", "70.0"]


# -------------------------------------------------------------------------------------------- workflow


def _eval_files(workdir: Path, configfile: str) -> list[str]:
    proc = subprocess.run([SNAKEMAKE, "-n", "--cores", "1", "results/tables/results.csv", "--configfile", configfile],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted(set(re.findall(r"results/eval/[^\s,]+?/seed\d+\.csv", proc.stdout + proc.stderr)))


def _job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    out = proc.stdout + proc.stderr
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit() and not line.split()[0].endswith(":")}


def test_editing_a_table_spec_reruns_only_the_tables_job(workdir):
    cfg_path = workdir / "configs" / "smoke.yaml"
    files = _eval_files(workdir, "configs/smoke.yaml")
    assert len(files) > 2
    for f in files:
        _, _, recipe, task, seed = f.split("/")
        lines = ["recipe,task,language,seed,metric,value,config_hash,code_version"]
        lines += [f"{recipe},{task},{lang},{seed[4:-4]},f1,{0.1 * (i + 1)},h,c" for i, lang in enumerate(LANGS)]
        (workdir / f).parent.mkdir(parents=True, exist_ok=True)
        (workdir / f).write_text("\n".join(lines) + "\n")
    run = [SNAKEMAKE, "--cores", "1", "results/tables/results.csv", "--configfile", "configs/smoke.yaml"]
    proc = subprocess.run(run + ["--allowed-rules", "tables"], cwd=workdir, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    paper = workdir / "results/tables/paper"
    name = next(iter(yaml.safe_load(cfg_path.read_text())["evaluation"]["report"]["tables"]))
    layout = pd.read_csv(paper / f"{name}.csv", dtype=str, keep_default_na=False)
    # nya_Latn (0.3) is the only unseen language: tail = 30.0; all = 20.0
    assert layout.iloc[0].tolist()[1:] == ["30.0", "30.0", "15.0", "15.0", "20.0", "20.0"]
    assert (paper / f"{name}.tex").is_file() and (paper / f"{name}_cells.csv").is_file()

    proc = subprocess.run(run + ["-n"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["evaluation"]["report"]["tables"][name]["digits"] = 2
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(run + ["-n"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _job_counts(proc) == {"tables": 1, "total": 1}
