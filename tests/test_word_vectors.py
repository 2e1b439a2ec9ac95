"""Word-vector kinds: the ColexNet+ reader (word2vec text/binary, plain/gzip), the offline bible_aligned
builder, the rule (dry run)."""

from __future__ import annotations

import gzip
import hashlib
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from langadapt.core.errors import ConfigError, DataError
from langadapt.data.corpus import CORPUS_SCHEMA
from langadapt.vectors.base import (
    WORD_VECTOR_KINDS,
    build_word_vectors,
    load_word_vectors,
    read_meta,
    surface_form,
    word_vector_kind,
)
from langadapt.vectors.kinds import read_word2vec, verse_words

# ColexNet+ conventions: "iso:ngram" tokens, English concept nodes unprefixed, "$" = word boundary
COLEX = [
    ("house", [1.0, 0.0, 0.0]),
    ("deu:$haus$", [1.0, 0.1, 0.0]),
    ("deu:aus$", [0.5, 0.5, 0.0]),
    ("deu:123", [0.0, 1.0, 0.0]),  # digits only: the language's most common script
    ("jpn:日本", [0.0, 0.0, 1.0]),
    ("zho:中国", [0.0, 0.0, 2.0]),
    ("xyz:!!", [0.0, 0.0, 3.0]),  # no script at all in this language
]


def write_text(path: Path, rows=COLEX, header: str | None = None) -> Path:
    lines = [header or f"{len(rows)} {len(rows[0][1])}"] + [f"{t} {' '.join(map(str, v))}" for t, v in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_binary(path: Path, rows=COLEX) -> Path:
    out = bytearray(f"{len(rows)} {len(rows[0][1])}\n".encode())
    for t, v in rows:
        out += t.encode("utf-8") + b" " + struct.pack(f"<{len(v)}f", *v) + b"\n"
    path.write_bytes(gzip.compress(bytes(out)) if path.suffix == ".gz" else bytes(out))
    return path


@pytest.mark.parametrize("name", ["cx.txt", "cx.txt.gz", "cx.bin", "cx.bin.gz"])
def test_colexnet_reader_formats_prefixes_and_scripts(tmp_path, name):
    path = (write_binary if ".bin" in name else write_text)(tmp_path / name)
    meta = build_word_vectors({"kind": "colexnet", "path": str(path)}, tmp_path / "out")
    wv = load_word_vectors(tmp_path / "out")
    assert wv.words == ["house", "$haus$", "aus$", "123", "日本", "中国", "!!"]
    assert wv.langs == ["eng_Latn", "deu_Latn", "deu_Latn", "deu_Latn", "jpn_Jpan", "zho_Hani", "xyz_Zyyy"]
    assert np.allclose(wv.vectors, np.array([v for _, v in COLEX], dtype=np.float32))
    assert meta["boundary_marker"] == "$" and meta["kind"] == "colexnet" and meta["n"] == 7 and meta["dim"] == 3
    assert read_meta(tmp_path / "out")["languages"] == 5
    assert surface_form("$haus$", "$") == " haus" and surface_form("aus$", "$") == "aus"


def test_colexnet_language_filter_max_words_and_sha256(tmp_path):
    path = write_text(tmp_path / "cx.txt")
    spec = {"kind": "colexnet", "path": str(path), "languages": ["deu_Latn", "eng"], "max_words": 4,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    build_word_vectors(spec, tmp_path / "out")
    wv = load_word_vectors(tmp_path / "out")
    assert wv.words == ["house", "$haus$", "aus$", "123"]
    with pytest.raises(DataError, match="sha256 mismatch"):
        build_word_vectors({**spec, "sha256": "0" * 64}, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("3 3\nhouse 1 0 0\ndeu:haus 1 0\nx 0 0 0\n", r"cx.txt: line 3: expected a token and 3 values"),
        ("3 3\nhouse 1 0 0\ndeu:haus 1 0 0\nx 0 zero 0\n", r"cx.txt: line 4: a value is not a number"),
        ("house 1 0 0\n", r"cx.txt: line 1: expected a word2vec header"),
        ("5 3\nhouse 1 0 0\n", r"header says 5 vectors but the file has 1"),
        ("1 3\nhouse 1 0 0\nx 1 1 1\n", r"cx.txt: line 3: more vectors than the header's count 1"),
    ],
    ids=["too-few-values", "not-a-number", "no-header", "truncated", "too-many"],
)
def test_colexnet_malformed_file_names_file_and_line(tmp_path, body, match):
    (tmp_path / "cx.txt").write_text(body)
    with pytest.raises(DataError, match=match):
        build_word_vectors({"kind": "colexnet", "path": str(tmp_path / "cx.txt")}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "cx.bin").write_bytes(b"2 3\nhouse " + struct.pack("<3f", 1, 0, 0) + b"\nx " + b"\0\0")
    with pytest.raises(DataError, match="vector 2 of 2: file ends early"):
        list(read_word2vec(tmp_path / "cx.bin"))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"kind": "colexnet"}, "either 'path'"),
        ({"kind": "colexnet", "path": "a", "repo_id": "x/y", "filename": "f"}, "either 'path'"),
        ({"kind": "colexnet", "repo_id": "x/y"}, "both 'repo_id' and 'filename'"),
        ({"kind": "colexnet", "path": "a", "colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({"kind": "bible_aligned", "dim": 0}, r"wv.dim must be a positive integer"),
        ({"kind": "bible_aligned", "languages": ["xx"]}, "malformed language code"),
        ({"kind": "glove"}, "unknown word vector kind 'glove'"),
    ],
)
def test_bad_specs_raise_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        word_vector_kind(spec, where="wv")


