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
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from langadapt.core.atomic import atomic_files
from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, iso639_1, parse_lang
from langadapt.core.registry import Registry
from langadapt.core.textfiles import read_lines
from langadapt.data.parallel import PARALLEL_SCHEMA
from langadapt.data.sources import normalise_ws

log = logging.getLogger(__name__)

PARALLEL_SOURCES: Registry[type[ParallelSource]] = Registry("parallel source")
ENTRY_KEYS = {"sources": None, "languages": None, "max_pairs": None, "seed": 0, "dev_pairs": 0}
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


# ------------------------------------------------------------------------------------------------- hub
def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    return (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError)


def hub_snapshot(repo_id: str, revision: str, patterns: list[str], cache_dir: str | None, what: str) -> Path:
    """Download (or find in the cache) the files of a hub dataset repo matching ``patterns``."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns,
                                   cache_dir=cache_dir)  # fmt: skip
    except _hub_errors() as e:
        raise DataError(f"cannot fetch {what}: {e}") from None
    return Path(folder)


def hub_files(repo_id: str, revision: str, cache_dir: str | None, what: str) -> list[str]:
    """The file listing of a hub dataset repo: from the hub, or (offline / unreachable) the cached snapshot."""
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import HfApi, snapshot_download

    if not hf_constants.HF_HUB_OFFLINE:
        try:
            return sorted(HfApi().list_repo_files(repo_id, repo_type="dataset", revision=revision))
        except _hub_errors() as e:
            log.warning("cannot list %s on the hub (%s); using the cached snapshot", what, e)
    try:
        root = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir,
                                      allow_patterns=["\0"], local_files_only=True))  # fmt: skip
    except _hub_errors() as e:
        raise DataError(f"cannot list the files of {what} (offline and not in the hub cache): {e}") from None
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def read_translation(path: Path, first: str, second: str) -> tuple[list[str], list[str]]:
    """(first-language, second-language) sentences of one pair file: parquet or JSON lines with a
    ``translation`` mapping keyed by ``first``/``second``, or a TSV whose first two columns are
    ``first``, ``second`` (the allenai NLLB format; ``.gz`` allowed)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            col = pq.read_table(path, columns=["translation"]).column("translation").combine_chunks()
        except (pa.ArrowException, OSError, KeyError) as e:
            raise DataError(f"{path}: not a parquet file with a 'translation' column ({e})") from None
        keys = (
            {col.type.field(i).name for i in range(col.type.num_fields)}
            if pa.types.is_struct(col.type)
            else set()
        )
        if not {first, second} <= keys:
            raise DataError(
                f"{path}: 'translation' has fields {sorted(keys)}, expected {first!r} and {second!r}"
            )
        return (pc.struct_field(col, first).to_pylist(), pc.struct_field(col, second).to_pylist())
    lines = read_lines(path)
    a: list[str] = []
    b: list[str] = []
    if ".jsonl" in name or ".json" in name:
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)["translation"]
                a.append(rec[first])
                b.append(rec[second])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(
                    f"{path}: line {n}: expected JSON with translation.{first} and "
                    f"translation.{second} ({type(e).__name__}: {e})"
                ) from None
        return a, b
    for n, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{path}: line {n}: expected at least 2 tab-separated fields, got {len(fields)}")
        a.append(fields[0])
        b.append(fields[1])
    return a, b


# --------------------------------------------------------------------------------------------- sources
class ParallelSource:
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

    def load(self, lang: Lang) -> pa.Table:
        raise NotImplementedError

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

    def load(self, lang: Lang) -> pa.Table:
        code = self.code(lang)
        if code is None:
            raise ConfigError(f"{self.describe()} has no {self.pivot.code}-{lang.code} pairs")
        pair = "-".join(sorted(["en", code]))
        root, files = self.fetch(lang, [f"{pair}/*.parquet"])
        parts = []
        for f in files:
            stem = Path(f).name.split(".")[0].removeprefix("opus100-")
            split = {"train": "train", "validation": "dev", "test": "test"}.get(stem.split("-")[0])
            if split is None:
                raise DataError(f"{self.describe()}: {f}: cannot tell the split from the file name")
            en, other = read_translation(root / f, "en", code)
            parts.append(_pairs_table(split, en, other))
        return pa.concat_tables(parts)


