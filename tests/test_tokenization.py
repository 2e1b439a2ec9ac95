"""Tests of SentencePiece training, the HF fast tokenizer built from it, and tokenizer statistics."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import sentencepiece as spm
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import Unigram
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from langadapt.core.errors import ConfigError, DataError
from langadapt.models.tokenization import (
    check_against_spm,
    tokenizer_stats,
    train_sentencepiece,
    write_tokenizer_stats,
)

SYLLABLES = {
    "eng_Latn": ["ka", "lo", "mi", "ne", "tu", "ra", "so", "vi", "an", "el"],
    "rus_Cyrl": ["ка", "ло", "ми", "не", "ту", "ра", "со", "ви", "ан", "ел"],
    "jpn_Jpan": ["か", "ろ", "み", "ね", "つ", "ら", "そ", "び", "日", "本"],
}


def synthetic_corpus(seed: int, n_lines: int = 150) -> dict[str, list[str]]:
    """Lines of random words built from a few syllables per script (no spaces for Japanese)."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for lang, syl in SYLLABLES.items():
        words = ["".join(rng.choices(syl, k=rng.randint(1, 3))) for _ in range(60)]
        sep = "" if lang == "jpn_Jpan" else " "
        out[lang] = [sep.join(rng.choices(words, k=rng.randint(3, 9))) + "." for _ in range(n_lines)]
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_sentencepiece(synthetic_corpus(0), out, vocab_size=200, seed=0)
    return out


def test_tokenizer_directory_and_special_tokens(trained):
    assert {"spm.model", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in trained.iterdir()}
    tok = AutoTokenizer.from_pretrained(trained)
    assert len(tok) == 200
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 199 and tok.convert_ids_to_tokens(199) == "<mask>"
    assert tok.cls_token_id == 0 and tok.sep_token_id == 2
    ids = tok("kalo mi")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and 0 not in ids[1:-1] and 2 not in ids[1:-1]
    pair = tok("kalo", "mi")["input_ids"]
    assert pair.count(2) == 3  # <s> A </s></s> B </s>
    assert tok.convert_ids_to_tokens(tok("ka <mask> lo")["input_ids"]).count("<mask>") == 1
    # same ids as SentencePiece (no fairseq offset)
    sp = spm.SentencePieceProcessor(model_file=str(trained / "spm.model"))
    assert sp.get_piece_size() == 199
    assert tok("kalo mi", add_special_tokens=False)["input_ids"] == sp.encode("kalo mi")


def test_pieces_equal_sentencepiece_on_held_out_text(trained):
    tok = AutoTokenizer.from_pretrained(trained)
    held = [t for texts in synthetic_corpus(seed=1, n_lines=40).values() for t in texts]
    held += ["  extra   spaces  ", "unknown ☃ char", "ＦＵＬＬ width"]
    assert check_against_spm(tok, trained / "spm.model", held) == 0
    sp = spm.SentencePieceProcessor(model_file=str(trained / "spm.model"))
    assert tok.tokenize(held[0]) == sp.encode(held[0], out_type=str)


def test_training_is_deterministic(trained, tmp_path):
    again = tmp_path / "again"
    train_sentencepiece(synthetic_corpus(0), again, vocab_size=200, seed=0)
    # spm.model also records the (temporary) model_prefix path: compare pieces and scores instead
    a, b = (spm.SentencePieceProcessor(model_file=str(d / "spm.model")) for d in (again, trained))
    pieces = [(a.id_to_piece(i), a.get_score(i)) for i in range(a.get_piece_size())]
    assert pieces == [(b.id_to_piece(i), b.get_score(i)) for i in range(b.get_piece_size())]
    assert (again / "tokenizer.json").read_bytes() == (trained / "tokenizer.json").read_bytes()


def test_max_sentences_sample_and_overwrite(tmp_path):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    train_sentencepiece(synthetic_corpus(0), out, vocab_size=120, max_sentences=200, seed=3)
    assert not (out / "stale.txt").exists() and (out / "spm.model").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]  # no temporary leftovers


