"""Parallel pairs (pivot x language inner join on verse id) and language sampling probabilities."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from langadapt.core.errors import ConfigError, DataError
from langadapt.data.corpus import CORPUS_SCHEMA, assign_splits
from langadapt.data.parallel import PARALLEL_SCHEMA, build_parallel, load_parallel
from langadapt.data.sampling import sampling_probs, write_sampling_table


def _corpus(path: Path, ids: list[int], prefix: str, seed: int = 0) -> Path:
    arr = np.array(ids, dtype=np.int64)
    table = pa.table({"verse_id": arr, "book": (arr // 1_000_000).astype(np.int16),
                      "text": [f"{prefix} {i}" for i in ids],
                      "split": assign_splits(arr, 0.25, 0.25, seed).tolist()}, schema=CORPUS_SCHEMA)  # fmt: skip
    pq.write_table(table, path)
    return path


def test_build_parallel(tmp_path: Path) -> None:
    ids = [1_001_001 + i for i in range(40)]
    paths = {"eng_Latn": _corpus(tmp_path / "eng.parquet", ids, "en"),
             "nya_Latn": _corpus(tmp_path / "nya.parquet", ids[5:], "ny"),
             "deu_Latn": _corpus(tmp_path / "deu.parquet", ids[:10] + [2_001_001], "de")}  # fmt: skip
    build_parallel(paths, "eng_Latn", tmp_path / "par.parquet")
    table = load_parallel(tmp_path / "par.parquet")
    assert table.schema == PARALLEL_SCHEMA
    assert table.column("lang").to_pylist() == ["deu_Latn"] * 10 + ["nya_Latn"] * 35
    row = table.slice(10, 1).to_pylist()[0]
    assert row == {"lang": "nya_Latn", "verse_id": ids[5], "book": 1, "split": row["split"],
                   "src_text": f"en {ids[5]}", "tgt_text": f"ny {ids[5]}"}  # fmt: skip
    assert row["split"] == assign_splits(np.array([ids[5]]), 0.25, 0.25, 0)[0]
    test = load_parallel(tmp_path / "par.parquet", langs=["nya_Latn"], split="test")
    assert set(test.column("split").to_pylist()) == {"test"} and set(test.column("lang").to_pylist()) == {"nya_Latn"}
    assert 0 < test.num_rows < 35


def test_build_parallel_errors(tmp_path: Path) -> None:
    eng = _corpus(tmp_path / "eng.parquet", [1, 2, 3], "en")
    with pytest.raises(ConfigError, match="pivot language eng_Latn has no corpus"):
        build_parallel({"nya_Latn": eng}, "eng_Latn", tmp_path / "p.parquet")
    other = _corpus(tmp_path / "nya.parquet", [7, 8], "ny")
    with pytest.raises(DataError, match="no parallel pairs"):
        build_parallel({"eng_Latn": eng, "nya_Latn": other}, "eng_Latn", tmp_path / "p.parquet")
    ids = list(range(1, 200))
    mixed = _corpus(tmp_path / "mixed.parquet", ids, "ny", seed=99)
    eng = _corpus(tmp_path / "eng.parquet", ids, "en", seed=1)
    with pytest.raises(DataError, match="different split"):
        build_parallel({"eng_Latn": eng, "nya_Latn": mixed}, "eng_Latn", tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()
    with pytest.raises(DataError, match="parallel file not found"):
        load_parallel(tmp_path / "p.parquet")


def test_sampling_probs() -> None:
    sizes = {"eng_Latn": 9000, "hin_Deva": 900, "nya_Latn": 100}
    for alpha in (0.0, 0.2, 0.3, 1.0):
        assert math.isclose(sum(sampling_probs(sizes, alpha).values()), 1.0)
    natural = sampling_probs(sizes, 1.0)
    assert natural == pytest.approx({"eng_Latn": 0.9, "hin_Deva": 0.09, "nya_Latn": 0.01})
    assert sampling_probs(sizes, 0.0) == pytest.approx(dict.fromkeys(sizes, 1 / 3))
    q = sampling_probs(sizes, 0.3)
    assert q["nya_Latn"] > natural["nya_Latn"] and q["eng_Latn"] < natural["eng_Latn"]
    assert sampling_probs({**sizes, "empty": 0}, 0.0)["empty"] == 0.0
    with pytest.raises(ConfigError, match="alpha"):
        sampling_probs(sizes, -0.1)
    with pytest.raises(DataError, match="every corpus is empty"):
        sampling_probs({"eng_Latn": 0}, 0.3)


def test_write_sampling_table(tmp_path: Path) -> None:
    paths = {"eng_Latn": _corpus(tmp_path / "eng.parquet", list(range(1, 401)), "en"),
             "nya_Latn": _corpus(tmp_path / "nya.parquet", list(range(1, 41)), "ny")}  # fmt: skip
    write_sampling_table(paths, 0.3, tmp_path / "s.csv")
    with open(tmp_path / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["lang"] for r in rows] == ["eng_Latn", "nya_Latn"]
    n = [int(r["n_train_lines"]) for r in rows]
    assert 0 < n[1] < n[0] < 400
    assert math.isclose(sum(float(r["p_sampled"]) for r in rows), 1.0)
    assert float(rows[0]["p_natural"]) == pytest.approx(n[0] / sum(n))
