"""Translation pairs for realignment from the hub or local files: the ``parallel_data`` config section.

The realignment paper (§3.2 "Realignment dataset") takes pairs from OPUS-100 and, for every language
OPUS-100 does not cover, from NLLB. An entry ``parallel_data: {name: {sources: [...], ...}}`` lists
sources in order of preference; each language is taken from the FIRST source that covers it. Coverage is
decided for all languages before anything is downloaded (OPUS-100 from its packaged pair list, NLLB from
the repo file listing, local files from their existence), so an uncovered language fails at once.

Source kinds (registry :data:`PARALLEL_SOURCES`):

``opus100``
    ``Helsinki-NLP/opus-100`` (parquet: a folder per pair named with the sorted ISO 639-1 codes, e.g.
    ``en-fr/train-00000-of-00001.parquet``, ``validation-…``, ``test-…``; column ``translation`` =
    struct ``{en, fr}``). English-centric: covers languages only when the pivot is English.
``nllb``
    NLLB mined bitext: one file (or folder) per pair named ``<code>-<code>`` with the two ``iso_Script``
    codes in sorted order (``eng_Latn-zul_Latn``, ``afr_Latn-eng_Latn``), as in ``allenai/nllb``'s pair
    list; the files are either the allenai format (gzipped TSV: sentence of the first language of the pair
    name, of the second, LASER score, ...) or JSON lines / parquet with a ``translation`` mapping
    ``{code: sentence}``. Note: ``allenai/nllb`` on the hub holds only a loading script (its data are
    fetched from Google Cloud Storage), so ``repo_id`` must name a hub repo holding the pair files.
``local``
    ``path`` with ``{lang}``/``{iso}``/``{script}`` placeholders; TSV (``pivot<TAB>target``) or fast_align
    (``pivot ||| target``) lines; optional ``dev``/``test`` files (same placeholders).

Hub files are fetched with ``huggingface_hub.snapshot_download`` (only the needed pairs), which honours
``HF_HUB_OFFLINE`` and the hub cache (``cache_dir`` or ``HF_HUB_CACHE``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, iso639_1
from langadapt.core.registry import Registry
from langadapt.data.hub import hub_files, hub_snapshot
from langadapt.data.readers import BATCH_ROWS, text_blocks
from langadapt.data.remote import Need, Remote, RemoteInputs

log = logging.getLogger(__name__)

PARALLEL_SOURCES: Registry[type[ParallelSource]] = Registry("parallel source")
SPLITS = ("train", "dev", "test")
# Pairs of one language before output: split (train/dev/test), src (pivot side), tgt.
PAIRS_SCHEMA = pa.schema([("split", pa.string()), ("src", pa.string()), ("tgt", pa.string())])

# The 99 non-English languages of OPUS-100 (ISO 639-1, as in the dataset card's `en-xx` pair names).
OPUS100_LANGS = frozenset(
    "af am an ar as az be bg bn br bs ca cs cy da de dz el eo es et eu fa fi fr fy ga gd gl gu ha he hi hr "
    "hu hy id ig is it ja ka kk km kn ko ku ky li lt lv mg mk ml mn mr ms mt my nb ne nl nn no oc or pa pl "
    "ps pt ro ru rw se sh si sk sl sq sr sv ta te tg th tk tr tt ug uk ur uz vi wa xh yi yo zh zu".split()
)  # fmt: skip
# Scripts of the OPUS-100 text where a language is written in several (others: any script is accepted).
OPUS100_SCRIPTS = {
    "zh": {"Hans", "Hani"}, "ja": {"Jpan"}, "ko": {"Kore", "Hang"}, "pa": {"Guru"}, "ku": {"Latn"},
    "uz": {"Latn"}, "az": {"Latn"}, "kk": {"Cyrl"}, "mn": {"Cyrl"}, "tg": {"Cyrl"}, "tk": {"Latn"},
    "ug": {"Arab"}, "ur": {"Arab"}, "sr": {"Cyrl", "Latn"}, "sh": {"Latn"}, "ms": {"Latn"}, "yi": {"Hebr"},
}  # fmt: skip
_CODE = r"[a-z]{3}_[A-Z][a-z]{3}"
_PAIR_RE = re.compile(rf"^({_CODE})-({_CODE})$")
# Files of an NLLB pair: the allenai gzipped TSV, TSV, JSON lines, parquet.
NLLB_DATA_SUFFIXES = (".gz", ".tsv", ".jsonl", ".parquet")


# ------------------------------------------------------------------------------------------------- hub


def iter_translation(path: Path, first: str, second: str) -> Iterator[tuple[pa.Array, pa.Array]]:
    """(first-language, second-language) sentences of one pair file, a batch at a time: parquet or JSON lines
    with a ``translation`` mapping keyed by ``first``/``second``, or a TSV whose first two columns are
    ``first``, ``second`` (the allenai NLLB format; ``.gz`` allowed)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        yield from _parquet_translation(path, first, second)
        return
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    jsonl = ".jsonl" in name or ".json" in name
    for start, lines in text_blocks(path, path.suffix == ".gz"):
        a: list[str] = []
        b: list[str] = []
        for n, line in enumerate(lines, start=start):
            if jsonl:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)["translation"]
                    a.append(rec[first])
                    b.append(rec[second])
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise DataError(f"{path}: line {n}: expected JSON with translation.{first} and "
                                    f"translation.{second} ({type(e).__name__}: {e})") from None
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise DataError(f"{path}: line {n}: expected at least 2 tab-separated fields, got {len(fields)}")
            a.append(fields[0])
            b.append(fields[1])
        yield pa.array(a, pa.string()), pa.array(b, pa.string())