@PARALLEL_SOURCES.register("nllb")
class NllbSource(HubParallelSource):
    """NLLB mined bitext (NLLB Team, 2022): one file or folder per pair ``<a>-<b>`` (sorted codes), train only."""

    KEYS: ClassVar[dict[str, Any]] = {**HubParallelSource.KEYS, "repo_id": "allenai/nllb"}

    def pairs(self) -> dict[str, list[str]]:
        """Pair name -> files of the repo (a file ``<pair>.<ext>`` or the files under a folder ``<pair>/``)."""
        if not hasattr(self, "_pairs"):
            out: dict[str, list[str]] = {}
            for f in hub_files(self.cfg["repo_id"], str(self.cfg["revision"]), self.cfg["cache_dir"],
                               self.describe()):  # fmt: skip
                parts = f.split("/")
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

    def load(self, lang: Lang) -> pa.Table:
        pair = self.pair_name(lang)
        if pair is None:
            raise ConfigError(f"{self.describe()} has no {self.pivot.code}-{lang.code} pairs")
        first, second = pair.split("-")
        root, files = self.fetch(lang, self.pairs()[pair])
        parts = []
        for f in files:
            a, b = read_translation(root / f, first, second)
            src, tgt = (a, b) if first == self.pivot.code else (b, a)
            parts.append(_pairs_table("train", src, tgt))
        return pa.concat_tables(parts)


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

    def read(self, path: Path) -> tuple[list[str], list[str]]:
        fmt = self.cfg["format"]
        if fmt == "auto":
            fmt = "tsv" if path.name.lower().removesuffix(".gz").endswith(".tsv") else "fast_align"
        sep = "\t" if fmt == "tsv" else " ||| "
        a: list[str] = []
        b: list[str] = []
        for n, line in enumerate(read_lines(path), start=1):
            if not line.strip():
                continue
            fields = line.split(sep)
            if len(fields) != 2:
                what = "tab-separated fields" if fmt == "tsv" else "' ||| '-separated sides"
                raise DataError(f"{path}: line {n}: expected 2 {what}, got {len(fields)}")
            a.append(fields[0])
            b.append(fields[1])
        return (b, a) if self.cfg["reverse"] else (a, b)

    def load(self, lang: Lang) -> pa.Table:
        parts = []
        files = []
        for key, split in (("path", "train"), ("dev", "dev"), ("test", "test")):
            if self.cfg[key] is None:
                continue
            path = self.path(key, lang)
            if not path.is_file():
                raise DataError(f"parallel data file not found: {path}")
            parts.append(_pairs_table(split, *self.read(path)))
            files.append(str(path))
        self._files[lang.code] = files
        return pa.concat_tables(parts)


def _pairs_table(split: str, src: list[Any], tgt: list[Any]) -> pa.Table:
    n = len(src)
    return pa.Table.from_arrays([pa.array([split] * n, pa.string()), pa.array(src, pa.string()),
                                 pa.array(tgt, pa.string())], schema=PAIRS_SCHEMA)  # fmt: skip


