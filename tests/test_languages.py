import pytest

from langadapt.core.errors import ConfigError
from langadapt.core.languages import Lang, fasttext_label, parse_lang, script_matches, text_script


def test_parse_valid_codes():
    assert parse_lang("eng_Latn") == Lang("eng", "Latn")
    assert parse_lang("jpn_Jpan").script == "Jpan"
    assert parse_lang("nya_Latn").code == "nya_Latn"
    assert str(parse_lang("hin_Deva")) == "hin_Deva"


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("en_Latn", "malformed"),
        ("eng-Latn", "malformed"),
        ("eng_latn", "malformed"),
        ("xqz_Latn", "'xqz' is not an ISO 639-3 code"),
        ("eng_Abcd", "'Abcd' is not an ISO 15924 script"),
    ],
)
def test_parse_rejects_with_named_value(code, fragment):
    with pytest.raises(ConfigError) as exc:
        parse_lang(code, where="config.yaml: languages[0]")
    assert code in str(exc.value)
    assert fragment in str(exc.value)
    assert "config.yaml: languages[0]" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("In the beginning", "Latn"),
        ("आदि में परमेश्वर", "Deva"),
        ("初めに、神は天と地とを創造された。", "Jpan"),
        ("太初有道", "Hani"),
        ("처음에 하나님이", "Hang"),
        ("В начале", "Cyrl"),
        ("123 !?", "Zyyy"),
    ],
)
def test_text_script(text, script):
    assert text_script(text) == script


def test_script_matches_composites():
    assert script_matches("Jpan", "Hira")
    assert script_matches("Hans", "Hani")
    assert script_matches("Latn", "Latn")
    assert not script_matches("Latn", "Cyrl")


def test_fasttext_labels():
    assert fasttext_label("eng_Latn") == "en"
    assert fasttext_label("swh_Latn") == "sw"
    assert fasttext_label("fas_Arab") == "fa"
    assert fasttext_label("nya_Latn") == "ny"
    assert fasttext_label("ceb_Latn") == "ceb"  # no ISO 639-1 code: fastText uses the 3-letter code