def _parquet_translation(path: Path, first: str, second: str) -> Iterator[tuple[pa.Array, pa.Array]]:
    try:
        pf = pq.ParquetFile(str(path))
        if "translation" not in pf.schema_arrow.names:
            raise KeyError("translation")
        kind = pf.schema_arrow.field("translation").type
        keys = {kind.field(i).name for i in range(kind.num_fields)} if pa.types.is_struct(kind) else set()
        if not {first, second} <= keys:
            raise DataError(f"{path}: 'translation' has fields {sorted(keys)}, expected {first!r} and {second!r}")
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=["translation"]):
            col = batch.column("translation")
            yield pc.struct_field(col, first), pc.struct_field(col, second)
    except (pa.ArrowException, OSError, KeyError) as e:
        raise DataError(f"{path}: not a parquet file with a 'translation' column ({e})") from None


# --------------------------------------------------------------------------------------------- sources
class ParallelSource(RemoteInputs):
    """Base class: ``__init__(cfg, pivot)`` validates keys (no I/O); ``covers(langs)`` answers cheaply which
    languages the source has; ``load(lang)`` returns :data:`PAIRS_SCHEMA`; ``record(lang)`` provenance."""

    KEYS: ClassVar[dict[str, Any]] = {}
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: dict[str, Any], pivot: Lang) -> None:
        kind, known = cfg.get("kind"), sorted(set(self.KEYS) | set(self.REQUIRED))
        if unknown := sorted(set(cfg) - {"kind"} - set(known)):
            raise ConfigError(f"unknown key(s) {unknown} for parallel source {kind!r}; known: {known}")
        if missing := [k for k in self.REQUIRED if cfg.get(k) in (None, "")]:
            raise ConfigError(f"parallel source {kind!r} needs key(s) {missing}")
        self.cfg = {**self.KEYS, **cfg}
        self.kind = str(kind)
        self.pivot = pivot
        self._files: dict[str, list[str]] = {}

    def describe(self) -> str:
        return f"{self.kind} source"

    def covers(self, langs: list[Lang]) -> list[Lang]:
        raise NotImplementedError

    def missing_hint(self, lang: Lang) -> str:
        """Where to get `lang`'s pairs when no source has them (the preflight's message)."""
        return ""

    def batches(self, lang: Lang) -> Iterator[pa.Table]:
        """The pairs of `lang` (:data:`PAIRS_SCHEMA`), a batch at a time (a file is never read whole)."""
        raise NotImplementedError

    def load(self, lang: Lang) -> pa.Table:
        return pa.concat_tables([pa.Table.from_pylist([], schema=PAIRS_SCHEMA), *self.batches(lang)])

    def record(self, lang: Lang) -> dict[str, Any]:
        return {"kind": self.kind, "files": self._files.get(lang.code, [])}