# ------------------------------------------------------------------------------------------------ entry
def check_entry(
    name: str, spec: dict[str, Any], pivot: str, config_langs: list[str], where: str = "parallel_data"
) -> tuple[list[ParallelSource], list[Lang]]:
    """Validate one ``parallel_data`` entry without I/O: (source objects, target languages)."""
    at = f"{where}.{name}"
    if unknown := sorted(set(spec) - set(ENTRY_KEYS)):
        raise ConfigError(f"{at}: unknown key(s) {unknown}; known: {sorted(ENTRY_KEYS)}")
    piv = parse_lang(pivot, where=f"{at} pivot")
    cfgs = spec.get("sources")
    if not isinstance(cfgs, list) or not cfgs:
        raise ConfigError(f"{at}.sources: a non-empty list of {{kind: ...}} blocks is required")
    sources = []
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict) or "kind" not in cfg:
            raise ConfigError(f"{at}.sources[{i}]: must be a mapping with a 'kind' key, got {cfg!r}")
        try:
            sources.append(PARALLEL_SOURCES.get(cfg["kind"])(cfg, piv))
        except ConfigError as e:
            raise ConfigError(f"{at}.sources[{i}]: {e}") from None
    codes = spec.get("languages") or [c for c in config_langs if c != piv.code]
    langs = []
    for i, code in enumerate(codes):
        lang = parse_lang(code, where=f"{at}.languages[{i}]")
        if code not in config_langs:
            raise ConfigError(f"{at}.languages: {code!r} is not in languages")
        if lang == piv:
            raise ConfigError(f"{at}.languages: {code!r} is the pivot language")
        langs.append(lang)
    for key in ("max_pairs", "seed", "dev_pairs"):
        check_int(spec.get(key, ENTRY_KEYS[key]), f"{at}.{key}", low=0, optional=True)
    return sources, langs


def choose_sources(name: str, sources: list[ParallelSource], langs: list[Lang]) -> dict[Lang, ParallelSource]:
    """For every language the first source covering it; DataError naming the uncovered ones (no download)."""
    chosen: dict[Lang, ParallelSource] = {}
    for source in sources:
        todo = [lang for lang in langs if lang not in chosen]
        if not todo:
            break
        for lang in source.covers(todo):
            chosen[lang] = source
    if missing := [lang.code for lang in langs if lang not in chosen]:
        tried = ", ".join(s.describe() for s in sources)
        raise DataError(f"parallel_data.{name}: no source covers {', '.join(missing)} (tried: {tried})")
    return chosen


def _clean(table: pa.Table) -> pa.Table:
    src = [normalise_ws(t or "") for t in table.column("src").to_pylist()]
    tgt = [normalise_ws(t or "") for t in table.column("tgt").to_pylist()]
    keep = pa.array([bool(s and t) for s, t in zip(src, tgt, strict=True)])
    out = table.set_column(1, "src", pa.array(src, pa.string())).set_column(
        2, "tgt", pa.array(tgt, pa.string())
    )
    return out.filter(keep)


def _sample(table: pa.Table, lang: Lang, seed: int, max_pairs: int | None, dev_pairs: int) -> pa.Table:
    """Hold out ``dev_pairs`` train pairs as dev when the source has no dev split, then cap train at
    ``max_pairs`` (a deterministic sample by seed and language, original order kept)."""
    rng = np.random.default_rng([seed, zlib.crc32(lang.code.encode())])
    split = np.asarray(table.column("split").to_pylist(), dtype=object)
    train = np.flatnonzero(split == "train")
    if dev_pairs and not np.any(split == "dev") and len(train) > dev_pairs:
        held = np.sort(rng.choice(train, dev_pairs, replace=False))
        split[held] = "dev"
        table = table.set_column(0, "split", pa.array(split.tolist(), pa.string()))
        train = np.setdiff1d(train, held)
    keep = np.flatnonzero(split != "train")
    if max_pairs is not None and len(train) > max_pairs:
        train = np.sort(rng.choice(train, max_pairs, replace=False))
    order = sorted(np.concatenate([train, keep]).tolist(), key=lambda i: (SPLITS.index(split[i]), i))
    return table.take(pa.array(order, pa.int64()))


