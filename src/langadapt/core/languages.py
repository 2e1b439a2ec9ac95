"""Language identity: `iso639-3_Script` codes, scripts of text (ISO 15924), fastText LID labels.

This module is the single owner of language codes. A language variety is written
``<ISO 639-3 code>_<ISO 15924 script>``, e.g. ``eng_Latn``, ``hin_Deva``, ``jpn_Jpan``, ``nya_Latn``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache

import pycountry
import unicodedataplus
from iso639 import Lang as Iso639
from iso639.exceptions import DeprecatedLanguageValue, InvalidLanguageValue

from langadapt.core.errors import ConfigError

_CODE_RE = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})$")

# ISO 15924 codes for writing systems made of several Unicode scripts (not Unicode Script values).
_COMPOSITE_SCRIPTS = {
    "Jpan": {"Hani", "Hira", "Kana"},  # Japanese: Han + Hiragana + Katakana
    "Kore": {"Hani", "Hang"},  # Korean: Hangul + Han
    "Hans": {"Hani"},  # Han, simplified
    "Hant": {"Hani"},  # Han, traditional
}
# Scripts that carry no language information (digits, punctuation, combining marks).
NEUTRAL_SCRIPTS = frozenset({"Zyyy", "Zinh", "Zzzz"})


@dataclass(frozen=True, order=True)
class Lang:
    """A language variety: ISO 639-3 code and ISO 15924 script."""

    iso: str
    script: str

    @property
    def code(self) -> str:
        return f"{self.iso}_{self.script}"

    def __str__(self) -> str:
        return self.code


@lru_cache(maxsize=1)
def _unicode_script_codes() -> dict[str, str]:
    """Unicode Script property value name (e.g. 'Latin') -> ISO 15924 code ('Latn')."""
    aliases = unicodedataplus.property_value_aliases["script"]
    return {name: codes[0] for name, codes in aliases.items()}


@lru_cache(maxsize=1)
def known_scripts() -> frozenset[str]:
    return frozenset(_unicode_script_codes().values()) | frozenset(_COMPOSITE_SCRIPTS) | NEUTRAL_SCRIPTS


@cache
def _iso639_3(code: str) -> bool:
    return pycountry.languages.get(alpha_3=code) is not None


def parse_lang(code: str, *, where: str = "") -> Lang:
    """Parse and validate ``iso639-3_Script``; raise ConfigError naming the code (and `where`)."""
    place = f" in {where}" if where else ""
    if not isinstance(code, str):
        raise ConfigError(f"language code{place} must be a string like 'eng_Latn', got {code!r}")
    m = _CODE_RE.match(code)
    if not m:
        raise ConfigError(
            f"malformed language code {code!r}{place}: expected '<ISO 639-3>_<ISO 15924>', e.g. 'eng_Latn'"
        )
    iso, script = m.groups()
    if not _iso639_3(iso):
        raise ConfigError(f"unknown language code {code!r}{place}: {iso!r} is not an ISO 639-3 code")
    if script not in known_scripts():
        raise ConfigError(f"unknown language code {code!r}{place}: {script!r} is not an ISO 15924 script")
    return Lang(iso, script)


def char_script(ch: str) -> str:
    """ISO 15924 code of one character's Unicode Script property (e.g. 'a' -> 'Latn')."""
    return _unicode_script_codes().get(unicodedataplus.script(ch), "Zzzz")


def text_scripts(text: str) -> Counter[str]:
    """Counts of characters per ISO 15924 script, ignoring neutral characters and whitespace."""
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isspace():
            continue
        s = char_script(ch)
        if s not in NEUTRAL_SCRIPTS:
            counts[s] += 1
    return counts


def text_script(text: str) -> str:
    """The dominant ISO 15924 script of a text; Han+kana -> Jpan, Hangul(+Han) -> Hang/Kore; '' if none."""
    counts = text_scripts(text)
    if not counts:
        return "Zyyy"
    if counts.get("Hira", 0) + counts.get("Kana", 0) > 0 and set(counts) <= _COMPOSITE_SCRIPTS["Jpan"]:
        return "Jpan"
    return counts.most_common(1)[0][0]


def script_matches(lang_script: str, observed: str) -> bool:
    """Whether an observed character script is compatible with a language's declared script."""
    if observed == lang_script:
        return True
    return observed in _COMPOSITE_SCRIPTS.get(lang_script, set())


@lru_cache(maxsize=4096)
def iso639_1(iso: str) -> str | None:
    """The ISO 639-1 code of an ISO 639-3 language, or of its macrolanguage when the individual language has
    none (``arb`` -> ``ar``, ``swh`` -> ``sw``, ``cmn`` -> ``zh``, ``pbt`` -> ``ps``): the two-letter code
    that fastText LID, OPUS-100, XNLI and Wikipedia use. None when neither has one. Macrolanguage membership
    comes from the ISO 639-3 tables of ``iso639-lang``, the two-letter codes from ``pycountry``; this is the
    one mapping every source's code table builds on (each adds only its own exceptions)."""
    rec = pycountry.languages.get(alpha_3=iso)
    if getattr(rec, "alpha_2", None):
        return rec.alpha_2
    try:
        macro = Iso639(iso).macro()
    except (InvalidLanguageValue, DeprecatedLanguageValue):
        return None
    if macro is None:
        return None
    return getattr(pycountry.languages.get(alpha_3=macro.pt3), "alpha_2", None) or macro.pt1 or None


def fasttext_label(lang: Lang | str) -> str:
    """The fastText `lid.176` label (without `__label__`) for a language: ISO 639-1 where one exists
    (`iso639_1`), else the ISO 639-3 code."""
    lang = parse_lang(lang) if isinstance(lang, str) else lang
    return iso639_1(lang.iso) or lang.iso