class HubParallelSource(ParallelSource):
    KEYS: ClassVar[dict[str, Any]] = {"repo_id": "", "revision": "main", "cache_dir": None}

    def __init__(self, cfg: dict[str, Any], pivot: Lang) -> None:
        super().__init__(cfg, pivot)
        for key in ("repo_id", "revision"):
            if not isinstance(self.cfg[key], str) or not self.cfg[key]:
                raise ConfigError(
                    f"parallel source {self.kind!r}: {key} must be a non-empty string, got {self.cfg[key]!r}"
                )

    def describe(self) -> str:
        return f"{self.kind} dataset {self.cfg['repo_id']}@{self.cfg['revision']}"

    def remotes(self) -> list[Remote]:
        return [Remote("dataset", self.cfg["repo_id"], str(self.cfg["revision"]))]

    def fetch(self, lang: Lang, patterns: list[str]) -> tuple[Path, list[str]]:
        from huggingface_hub.utils import filter_repo_objects

        root = hub_snapshot(self.cfg["repo_id"], str(self.cfg["revision"]), patterns, self.cfg["cache_dir"],
                            self.describe())  # fmt: skip
        present = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        files = sorted(filter_repo_objects(present, allow_patterns=patterns))
        if not files:
            raise DataError(f"{self.describe()}: no file matches {patterns} for {lang.code} in {root}")
        self._files[lang.code] = files
        self._commit = root.name
        return root, files

    def record(self, lang: Lang) -> dict[str, Any]:
        return {**super().record(lang), "repo": self.cfg["repo_id"], "revision": str(self.cfg["revision"]),
                "commit": getattr(self, "_commit", None)}  # fmt: skip


@PARALLEL_SOURCES.register("opus100")
class Opus100Source(HubParallelSource):
    """OPUS-100 (Zhang et al., 2020): English-centric pairs, train/validation/test per pair folder."""

    KEYS: ClassVar[dict[str, Any]] = {**HubParallelSource.KEYS, "repo_id": "Helsinki-NLP/opus-100"}

    def code(self, lang: Lang) -> str | None:
        """The language's OPUS-100 code, or None when OPUS-100 has no pair for it with this pivot."""
        if iso639_1(self.pivot.iso) != "en":
            return None
        code = iso639_1(lang.iso)
        if code not in OPUS100_LANGS or lang.script not in OPUS100_SCRIPTS.get(code, {lang.script}):
            return None
        return code

    def covers(self, langs: list[Lang]) -> list[Lang]:
        return [lang for lang in langs if self.code(lang) is not None]

    def needs(self, lang: Lang) -> list[Need]:
        code = self.code(lang)
        if code is None:
            return []
        pair = "-".join(sorted(["en", code]))
        return [Need(self.remotes()[0], (f"{pair}/*.parquet",), columns=("translation",))]

    def batches(self, lang: Lang) -> Iterator[pa.Table]:
        code = self.code(lang)
        if code is None:
            raise ConfigError(f"{self.describe()} has no {self.pivot.code}-{lang.code} pairs")
        pair = "-".join(sorted(["en", code]))
        root, files = self.fetch(lang, [f"{pair}/*.parquet"])
        for f in files:
            stem = Path(f).name.split(".")[0].removeprefix("opus100-")
            split = {"train": "train", "validation": "dev", "test": "test"}.get(stem.split("-")[0])
            if split is None:
                raise DataError(f"{self.describe()}: {f}: cannot tell the split from the file name")
            for en, other in iter_translation(root / f, "en", code):
                yield _pairs_table(split, en, other)