def build_parallel_data(
    spec: dict[str, Any],
    pivot: str,
    config_langs: list[str],
    out_parquet: str | Path,
    out_json: str | Path | None = None,
    name: str = "parallel_data",
) -> dict[str, Any]:
    """Write ``out_parquet`` (:data:`PARALLEL_SCHEMA`: one row per pair, languages in sorted order, train
    then dev then test, ``verse_id`` = pair index within the language, ``book`` 0) and the sidecar
    ``out_json`` (default: same stem, ``.json``) with each language's source, repo, revision and counts.

    Every language is covered before anything is fetched; no output remains on error."""
    sources, langs = check_entry(name, spec, pivot, config_langs)
    chosen = choose_sources(name, sources, langs)
    out_parquet = Path(out_parquet)
    out_json = Path(out_json) if out_json else out_parquet.with_suffix(".json")
    seed, max_pairs, dev_pairs = (
        int(spec.get("seed") or 0),
        spec.get("max_pairs"),
        int(spec.get("dev_pairs") or 0),
    )
    report: dict[str, Any] = {"name": name, "pivot": pivot, "languages": {}}
    with atomic_files(out_parquet, out_json, clear_on_error=True) as (tmp_parquet, tmp_json):
        parts = [pa.Table.from_pylist([], schema=PARALLEL_SCHEMA)]
        for lang in sorted(langs):
            source = chosen[lang]
            raw = source.load(lang)
            pairs = _sample(_clean(raw), lang, seed, max_pairs, dev_pairs)
            if not any(s == "train" for s in pairs.column("split").to_pylist()):
                raise DataError(
                    f"parallel_data.{name}: {source.describe()} has no non-empty train pair for {lang.code}"
                )
            n = pairs.num_rows
            parts.append(pa.Table.from_arrays(
                [pa.array([lang.code] * n, pa.string()), pa.array(np.arange(n), pa.int64()),
                 pa.array(np.zeros(n, np.int16), pa.int16()), pairs.column("split").combine_chunks(),
                 pairs.column("src").combine_chunks(), pairs.column("tgt").combine_chunks()], schema=PARALLEL_SCHEMA))  # fmt: skip
            counts = {s: int(c) for s, c in zip(*np.unique(pairs.column("split").to_pylist(), return_counts=True),
                                                strict=True)}  # fmt: skip
            report["languages"][lang.code] = {**source.record(lang), "raw_pairs": raw.num_rows,
                                              "pairs": {s: counts.get(s, 0) for s in SPLITS}}  # fmt: skip
            log.info(
                "%s: %s pairs from %s", lang.code, report["languages"][lang.code]["pairs"], source.describe()
            )
        pq.write_table(pa.concat_tables(parts), tmp_parquet)
        tmp_json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report


def check_parallel_config(config: dict[str, Any], source: str = "config") -> None:
    """Config checks before any job: every ``parallel_data`` entry, and realignment ``data:`` references."""
    entries = config.get("parallel_data") or {}
    for name, spec in entries.items():
        check_entry(name, spec, config["pivot"], config["languages"], where=f"{source}: parallel_data")
    for name, spec in (config.get("realignment") or {}).items():
        data = spec.get("data")
        if data is not None and data != "bible" and data not in entries:
            raise ConfigError(
                f"{source}: realignment.{name}.data: {data!r} is not defined in parallel_data "
                f"(defined: {sorted(entries)}; 'bible' = the verse pairs of the corpora)"
            )


def local_inputs(spec: dict[str, Any], pivot: str, config_langs: list[str]) -> list[str]:
    """The existing local files an entry may read (rule inputs, so that editing them reruns the entry)."""
    piv = parse_lang(pivot)
    codes = spec.get("languages") or [c for c in config_langs if c != piv.code]
    out: list[str] = []
    for cfg in spec.get("sources") or []:
        if isinstance(cfg, dict) and cfg.get("kind") == "local":
            source = LocalParallelSource(cfg, piv)
            for lang in map(parse_lang, codes):
                paths = [
                    source.path(key, lang) for key in ("path", "dev", "test") if source.cfg[key] is not None
                ]
                out.extend(str(p) for p in paths if p.is_file())
    return sorted(set(out))
