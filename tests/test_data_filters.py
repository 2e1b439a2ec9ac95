"""Corpus filters: exact keep masks on hand-made lines, fastText LID, config errors, stats rows."""

from __future__ import annotations

import pyarrow as pa
import pytest

from langadapt.core.errors import ConfigError
from langadapt.core.languages import Lang, parse_lang
from langadapt.data.filters import FILTERS, apply_filters, build_filters, token_stats

ENG = parse_lang("eng_Latn")
JPN = parse_lang("jpn_Jpan")
HIN = parse_lang("hin_Deva")


def run(name: str, texts: list[str], lang: Lang = ENG, **params: object) -> list[bool]:
    return list(FILTERS.get(name)(**params).apply(texts, lang))


def test_dedup() -> None:
    texts = ["a b c", "a  b c ", "A b c", "d e", "a b c"]
    assert run("dedup", texts) == [True, False, True, True, False]
    assert run("dedup", texts, lowercase=True) == [True, False, False, True, False]


def test_min_tokens() -> None:
    assert run("min_tokens", ["one", "one two", "", "  a  ", "x y z"]) == [False, True, False, False, True]
    assert run("min_tokens", ["one two", "x y z"], min=3) == [False, True]


def test_token_lengths() -> None:
    long17 = "abcdefghijklmnopq"  # 17 characters
    assert run("avg_token_length", [long17, long17 + " ab", "a" * 16, ""]) == [False, True, True, True]
    w33 = "w" * 33
    assert run("max_token_length", ["ok " + w33, "ok " + "w" * 32, "short words"]) == [False, True, True]
    assert run("max_token_length", ["abcd ef"], max=3) == [False]


def test_alpha_ratio() -> None:
    texts = ["abc 123", "ab 12", "12345 !!", "", "Straße, café!", "परमेश्वर ने जगत"]
    # "abc 123": 3/6 = 0.5 kept; "ab 12": 2/4 kept; digits only dropped; empty dropped; marks count
    assert run("alpha_ratio", texts) == [True, True, False, False, True, True]
    assert run("alpha_ratio", ["abc 1"], min=0.8) == [False]


def test_no_space_scripts_count_characters() -> None:
    jp = "初めに、神が天と地を創造した。"  # 15 characters, no spaces: not one 15-char token
    counts, mean, longest = token_stats([jp, "神", "ABCDEFG漢字"], JPN)
    assert counts.tolist() == [15, 1, 3]  # one token per character; "ABCDEFG" is one token
    assert longest.tolist()[0] == 1 and longest.tolist()[2] == 7
    assert run("min_tokens", [jp, "神"], JPN) == [True, False]
    assert run("max_token_length", [jp * 3], JPN) == [True]  # 45 chars without spaces stays
    assert run("avg_token_length", [jp * 3], JPN) == [True]
    assert run("max_token_length", [jp * 3], ENG) == [False]  # as whitespace tokens it would be dropped


def test_lid_english_vs_german() -> None:
    line = ["The weather was cold and rainy, so we stayed at home and read books all afternoon."]
    assert run("lid", line, ENG, threshold=0.5) == [True]
    assert run("lid", line, parse_lang("deu_Latn"), threshold=0.5) == [False]
    assert run("lid", line, parse_lang("deu_Latn"), threshold=0.99, mode="not_foreign") == [True]
    assert run("lid", line, parse_lang("deu_Latn"), threshold=0.5, mode="not_foreign") == [False]
    assert run("lid_exclude", line, parse_lang("deu_Latn")) == [False]  # English at >= 0.9 removed
    de = ["Das Wetter war kalt und regnerisch, deshalb blieben wir den ganzen Nachmittag zu Hause."]
    assert run("lid_exclude", de, parse_lang("deu_Latn")) == [True]


def test_lid_unknown_label_keeps_everything() -> None:
    f = FILTERS.get("lid")()
    assert f.apply(["Mulungu ndi wabwino", "This is English text for sure."], parse_lang("nya_Latn")) == [True, True]
    assert "no label 'ny'" in f.note


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown corpus filter 'dedupe'"):
        build_filters({"dedupe": {}})
    with pytest.raises(ConfigError, match="unknown parameter 'maximum' for corpus filter 'max_token_length'"):
        build_filters({"max_token_length": {"maximum": 3}})
    with pytest.raises(ConfigError, match="'min' = 'two' has the wrong type"):
        build_filters({"min_tokens": {"min": "two"}})
    with pytest.raises(ConfigError, match="mode must be"):
        build_filters({"lid": {"mode": "strict"}})
    with pytest.raises(ConfigError, match="lid_exclude.langs"):
        build_filters({"lid_exclude": {"langs": ["english"]}})
    assert [f.name for f in build_filters({"dedup": None, "lid": False, "min_tokens": True})] == ["dedup", "min_tokens"]


def test_apply_filters_stats() -> None:
    table = pa.table({"verse_id": [1, 2, 3, 4, 5], "text": ["a b", "a b", "solo", "x y", "12 34"]})
    out, stats = apply_filters(table, "eng_Latn", {"dedup": {}, "min_tokens": {"min": 2}, "alpha_ratio": {}})
    assert out.column("verse_id").to_pylist() == [1, 4]
    assert [(s["filter"], s["input"], s["removed"], s["kept"]) for s in stats] == [
        ("source", 5, 0, 5), ("dedup", 5, 1, 4), ("min_tokens", 4, 1, 3), ("alpha_ratio", 3, 1, 2)
    ]
    assert all(s["lang"] == "eng_Latn" for s in stats)
    out, stats = apply_filters(table, HIN, None)
    assert out.num_rows == 5 and len(stats) == 1
