"""The realignment paper's 65-language pool L65 (family, script, Joshi class; packaged TSV) and the languages
XLM-R / mBERT saw in pretraining (packaged lists), in the pool's ISO 639-3 spelling."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from langadapt.core.errors import ConfigError

log = logging.getLogger(__name__)

POOL_RESOURCE = "realign_l65_languages.tsv"
SEEN_RESOURCE = "seen_languages.tsv"  # languages seen in pretraining by XLM-R / mBERT (sources in its header)
SEEN_MODELS = ("xlmr", "mbert")
# Macrolanguage <-> individual-language codes mapped onto the code the L65 pool uses, so that a `seen:`
# list written with either code matches the pool (zho/cmn, ara/arb, msa/zsm, fas/pes, swh/swa, ...).
POOL_ALIASES = {
    "cmn": "zho", "arb": "ara", "zsm": "msa", "pes": "fas", "azj": "aze", "ekk": "est",
    "swa": "swh", "orm": "gaz", "aka": "twi", "fil": "tgl",
}
ENGLISH = "eng"
INDO_EUROPEAN_FAMILIES = frozenset({"Germanic", "Romance", "Balto-Slavic", "Indo-Iranian", "Hellenic"})


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    script: str
    family: str
    joshi_class: int
    resource_group: str

    @property
    def family_key(self) -> str:
        """Family used for "distinct family" rules; an unknown family (N/A: isolates) is its own family."""
        return self.family if self.family not in ("", "N/A") else f"isolate:{self.code}"

    @property
    def indo_european(self) -> bool:
        return self.family in INDO_EUROPEAN_FAMILIES


@dataclass(frozen=True)
class Pool:
    languages: tuple[Language, ...]

    @property
    def codes(self) -> list[str]:
        return [lang.code for lang in self.languages]

    def __len__(self) -> int:
        return len(self.languages)

    def __getitem__(self, code: str) -> Language:
        for lang in self.languages:
            if lang.code == code:
                return lang
        raise ConfigError(f"unknown language {code!r}: not in the pool ({len(self)} languages)")

    def where(self, keep: Callable[[Language], bool]) -> Pool:
        return Pool(tuple(lang for lang in self.languages if keep(lang)))

    def subset(self, codes: Iterable[str]) -> Pool:
        """The pool restricted to ``codes`` (pool order); an unknown code is a ConfigError naming it."""
        codes = list(codes)
        known = set(self.codes)
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise ConfigError(f"unknown language code(s) {', '.join(map(repr, unknown))}: not in the pool")
        wanted = set(codes)
        return self.where(lambda lang: lang.code in wanted)


def _parse_pool(text: str, origin: str) -> Pool:
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0].split("\t")
    need = ["name", "iso639_3", "script", "family", "joshi_class", "resource_group"]
    if header[: len(need)] != need:
        raise ConfigError(f"{origin}: expected columns {need}, got {header}")
    langs = []
    for k, line in enumerate(lines[1:], start=2):
        f = line.split("\t")
        try:
            langs.append(Language(f[1].strip(), f[0].strip(), f[2].strip(), f[3].strip(), int(f[4]), f[5].strip()))
        except (IndexError, ValueError) as e:
            raise ConfigError(f"{origin}:{k}: bad row {line!r}: {e}") from None
    return Pool(tuple(langs))


@lru_cache(maxsize=1)
def _packaged_pool() -> Pool:
    text = resources.files("langadapt").joinpath("resources", POOL_RESOURCE).read_text(encoding="utf-8")
    return _parse_pool(text, f"langadapt/resources/{POOL_RESOURCE}")


def load_pool(path: str | Path | None = None, codes: Iterable[str] | None = None) -> Pool:
    """The packaged L65 pool (or a TSV of the same columns), optionally restricted to ``codes``."""
    pool = _packaged_pool() if path is None else _parse_pool(Path(path).read_text(encoding="utf-8"), str(path))
    return pool if codes is None else pool.subset(codes)


def pool_code(code: str) -> str:
    """``code`` as the L65 pool writes it (see ``POOL_ALIASES``); other codes unchanged."""
    return POOL_ALIASES.get(code, code)


@lru_cache(maxsize=1)
def _seen_table() -> dict[str, frozenset[str]]:
    text = resources.files("langadapt").joinpath("resources", SEEN_RESOURCE).read_text(encoding="utf-8")
    origin = f"langadapt/resources/{SEEN_RESOURCE}"
    lines = [(k, line) for k, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.startswith("#")]
    header = lines[0][1].split("\t")
    if header[:2] != ["model", "iso639_3"]:
        raise ConfigError(f"{origin}:{lines[0][0]}: expected columns model, iso639_3, ...; got {header}")
    table: dict[str, set[str]] = {}
    for k, line in lines[1:]:
        f = line.split("\t")
        if len(f) < 2 or not f[1].strip():
            raise ConfigError(f"{origin}:{k}: bad row {line!r}")
        table.setdefault(f[0].strip(), set()).add(pool_code(f[1].strip()))
    return {m: frozenset(c) for m, c in table.items()}


def seen_languages(model: str) -> frozenset[str]:
    """ISO 639-3 codes (pool spelling) of the languages ``model`` (``xlmr`` or ``mbert``) saw in pretraining:
    XLM-R's 100 CC-100 languages, mBERT's 104 Wikipedia languages (``resources/seen_languages.tsv``)."""
    table = _seen_table()
    if model not in table:
        raise ConfigError(f"unknown model {model!r} for the seen-language lists; known: {', '.join(sorted(table))}")
    return table[model]
