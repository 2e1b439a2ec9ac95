"""Aggregation: collect/validate CSVs, summary tables (means, sds, avg row), LaTeX, plot."""

import pandas as pd
import pytest

from langadapt.core.errors import DataError
from langadapt.report.aggregate import collect, plot_results, seed_stats, summary_tables, write_tables

COLS = ["recipe", "task", "language", "seed", "metric", "value", "config_hash", "code_version"]


def _rows():
    rows = []
    # base: two seeds; deu 0.2/0.4 (mean .3 sd .141421), fra 0.6/0.8 (mean .7)
    for seed, (deu, fra) in {1: (0.2, 0.6), 2: (0.4, 0.8)}.items():
        rows += [
            ("base", "sr_b", "deu_Latn", seed, "top10", deu, "h", "v"),
            ("base", "sr_b", "fra_Latn", seed, "top10", fra, "h", "v"),
        ]
    # lang_emb: one seed
    rows += [
        ("lang_emb", "sr_b", "deu_Latn", 1, "top10", 0.5, "h2", "v"),
        ("lang_emb", "sr_b", "fra_Latn", 1, "top10", 0.9, "h2", "v"),
        ("base", "genre", "eng_Latn", 1, "macro_f1", 0.25, "h", "v"),
    ]
    return pd.DataFrame(rows, columns=COLS)


def _write(tmp_path, df, name):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def test_collect_and_tables(tmp_path):
    df = _rows()
    paths = [_write(tmp_path, df.iloc[:4], "a.csv"), _write(tmp_path, df.iloc[4:], "b.csv")]
    got = collect(paths)
    # rows written before package versions were recorded read with an empty `packages` column
    assert list(got.columns) == [*COLS, "packages"] and len(got) == len(df)
    assert (got["packages"].fillna("") == "").all()

    stats = seed_stats(got).set_index(["task", "metric", "recipe", "language"])
    assert stats.loc[("sr_b", "top10", "base", "deu_Latn"), "mean"] == pytest.approx(0.3)
    assert stats.loc[("sr_b", "top10", "base", "deu_Latn"), "sd"] == pytest.approx(0.1414214)
    # avg: per-seed averages 0.4 and 0.6 -> mean 0.5, sd 0.141421
    assert stats.loc[("sr_b", "top10", "base", "avg"), "mean"] == pytest.approx(0.5)
    assert stats.loc[("sr_b", "top10", "base", "avg"), "sd"] == pytest.approx(0.1414214)

    tables = summary_tables(got)
    assert set(tables) == {"sr_b_top10", "genre_macro_f1"}
    t = tables["sr_b_top10"]
    assert list(t.index) == ["deu_Latn", "fra_Latn", "avg"] and list(t.columns) == ["base", "lang_emb"]
    assert t.loc["deu_Latn", "base"] == "30.0 ± 14.1"
    assert t.loc["fra_Latn", "lang_emb"] == "90.0"
    assert t.loc["avg", "lang_emb"] == "70.0"
    assert t.loc["avg", "base"] == "50.0 ± 14.1"


def test_write_tables_and_plot(tmp_path):
    df = _rows()
    written = write_tables(df, tmp_path / "tables")
    names = {p.name for p in written}
    assert names == {
        "results.csv",
        "sr_b_top10.csv",
        "sr_b_top10.tex",
        "genre_macro_f1.csv",
        "genre_macro_f1.tex",
    }
    assert len(pd.read_csv(tmp_path / "tables" / "results.csv")) == len(df)
    tex = (tmp_path / "tables" / "sr_b_top10.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert r"deu\_Latn" in tex and r"lang\_emb" in tex and r"30.0 $\pm$ 14.1" in tex
    other = write_tables(df, tmp_path / "by_task", all_rows_csv=tmp_path / "rows" / "all.csv")
    assert other[0] == tmp_path / "rows" / "all.csv" and other[0].is_file()
    assert not (tmp_path / "by_task" / "results.csv").exists()
    png = plot_results(df, tmp_path / "plots" / "results.png")
    assert png.stat().st_size > 1000
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name != "results.png"]


def test_collect_errors(tmp_path):
    bad = _rows().drop(columns="metric")
    with pytest.raises(DataError, match="bad.csv.*metric"):
        collect([_write(tmp_path, bad, "bad.csv")])
    nonnum = _rows().astype({"value": object})
    nonnum.loc[2, "value"] = "oops"
    with pytest.raises(DataError, match=r"nonnum.csv, line 4: value"):
        collect([_write(tmp_path, nonnum, "nonnum.csv")])
    ok = _write(tmp_path, _rows(), "ok.csv")
    with pytest.raises(DataError, match="duplicate"):
        collect([ok, _write(tmp_path, _rows(), "ok2.csv")])
    with pytest.raises(DataError, match="missing.csv"):
        collect([tmp_path / "missing.csv"])
