"""URIEL+ settings and prepared distances (langadapt.realign.uriel) and the realignment paper's Table 6
against the selectors (langadapt.realign.table6). Fast tests use synthetic distances; the slow test
prepares URIEL+ with the config defaults and compares every Table 6 row."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import yaml

from langadapt.core.errors import ConfigError, DataError
from langadapt.realign.pool import ENGLISH, load_pool
from langadapt.realign.selection import SELECTORS, selection_job, uses_uriel
from langadapt.realign.table6 import (
    GOAL_MAX_N,
    compare_row,
    compare_with_paper,
    goal_overlap,
    load_table6,
    write_comparison,
)
from langadapt.realign.uriel import (
    DATABASES,
    UrielSettings,
    read_record,
    uriel_settings,
    write_distances,
)

from conftest import REPO

HAS_URIEL = importlib.util.find_spec("urielplus") is not None
CODES = [*load_pool().codes, ENGLISH]


@pytest.fixture(scope="module")
def synthetic_npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(CODES), 8)) + 0.2
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    d = np.arccos(np.clip(u @ u.T, -1, 1)) / np.pi
    np.fill_diagonal(d, 0.0)
    path = tmp_path_factory.mktemp("uriel") / "uriel_distances.npz"
    write_distances(path, CODES, d, {"settings": "synthetic"})
    return path, d


# ------------------------------------------------------------------------------------------- settings
def test_dataclass_defaults_are_the_config_schema_defaults():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["uriel"]["properties"]
    defaults = {k: p["default"] for k, p in props.items()}
    assert uriel_settings(defaults) == UrielSettings()
    assert uriel_settings({}) == UrielSettings()


def test_settings_errors_name_the_key_and_value():
    with pytest.raises(ConfigError, match=r"cfg.yaml: uriel: unknown key\(s\) \['imputaton'\]"):
        uriel_settings({"imputaton": "mean"}, where="cfg.yaml: uriel")
    with pytest.raises(ConfigError, match=r"uriel.imputation: one of none, mean, softimpute, not 'knn'"):
        uriel_settings({"imputation": "knn"})
    with pytest.raises(ConfigError, match=r"uriel.databases: unknown \['WALS'\]"):
        uriel_settings({"databases": ["GRAMBANK", "WALS"]})
    with pytest.raises(ConfigError, match="geographic vectors are not imputed"):
        uriel_settings({"kind": "geographic", "imputation": "mean"})
    assert uriel_settings({"databases": "all"}).databases == DATABASES
    assert uriel_settings({"databases": ["glottolog", "GRAMBANK"]}).databases == ("GRAMBANK", "GLOTTOLOG")
    assert uriel_settings({"databases": "none"}).databases == ()


def test_config_check_rejects_a_bad_uriel_section(tmp_path):
    from langadapt.config import checks

    cfg = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    cfg["uriel"] = {"aggregation": "X"}
    with pytest.raises(ConfigError, match="uriel"):
        checks.prepare_config(cfg, source="smoke.yaml")


def test_written_distances_round_trip_and_refuse_non_finite(tmp_path, synthetic_npz):
    path, d = synthetic_npz
    assert read_record(path) == {"settings": "synthetic"}
    with np.load(path) as z:
        assert list(z["codes"]) == CODES and np.allclose(z["distances"], d)
    bad = d.copy()
    bad[0, 1] = np.nan
    with pytest.raises(DataError, match="finite"):
        write_distances(tmp_path / "bad.npz", CODES, bad, {})
    assert not (tmp_path / "bad.npz").exists()


# ---------------------------------------------------------------------------------- selection inputs
def test_uses_uriel_is_false_only_for_draws_and_own_vectors():
    assert uses_uriel({"select": "uriel_diversity", "n": 5})
    assert uses_uriel({"select": "joshi", "n": 10, "classes": [3]})
    assert not uses_uriel({"select": "joshi", "n": 10, "by": "random"})
    assert not uses_uriel({"select": "random", "n": 5})
    assert not uses_uriel({"select": "uriel_diversity", "n": 5, "features": "f.npz"})


def test_selection_job_reads_the_prepared_distances(tmp_path, synthetic_npz):
    path, d = synthetic_npz
    langs = ["eng_Latn", "deu_Latn", "hin_Deva", "jpn_Jpan", "nya_Latn", "rus_Cyrl"]
    out = tmp_path / "s.json"
    chosen = selection_job({"select": "uriel_diversity", "n": 2, "method": "exhaustive"}, langs, out,
                           distances=path)
    rec = json.loads(out.read_text())
    assert rec["record"]["distance_source"] == f"distances from {path}"
    # the exhaustive optimum over the 5 candidates + English on the synthetic matrix
    idx = {c: CODES.index(c) for c in ["deu", "hin", "jpn", "nya", "rus", ENGLISH]}
    best = max(((a, b) for a in idx for b in idx if a < b and ENGLISH not in (a, b)),
               key=lambda p: d[idx[p[0]], idx[p[1]]] + d[idx[p[0]], idx[ENGLISH]] + d[idx[p[1]], idx[ENGLISH]])
    assert sorted(c.split("_")[0] for c in chosen) == sorted(best)


# -------------------------------------------------------------------------------------------- Table 6
def test_table6_transcription_matches_the_papers_row_sizes():
    rows = load_table6()
    assert len(rows) == 33
    pool = set(load_pool().codes)
    for r in rows:
        assert r.selector in SELECTORS, r
        assert set(r.languages) <= pool, (r.row, set(r.languages) - pool)
        # the printed "Most diverse from English" n=20 row lists 22 languages (noted in the TSV header)
        assert len(r.languages) == r.n or (r.row, r.n, len(r.languages)) == ("Most diverse from English", 20, 22)
    # the two Latin-script n=20 lists are swapped in the printed table: kept under the heuristic they fit
    moved = {(r.selector, r.n): r for r in rows if r.printed is not None}
    assert set(moved) == {("latin_diverse", 20), ("latin_least_diverse", 20)}
    assert moved[("latin_diverse", 20)].printed == moved[("latin_least_diverse", 20)].languages
    european = {"deu", "est", "fin", "fra", "hun", "ita", "nld", "pol", "por", "ron", "spa"}
    assert european <= set(moved[("latin_least_diverse", 20)].languages)  # like its n = 5 and 10 lists
    least10 = next(r for r in rows if r.selector == "latin_least_diverse" and r.n == 10)
    assert set(least10.languages) <= european
    goal = [r for r in rows if r.in_goal]
    # featural 6, families 3 + Indo-European 3, scripts 3 (5, 10, 18), Latin 3 + least-diverse Latin 3
    assert len(goal) == 21 and all(r.n <= GOAL_MAX_N for r in goal)


def test_compare_row_counts_the_overlap_over_n():
    row = load_table6()[0]  # Most diverse from English, n = 5: fon, kat, kaz, lin, gaz
    got = compare_row(row, ["fon", "kat", "jpn", "tam", "twi"])
    assert got["shared"] == 2 and got["overlap"] == 0.4 == got["overlap_as_printed"] and got["note"] == ""
    assert got["only_paper"] == "gaz, kaz, lin" and got["only_ours"] == "jpn, tam, twi"


def test_comparison_table_on_synthetic_distances(tmp_path, synthetic_npz):
    path, _ = synthetic_npz
    rows = compare_with_paper(path, method="local")
    assert len(rows) == 33
    for r, paper in zip(rows, load_table6(), strict=True):
        ours = r["ours"].split(", ")
        assert len(ours) == paper.n and r["overlap"] == round(len(set(ours) & set(paper.languages)) / paper.n, 4)
    # every selector's rule holds on any distances: distinct scripts / distinct families / Latin only
    pool = load_pool()
    scripts = next(r for r in rows if r["selector"] == "script_diverse" and r["n"] == 10)["ours"].split(", ")
    assert len({pool[c].script for c in scripts}) == 10 and "Latin" not in {pool[c].script for c in scripts}
    latin = next(r for r in rows if r["selector"] == "latin_diverse" and r["n"] == 20)["ours"].split(", ")
    assert {pool[c].script for c in latin} == {"Latin"}
    out = tmp_path / "vs.csv"
    write_comparison(rows, out)
    md = out.with_suffix(".md").read_text()
    assert f"{goal_overlap(rows):.3f}" in md and out.read_text().startswith("row,selector,params,n,group")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_URIEL, reason="urielplus not installed")
def test_default_uriel_settings_reproduce_table6(tmp_path):
    """The config defaults (all databases integrated, union aggregation without filling from the parent
    language, softimpute) against Table 6: the goal of issue 17 is a mean overlap >= 0.8 over the featural,
    family, script and Latin rows with n <= 20 (measured 0.862 by benchmarks/realign_uriel_settings.py; the
    lists as printed swap the two Latin n=20 rows). ~12 min on one core: URIEL+ integrates six databases and
    imputes 26,881 languages x 828 features."""
    from langadapt.realign.table6 import comparison_job
    from langadapt.realign.uriel import distances_job

    npz = tmp_path / "uriel_distances.npz"
    record = distances_job({}, npz)
    assert record["pairs_without_shared_features"] == 0 and record["settings"]["imputation"] == "softimpute"
    goal = comparison_job(npz, tmp_path / "vs.csv")
    rows = {(r["row"], int(r["n"])): r for r in _csv(tmp_path / "vs.csv")}
    print((tmp_path / "vs.md").read_text())
    assert goal >= 0.8
    # rows reproduced exactly (15 of 33 measured), e.g. the most and least diverse 10 from English, the
    # distinct scripts, the least diverse Latin-script 10, the Joshi 4-5 pool, the languages unseen by mBERT
    for key in [("Most diverse from English", 10), ("Least diverse from English", 10),
                ("Most diverse using distinct scripts", 10), ("Most diverse using distinct scripts", 18),
                ("Least diverse using Latin scripts", 10), ("Joshi Class = 4,5 (Most URIEL)", 10),
                ("Unseen by mBERT (Most URIEL)", 10)]:
        assert float(rows[key]["overlap"]) == 1.0, (key, rows[key])
    assert sum(float(r["overlap"]) == 1.0 for r in rows.values()) >= 14


def _csv(path):
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.skipif(not HAS_URIEL, reason="urielplus not installed")
def test_glottocodes_of_the_pool_macrolanguages_come_from_their_individual_language():
    """Glottolog integration renames URIEL+'s languages to Glottocodes; uriel_glottocode_map.csv has none for
    the pool's macrolanguage codes, so they go through the individual language POOL_ALIASES maps onto them."""
    import types
    from pathlib import Path

    import urielplus.urielplus as up

    from langadapt.realign.uriel import uriel_codes

    glotto = types.SimpleNamespace(get_codes=lambda: "Glotto", cur_dir=str(Path(up.__file__).parent))
    got = dict(zip(CODES, uriel_codes(glotto, CODES), strict=True))
    assert {c: got[c] for c in ("zho", "ara", "msa", "fas", "aze", "est")} == {
        "zho": "mand1415", "ara": "stan1318", "msa": "stan1306", "fas": "west2369", "aze": "nort2697",
        "est": "esto1258"}  # cmn, arb, zsm, pes, azj, ekk in the map
    assert got["swh"] == "swah1253" and got["eng"] == "stan1293" and len(set(got.values())) == len(CODES)
    iso = types.SimpleNamespace(get_codes=lambda: "Iso")
    assert uriel_codes(iso, ["zho", "eng"]) == ["zho", "eng"]