def test_multilingual_sample_follows_the_alpha_distribution():
    """Vocabulary paper §4: the multilingual SentencePiece models train on "5 million lines according to the same
    distribution as the training data", whose languages are sampled with alpha = 0.2 (XLM's q_l ∝ p_l^alpha),
    not on a uniform line sample (which follows p_l)."""
    from langadapt.data.sampling import sample_quotas
    from langadapt.models.tokenization import _training_sentences

    sizes = [90_000, 9_000, 1_000]  # p = 0.9, 0.09, 0.01
    q = np.array([0.9, 0.09, 0.01]) ** 0.2
    assert sample_quotas(sizes, 3_000, 0.2) == pytest.approx((3_000 * q / q.sum()).tolist(), abs=1)
    assert sample_quotas(sizes, 3_000, None) == [2_700, 270, 30]  # in proportion to the data
    # a language smaller than its share gives all its lines; the rest goes to the others in proportion
    assert sample_quotas([90_000, 9_000, 100], 3_000, 0.2)[2] == 100 and sum(sample_quotas(sizes, 3_000, 0.2)) == 3_000
    assert sample_quotas(sizes, 200_000, 0.2) == sizes  # no cap: everything
    texts = {lang: [f"{lang} {i}" for i in range(n)] for lang, n in zip(["aaa_Latn", "bbb_Latn", "ccc_Latn"],
                                                                       sizes, strict=True)}
    sample = _training_sentences(texts, 3_000, seed=1, alpha=0.2)
    counts = {lang: sum(t.startswith(lang) for t in sample) for lang in texts}
    assert list(counts.values()) == sample_quotas(sizes, 3_000, 0.2) and len(set(sample)) == 3_000
    assert _training_sentences(texts, 3_000, seed=1, alpha=0.2) == sample  # seeded


def test_empty_language_is_an_error(tmp_path):
    texts = synthetic_corpus(0)
    texts["fra_Latn"] = ["", "   "]
    with pytest.raises(DataError, match="fra_Latn"):
        train_sentencepiece(texts, tmp_path / "tok", vocab_size=100)
    assert not (tmp_path / "tok").exists()


def test_vocab_too_large_is_a_data_error(tmp_path):
    texts = {"eng_Latn": ["ka lo mi"] * 5, "rus_Cyrl": ["ка ло"] * 5}
    with pytest.raises(DataError, match=r"vocab_size 5000 .*eng_Latn, rus_Cyrl"):
        train_sentencepiece(texts, tmp_path / "tok", vocab_size=5000)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="model_type"):
        train_sentencepiece(synthetic_corpus(0), tmp_path / "t", vocab_size=100, model_type="wordpiece")
    with pytest.raises(ConfigError, match="english"):
        train_sentencepiece({"english": ["a b"]}, tmp_path / "t", vocab_size=100)


def _hand_made_tokenizer() -> PreTrainedTokenizerFast:
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("▁ab", -1.0), ("▁", -2.0), ("c", -2.0), ("▁日本", -1.0), ("語", -2.0), ("<mask>", 0.0)]
    backend = Tokenizer(Unigram(vocab=vocab, unk_id=3, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", mask_token="<mask>"
    )


def test_fertility_and_unk_rate_exact():
    tok = _hand_made_tokenizer()
    ids = tok("ab ab c☃", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["▁ab", "▁ab", "▁", "c", "<unk>"]
    assert tok.tokenize("日本語") == ["▁日本", "語"]
    df = tokenizer_stats(tok, {"eng_Latn": ["ab ab c☃", "  "], "jpn_Jpan": ["日本語"]})
    assert list(df.columns) == ["lang", "fertility", "unk_rate", "n_words", "n_pieces"]
    eng = df.set_index("lang").loc["eng_Latn"]
    assert (eng.n_words, eng.n_pieces) == (3, 5)
    assert eng.fertility == pytest.approx(5 / 3) and eng.unk_rate == pytest.approx(1 / 5)
    jpn = df.set_index("lang").loc["jpn_Jpan"]  # no spaces: per character
    assert (jpn.n_words, jpn.n_pieces) == (3, 2)
    assert jpn.fertility == pytest.approx(2 / 3) and jpn.unk_rate == 0.0


def test_write_tokenizer_stats(trained, tmp_path):
    out = tmp_path / "sub" / "stats.csv"
    df = write_tokenizer_stats(trained, synthetic_corpus(2, n_lines=20), out)
    back = pd.read_csv(out)
    assert list(back.columns) == ["lang", "fertility", "unk_rate", "n_words", "n_pieces"]
    assert back["lang"].tolist() == ["eng_Latn", "jpn_Jpan", "rus_Cyrl"]
    assert (back["fertility"] > 0).all() and (back["unk_rate"] == 0).all()
    pd.testing.assert_frame_equal(back, df)
