"""Splits, corpus building (atomic outputs, errors), corpus loading and the filter report."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from langadapt.core.errors import ConfigError, DataError
from langadapt.data.corpus import CORPUS_SCHEMA, assign_splits, build_corpus, filter_report, load_corpus

FIXTURES = Path(__file__).parent / "fixtures" / "data"
FILTERS = {"dedup": {}, "min_tokens": {}, "avg_token_length": {}, "max_token_length": {}, "alpha_ratio": {},
           "lid": {"threshold": 0.5}}  # fmt: skip
SPLIT = {"dev_fraction": 0.1, "test_fraction": 0.2, "seed": 7}


def test_splits_deterministic_and_fractions() -> None:
    ids = np.arange(1_000_000, 1_040_000, dtype=np.int64)
    a = assign_splits(ids, 0.1, 0.2, seed=3)
    assert (a == assign_splits(ids, 0.1, 0.2, seed=3)).all()
    # per-verse: the same verse gets the same split whatever else is in the corpus (any language)
    sub = ids[::7][::-1]
    assert (assign_splits(sub, 0.1, 0.2, seed=3) == a[::7][::-1]).all()
    frac = {s: float(np.mean(a == s)) for s in ("train", "dev", "test")}
    assert abs(frac["dev"] - 0.1) < 0.01 and abs(frac["test"] - 0.2) < 0.01
    assert (assign_splits(ids, 0.1, 0.2, seed=4) != a).mean() > 0.2  # the seed matters
    assert set(assign_splits(ids[:100], 0.0, 0.0, seed=0)) == {"train"}
    with pytest.raises(ConfigError, match="must be < 1"):
        assign_splits(ids, 0.5, 0.5, seed=0)
    with pytest.raises(ConfigError, match="seed"):
        assign_splits(ids, 0.1, 0.1, seed=-1)


def _local_file(tmp_path: Path) -> Path:
    lines = ["The small boat crossed the river before the morning rain.",
             "Our neighbours planted three apple trees beside the old wall.",
             "The small boat crossed the river before the morning rain.",
             "12345 67890 !!!",
             "solitary",
             "A quiet library is the best place to read on a winter evening."]  # fmt: skip
    path = tmp_path / "eng.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_build_corpus(tmp_path: Path) -> None:
    out, stats = tmp_path / "out" / "eng_Latn.parquet", tmp_path / "out" / "eng_Latn.csv"
    build_corpus("eng_Latn", {"kind": "local", "path": str(_local_file(tmp_path))}, FILTERS, SPLIT, out, stats)
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == CORPUS_SCHEMA
    assert table.column("verse_id").to_pylist() == [1, 2, 6]
    assert table.column("split").to_pylist() == assign_splits(np.array([1, 2, 6]), 0.1, 0.2, 7).tolist()
    with open(stats, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["lang", "filter", "input", "removed", "kept"]
    assert [r["filter"] for r in rows] == ["source", *FILTERS]
    assert [int(r["removed"]) for r in rows] == [0, 1, 1, 0, 0, 1, 0]
    assert rows[-1]["kept"] == "3" and all(r["lang"] == "eng_Latn" for r in rows)
    assert load_corpus(out).num_rows == 3
    assert load_corpus(out, split="train").column("split").to_pylist() == ["train"] * int(
        np.sum(table.column("split").to_numpy(zero_copy_only=False) == "train")
    )
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"good line here\n\xff bad bytes\n", r"eng\.txt: line 2: invalid UTF-8"),
     (b"\n\n", r"empty corpus: local file .*eng\.txt for eng_Latn"),
     (b"1234 5678\n", r"empty corpus: every line of eng_Latn was removed")],
)  # fmt: skip
def test_build_corpus_errors_leave_no_output(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "eng.txt"
    src.write_bytes(content)
    out, stats = tmp_path / "out" / "eng_Latn.parquet", tmp_path / "out" / "eng_Latn.csv"
    out.parent.mkdir()
    stats.write_text("stale")  # a stale output from an earlier run must not survive either
    with pytest.raises(DataError, match=message):
        build_corpus("eng_Latn", {"kind": "local", "path": str(src)}, {"alpha_ratio": {}}, SPLIT, out, stats)
    assert list(out.parent.iterdir()) == []


def test_build_corpus_config_errors(tmp_path: Path) -> None:
    src = {"kind": "local", "path": str(_local_file(tmp_path))}
    out, stats = tmp_path / "a.parquet", tmp_path / "a.csv"
    with pytest.raises(ConfigError, match="english"):
        build_corpus("english", src, {}, SPLIT, out, stats)
    with pytest.raises(ConfigError, match="unknown corpus filter 'nope'"):
        build_corpus("eng_Latn", src, {"nope": {}}, SPLIT, out, stats)
    with pytest.raises(ConfigError, match="unknown split key"):
        build_corpus("eng_Latn", src, {}, {"dev": 0.1}, out, stats)
    assert not out.exists() and not stats.exists()


def test_load_corpus_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="corpus file not found"):
        load_corpus(tmp_path / "missing.parquet")
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x\.parquet: not a corpus, missing column"):
        load_corpus(tmp_path / "x.parquet")
    (tmp_path / "y.parquet").write_text("hello")
    with pytest.raises(DataError, match=r"y\.parquet: not a Parquet corpus"):
        load_corpus(tmp_path / "y.parquet")
    with pytest.raises(ConfigError, match="unknown split 'val'"):
        load_corpus(tmp_path / "x.parquet", split="val")


def test_filter_report(tmp_path: Path) -> None:
    header = "lang,filter,input,removed,kept,note\n"
    (tmp_path / "a.csv").write_text(header + "eng_Latn,source,100,0,100,\neng_Latn,dedup,100,10,90,\n"
                                    "eng_Latn,lid,90,5,85,\n")  # fmt: skip
    (tmp_path / "b.csv").write_text(header + "nya_Latn,source,50,0,50,\nnya_Latn,dedup,50,0,50,\n")
    filter_report([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "r.csv", tmp_path / "r.tex")
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["lang", "source", "removed_dedup", "removed_lid", "kept", "kept_pct"]
    assert rows[0] == {"lang": "eng_Latn", "source": "100", "removed_dedup": "10", "removed_lid": "5",
                       "kept": "85", "kept_pct": "85.0"}  # fmt: skip
    assert rows[1]["removed_lid"] == "" and rows[1]["kept_pct"] == "100.0"
    tex = (tmp_path / "r.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"eng\_Latn & 100 & 10 & 5 & 85 & 85.0 \\" in tex
    assert r"nya\_Latn & 50 & 0 & -- & 50 & 100.0 \\" in tex
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"bad\.csv: not a filter stats CSV"):
        filter_report([tmp_path / "bad.csv"], tmp_path / "r2.csv", tmp_path / "r2.tex")
    assert not (tmp_path / "r2.csv").exists()


def test_train_fraction_keeps_same_verses_and_all_heldout():
    from langadapt.data.corpus import assign_splits

    ids = np.arange(1, 20001, dtype=np.int64) * 1000
    full = assign_splits(ids, 0.05, 0.05, 7)
    part = assign_splits(ids, 0.05, 0.05, 7, train_fraction=0.2)
    # dev/test untouched, train thinned to about 20%, the rest marked unused
    assert np.array_equal(full != "train", np.isin(part, ["dev", "test"]))
    kept = (part == "train").sum() / (full == "train").sum()
    assert 0.17 < kept < 0.23
    assert set(part[full == "train"]) == {"train", "unused"}
    # a subset of ids gets the same labels (same verses in every language)
    assert np.array_equal(assign_splits(ids[::3], 0.05, 0.05, 7, train_fraction=0.2), part[::3])