@PARALLEL_SOURCES.register("nllb")
class NllbSource(HubParallelSource):
    """NLLB mined bitext (NLLB Team, 2022): one file or folder per pair ``<a>-<b>`` (sorted codes), train only,
    from a hub repo (``repo_id``) or a local folder (``path``). ``allenai/nllb`` on the hub holds only a
    loading script: its pairs are ``https://storage.googleapis.com/allennlp-data-bucket/nllb/<a>-<b>.gz``,
    which go into ``path`` (docs/remote-sources.md)."""

    KEYS: ClassVar[dict[str, Any]] = {**HubParallelSource.KEYS, "repo_id": "allenai/nllb", "path": None}
    URL = "https://storage.googleapis.com/allennlp-data-bucket/nllb/{pair}.gz"

    def describe(self) -> str:
        return f"nllb files in {self.cfg['path']}" if self.cfg["path"] else super().describe()

    def remotes(self) -> list[Remote]:
        return [] if self.cfg["path"] else super().remotes()

    def _listing(self) -> list[str]:
        if not self.cfg["path"]:
            return hub_files(self.cfg["repo_id"], str(self.cfg["revision"]), self.cfg["cache_dir"], self.describe())
        root = Path(self.cfg["path"])
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.is_dir() else []

    def pairs(self) -> dict[str, list[str]]:
        """Pair name -> data files (a file ``<pair>.<ext>`` or the files under a folder ``<pair>/``). Not data:
        ``dummy/`` (test zips of a loading script), scripts, READMEs, anything whose suffix is no pair format."""
        if not hasattr(self, "_pairs"):
            out: dict[str, list[str]] = {}
            for f in self._listing():
                parts = f.split("/")
                if parts[0] == "dummy" or not f.lower().endswith(NLLB_DATA_SUFFIXES):
                    continue
                for name in (parts[-1].split(".")[0], *parts[:-1]):
                    if _PAIR_RE.match(name):
                        out.setdefault(name, []).append(f)
                        break
            self._pairs = out
        return self._pairs

    def pair_name(self, lang: Lang) -> str | None:
        pairs = self.pairs()
        for name in ("-".join(sorted([self.pivot.code, lang.code])), f"{self.pivot.code}-{lang.code}",
                     f"{lang.code}-{self.pivot.code}"):  # fmt: skip
            if name in pairs:
                return name
        return None

    def covers(self, langs: list[Lang]) -> list[Lang]:
        return [lang for lang in langs if self.pair_name(lang) is not None]

    def needs(self, lang: Lang) -> list[Need]:
        pair = self.pair_name(lang)
        if pair is None or self.cfg["path"]:
            return []
        return [Need(self.remotes()[0], tuple(self.pairs()[pair]))]

    def missing_hint(self, lang: Lang) -> str:
        pair = "-".join(sorted([self.pivot.code, lang.code]))
        return f"NLLB publishes {self.URL.format(pair=pair)}" + (f" (into {self.cfg['path']})" if self.cfg["path"] else "")

    def local_files(self, lang: Lang) -> list[Path]:
        pair = self.pair_name(lang)
        if pair is None or not self.cfg["path"]:
            return []
        return [Path(self.cfg["path"]) / f for f in self.pairs()[pair]]

    def batches(self, lang: Lang) -> Iterator[pa.Table]:
        pair = self.pair_name(lang)
        if pair is None:
            raise ConfigError(f"{self.describe()} has no {self.pivot.code}-{lang.code} pairs "
                              f"(NLLB publishes {self.URL.format(pair='-'.join(sorted([self.pivot.code, lang.code])))})")
        first, second = pair.split("-")
        if self.cfg["path"]:
            root, files = Path(self.cfg["path"]), self.pairs()[pair]
            self._files[lang.code] = files
        else:
            root, files = self.fetch(lang, self.pairs()[pair])
        for f in files:
            for a, b in iter_translation(root / f, first, second):
                yield _pairs_table("train", *((a, b) if first == self.pivot.code else (b, a)))


