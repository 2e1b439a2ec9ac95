"""Realignment reports (langadapt.report.realign) and the packaged seen-language lists of the selectors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from langadapt.core.errors import ConfigError, DataError
from langadapt.dag.targets import realign_design
from langadapt.realign.pool import ENGLISH, POOL_ALIASES, load_pool, seen_languages
from langadapt.realign.selection import check_params, select, selection_job
from langadapt.report.realign import (
    realign_scaling,
    scaling_recipes,
    scaling_table,
    subset_rows,
    subsets_table,
)

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
RESOURCES = Path(__file__).resolve().parents[1] / "src" / "langadapt" / "resources"

# Table 6 of the realignment paper: "Seen by XLM-R (Random)" and "Seen by mBERT (Random)", i.e. the L65
# languages each model saw in pretraining (the paper's counts 51 / 47 do not match its own lists).
PAPER_SEEN_XLMR = set("afr amh ara aze bul ben deu ell spa est eus fas fin fra gaz guj hau heb hin hun ind ita "
                      "jpn jav kat kaz kor lit mar mal msa mya nld pan pol por ron rus swh tam tel tgl tha tur "
                      "ukr urd vie xho zho".split())
PAPER_SEEN_MBERT = set("afr ara aze bul ben deu ell spa est eus fas fin fra guj heb hin hun ind ita jpn jav kat "
                       "kaz kor lit mar mal msa mya nld pan pol por ron rus swh tam tel tgl tha tur ukr urd vie "
                       "yor zho".split())
PAPER_UNSEEN_XLMR = set("bam ewe fon ibo kin lin lug luo mos nya sna tsn twi wol yor zul".split())


@pytest.fixture(scope="module")
def pool():
    return load_pool()


@pytest.fixture(scope="module")
def feats(pool):
    rng = np.random.default_rng(0)
    return {c: rng.normal(size=12) + 0.3 for c in [*pool.codes, ENGLISH]}


# ------------------------------------------------------------------------------------- seen lists
def _seen_rows() -> pd.DataFrame:
    return pd.read_csv(RESOURCES / "seen_languages.tsv", sep="\t", comment="#", dtype=str, keep_default_na=False)


def test_seen_tsv_has_one_row_per_model_language_and_valid_codes():
    import pycountry

    rows = _seen_rows()
    assert list(rows.columns[:2]) == ["model", "iso639_3"] and "note" in rows.columns
    assert rows["model"].value_counts().to_dict() == {"mbert": 104, "xlmr": 100}
    assert all(pycountry.languages.get(alpha_3=c) is not None for c in rows["iso639_3"])
    assert not set(rows["iso639_3"]) & set(POOL_ALIASES)  # only the pool's spelling of macrolanguages
    header = (RESOURCES / "seen_languages.tsv").read_text().splitlines()[0]
    assert header.startswith("#") and "XLM-R" in header


def test_seen_lists_contents_and_pool_split_match_the_paper(pool):
    xlmr, mbert = seen_languages("xlmr"), seen_languages("mbert")
    assert {"eng", "hin", "swh", "gaz", "amh", "xho", "hau", "msa", "zho", "ara", "fas", "aze"} <= xlmr
    assert not {"nya", "yor", "zul", "twi", "ibo", "lin", "wol"} & xlmr
    assert {"eng", "yor", "swh", "tha", "mon", "nob", "nno", "hbs", "pnb", "azb"} <= mbert
    assert not {"amh", "hau", "xho", "gaz", "nya", "zul"} & mbert
    assert len(xlmr) == 93 and len(mbert) == 103  # romanized / Traditional Chinese share codes
    assert {c for c in pool.codes if c in xlmr} == PAPER_SEEN_XLMR
    assert {c for c in pool.codes if c not in xlmr} == PAPER_UNSEEN_XLMR
    assert {c for c in pool.codes if c in mbert} == PAPER_SEEN_MBERT


def test_seen_selectors_take_a_model(pool, feats):
    sel = select("unseen", pool, 5, seed=17, model="xlmr", features=feats, method="local")
    assert len(sel.languages) == 5 and set(sel.languages) <= PAPER_UNSEEN_XLMR
    assert sel.record["model"] == "xlmr" and sel.record["heuristic"] == "unseen"
    sel = select("seen", pool, 5, seed=17, model="mbert", features=feats, method="local")
    assert set(sel.languages) <= PAPER_SEEN_MBERT and sel.record["model"] == "mbert"
    # an explicit list may use macrolanguage / individual codes other than the pool's
    small = load_pool(codes=["deu", "nya", "swh", "zho"])
    sel = select("seen", small, 2, seen=["cmn", "swa"], features=feats, method="exhaustive")
    assert sel.languages == ["swh", "zho"] and sel.record["seen_given"] == 2


@pytest.mark.parametrize(("params", "message"), [
    ({}, "give `model`"),
    ({"model": "xlmr", "seen": ["deu"]}, "not both"),
    ({"model": "gpt2"}, "unknown model 'gpt2'"),
    ({"seen": "deu"}, "list of ISO 639-3"),
])
def test_seen_selector_errors(pool, feats, params, message):
    for name in ("seen", "unseen"):
        with pytest.raises(ConfigError, match=message):
            select(name, pool, 3, features=feats, **params)
        with pytest.raises(ConfigError, match=f"realignment.x.languages: {name}: .*{message}"):
            check_params(name, {"select": name, "n": 3, **params}, where="realignment.x.languages")
    with pytest.raises(ConfigError, match="unknown model 'gpt2' for the seen-language lists; known: mbert, xlmr"):
        seen_languages("gpt2")
    check_params("seen", {"select": "seen", "n": 3, "model": "xlmr"})
    check_params("uriel_diversity", {"select": "uriel_diversity", "n": 3, "model": "anything"})


def test_selection_job_maps_macrolanguage_config_codes_and_records_the_spec(tmp_path, feats):
    langs = ["eng_Latn", "cmn_Hani", "deu_Latn", "hin_Deva", "nya_Latn"]
    spec = {"select": "seen", "n": 3, "model": "xlmr", "method": "exhaustive",
            "features": {c: list(map(float, v)) for c, v in feats.items()}}
    out = tmp_path / "sel.json"
    assert selection_job(spec, langs, out) == ["cmn_Hani", "deu_Latn", "hin_Deva"]
    doc = json.loads(out.read_text())
    assert doc["iso"] == ["deu", "hin", "zho"] and doc["spec"]["model"] == "xlmr"
    assert doc["record"]["model"] == "xlmr" and doc["record"]["optimal"] is True


# ------------------------------------------------------------------------------------ subsets table
def _write_selection(path: Path, spec: dict, iso: list[str], **record) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"heuristic": spec["select"], "n": spec["n"], **record}
    path.write_text(json.dumps({"languages": [f"{c}_Latn" for c in iso], "iso": iso, "spec": spec,
                                "record": rec}))
    return path


@pytest.fixture
def selections(tmp_path):
    d = tmp_path / "selection"
    return [
        _write_selection(d / "rand3.json", {"select": "random", "n": 3, "seed": 17}, ["bam", "fon", "wol"],
                         seed=17, objective=None, optimal=None, solver="random.Random.sample"),
        _write_selection(d / "umax10.json", {"select": "uriel_diversity", "n": 10, "direction": "max"},
                         ["afr", "ara", "kat", "jpn", "kaz", "msa", "gaz", "swh", "vie", "zho"], direction="max",
                         seed=0, objective=21.5, optimal=False, solver="greedy+swap, pulp-cbc"),
        _write_selection(d / "umax5.json", {"select": "uriel_diversity", "n": 5, "seed": 3, "time_limit": 9},
                         ["kat", "kaz", "lin", "gaz", "vie"], direction="max", seed=3, objective=4.25, optimal=True,
                         solver="greedy+swap, pulp-cbc"),
        _write_selection(d / "umin5.json", {"select": "uriel_diversity", "n": 5, "direction": "min"},
                         ["nld", "fra", "deu", "ita", "por"], direction="min", objective=1.125, optimal=True,
                         solver="exhaustive"),
        _write_selection(d / "joshi.json", {"select": "joshi", "n": 2, "classes": [3, 2]}, ["amh", "kat"],
                         classes=[2, 3], objective=0.5, optimal=True, solver="exhaustive"),
        _write_selection(d / "unseen.json", {"select": "unseen", "n": 2, "model": "xlmr"}, ["fon", "lin"],
                         model="xlmr", objective=0.75, optimal=True, solver="exhaustive"),
    ]


EXPECTED_SUBSETS_CSV = """\
heuristic,params,n,size,languages,objective,optimal,solver,entry
uriel_diversity,direction=max,5,5,"kat, kaz, lin, gaz, vie",4.25,True,"greedy+swap, pulp-cbc",umax5
uriel_diversity,direction=max,10,10,"afr, ara, kat, jpn, kaz, msa, gaz, swh, vie, zho",21.5,False,"greedy+swap, pulp-cbc",umax10
uriel_diversity,direction=min,5,5,"nld, fra, deu, ita, por",1.125,True,exhaustive,umin5
joshi,"classes=2,3",2,2,"amh, kat",0.5,True,exhaustive,joshi
unseen,model=xlmr,2,2,"fon, lin",0.75,True,exhaustive,unseen
random,seed=17,3,3,"bam, fon, wol",,,random.Random.sample,rand3
"""  # noqa: E501


def test_subsets_table_rows_and_files(selections, tmp_path):
    df = subset_rows(selections)
    assert list(df["entry"]) == ["umax5", "umax10", "umin5", "joshi", "unseen", "rand3"]
    out_csv, out_tex = tmp_path / "t" / "realign_subsets.csv", tmp_path / "t" / "realign_subsets.tex"
    subsets_table(selections, out_csv, out_tex)
    assert out_csv.read_text() == EXPECTED_SUBSETS_CSV
    tex = out_tex.read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and tex.count("\\midrule") == 1 + 3  # header + 3 heuristic changes
    assert "uriel\\_diversity & direction=max & 5 & kat, kaz, lin, gaz, vie & 4.250 & yes \\\\" in tex
    assert "random & seed=17 & 3 & bam, fon, wol & -- & -- \\\\" in tex


def test_subsets_table_bad_file_names_it(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        subset_rows([bad])
    bad.write_text('{"languages": []}')
    with pytest.raises(DataError, match="bad.json.*record"):
        subset_rows([bad])


# ---------------------------------------------------------------------------------------- scaling
BASE = {"ft": 0.40, "full": 0.60, "u5": 0.50, "u10": 0.56, "r5a": 0.50, "r5b": 0.54, "mb_ft": 0.30}
TASK = {"sr": 0.10, "nli": -0.10}
LANG = {"deu_Latn": 0.02, "nya_Latn": -0.02}
SEED = {1: -0.01, 2: 0.01}


def _design() -> dict:
    def sel(n, **kw):
        return {"select": "uriel_diversity", "n": n, **kw}

    return {"pivot": "eng_Latn", "recipes": {
        "ft": {"base": "xlmr", "realign": None, "languages": None},
        "full": {"base": "xlmr", "realign": "all65", "languages": None},
        "u5": {"base": "xlmr", "realign": "u5", "languages": sel(5)},
        "u10": {"base": "xlmr", "realign": "u10", "languages": sel(10, method="ilp")},
        "r5a": {"base": "xlmr", "realign": "r5a", "languages": {"select": "random", "n": 5, "seed": 17}},
        "r5b": {"base": "xlmr", "realign": "r5b", "languages": {"select": "random", "n": 5, "seed": 23}},
        "mb_ft": {"base": "mbert", "realign": None, "languages": None},
    }}


def _rows(recipes=BASE) -> pd.DataFrame:
    rows = []
    for recipe, b in recipes.items():
        for seed, s in SEED.items():
            for task, t in TASK.items():
                main = "top10" if task == "sr" else "accuracy"
                for lang, lo in LANG.items():
                    rows.append((recipe, task, lang, seed, main, b + t + lo + s))
                    if task == "sr":  # not the main metric: ignored
                        rows.append((recipe, task, lang, seed, "top1", 0.0))
                rows.append((recipe, task, "eng_Latn", seed, main, 1.0))  # the pivot: ignored
    df = pd.DataFrame(rows, columns=["recipe", "task", "language", "seed", "metric", "value"])
    return df.assign(config_hash="h", code_version="v")


def test_scaling_table_means_over_languages_tasks_and_seeds():
    design = _design()
    assert scaling_recipes(design) == ["ft", "full", "u5", "u10", "r5a", "r5b"]  # not mbert's
    table = scaling_table(_rows(), design, {"u5": {"iso": ["a"] * 5, "record": {"direction": "max"}}})
    assert list(table.columns) == ["base", "kind", "series", "heuristic", "params", "n", "recipes", "mean", "sd",
                                   "runs", "nli/accuracy", "sr/top10"]
    got = table.set_index("series")
    assert list(table["series"]) == ["uriel_diversity (direction=max)", "uriel_diversity (direction=max)",
                                     "random", "full (realign all languages)", "fine-tuning only (ft)"]
    assert list(table["kind"]) == ["selector"] * 3 + ["realign_fixed", "finetune_only"]
    assert list(table["n"].astype(object)) == [5, 10, 5, pd.NA, pd.NA]
    u = table[table["heuristic"] == "uriel_diversity"].set_index("n")
    assert u.loc[5, "mean"] == pytest.approx(50.0) and u.loc[10, "mean"] == pytest.approx(56.0)
    assert u.loc[5, "sd"] == pytest.approx(np.sqrt(2.0)) and u.loc[5, "runs"] == 2
    assert u.loc[5, "sr/top10"] == pytest.approx(60.0) and u.loc[5, "nli/accuracy"] == pytest.approx(40.0)
    assert u.loc[5, "recipes"] == "u5" and u.loc[10, "params"] == "direction=max"  # the method does not count
    r = got.loc["random"]
    assert r["recipes"] == "r5a;r5b" and r["runs"] == 4
    assert r["mean"] == pytest.approx(52.0) and r["sd"] == pytest.approx(np.std([49, 51, 53, 55], ddof=1))
    assert got.loc["fine-tuning only (ft)", "mean"] == pytest.approx(40.0)
    assert got.loc["full (realign all languages)", "mean"] == pytest.approx(60.0)


def test_scaling_single_seed_and_missing_recipe():
    df = _rows({"ft": 0.4, "u5": 0.5})
    df = df[df["seed"] == 2]
    table = scaling_table(df, _design())
    assert list(table["recipes"]) == ["u5", "ft"]  # recipes without rows are left out
    assert table.loc[0, "mean"] == pytest.approx(51.0) and np.isnan(table.loc[0, "sd"])
    assert table.loc[0, "series"] == "uriel_diversity (direction=max)"  # no record: the selector default


def test_realign_scaling_writes_csv_and_plot(tmp_path):
    design = _design()
    design["recipes"]["mb_u5"] = {"base": "mbert", "realign": "mb5", "languages": {"select": "joshi", "n": 5,
                                                                                  "classes": [2]}}
    sel = _write_selection(tmp_path / "selection" / "u5.json", {"select": "uriel_diversity", "n": 5},
                           ["kat", "kaz", "lin", "gaz", "vie"], direction="max", objective=1.0, optimal=True)
    out_csv, out_png = tmp_path / "tables" / "realign_scaling.csv", tmp_path / "plots" / "realign_scaling.png"
    table = realign_scaling(_rows({**BASE, "mb_u5": 0.35}), design, [sel], out_csv, out_png)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 10_000
    csv = pd.read_csv(out_csv)
    assert len(csv) == len(table) == 7 and set(csv["base"]) == {"xlmr", "mbert"}
    assert csv.loc[csv["recipes"] == "mb_u5", "series"].item() == "joshi (classes=2)"
    assert csv.loc[csv["recipes"] == "mb_ft", "mean"].item() == pytest.approx(30.0)
    with pytest.raises(DataError, match="no evaluation rows"):
        realign_scaling(_rows({"ft": 0.4}), design, [], out_csv, out_png)


def test_realign_design_from_a_config():
    config = {"pivot": "eng_Latn", "evaluation": {"recipes": None},
              "realignment": {"s": {"languages": {"select": "random", "n": 2}}, "fixed": {"languages": ["deu_Latn"]}},
              "recipes": {"b": {"base": "m"}, "lapt": {"base": "m", "pretrain": "p"},
                          "sel": {"from": "lapt", "realign": "s"}, "fix": {"from": "lapt", "realign": "fixed"},
                          "after": {"from": "sel", "pretrain": "p"}, "other": {"base": "o"}}}
    design = realign_design(config)
    assert design["recipes"]["after"] == {"base": "m", "realign": "s", "languages": {"select": "random", "n": 2}}
    assert design["recipes"]["lapt"]["realign"] is None and design["recipes"]["fix"]["languages"] == ["deu_Latn"]
    assert scaling_recipes(design) == ["b", "lapt", "sel", "fix", "after"]


# --------------------------------------------------------------------------------------- workflow
def _dry_run(workdir: Path, mutate) -> subprocess.CompletedProcess:
    cfg = yaml.safe_load((workdir / "configs" / "smoke.yaml").read_text())
    mutate(cfg)
    (workdir / "configs" / "sel.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return subprocess.run([SNAKEMAKE, "--cores", "2", "-n", "--configfile", "configs/sel.yaml"], cwd=workdir,
                          capture_output=True, text=True, timeout=300)


def _with_selectors(cfg: dict, recipes: bool = True) -> None:
    base = dict(cfg["realignment"]["pairs_tiny"])
    for name, langs in {"sel_u1": {"select": "uriel_diversity", "n": 1},
                        "sel_u2": {"select": "uriel_diversity", "n": 2, "direction": "max"},
                        "sel_r2": {"select": "random", "n": 2, "seed": 17},
                        "sel_unseen": {"select": "unseen", "n": 1, "model": "xlmr"}}.items():
        cfg["realignment"][name] = {**base, "languages": langs}
    if recipes:
        for name in ("sel_u1", "sel_u2", "sel_r2"):
            cfg["recipes"][f"tiny_{name}"] = {"from": "tiny_lapt", "realign": name}


def test_dry_run_schedules_the_realignment_reports(workdir):
    proc = _dry_run(workdir, _with_selectors)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule subsets_table:" in out and "rule realign_scaling:" in out
    for name in ("sel_u1", "sel_u2", "sel_r2", "sel_unseen"):
        assert f"results/selection/{name}.json" in out
    assert "results/tables/realign_subsets.tex" in out and "results/plots/realign_scaling.png" in out
    assert "results/eval/tiny_sel_u2/srb_bible/seed1.csv" in out
    assert not (workdir / "results").exists()


def test_dry_run_without_selector_recipes_has_only_the_subsets_table(workdir):
    proc = _dry_run(workdir, lambda c: _with_selectors(c, recipes=False))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule subsets_table:" in out and "rule realign_scaling:" not in out
    proc = _dry_run(workdir, lambda c: None)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "subsets_table" not in out and "realign_scaling" not in out


def test_dry_run_rejects_a_bad_seen_model(workdir):
    def mutate(cfg):
        cfg["realignment"]["pairs_tiny"]["languages"] = {"select": "unseen", "n": 1, "model": "gpt2"}

    proc = _dry_run(workdir, mutate)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "invalid configuration" in out and "realignment.pairs_tiny.languages" in out and "'gpt2'" in out
    assert not (workdir / "results").exists()
