"""Preflight and remote inputs (issue 16): coverage of every paper config from the recorded listings of the real
repos (tests/fixtures/remote-listings, evidence in each file and docs/remote-sources.md), one error listing every
gap, the lock (pins kept, --update, stale downloads), schema-only column checks, downloads into a cache that the
compute jobs read offline at the locked commit, and the workflow wiring (only local rules reach the network)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fakehub import FakeHub

from langadapt import config as lc
from langadapt.core.errors import DataError
from langadapt.core.runtime import CACHE_ENV, LOCK_ENV
from langadapt.dag.preflight import (
    PreflightError,
    check_config,
    consumers,
    download_consumer,
    remote_consumers,
    remote_spec,
    run_preflight,
)
from langadapt.data.remote import HubListing, Lock, Need, RecordedListing, Remote, download, read_columns

from conftest import REPO

LISTINGS = REPO / "tests" / "fixtures" / "remote-listings"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _paper(name: str) -> dict:
    return lc.load_config(REPO / "configs" / f"{name}.yaml")


def _cells(report) -> dict[tuple[str, str], str]:
    return {(c.row, c.column): c.text() for c in report.cells}


# ------------------------------------------------------------------------------- paper configs, recorded
@pytest.mark.parametrize("paper", ["langsamp", "realignment", "vocab-specialization", "hyperofa"])
def test_every_paper_config_is_covered_by_the_real_repos(paper: str) -> None:
    """Every language x source / task of each paper config resolves to files of the recorded real listings
    (local data such as the UD release assumed present), and no config names a placeholder."""
    report = check_config(_paper(paper), RecordedListing(LISTINGS), check_local=False)
    assert report.gaps() == []
    raw = lc.read_yaml(REPO / "configs" / f"{paper}.yaml")

    def strings(x):
        if isinstance(x, dict):
            return [s for k, v in x.items() for s in (*strings(k), *strings(v))]
        return [s for v in x for s in strings(v)] if isinstance(x, list) else [str(x)]

    assert not [s for s in strings(raw) if "YOUR-" in s or s == "swl_Latn"]


def test_identifiers_map_to_each_repos_own_codes() -> None:
    langsamp = _cells(check_config(_paper("langsamp"), RecordedListing(LISTINGS), check_local=False))
    assert langsamp[("jpn_Jpan", "corpus")] == "cis-lmu/Glot500: jpn_Japn/train/*.arrow"  # not jpn_Jpan
    for code, wiki in [("rus_Cyrl", "ru"), ("tel_Telu", "te"), ("ben_Beng", "bn")]:  # not on Glot500-c's hub
        assert langsamp[(code, "corpus")] == f"wikimedia/wikipedia: 20231101.{wiki}/*.parquet"
    assert langsamp[("cop_Copt", "corpus")] == "local file data/corpora/cop_Copt.txt"
    # Tatoeba (mteb) names Chinese cmn, Arabic ara, Swahili swh, on refs/convert/parquet
    assert langsamp[("zho_Hani", "task:sr_t")] == "mteb/tatoeba-bitext-mining: cmn-eng/*.parquet"
    assert langsamp[("arb_Arab", "task:sr_t")] == "mteb/tatoeba-bitext-mining: ara-eng/*.parquet"
    assert langsamp[("swa_Latn", "task:sr_t")] == "mteb/tatoeba-bitext-mining: swh-eng/*.parquet"
    assert langsamp[("yor_Latn", "task:sr_t")] == "-"  # not in Tatoeba: the task evaluates what it covers
    # SIB-200 uses Flores-200 codes
    assert langsamp[("zho_Hani", "task:sib200")] == "Davlan/sib200: data/zho_Hans/*.tsv"
    assert langsamp[("yue_Hani", "task:sib200")] == "Davlan/sib200: data/yue_Hant/*.tsv"
    assert langsamp[("swa_Latn", "task:sib200")] == "Davlan/sib200: data/swh_Latn/*.tsv"
    realign = _cells(check_config(_paper("realignment"), RecordedListing(LISTINGS), check_local=False))
    assert realign[("kor_Kore", "corpus")] == "cis-lmu/Glot500: kor_Hang/train/*.arrow"
    assert realign[("gaz_Latn", "corpus")] == "cis-lmu/Glot500: orm_Latn/train/*.arrow"
    assert realign[("fra_Latn", "parallel:opus_nllb")] == "Helsinki-NLP/opus-100: en-fr/*.parquet"
    assert realign[("(all)", "base_model:xlmr")] == "FacebookAI/xlm-roberta-base: *.json +"
    vocab = _cells(check_config(_paper("vocab-specialization"), RecordedListing(LISTINGS), check_local=False))
    assert vocab[("rus_Cyrl", "corpus")] == "oscar-corpus/OSCAR-2201: compressed/ru_meta/ru_meta_part_[12].jsonl.gz"
    hyperofa = _cells(check_config(_paper("hyperofa"), RecordedListing(LISTINGS), check_local=False))
    assert hyperofa[("swh_Latn", "corpus")] == "cis-lmu/Glot500: swh_Latn/train/*.arrow"
    assert hyperofa[("(all)", "word_vectors:colexnet")] == "data/colexnet/colexnet_plus.bin"


def test_missing_local_data_and_nllb_pairs_are_named() -> None:
    """With local files checked (none here), the realignment config's gaps name each missing UD treebank and,
    for every language OPUS-100 lacks, the NLLB pair file to fetch."""
    gaps = check_config(_paper("realignment"), RecordedListing(LISTINGS)).gaps()
    assert "task:pos wol_Latn: not found: ud-treebanks-v2.14/UD_Wolof-WTB" in gaps
    nllb = [g for g in gaps if g.startswith("parallel:opus_nllb")]
    # the 16 languages of the config that OPUS-100's 99 English pairs do not cover
    assert sorted(g.split()[1].rstrip(":") for g in nllb) == sorted(
        "bam_Latn ewe_Latn fon_Latn gaz_Latn jav_Latn lin_Latn lug_Latn luo_Latn mos_Latn nya_Latn sna_Latn "
        "swh_Latn tgl_Latn tsn_Latn twi_Latn wol_Latn".split())  # fmt: skip
    assert any("allennlp-data-bucket/nllb/eng_Latn-wol_Latn.gz" in g for g in nllb)


# ------------------------------------------------------------------------------------ small configs
def _listing(folder: Path, repo_id: str, files: list[str], commit: str | None = COMMIT_A, columns=None,
             repo_type: str = "dataset", sizes=None) -> None:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"repo_type": repo_type, "repo_id": repo_id, "revisions": {"main": commit}, "files": {"main": files},
           "columns": columns or {}, "sizes": sizes or {}}  # fmt: skip
    (folder / f"{repo_type}--{repo_id.replace('/', '--')}.json").write_text(json.dumps(rec))


def _config(sources: dict, tasks: dict | None = None, base_models: dict | None = None) -> dict:
    return {"languages": list(sources), "pivot": "eng_Latn", "data": {"sources": sources},
            "parallel_data": {}, "evaluation": {"tasks": tasks or {}}, "base_models": base_models or {},
            "tokenizers": {}, "word_vectors": {}}  # fmt: skip


def _hub_source(repo: str = "org/corpus") -> dict:
    return {"kind": "hf_hub", "repo_id": repo, "data_files": "{lang}/*.parquet"}


def test_one_error_lists_every_gap_and_no_lock_is_written(tmp_path: Path) -> None:
    _listing(tmp_path / "rec", "org/corpus", ["eng_Latn/0.parquet"], columns={"*.parquet": ["text"]})
    _listing(tmp_path / "rec", "unimelb-nlp/wikiann", ["en/train-0.parquet"], columns={"*.parquet": ["tokens"]})
    cfg = _config({"eng_Latn": _hub_source(), "deu_Latn": _hub_source(), "fra_Latn": _hub_source("org/gone")},
                  tasks={"ner": {"dataset": {"kind": "wikiann"}, "languages": ["eng_Latn", "deu_Latn"]}},
                  base_models={"xlmr": {"kind": "hf", "name_or_path": "org/model"}})  # fmt: skip
    lock = tmp_path / "lock.json"
    with pytest.raises(PreflightError) as err:
        run_preflight(cfg, RecordedListing(tmp_path / "rec"), lock, out_dir=tmp_path / "out")
    msg = str(err.value)
    assert "5 input(s) missing" in msg
    assert "dataset:org/gone@main: dataset org/gone not found" in msg
    assert "model:org/model@main: model org/model not found" in msg
    assert "corpus deu_Latn: org/corpus@main: no file matches deu_Latn/*.parquet" in msg
    assert "task:ner eng_Latn: unimelb-nlp/wikiann@main: en/train-0.parquet lacks column(s) ['ner_tags']" in msg
    assert "task:ner deu_Latn: wikiann (unimelb-nlp/wikiann@main) has no data for deu_Latn" in msg
    assert not lock.exists()
    table = (tmp_path / "out" / "coverage.csv").read_text()
    assert table.splitlines()[0] == "language,corpus,task:ner,base_model:xlmr"
    assert "eng_Latn,org/corpus: eng_Latn/*.parquet,MISSING: unimelb-nlp/wikiann@main: en/train-0.parquet" in table


def test_lock_keeps_its_pins_update_refreshes_and_redoes_changed_downloads(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    _listing(rec, "org/corpus", ["eng_Latn/0.parquet"])
    cfg = _config({"eng_Latn": _hub_source()})
    lock, out = tmp_path / "lock.json", tmp_path / "out"
    run_preflight(cfg, RecordedListing(rec), lock, out_dir=out)
    assert Lock.read(lock).remotes["dataset:org/corpus@main"]["commit"] == COMMIT_A
    marker = out / "downloads" / "corpus" / "eng_Latn.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"remotes": {"dataset:org/corpus@main": {"commit": COMMIT_A}}}))
    _listing(rec, "org/corpus", ["eng_Latn/0.parquet"], commit=COMMIT_B)  # the branch moved
    run_preflight(cfg, RecordedListing(rec), lock, out_dir=out)
    assert Lock.read(lock).remotes["dataset:org/corpus@main"]["commit"] == COMMIT_A  # pinned
    assert marker.exists()
    run_preflight(cfg, RecordedListing(rec), lock, out_dir=out, update=True)
    assert Lock.read(lock).remotes["dataset:org/corpus@main"]["commit"] == COMMIT_B
    assert not marker.exists()  # its download (and what read it) reruns
    assert Lock.read(lock).diff(Lock({"dataset:org/corpus@main": {"commit": COMMIT_A}})) == [
        f"~ dataset:org/corpus@main {COMMIT_A} -> {COMMIT_B}"]  # fmt: skip
    # another config sharing the lock file (workflow/reproduce.smk) adds its pins, keeps these
    _listing(rec, "org/other", ["deu_Latn/0.parquet"])
    run_preflight(_config({"deu_Latn": _hub_source("org/other")}), RecordedListing(rec), lock, out_dir=out)
    assert set(Lock.read(lock).remotes) == {"dataset:org/corpus@main", "dataset:org/other@main"}


def test_the_table_states_what_the_cache_will_hold(tmp_path: Path) -> None:
    """Bytes of the files the needs download (from the listing's sizes): a model's *.bin is not counted when
    it has safetensors; a file without a size is counted apart."""
    rec = tmp_path / "rec"
    _listing(rec, "org/corpus", ["eng_Latn/0.parquet", "eng_Latn/1.parquet", "deu_Latn/0.parquet"],
             sizes={"eng_Latn/0.parquet": 2_000_000_000, "deu_Latn/0.parquet": 5})  # fmt: skip
    files = ["config.json", "model.safetensors", "pytorch_model.bin", "sentencepiece.bpe.model", "README.md"]
    _listing(rec, "org/model", files, repo_type="model",
             sizes={"config.json": 700, "model.safetensors": 1_100_000_000, "pytorch_model.bin": 1_100_000_000,
                    "sentencepiece.bpe.model": 5_000_000, "README.md": 1})  # fmt: skip
    cfg = _config({"eng_Latn": _hub_source()}, base_models={"m": {"kind": "hf", "name_or_path": "org/model"}})
    report = check_config(cfg, RecordedListing(rec))
    assert report.download_bytes() == (2_000_000_000 + 700 + 1_100_000_000 + 5_000_000, 1)
    assert report.markdown(["eng_Latn"]).endswith("Downloads: 3.11 GB + 1 file(s) of unknown size\n")


def test_columns_are_read_from_schemas_only(tmp_path: Path) -> None:
    table = pa.table({"tokens": [["a"]], "ner_tags": [[0]]})
    pq.write_table(table, tmp_path / "x.parquet")
    with open(tmp_path / "x.parquet", "rb") as f:
        assert read_columns(f, "x.parquet") == ["tokens", "ner_tags"]
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:  # `datasets` save_to_disk shards: the stream format
        w.write_table(table)
    assert read_columns(io.BytesIO(sink.getvalue()), "data-00000-of-00001.arrow") == ["tokens", "ner_tags"]
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    assert read_columns(io.BytesIO(sink.getvalue()), "y.arrow") == ["tokens", "ner_tags"]
    assert read_columns(io.BytesIO(b"\xef\xbb\xbfindex_id\tcategory\ttext\r\n0\tx\ty\n"), "d.tsv") == [
        "index_id", "category", "text"]  # fmt: skip
    with pytest.raises(DataError, match="z.parquet: cannot read its schema"):
        read_columns(io.BytesIO(b"not parquet"), "z.parquet")


# -------------------------------------------------------------------------------- against a hub server
def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _arrow_stream(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


@pytest.fixture
def fake_hub(monkeypatch):
    """make(repos) -> a FakeHub that huggingface_hub in this process talks to (HF_ENDPOINT is read at import)."""
    import huggingface_hub.constants as hf_constants

    hubs = []

    def make(repos: dict) -> FakeHub:
        hub = FakeHub(repos)
        hubs.append(hub)
        monkeypatch.setattr(hf_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        return hub

    yield make
    for hub in hubs:
        hub.close()


def _glot_like() -> dict:
    table = pa.table({"text": ["Ein Satz .", "Noch einer ."], "dataset": ["x", "x"], "script": ["Latn"] * 2,
                      "lang_script": ["deu_Latn"] * 2})  # fmt: skip
    return {("dataset", "org/corpus"): {"commit": COMMIT_A, "revision": "main", "files": {
        "deu_Latn/train/data-00000-of-00001.arrow": _arrow_stream(table),
        "deu_Latn/train/dataset_info.json": b"{}", "README.md": b"# card\n",
        "data/deu_Latn/test.tsv": b"index_id\tcategory\ttext\n0\thealth\tEin Satz .\n",
        "en-de/test-00000-of-00001.parquet": _parquet(pa.table({"translation": [{"en": "a", "de": "b"}]}))}}}


def test_hub_listing_resolves_lists_and_reads_schemas_only(fake_hub) -> None:
    """The real client against a hub server: revision -> commit, the recursive listing with sizes, and each
    tabular file's columns from its schema (byte-range reads, not the whole file)."""
    hub = fake_hub(_glot_like())
    listing, remote = HubListing(), Remote("dataset", "org/corpus", "main")
    assert listing.resolve(remote) == COMMIT_A
    files = listing.files(remote, COMMIT_A)
    assert "deu_Latn/train/data-00000-of-00001.arrow" in files and len(files) == 5
    assert listing.sizes(remote, COMMIT_A)["README.md"] == 7
    assert listing.columns(remote, COMMIT_A, "deu_Latn/train/data-00000-of-00001.arrow") == [
        "text", "dataset", "script", "lang_script"]  # fmt: skip
    assert listing.columns(remote, COMMIT_A, "data/deu_Latn/test.tsv") == ["index_id", "category", "text"]
    assert listing.columns(remote, COMMIT_A, "en-de/test-00000-of-00001.parquet") == ["translation"]
    assert any(m == "GET" and "/resolve/" in p for m, p in hub.log)
    with pytest.raises(DataError, match="cannot resolve dataset:org/gone@main on the hub: RepositoryNotFound"):
        listing.resolve(Remote("dataset", "org/gone", "main"))
    with pytest.raises(DataError, match="cannot resolve dataset:org/corpus@v9 on the hub: RevisionNotFound"):
        listing.resolve(Remote("dataset", "org/corpus", "v9"))


def test_preflight_and_download_against_a_hub_server(fake_hub, tmp_path: Path) -> None:
    """run_preflight with the hub listing writes the lock with the resolved commit and the file sizes; the
    download fetches exactly the needed files of that commit, and a second download asks the hub nothing."""
    hub = fake_hub(_glot_like())
    cfg = _config({"deu_Latn": {"kind": "hf_hub", "repo_id": "org/corpus", "data_files": "{lang}/train/*.arrow"}})
    report = run_preflight(cfg, HubListing(), tmp_path / "lock.json", out_dir=tmp_path / "out")
    entry = Lock.read(tmp_path / "lock.json").remotes["dataset:org/corpus@main"]
    assert entry["commit"] == COMMIT_A and entry["sizes"]["README.md"] == 7
    assert report.download_bytes() == (entry["sizes"]["deu_Latn/train/data-00000-of-00001.arrow"], 0)
    need = Need(Remote("dataset", "org/corpus", "main"), ("deu_Latn/train/*.arrow",))
    (fetched,) = download([need], Lock.read(tmp_path / "lock.json"), tmp_path / "cache")
    assert fetched["files"] == ["deu_Latn/train/data-00000-of-00001.arrow"] and fetched["commit"] == COMMIT_A
    hub.log.clear()
    download([need], Lock.read(tmp_path / "lock.json"), tmp_path / "cache")
    assert not [p for m, p in hub.log if "/resolve/" in p]  # cached: nothing fetched again


def test_a_hub_model_is_downloaded_then_built_offline_from_its_pinned_snapshot(fake_hub, tmp_path, monkeypatch):
    """Base model kind hf: the download job fetches config, tokenizer and safetensors weights (not the duplicate
    pytorch_model.bin) of the locked commit; the base_model job, offline and pinned by the marker, builds from
    that snapshot folder."""
    import huggingface_hub.constants as hf_constants
    from eval_helpers import make_model_dir

    from langadapt.core.runtime import pin_remote_inputs
    from langadapt.models.source import build_source_model

    src = make_model_dir(tmp_path / "tiny")
    files = {p.name: p.read_bytes() for p in Path(src).iterdir() if p.is_file()}
    assert "model.safetensors" in files
    files["pytorch_model.bin"] = b"the same weights in the old format"
    hub = fake_hub({("model", "org/tiny"): {"commit": COMMIT_B, "revision": "main", "files": files}})
    cfg = _config({}, base_models={"tiny": {"kind": "hf", "name_or_path": "org/tiny"}})
    run_preflight(cfg, HubListing(), tmp_path / "lock.json", out_dir=tmp_path / "out")
    marker = tmp_path / "results" / "remote" / "downloads" / "base_model" / "tiny.json"
    data = download_consumer(cfg, "base_model/tiny", tmp_path / "lock.json", tmp_path / "cache", marker)
    fetched = data["fetched"][0]["files"]
    assert "model.safetensors" in fetched and "config.json" in fetched and "pytorch_model.bin" not in fetched
    hub.log.clear()
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv(LOCK_ENV, "unset")
    monkeypatch.setenv(CACHE_ENV, "unset")
    pin_remote_inputs([str(marker)], SimpleNamespace(info=lambda *a: None))
    info = build_source_model({"kind": "hf", "name_or_path": "org/tiny"}, tmp_path / "base")
    assert hub.log == [] and (tmp_path / "base" / "config.json").is_file() and info


# ------------------------------------------------------------------------- download and offline reads
def _hub_cache(cache: Path, repo_id: str, commit: str, files: dict[str, pa.Table]) -> None:
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    for rel, table in files.items():
        (repo / "snapshots" / commit / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, repo / "snapshots" / commit / rel)


def test_download_then_offline_read_of_the_locked_commit(tmp_path: Path, monkeypatch) -> None:
    """The download job writes a marker naming the commit and cache; a compute job pinned by that marker reads
    that commit offline even though the branch (refs/main) points elsewhere."""
    import huggingface_hub.constants as hf_constants

    from langadapt.core.runtime import pin_remote_inputs
    from langadapt.data.sources import load_source

    cache = tmp_path / "cache"
    _hub_cache(cache, "org/corpus", COMMIT_A, {"eng_Latn/0.parquet": pa.table({"text": ["locked", "commit"]})})
    _hub_cache(cache, "org/corpus", COMMIT_B, {"eng_Latn/0.parquet": pa.table({"text": ["newer"]})})
    (cache / "datasets--org--corpus" / "refs").mkdir()
    (cache / "datasets--org--corpus" / "refs" / "main").write_text(COMMIT_B)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # files already in the cache: no request is needed
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    rec = tmp_path / "rec"
    _listing(rec, "org/corpus", ["eng_Latn/0.parquet"], commit=COMMIT_A)
    cfg = _config({"eng_Latn": _hub_source()})
    run_preflight(cfg, RecordedListing(rec), tmp_path / "lock.json", out_dir=tmp_path / "out")
    marker = tmp_path / "results" / "remote" / "downloads" / "corpus" / "eng_Latn.json"
    data = download_consumer(cfg, "corpus/eng_Latn", tmp_path / "lock.json", cache, marker)
    assert data["fetched"] == [{"remote": "dataset:org/corpus@main", "commit": COMMIT_A,
                                "files": ["eng_Latn/0.parquet"], "bytes": data["fetched"][0]["bytes"]}]  # fmt: skip
    assert json.loads(marker.read_text())["cache"] == str(cache.resolve())
    unpinned = {**_hub_source(), "cache_dir": str(cache)}
    assert load_source(unpinned, "eng_Latn").column("text").to_pylist() == ["newer"]  # the branch's commit
    monkeypatch.setenv(LOCK_ENV, "unset")  # so that monkeypatch removes what pin_remote_inputs sets
    monkeypatch.setenv(CACHE_ENV, "unset")
    pin_remote_inputs([str(marker)], SimpleNamespace(info=lambda *a: None))
    assert load_source(_hub_source(), "eng_Latn").column("text").to_pylist() == ["locked", "commit"]
    with pytest.raises(DataError, match="not in the lock file .*rerun the preflight"):
        load_source(_hub_source("org/unlocked"), "eng_Latn")


def test_compute_jobs_are_offline_and_download_jobs_are_not(monkeypatch) -> None:
    import huggingface_hub.constants as hf_constants

    from langadapt.core.runtime import job

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)

    def fake(rule: str) -> SimpleNamespace:
        return SimpleNamespace(log=[], rule=rule, threads=1, wildcards=SimpleNamespace(items=lambda: []), input=[])

    job(fake("langsamp_download"))
    assert "HF_HUB_OFFLINE" not in os.environ and hf_constants.HF_HUB_OFFLINE is False
    job(fake("corpus"))
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert hf_constants.HF_HUB_OFFLINE is True
    from langadapt.core.runtime import go_online

    go_online()  # what the two network scripts call first
    assert not {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"} & set(os.environ)


def test_only_the_preflight_and_download_scripts_lift_offline_mode() -> None:
    lifting = sorted(p.name for p in (REPO / "scripts").glob("*.py") if "go_online()" in p.read_text())
    assert lifting == ["download.py", "preflight.py"]
    for script in (REPO / "scripts").glob("*.py"):  # every script sets up through job(): offline by default
        assert "job(snakemake" in script.read_text(), script.name


def test_every_download_job_is_one_consumer_of_the_config() -> None:
    """The realignment config's 71 download jobs: its 66 corpora, the parallel data, two task datasets (XNLI,
    WikiANN) and two base models; the jobs' params (remote_spec) rebuild the same consumers."""
    cfg = _paper("realignment")
    keys = remote_consumers(cfg)
    assert len(keys) == 71 and len([k for k in keys if k.startswith("corpus/")]) == 66
    assert {k for k in keys if not k.startswith("corpus/")} == {
        "parallel_data/opus_nllb", "task/nli", "task/ner", "base_model/xlmr", "base_model/mbert"}  # fmt: skip
    assert set(consumers(remote_spec(cfg))) == set(consumers(cfg))


LOCAL_RULES = """
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings(quiet=True)) as api:
    wf = api.workflow(snakefile=Path(sys.argv[1]), resource_settings=ResourceSettings(),
                      config_settings=ConfigSettings(), storage_settings=StorageSettings(), workdir=Path.cwd())
    print(" ".join(sorted(wf._workflow._localrules)))  # the rules marked localrule (private: no public accessor)
"""


def test_the_network_rules_are_local_rules_in_the_four_paper_dag() -> None:
    """workflow/reproduce.smk: each paper's preflight and download rules run on the submit host (a dry-run
    listing does not show it, so the workflow's own rule set is asked)."""
    proc = subprocess.run([sys.executable, "-c", LOCAL_RULES, "workflow/reproduce.smk"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    local = set(proc.stdout.split())
    for paper in ("langsamp", "realignment", "vocab", "hyperofa"):
        assert {f"{paper}_preflight", f"{paper}_download"} <= local
        assert f"{paper}_corpus" not in local and f"{paper}_evaluate" not in local


# --------------------------------------------------------------------------------------- end to end
def _deu_hub() -> dict:
    verses = [f"Das ist der Satz Nummer {i} im Buch." for i in range(300)]
    return {("dataset", "org/corpus"): {"commit": COMMIT_A, "revision": "main", "files": {
        "deu_Latn/train.parquet": _parquet(pa.table({"text": verses})), "README.md": b"# card\n"}}}


def write_remote_config(workdir: Path, smoke: str, cache: Path) -> str:
    """A copy of a smoke config whose deu_Latn corpus is read from the hub repo org/corpus (FakeHub)."""
    raw = yaml.safe_load((workdir / "configs" / smoke).read_text())
    raw["data"]["sources"]["deu_Latn"] = _hub_source()
    raw["remote"] = {"cache": str(cache), "lock": "results/remote/lock.json"}
    (workdir / "configs" / "remote.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return "configs/remote.yaml"


@pytest.mark.slow
def test_workflow_preflight_download_and_offline_corpus(workdir: Path, tmp_path: Path) -> None:
    """A real run against a hub server: the preflight resolves and locks the commit, the download job fetches the
    file into the cache, the corpus job reads it offline at that commit (and asks the hub nothing)."""
    hub = FakeHub(_deu_hub())
    try:
        config = write_remote_config(workdir, "smoke.yaml", tmp_path / "cache")
        proc = subprocess.run([SNAKEMAKE, "--cores", "1", "results/data/corpora/deu_Latn.parquet", "--configfile",
                               config], cwd=workdir, env={**os.environ, "HF_ENDPOINT": hub.url},
                              capture_output=True, text=True, timeout=600)  # fmt: skip
    finally:
        hub.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # only that file of that commit was read (its schema by the preflight, its bytes by the download)
    assert {p for _, p in hub.log if "/resolve/" in p} == {f"/datasets/org/corpus/resolve/{COMMIT_A}/deu_Latn/train.parquet"}
    lock = json.loads((workdir / "results" / "remote" / "lock.json").read_text())
    assert lock["remotes"]["dataset:org/corpus@main"]["commit"] == COMMIT_A
    marker = json.loads((workdir / "results" / "remote" / "downloads" / "corpus" / "deu_Latn.json").read_text())
    assert marker["fetched"][0]["files"] == ["deu_Latn/train.parquet"]
    log = (workdir / "results" / "logs" / "corpus" / "deu_Latn.log").read_text()
    assert f"dataset:org/corpus@main = {COMMIT_A}" in log
    corpus = pq.read_table(workdir / "results" / "data" / "corpora" / "deu_Latn.parquet")
    assert 0 < corpus.num_rows <= 300
    coverage = (workdir / "results" / "remote" / "coverage.csv").read_text()
    assert "deu_Latn,org/corpus: deu_Latn/*.parquet" in coverage


# ------------------------------------------------------------------------------------------ README
@pytest.mark.parametrize("paper", ["langsamp", "realignment", "vocab-specialization", "hyperofa"])
def test_readme_coverage_tables_are_what_the_preflight_prints(paper: str) -> None:
    """README's cluster section shows each paper config's coverage table; regenerate with
    LANGADAPT_UPDATE_README=1 pytest tests/test_preflight.py -k readme."""
    import re

    report = check_config(_paper(paper), RecordedListing(LISTINGS), check_local=False)
    table = report.markdown(list(_paper(paper)["languages"]))
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- coverage:{re.escape(paper)} -->\n)(.*?)(<!-- /coverage -->)", re.S)
    assert pattern.search(text), f"README.md has no coverage block for {paper}"
    if os.environ.get("LANGADAPT_UPDATE_README") == "1":
        readme.write_text(pattern.sub(lambda m: m.group(1) + table + m.group(3), text), encoding="utf-8")
        text = readme.read_text(encoding="utf-8")
    assert pattern.search(text).group(2) == table
