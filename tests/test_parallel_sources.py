"""parallel_data: OPUS-100 with NLLB fallback and local files, from hub-cache fixtures built here (offline)."""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from langadapt import config as lc
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import iso639_1, parse_lang
from langadapt.data import parallel_data as pdata
from langadapt.data import parallel_sources as ps
from langadapt.data.parallel import PARALLEL_SCHEMA, load_parallel

from conftest import REPO

OPUS_COMMIT = "0123456789abcdef0123456789abcdef01234567"
NLLB_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
LANGS = ["eng_Latn", "arb_Arab", "deu_Latn", "fra_Latn", "nya_Latn"]


def _repo(cache: Path, repo_id: str, commit: str) -> Path:
    """An empty snapshot in hub cache layout: datasets--owner--name/{refs/main, snapshots/<commit>/}."""
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    return snap


def _opus_file(path: Path, code: str, pairs: list[tuple[str, str]]) -> None:
    """An OPUS-100 parquet file: one column `translation` = struct {en, <code>}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"translation": {"en": en, code: other}} for en, other in pairs]
    typ = pa.struct([("en", pa.string()), (code, pa.string())]) if code > "en" else pa.struct([(code, pa.string()), ("en", pa.string())])  # fmt: skip
    pq.write_table(pa.table({"translation": pa.array([r["translation"] for r in rows], typ)}), path)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """OPUS-100 (en-fr, de-en, ar-en) and NLLB (eng_Latn-nya_Latn, gzipped allenai TSV; eng_Latn-fra_Latn
    jsonl.gz) in hub cache layout; the network is off (HF_HUB_OFFLINE)."""
    cache = tmp_path / "hub"
    opus = _repo(cache, "Helsinki-NLP/opus-100", OPUS_COMMIT)
    fr = [(f"English sentence {i}.", f"Phrase française {i}.") for i in range(30)]
    fr[3] = ("   ", "vide")  # whitespace-only pivot side: dropped
    _opus_file(opus / "en-fr" / "train-00000-of-00001.parquet", "fr", fr)
    _opus_file(opus / "en-fr" / "validation-00000-of-00001.parquet", "fr", [("Dev one.", "Dév un.")])
    _opus_file(opus / "en-fr" / "test-00000-of-00001.parquet", "fr", [("Test  one.", "Test un.")])
    _opus_file(opus / "de-en" / "train-00000-of-00001.parquet", "de", [("Good day.", "Guten Tag.")] * 4)
    _opus_file(opus / "ar-en" / "train-00000-of-00001.parquet", "ar", [("Peace.", "سلام.")] * 3)
    (opus / "README.md").write_text("---\npretty_name: Opus100\n---\n")
    nllb = _repo(cache, "allenai/nllb", NLLB_COMMIT)
    tsv = "".join(f"English {i}.\tChichewa {i}.\t1.07\t0.9\t0.8\tsrc\t_\ttgt\t_\n" for i in range(6))
    (nllb / "eng_Latn-nya_Latn.gz").write_bytes(gzip.compress(tsv.encode()))
    js = json.dumps({"translation": {"eng_Latn": "NLLB English.", "fra_Latn": "NLLB français."}}) + "\n"
    (nllb / "eng_Latn-fra_Latn.jsonl.gz").write_bytes(gzip.compress(js.encode()))
    (nllb / "nllb_lang_pairs.py").write_text("LANG_PAIRS = []\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache


def _spec(cache: Path, **kw: object) -> dict:
    return {
        "sources": [{"kind": "opus100", "cache_dir": str(cache)}, {"kind": "nllb", "cache_dir": str(cache)}],
        **kw,
    }


def test_iso639_1_mapping() -> None:
    code = {
        c: iso639_1(parse_lang(c).iso) for c in ["fra_Latn", "deu_Latn", "heb_Hebr", "hbs_Latn", "nor_Latn"]
    }
    assert code == {"fra_Latn": "fr", "deu_Latn": "de", "heb_Hebr": "he", "hbs_Latn": "sh", "nor_Latn": "no"}
    # individual languages of macrolanguages (NLLB-style codes) -> the macrolanguage's OPUS-100 code
    for iso3, iso1 in [
        ("arb", "ar"),
        ("zsm", "ms"),
        ("pes", "fa"),
        ("cmn", "zh"),
        ("ekk", "et"),
        ("npi", "ne"),
    ]:
        assert iso639_1(iso3) == iso1
    assert len(ps.OPUS100_LANGS) == 99 and "en" not in ps.OPUS100_LANGS
    src = ps.Opus100Source({"kind": "opus100"}, parse_lang("eng_Latn"))
    covered = src.covers(
        [parse_lang(c) for c in ["fra_Latn", "nya_Latn", "swh_Latn", "zho_Hans", "zho_Hant"]]
    )
    assert [c.code for c in covered] == ["fra_Latn", "zho_Hans"]  # no Chichewa/Swahili; zh is simplified
    assert (
        ps.Opus100Source({"kind": "opus100"}, parse_lang("fra_Latn")).covers([parse_lang("deu_Latn")]) == []
    )


def test_opus100_with_nllb_fallback(hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "parallel" / "opus_nllb.parquet"
    report = pdata.build_parallel_data(_spec(hub_cache, dev_pairs=2), "eng_Latn", LANGS, out, name="opus_nllb")
    table = pq.read_table(out)
    assert table.schema.equals(PARALLEL_SCHEMA)
    assert load_parallel(out).num_rows == table.num_rows
    langs = table.column("lang").to_pylist()
    assert langs == sorted(langs) and set(langs) == {"arb_Arab", "deu_Latn", "fra_Latn", "nya_Latn"}
    fra = table.filter(pa.compute.equal(table.column("lang"), "fra_Latn")).to_pydict()
    # OPUS-100 (first source) wins over NLLB for French; whitespace-only pair dropped, whitespace normalised
    assert fra["split"] == ["train"] * 29 + ["dev", "test"]
    assert fra["verse_id"] == list(range(31)) and set(fra["book"]) == {0}
    assert fra["src_text"][:3] == ["English sentence 0.", "English sentence 1.", "English sentence 2."]
    assert fra["tgt_text"][3] == "Phrase française 4." and fra["src_text"][-1] == "Test one."
    nya = table.filter(pa.compute.equal(table.column("lang"), "nya_Latn")).to_pydict()
    assert sorted(zip(nya["src_text"], nya["tgt_text"], strict=True))[0] == ("English 0.", "Chichewa 0.")
    assert nya["split"] == ["train"] * 4 + ["dev"] * 2  # NLLB has no dev split: dev_pairs held out
    arb = report["languages"]["arb_Arab"]
    assert arb["kind"] == "opus100" and arb["files"] == ["ar-en/train-00000-of-00001.parquet"]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar == json.loads(json.dumps(report))
    nya_rec = sidecar["languages"]["nya_Latn"]
    assert nya_rec["kind"] == "nllb" and nya_rec["repo"] == "allenai/nllb" and nya_rec["revision"] == "main"
    assert nya_rec["commit"] == NLLB_COMMIT and nya_rec["files"] == ["eng_Latn-nya_Latn.gz"]
    assert nya_rec["pairs"] == {"train": 4, "dev": 2, "test": 0}
    assert sidecar["languages"]["fra_Latn"]["pairs"] == {"train": 29, "dev": 1, "test": 1}
    assert sidecar["languages"]["fra_Latn"]["commit"] == OPUS_COMMIT
    # NLLB first: French from the NLLB jsonl file (pair name in sorted order, translation keyed by code)
    nllb_first = {"sources": _spec(hub_cache)["sources"][::-1], "languages": ["fra_Latn"]}
    report = pdata.build_parallel_data(nllb_first, "eng_Latn", LANGS, tmp_path / "f.parquet", name="f")
    assert report["languages"]["fra_Latn"]["files"] == ["eng_Latn-fra_Latn.jsonl.gz"]
    assert pq.read_table(tmp_path / "f.parquet").column("tgt_text").to_pylist() == ["NLLB français."]


def test_max_pairs_is_a_deterministic_sample(hub_cache: Path, tmp_path: Path) -> None:
    def train(seed: int, name: str) -> list[str]:
        spec = _spec(hub_cache, languages=["fra_Latn"], max_pairs=5, seed=seed)
        pdata.build_parallel_data(spec, "eng_Latn", LANGS, tmp_path / f"{name}.parquet", name=name)
        t = pq.read_table(tmp_path / f"{name}.parquet").to_pydict()
        assert t["split"] == ["train"] * 5 + ["dev", "test"]  # the cap applies to train only
        return [s for s, split in zip(t["src_text"], t["split"], strict=True) if split == "train"]

    a, b, c = train(0, "a"), train(0, "b"), train(1, "c")
    assert a == b and a != c
    assert a == sorted(a, key=lambda s: int(s.split()[-1][:-1]))  # original order kept


def test_uncovered_language_fails_before_any_download(
    hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args: object, **kw: object) -> None:
        raise AssertionError("downloaded before checking coverage")

    monkeypatch.setattr(ps, "hub_snapshot", no_download)
    out = tmp_path / "x.parquet"
    langs = [*LANGS, "jav_Latn"]
    with pytest.raises(DataError, match=r"parallel_data\.pairs: no source covers jav_Latn \(tried: opus100"):
        pdata.build_parallel_data(_spec(hub_cache), "eng_Latn", langs, out, name="pairs")
    with pytest.raises(DataError, match=r"parallel_data\.op: no source covers nya_Latn"):
        pdata.build_parallel_data(
            {"sources": _spec(hub_cache)["sources"][:1]}, "eng_Latn", LANGS, out, name="op"
        )
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_missing_snapshot_and_errors_leave_no_output(hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    spec = {"sources": [{"kind": "nllb", "repo_id": "other/nllb", "cache_dir": str(hub_cache)}]}
    with pytest.raises(DataError, match="cannot list the files of nllb dataset other/nllb@main"):
        pdata.build_parallel_data(spec, "eng_Latn", LANGS, out, name="x")
    bad = hub_cache / "datasets--allenai--nllb" / "snapshots" / NLLB_COMMIT / "eng_Latn-nya_Latn.gz"
    bad.write_bytes(gzip.compress(b"English only, no tab\n"))
    with pytest.raises(DataError, match=r"eng_Latn-nya_Latn\.gz: line 1: expected at least 2 tab-separated"):
        pdata.build_parallel_data(_spec(hub_cache), "eng_Latn", LANGS, out, name="x")
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_local_tsv_and_fast_align(tmp_path: Path) -> None:
    d = tmp_path / "pairs"
    d.mkdir()
    (d / "deu_Latn.tsv").write_text(
        "Hello.\tHallo.\n\nGood  night.\tGute Nacht.\n \tleer\n", encoding="utf-8"
    )
    (d / "deu_Latn.dev.tsv").write_text("Yes.\tJa.\n", encoding="utf-8")
    (d / "nya.fa").write_text("Water . ||| Madzi .\nBread ||| Mkate\n", encoding="utf-8")
    spec = {
        "sources": [
            {"kind": "local", "path": str(d / "{lang}.tsv"), "dev": str(d / "{lang}.dev.tsv")},
            {"kind": "local", "path": str(d / "{iso}.fa")},
        ]
    }
    out = tmp_path / "local.parquet"
    report = pdata.build_parallel_data(spec, "eng_Latn", ["eng_Latn", "deu_Latn", "nya_Latn"], out, name="local")
    t = pq.read_table(out).to_pydict()
    assert t["lang"] == ["deu_Latn"] * 3 + ["nya_Latn"] * 2
    assert t["split"] == ["train", "train", "dev", "train", "train"]
    assert t["src_text"] == ["Hello.", "Good night.", "Yes.", "Water .", "Bread"]
    assert t["tgt_text"] == ["Hallo.", "Gute Nacht.", "Ja.", "Madzi .", "Mkate"]
    assert t["verse_id"] == [0, 1, 2, 0, 1]
    assert report["languages"]["nya_Latn"] == {
        "kind": "local", "files": [str(d / "nya.fa")], "raw_pairs": 2,
        "pairs": {"train": 2, "dev": 0, "test": 0},
    }  # fmt: skip
    rev = {
        "sources": [{"kind": "local", "path": str(d / "{iso}.fa"), "reverse": True}],
        "languages": ["nya_Latn"],
    }
    pdata.build_parallel_data(rev, "eng_Latn", ["eng_Latn", "nya_Latn"], out, name="rev")
    assert pq.read_table(out).column("src_text").to_pylist() == ["Madzi .", "Mkate"]
    (d / "nya.fa").write_text("Water . ||| Madzi .\nBread | Mkate\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"nya\.fa: line 2: expected 2 ' \|\|\| '-separated sides, got 1"):
        pdata.build_parallel_data(spec, "eng_Latn", ["eng_Latn", "nya_Latn"], out, name="local")
    (d / "deu_Latn.tsv").write_text("Hello.\tHallo.\nA\tB\tC\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"deu_Latn\.tsv: line 2: expected 2 tab-separated fields, got 3"):
        pdata.build_parallel_data(spec, "eng_Latn", ["eng_Latn", "deu_Latn"], out, name="local")
    assert not out.exists()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            {"sources": [{"kind": "opus200"}]},
            r"sources\[0\]: unknown parallel source 'opus200'; known: local, nllb",
        ),
        (
            {"sources": [{"kind": "nllb", "repo": "x"}]},
            r"unknown key\(s\) \['repo'\] for parallel source 'nllb'",
        ),
        (
            {"sources": [{"kind": "local"}]},
            r"sources\[0\]: parallel source 'local' needs key\(s\) \['path'\]",
        ),
        ({"sources": [{"kind": "local", "path": "{lng}.tsv"}]}, r"unknown placeholder 'lng'"),
        ({"sources": []}, r"pd\.sources: a non-empty list"),
        (
            {"sources": [{"kind": "opus100"}], "languages": ["hin_Deva"]},
            r"pd\.languages: 'hin_Deva' is not in",
        ),
        ({"sources": [{"kind": "opus100"}], "languages": ["eng_Latn"]}, r"'eng_Latn' is the pivot language"),
        ({"sources": [{"kind": "opus100"}], "max_pair": 3}, r"pd: unknown key\(s\) \['max_pair'\]"),
    ],
)
def test_entry_errors(spec: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=match):
        pdata.build_parallel_data(spec, "eng_Latn", LANGS, tmp_path / "x.parquet", name="pd")
    assert not (tmp_path / "x.parquet").exists()


@pytest.fixture
def smoke_raw() -> dict:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["parallel_data"] = {
        "opus_nllb": {"sources": [{"kind": "opus100"}, {"kind": "nllb"}], "max_pairs": 1000}
    }
    raw["realignment"]["pairs_tiny"]["data"] = "opus_nllb"
    return raw


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda c: c["realignment"]["pairs_tiny"].update(data="opus"),
            r"realignment\.pairs_tiny\.data: 'opus' is not",
        ),
        (
            lambda c: c["parallel_data"]["opus_nllb"]["sources"].append({"kind": "x"}),
            r"opus_nllb\.sources\[2\]",
        ),
        (
            lambda c: c["parallel_data"]["opus_nllb"].update(languages=["fra_Latn"]),
            r"'fra_Latn' is not in lang",
        ),
        (lambda c: c["parallel_data"]["opus_nllb"].update(extra=1), r"parallel_data\.opus_nllb"),
        (lambda c: c["parallel_data"].update(bible={"sources": [{"kind": "nllb"}]}), r"parallel_data"),
        (
            lambda c: c["parallel_data"]["opus_nllb"]["sources"][0].update(revision=3),
            r"sources\[0\]: .*revision must be",
        ),
    ],
    ids=["undefined-data", "unknown-kind", "language", "unknown-key", "reserved-name", "bad-value"],
)
def test_config_checks(smoke_raw: dict, mutate, match: str) -> None:
    cfg = copy.deepcopy(smoke_raw)
    lc.prepare_config(copy.deepcopy(cfg))  # the unmutated config is fine
    mutate(cfg)
    with pytest.raises(ConfigError, match=match):
        lc.prepare_config(cfg)


def test_dry_run_schedules_parallel_data_for_realignment(smoke_raw: dict, workdir: Path) -> None:
    (workdir / "configs" / "pd.yaml").write_text(yaml.safe_dump(smoke_raw, sort_keys=False))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "--cores", "1", "-n", "results/models/tiny_realigned/realign",
         "--configfile", "configs/pd.yaml"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule parallel_data:" in out and "results/parallel/opus_nllb.parquet" in out
    assert "results/parallel/opus_nllb.json" in out and "name=opus_nllb" in out
    assert "results/data/parallel.parquet" not in out  # the Bible pairs are not needed by this realignment
    assert not (workdir / "results").exists()
