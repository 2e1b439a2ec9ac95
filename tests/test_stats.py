"""Language groupings, grouped means over seeds, paired significance tests, and their tables."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from langadapt import config as lc
from langadapt.core.errors import ConfigError, DataError
from langadapt.report.aggregate import summary_tables
from langadapt.report.stats import (
    SIGNIFICANCE_COLUMNS,
    bh_adjust,
    grouped_means,
    grouped_tables,
    language_groups,
    paired_test,
    significance_table,
    wilcoxon_min_p,
    write_report,
)

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def rows(data: list[tuple[str, str, int, float]], task: str = "t", metric: str = "acc") -> pd.DataFrame:
    """Evaluation rows from (recipe, language, seed, value)."""
    return pd.DataFrame(
        [{"recipe": r, "task": task, "language": lang, "seed": s, "metric": metric, "value": v}
         for r, lang, s, v in data]
    )


# ------------------------------------------------------------------------------------------ groupings
def test_seen_grouping_by_model():
    langs = ["eng_Latn", "hin_Deva", "nya_Latn"]
    assert language_groups(langs, "seen", "xlmr") == {"eng_Latn": "seen", "hin_Deva": "seen", "nya_Latn": "unseen"}
    assert language_groups(langs, "seen") == language_groups(langs, "seen", "xlmr")  # xlmr is the default
    # macrolanguage / individual codes match through pool_code: swa (CC-100) and swh (L65) are one language
    assert language_groups(["swh_Latn", "swa_Latn"], "seen", "xlmr") == {"swh_Latn": "seen", "swa_Latn": "seen"}
    with pytest.raises(ConfigError, match="xlmr"):
        language_groups(langs, "seen", "gpt2")


def test_script_family_joshi_resource_groupings():
    langs = ["eng_Latn", "hin_Deva", "nya_Latn", "jpn_Jpan", "eus_Latn", "bad", "qqq_Latn"]
    assert language_groups(langs, "script") == {
        "eng_Latn": "Latin", "hin_Deva": "non-Latin", "nya_Latn": "Latin", "jpn_Jpan": "non-Latin",
        "eus_Latn": "Latin", "bad": "unknown", "qqq_Latn": "unknown",
    }
    assert language_groups(["hin_Deva", "jpn_Jpan", "aze_Cyrl"], "script_name") == {
        "hin_Deva": "Deva", "jpn_Jpan": "Jpan", "aze_Cyrl": "Cyrl"}
    fam = language_groups(langs, "family")
    assert fam["hin_Deva"] == "Indo-Iranian" and fam["nya_Latn"] == "Benue-Congo" and fam["jpn_Jpan"] == "Japonic"
    assert fam["eus_Latn"] == "isolate"  # N/A in the L65 table
    assert fam["eng_Latn"] == "unknown" and fam["bad"] == "unknown"  # English is not in the L65 table
    assert language_groups(["hin_Deva", "nya_Latn", "jpn_Jpan", "eng_Latn"], "joshi") == {
        "hin_Deva": "4", "nya_Latn": "1", "jpn_Jpan": "5", "eng_Latn": "unknown"}
    assert language_groups(["ara_Arab", "arb_Arab", "hin_Deva", "nya_Latn", "eng_Latn"], "resource") == {
        "ara_Arab": "HRL", "arb_Arab": "HRL", "hin_Deva": "MRL", "nya_Latn": "LRL", "eng_Latn": "unknown"}


def test_unknown_grouping_lists_the_choices():
    with pytest.raises(ConfigError) as exc:
        language_groups(["eng_Latn"], "continent")
    for choice in ("seen", "script", "script_name", "family", "joshi", "resource"):
        assert choice in str(exc.value)


# -------------------------------------------------------------------------------------- grouped means
def test_grouped_means_average_languages_per_seed_then_seeds():
    df = rows([
        # seed 1: Latin (eng .6, nya .2) -> .4 ; non-Latin (hin .5)
        ("a", "eng_Latn", 1, 0.6), ("a", "nya_Latn", 1, 0.2), ("a", "hin_Deva", 1, 0.5),
        # seed 2: Latin (eng .8, nya .4) -> .6 ; non-Latin (hin .7)
        ("a", "eng_Latn", 2, 0.8), ("a", "nya_Latn", 2, 0.4), ("a", "hin_Deva", 2, 0.7),
        ("b", "eng_Latn", 1, 0.9), ("b", "hin_Deva", 1, 0.3),
    ])
    g = grouped_means(df, "script").set_index(["recipe", "group"])
    assert list(g.columns) == ["task", "metric", "mean", "sd", "n_seeds", "n_languages"]
    assert g.loc[("a", "Latin"), "mean"] == pytest.approx(0.5)  # mean of .4 and .6
    assert g.loc[("a", "Latin"), "sd"] == pytest.approx(math.sqrt(0.02))  # sample sd of .4, .6
    assert g.loc[("a", "Latin"), "n_languages"] == 2 and g.loc[("a", "Latin"), "n_seeds"] == 2
    assert g.loc[("a", "non-Latin"), "mean"] == pytest.approx(0.6)
    assert g.loc[("a", "non-Latin"), "sd"] == pytest.approx(math.sqrt(0.02))
    assert g.loc[("b", "Latin"), "mean"] == pytest.approx(0.9) and math.isnan(g.loc[("b", "Latin"), "sd"])
    assert g.loc[("b", "Latin"), "n_languages"] == 1
    # group order: Latin before non-Latin
    assert list(grouped_means(df, "script").query("recipe == 'a'")["group"]) == ["Latin", "non-Latin"]


def test_grouped_tables_cells_and_latex(tmp_path):
    df = rows([
        ("a", "eng_Latn", 1, 0.6), ("a", "nya_Latn", 1, 0.2), ("a", "hin_Deva", 1, 0.5),
        ("a", "eng_Latn", 2, 0.8), ("a", "nya_Latn", 2, 0.4), ("a", "hin_Deva", 2, 0.7),
    ])
    table = grouped_tables(df, "seen")["t_acc_by_seen"]
    assert list(table.index) == ["seen", "unseen", "avg"]
    assert table.loc["seen", "languages"] == "2" and table.loc["avg", "languages"] == "3"
    assert table.loc["seen", "a"] == "65.0 ± 14.1"  # eng+hin: .55 (seed 1), .75 (seed 2)
    assert table.loc["unseen", "a"] == "30.0 ± 14.1"  # nya: .2, .4
    assert table.loc["avg", "a"] == "53.3 ± 14.1"  # all three: .433.., .633..
    assert table.loc["avg", "a"] == summary_tables(df)["t_acc"].loc["avg", "a"]  # aggregate's avg row
    written = write_report(df, tmp_path / "grouped", tmp_path / "significance.csv",
                           {"groupings": ["seen", "script"], "seen_model": "xlmr", "baseline": None})
    names = sorted(p.name for p in written)
    assert names == ["significance.csv", "t_acc_by_script.csv", "t_acc_by_script.tex",
                     "t_acc_by_seen.csv", "t_acc_by_seen.tex"]
    tex = (tmp_path / "grouped" / "t_acc_by_seen.tex").read_text()
    assert "\\toprule" in tex and "$\\pm$" in tex and "unseen" in tex
    sig = pd.read_csv(tmp_path / "significance.csv")
    assert list(sig.columns) == SIGNIFICANCE_COLUMNS and sig.empty


# ------------------------------------------------------------------------------------------ paired tests
def _paired_rows() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    langs = ["eng_Latn", "hin_Deva", "nya_Latn", "jpn_Jpan", "deu_Latn", "fra_Latn"]
    base = np.array([0.50, 0.40, 0.10, 0.30, 0.60, 0.55])
    gain = np.array([0.05, 0.10, 0.20, -0.02, 0.03, 0.08])
    data = []
    for seed, noise in ((1, 0.01), (2, -0.01)):
        for lang, b, g in zip(langs, base, gain, strict=True):
            data += [("base", lang, seed, b + noise), ("new", lang, seed, b + g - noise)]
    data.append(("new", "yor_Latn", 1, 0.9))  # only one recipe has it: not a pair
    return rows(data), base + gain, base


def test_paired_test_over_languages_matches_scipy():
    df, new, base = _paired_rows()
    res = paired_test(df, "new", "base", "t", "acc")
    assert res["n"] == 6
    assert res["mean_diff"] == pytest.approx(np.mean(new - base))  # seed noise cancels in the seed mean
    assert res["recipe_mean"] == pytest.approx(new.mean()) and res["baseline_mean"] == pytest.approx(base.mean())
    assert res["wilcoxon_p"] == pytest.approx(sps.wilcoxon(new, base).pvalue)
    assert res["ttest_p"] == pytest.approx(sps.ttest_rel(new, base).pvalue)
    # by hand: 5 of 6 differences positive, rank of the negative one is 1 -> W = 1, exact two-sided p = 4/64
    assert res["wilcoxon_p"] == pytest.approx(4 / 64)
    d = new - base
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert res["ttest_p"] == pytest.approx(2 * sps.t.sf(abs(t), len(d) - 1))


def test_paired_test_over_seeds_and_small_samples():
    df, _, _ = _paired_rows()
    res = paired_test(df, "new", "base", "t", "acc", unit="seed")
    # per seed: the average over the 6 shared languages (yor excluded)
    assert res["n"] == 2
    assert res["mean_diff"] == pytest.approx(np.mean([0.05, 0.10, 0.20, -0.02, 0.03, 0.08]))
    one = df[df["seed"] == 1]
    small = paired_test(one, "new", "base", "t", "acc", unit="seed")
    assert small["n"] == 1 and math.isnan(small["wilcoxon_p"]) and math.isnan(small["ttest_p"])
    assert small["mean_diff"] == pytest.approx(np.mean([0.05, 0.10, 0.20, -0.02, 0.03, 0.08]) - 0.02)
    none = paired_test(df, "new", "missing", "t", "acc")
    assert none["n"] == 0 and math.isnan(none["mean_diff"]) and math.isnan(none["wilcoxon_p"])
    same = paired_test(df, "base", "base", "t", "acc")
    assert same["mean_diff"] == 0 and same["wilcoxon_p"] == 1.0
    with pytest.raises(ConfigError, match="language"):
        paired_test(df, "new", "base", "t", "acc", unit="token")


def test_significance_table_every_recipe_against_the_baseline():
    df, _, _ = _paired_rows()
    other = df.assign(metric="top10")
    extra = other[other["recipe"] == "new"].assign(recipe="third", value=lambda x: x["value"] + 0.01)
    sig = significance_table(pd.concat([df, other, extra]), "base")
    assert list(sig.columns) == SIGNIFICANCE_COLUMNS
    assert list(sig["recipe"]) == ["new", "third"] and set(sig["metric"]) == {"top10"}  # the main metric
    assert (sig["n"] == 6).all() and (sig["baseline"] == "base").all()
    # one family (the task): BH over its 2 comparisons; 6 pairs can reach p < 0.05 (2/64), no note
    assert sig["wilcoxon_p_bh"].tolist() == pytest.approx(list(bh_adjust(sig["wilcoxon_p"])))
    assert (sig["wilcoxon_p_bh"] >= sig["wilcoxon_p"]).all()
    assert sig["wilcoxon_min_p"].tolist() == [2 / 64, 2 / 64] and sig["note"].fillna("").eq("").all()
    with pytest.raises(DataError, match="'nope'"):
        significance_table(df, "nope")


def test_benjamini_hochberg_by_hand():
    # sorted p 0.01, 0.03, 0.04 (m = 3): p * m / rank = 0.03, 0.045, 0.04; running min from the top
    assert bh_adjust([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.04, 0.04])
    # NaN p-values (fewer than 2 pairs) stay NaN and do not enlarge the family: m = 2
    out = bh_adjust([0.02, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert bh_adjust([]).size == 0


def test_a_test_that_cannot_reach_significance_is_flagged(caplog):
    # 5 languages, every difference positive: the most extreme result the Wilcoxon test has, p = 2/32
    langs = ["deu_Latn", "fra_Latn", "hin_Deva", "swh_Latn", "yor_Latn"]
    df = rows([(r, lang, 1, 0.5 + (0.1 * k if r == "new" else 0)) for r in ("base", "new")
               for k, lang in enumerate(langs, 1)])
    with caplog.at_level("WARNING", "langadapt.report.stats"):
        sig = significance_table(df, "base")
    row = sig.iloc[0]
    assert row["n"] == 5 and wilcoxon_min_p(5) == 0.0625
    assert row["wilcoxon_p"] == pytest.approx(0.0625)  # scipy's exact test reaches that floor and no lower
    assert "cannot reach p < 0.05: 5 pairs" in row["note"] and "0.0625" in row["note"]
    assert "cannot reach p < 0.05" in caplog.text


# ------------------------------------------------------------------------------------------ workflow
def test_editing_the_report_reruns_only_the_tables_job(workdir):
    """Run the tables job on fake evaluation rows, then change `evaluation.report`: only its outputs
    have changed params, and a dry run reruns the tables job alone."""
    cfg_path = workdir / "configs" / "smoke.yaml"
    raw = yaml.safe_load(cfg_path.read_text())
    jobs = lc.eval_jobs(lc.prepare_config(yaml.safe_load(cfg_path.read_text())))
    for recipe, task, seed in jobs:
        out = workdir / "results" / "eval" / recipe / task / f"seed{seed}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        rows([(recipe, lang, seed, 0.5) for lang in ("eng_Latn", "nya_Latn")], task=task, metric="top10").assign(
            config_hash="h", code_version="v").to_csv(out, index=False)

    def smk(*args: str) -> str:
        proc = subprocess.run([SNAKEMAKE, "--cores", "1", *args, "--configfile", "configs/smoke.yaml"],
                              cwd=workdir, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    tables_only = ("results/tables/results.csv", "--allowed-rules", "tables")  # evaluation rows as given
    smk(*tables_only)
    assert (workdir / "results" / "tables" / "grouped" / "srb_bible_top10_by_script.csv").is_file()
    assert (workdir / "results" / "tables" / "significance.csv").is_file()
    assert "Nothing to be done" in smk("-n", *tables_only)

    raw["evaluation"]["report"] = {"groupings": ["seen", "family"], "baseline": jobs[0][0]}
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = smk("-n", *tables_only)
    assert "rule tables:" in out and "Params have changed" in out and "family" in out
    # the evaluation jobs' params are their task's spec only: the report is not part of them
    assert "report" not in lc.canonical(lc.prepare_config(raw)["evaluation"]["tasks"])
    smk(*tables_only)
    assert (workdir / "results" / "tables" / "grouped" / "srb_bible_top10_by_family.csv").is_file()
    sig = pd.read_csv(workdir / "results" / "tables" / "significance.csv")
    assert not sig.empty and (sig["baseline"] == jobs[0][0]).all()