@PARALLEL_SOURCES.register("local")
class LocalParallelSource(ParallelSource):
    """Local files: ``path`` (train) and optional ``dev``/``test`` with ``{lang}``/``{iso}``/``{script}``;
    ``format``: ``tsv`` (``pivot<TAB>target``), ``fast_align`` (``pivot ||| target``) or ``auto`` (``.tsv``
    / ``.tsv.gz`` -> tsv, otherwise fast_align); ``reverse: true`` when the target side comes first."""

    REQUIRED = ("path",)
    KEYS: ClassVar[dict[str, Any]] = {"dev": None, "test": None, "format": "auto", "reverse": False}

    def __init__(self, cfg: dict[str, Any], pivot: Lang) -> None:
        super().__init__(cfg, pivot)
        if self.cfg["format"] not in ("auto", "tsv", "fast_align"):
            raise ConfigError(
                f"parallel source local: format {self.cfg['format']!r} is not auto, tsv or fast_align"
            )
        for key in ("path", "dev", "test"):
            if self.cfg[key] is not None:
                self.path(key, pivot)  # placeholder check

    def describe(self) -> str:
        return f"local files {self.cfg['path']}"

    def path(self, key: str, lang: Lang) -> Path:
        try:
            return Path(str(self.cfg[key]).format(lang=lang.code, iso=lang.iso, script=lang.script))
        except (KeyError, IndexError) as e:
            raise ConfigError(
                f"parallel source local: {key} {self.cfg[key]!r}: unknown placeholder {e} "
                "(use {lang}, {iso}, {script})"
            ) from None

    def covers(self, langs: list[Lang]) -> list[Lang]:
        return [lang for lang in langs if self.path("path", lang).is_file()]

    def local_files(self, lang: Lang) -> list[Path]:
        return [self.path(k, lang) for k in ("path", "dev", "test") if self.cfg[k] is not None]

    def read(self, path: Path) -> Iterator[tuple[list[str], list[str]]]:
        fmt = self.cfg["format"]
        if fmt == "auto":
            fmt = "tsv" if path.name.lower().removesuffix(".gz").endswith(".tsv") else "fast_align"
        sep = "\t" if fmt == "tsv" else " ||| "
        for start, lines in text_blocks(path, path.suffix == ".gz"):
            a: list[str] = []
            b: list[str] = []
            for n, line in enumerate(lines, start=start):
                if not line.strip():
                    continue
                fields = line.split(sep)
                if len(fields) != 2:
                    what = "tab-separated fields" if fmt == "tsv" else "' ||| '-separated sides"
                    raise DataError(f"{path}: line {n}: expected 2 {what}, got {len(fields)}")
                a.append(fields[0])
                b.append(fields[1])
            yield (b, a) if self.cfg["reverse"] else (a, b)

    def batches(self, lang: Lang) -> Iterator[pa.Table]:
        files = []
        for key, split in (("path", "train"), ("dev", "dev"), ("test", "test")):
            if self.cfg[key] is None:
                continue
            path = self.path(key, lang)
            if not path.is_file():
                raise DataError(f"parallel data file not found: {path}")
            files.append(str(path))
            self._files[lang.code] = files
            for src, tgt in self.read(path):
                yield _pairs_table(split, src, tgt)


def _pairs_table(split: str, src: Any, tgt: Any) -> pa.Table:
    n = len(src)
    cols = [x.cast(pa.string()) if isinstance(x, pa.Array) else pa.array(x, pa.string()) for x in (src, tgt)]
    return pa.Table.from_arrays([pa.array([split] * n, pa.string()), *cols], schema=PAIRS_SCHEMA)


# ------------------------------------------------------------------------------------------------ entry


