"""hf_hub source: a fixture repo in Hugging Face hub cache layout, resolved offline by snapshot_download."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest

from langadapt.core.errors import ConfigError, DataError
from langadapt.data.sources import load_source

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "data" / "hub_repo"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "langadapt-tests/tiny-text"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache dir: datasets--owner--name/{refs/main, snapshots/<commit>/...}; network off."""
    cache = tmp_path / "hub"
    repo = cache / f"datasets--{REPO.replace('/', '--')}"
    shutil.copytree(FIXTURE_REPO, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache


def _cfg(cache: Path, **kw: object) -> dict[str, object]:
    return {"kind": "hf_hub", "repo_id": REPO, "data_files": "data/{lang}.*", "cache_dir": str(cache), **kw}


def test_hub_offline_snapshot(hub_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="langadapt.data.sources")
    eng = load_source(_cfg(hub_cache), "eng_Latn")
    assert eng.column("text").to_pylist()[0] == "The baker opens her shop early every Saturday morning."
    assert eng.column("verse_id").to_pylist() == [1, 2, 3]
    assert "no sha256 given for 1 file(s): data/eng_Latn.jsonl" in caplog.text
    deu = load_source(_cfg(hub_cache, data_files=["data/{iso}_{script}.tsv"]), "deu_Latn")
    assert deu.num_rows == 2 and deu.column("verse_id").to_pylist() == [1, 2]
    both = load_source(_cfg(hub_cache, data_files="data/*"), "eng_Latn")  # ids run on across sorted files
    assert both.column("verse_id").to_pylist() == [1, 2, 3, 4, 5]
    assert both.column("text").to_pylist()[2].startswith("The baker")


def test_hub_sha256(hub_cache: Path) -> None:
    digest = hashlib.sha256((FIXTURE_REPO / "data" / "eng_Latn.jsonl").read_bytes()).hexdigest()
    ok = load_source(_cfg(hub_cache, sha256={"data/eng_Latn.jsonl": digest}), "eng_Latn")
    assert ok.num_rows == 3
    with pytest.raises(DataError, match=rf"sha256 mismatch for .*eng_Latn\.jsonl: expected {'a' * 64}, got {digest}"):
        load_source(_cfg(hub_cache, sha256={"data/eng_Latn.jsonl": "a" * 64}), "eng_Latn")


def test_hub_missing(hub_cache: Path) -> None:
    with pytest.raises(DataError, match=r"no file matches \['data/fra_Latn\.\*'\]"):
        load_source(_cfg(hub_cache), "fra_Latn")
    with pytest.raises(DataError, match="cannot fetch hf_hub dataset other/repo"):
        load_source(_cfg(hub_cache, repo_id="other/repo"), "eng_Latn")


def test_repository_names_fill_the_placeholders(hub_cache: Path) -> None:
    """Glot500-c names Japanese `jpn_Japn` (docs/remote-sources.md): `codes` maps our code to the
    repository's; the corpus is still ours (jpn_Jpan), read from the repository's folder."""
    from langadapt.core.languages import parse_lang
    from langadapt.data.sources import HubSource

    src = HubSource({"kind": "hf_hub", "repo_id": "cis-lmu/Glot500", "data_files": "{lang}/train/*.arrow",
                     "codes": {"jpn_Jpan": "jpn_Japn"}})
    assert src.patterns(parse_lang("jpn_Jpan")) == ["jpn_Japn/train/*.arrow"]
    assert src.patterns(parse_lang("kor_Hang")) == ["kor_Hang/train/*.arrow"]  # unmapped: our code
    assert HubSource({"kind": "hf_hub", "repo_id": "r", "data_files": "{iso}-{script}.txt",
                      "codes": {"cmn_Hani": "zho_Hani"}}).patterns(parse_lang("cmn_Hani")) == ["zho-Hani.txt"]
    existing = next(p.stem for p in (FIXTURE_REPO / "data").iterdir()).split(".")[0]
    mapped = "nya_Latn" if existing != "nya_Latn" else "eng_Latn"
    table = load_source(_cfg(hub_cache, codes={mapped: existing}), mapped)
    assert table.num_rows > 0
    with pytest.raises(ConfigError, match="hf_hub codes"):
        HubSource({"kind": "hf_hub", "repo_id": "r", "data_files": "x", "codes": ["jpn_Japn"]})
    with pytest.raises(ConfigError, match="hf_hub codes"):
        HubSource({"kind": "hf_hub", "repo_id": "r", "data_files": "x", "codes": {"Japanese": "jpn_Japn"}})