def test_verse_words_lowercase_punctuation_marks_and_bigrams():
    assert verse_words("The King's house, (Haus)!", False) == {"the", "king", "s", "house", "haus"}
    assert verse_words("राजा का घर", False) == {"राजा", "का", "घर"}  # vowel signs stay in the word
    assert verse_words("王様の家。水", True) == {"王様", "様の", "の家", "水"}


ENG = ["water", "bread", "king", "house", "river", "light", "stone", "sheep", "city", "night"]
DEU = ["wasser", "brot", "könig", "haus", "fluss", "licht", "stein", "schaf", "stadt", "nacht"]
JPN = ["水", "パン", "王様", "家", "川", "光", "石", "羊", "町", "夜"]  # written without spaces


def write_corpora(root: Path, n: int = 160) -> dict[str, Path]:
    """Verse-aligned toy translations: every verse mentions 3 of 10 concepts, in the same verse ids."""
    rng = random.Random(0)
    verses = [rng.sample(range(10), 3) for _ in range(n)]
    out = {}
    for lang, words, sep in (("eng_Latn", [w.title() for w in ENG], " "), ("deu_Latn", DEU, " "),
                             ("jpn_Jpan", JPN, "")):
        texts = [sep.join(words[i] for i in v) + "." for v in verses]
        split = ["train"] * (n - 20) + ["test"] * 20
        table = pa.Table.from_arrays(
            [pa.array(range(1_001_001, 1_001_001 + n), pa.int64()), pa.array([1] * n, pa.int16()),
             pa.array(texts), pa.array(split)], schema=CORPUS_SCHEMA)  # fmt: skip
        pq.write_table(table, root / f"{lang}.parquet")
        out[lang] = root / f"{lang}.parquet"
    return out


def test_bible_aligned_translations_are_nearest_neighbours_and_round_trip(tmp_path, one_torch_thread):
    corpora = write_corpora(tmp_path)
    spec = {"kind": "bible_aligned", "dim": 8, "min_count": 2}
    meta = build_word_vectors(spec, tmp_path / "wv", corpora)
    wv = load_word_vectors(tmp_path / "wv")
    assert meta["kind"] == "bible_aligned" and meta["dim"] == 8 and meta["n"] == len(wv) and meta["verses"] == 140
    assert set(wv.langs) == {"eng_Latn", "deu_Latn", "jpn_Jpan"}
    assert np.allclose(np.linalg.norm(wv.vectors, axis=1), 1, atol=1e-5)
    index = {(w, lang): i for i, (w, lang) in enumerate(zip(wv.words, wv.langs, strict=True))}
    deu = [i for i, lang in enumerate(wv.langs) if lang == "deu_Latn"]
    for e, d in zip(ENG, DEU, strict=True):
        sims = wv.vectors[deu] @ wv.vectors[index[(e, "eng_Latn")]]
        assert wv.words[deu[int(sims.argmax())]] == d
    assert all(len(w) == 2 for w, lang in index if lang == "jpn_Jpan")  # no spaces: character bigrams
    assert ("王様", "jpn_Jpan") in index
    # deterministic, and the on-disk format round-trips
    build_word_vectors(spec, tmp_path / "wv2", corpora)
    assert np.array_equal(load_word_vectors(tmp_path / "wv2").vectors, wv.vectors)
    kind = word_vector_kind({"kind": "bible_aligned", "languages": ["deu_Latn"]})
    assert kind.corpus_languages(["eng_Latn", "deu_Latn"]) == ["deu_Latn"]
    with pytest.raises(ConfigError, match="not in the config's languages"):
        kind.corpus_languages(["eng_Latn"])
    with pytest.raises(DataError, match="no word occurs in 500 verses"):
        build_word_vectors({**spec, "min_count": 500}, tmp_path / "wv3", corpora)


def test_registry_lists_the_kinds():
    assert {"colexnet", "bible_aligned"} <= set(WORD_VECTOR_KINDS.names())


SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def _dry_run_counts(workdir: Path, mutate) -> dict[str, int]:
    raw = yaml.safe_load((workdir / "configs" / "smoke.yaml").read_text())
    raw["hypernetwork"] = {"enabled": False}  # keep this test to the recipes' init methods
    raw["recipes"] = {k: v for k, v in raw["recipes"].items() if "hyperofa" not in str(v.get("init"))}
    raw["evaluation"]["report"].pop("claims")  # they name the (O)FA recipes dropped here
    mutate(raw)
    (workdir / "configs" / "wv.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = subprocess.run([SNAKEMAKE, "--cores", "1", "-n", "--quiet", "rules", "--configfile", "configs/wv.yaml"],
                          cwd=workdir, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines()
            if len(ln.split()) == 2 and ln.split()[1].isdigit()}


def test_rule_runs_only_when_a_recipe_uses_the_vectors(workdir):
    def uses(c):
        assert any("ofa" in str(r.get("init")) for r in c["recipes"].values())

    assert _dry_run_counts(workdir, uses)["word_vectors"] == 1

    def unused(c):
        c["recipes"] = {k: v for k, v in c["recipes"].items() if "ofa" not in str(v.get("init"))}

    assert "word_vectors" not in _dry_run_counts(workdir, unused)
