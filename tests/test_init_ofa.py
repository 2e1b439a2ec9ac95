"""OFA init (vocab/methods/ofa.py) on hand-made Unigram tokenizers and word vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from init_helpers import SPECIALS, unigram
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from langadapt.core.errors import ConfigError
from langadapt.models.factorized import install_factorized, read_factorization
from langadapt.vectors.base import save_word_vectors
from langadapt.vocab.base import INIT_METHODS, InitContext, InitResources, special_roles
from langadapt.vocab.chain import initialize_embeddings

SOURCE = ["▁house", "▁dog", "▁cat", "▁tree", "▁the", "▁a", "zz"]  # zz, ▁a: in no word
TARGET = ["▁house", "▁haus", "▁hund", "▁katze", "▁baum", "▁xyz", "boot"]  # ▁xyz: in no word


# aligned "external" vectors: translations share a vector (deu haus == eng house, ...)
E = np.eye(6, dtype=np.float32)
WORDS = [("house", "eng_Latn", E[0]), ("dog", "eng_Latn", E[1]), ("cat", "eng_Latn", E[2]),
         ("tree", "eng_Latn", E[3]), ("the", "eng_Latn", E[4]),
         ("$haus$", "deu_Latn", E[0]), ("hund", "deu_Latn", E[1]), ("katze", "deu_Latn", E[2]),
         ("baum", "deu_Latn", 0.6 * E[3] + 0.4 * E[1]), ("hausboot", "deu_Latn", E[5])]  # fmt: skip


@pytest.fixture(scope="module")
def wv_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("wv")
    save_word_vectors(d, [w for w, _, _ in WORDS], [lang for _, lang, _ in WORDS],
                      np.stack([v for _, _, v in WORDS]), {"kind": "test", "boundary_marker": "$"})
    return d


def context(wv_dir, source_emb: torch.Tensor | None = None) -> InitContext:
    src, tgt = unigram(SOURCE), unigram(TARGET)
    emb = source_emb if source_emb is not None else torch.randn(len(src), 16, generator=torch.Generator().manual_seed(0))
    return InitContext(source_emb=emb, source_vocab=src.get_vocab(), target_vocab=tgt.get_vocab(),
                       source_specials=special_roles(src), target_specials=special_roles(tgt), source_tokenizer=src,
                       target_tokenizer=tgt, resources=InitResources(word_vectors={"wv": wv_dir}))


def run_ofa(ctx: InitContext, **params) -> dict[int, torch.Tensor]:
    unassigned = set(range(len(ctx.target_vocab)))
    ids, rows = INIT_METHODS.get("ofa")(ctx, unassigned, torch.Generator(), word_vectors="wv", **params)
    return dict(zip(ids.tolist(), rows, strict=True))


def test_weights_are_a_softmax_over_the_top_k_and_unmatched_pieces_stay(wv_dir):
    n_src = len(unigram(SOURCE))
    ctx = context(wv_dir, torch.eye(n_src))  # one-hot source rows: a predicted row *is* its weight vector
    out = run_ofa(ctx, k=3, temperature=0.5, langs=["deu"], source_langs=["eng_Latn"])
    tv, sv = ctx.target_vocab, ctx.source_vocab
    assert set(out) == {tv["▁haus"], tv["▁hund"], tv["▁katze"], tv["▁baum"], tv["boot"]}  # boot: hausboot
    for row in out.values():
        assert torch.isclose(row.sum(), torch.tensor(1.0), atol=1e-5) and (row >= 0).all()
        assert int((row > 1e-9).sum()) <= 3
    baum = out[tv["▁baum"]]
    assert baum.argmax() == sv["▁tree"] and baum[sv["▁dog"]] > baum[sv["▁cat"]]  # 0.6 tree + 0.4 dog
    rep = ctx.report["ofa"]
    assert rep["candidates"] == len(TARGET) and rep["predicted"] == 5 and rep["unmatched"] == 2
    assert rep["source_pieces"] == 5 and rep["target_words"] == 5 and rep["source_words"] == 5
    assert tv["▁xyz"] not in out and tv["▁house"] not in out and not ({tv[s] for s in SPECIALS} & set(out))


def test_identical_word_vectors_give_the_source_embedding_at_low_temperature(wv_dir):
    ctx = context(wv_dir)
    out = run_ofa(ctx, k=10, temperature=0.01, langs=["deu_Latn"], source_langs=["eng_Latn"])
    tv, sv = ctx.target_vocab, ctx.source_vocab
    for tgt, src in (("▁haus", "▁house"), ("▁hund", "▁dog"), ("▁katze", "▁cat")):
        assert torch.allclose(out[tv[tgt]], ctx.source_emb[sv[src]], atol=1e-4)
    # factorized: the same combination in coordinate space, mapped back -> rows in the primitives' span
    from langadapt.models.factorization import factorize

    c, p = factorize(ctx.source_emb, 4)
    out4 = run_ofa(ctx, k=10, temperature=0.01, langs=["deu_Latn"], source_langs=["eng_Latn"], dim=4)
    assert torch.allclose(out4[tv["▁haus"]], c[sv["▁house"]] @ p, atol=1e-4)
    assert ctx.report["ofa"]["dim"] == 4


def test_substring_matching_and_boundary_markers(wv_dir):
    ctx = context(wv_dir)
    out = run_ofa(ctx, match="substring", langs=["deu"], source_langs=["eng"], temperature=0.01)
    tv = ctx.target_vocab
    # "boot" is inside "hausboot"; "▁haus" starts "$haus$" and "hausboot" (mean of e0 and e5)
    assert tv["boot"] in out and tv["▁haus"] in out and tv["▁xyz"] not in out
    assert ctx.report["ofa"]["match"] == "substring"


def test_bad_parameters_raise_config_errors(wv_dir):
    ctx = context(wv_dir)
    for params, match in (({"k": 0}, "k must be"), ({"temperature": 0}, "temperature must be"),
                          ({"match": "fuzzy"}, "match must be"), ({"dim": 99}, "must be in 1..12")):
        with pytest.raises(ConfigError, match=match):
            run_ofa(ctx, **params)
    with pytest.raises(ConfigError, match="were not provided"):
        INIT_METHODS.get("ofa")(ctx, {5}, torch.Generator(), word_vectors="other")


def test_chain_with_factorized_init_model(wv_dir, tmp_path):
    src_dir, tgt_dir = tmp_path / "src", tmp_path / "tgt"
    src, tgt = unigram(SOURCE), unigram(TARGET)
    src.save_pretrained(src_dir)
    tgt.save_pretrained(tgt_dir)
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(src), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=24, pad_token_id=1)
    XLMRobertaForMaskedLM(cfg).save_pretrained(src_dir)
    init = ["ident", {"ofa": {"word_vectors": "wv", "dim": 8, "langs": ["deu_Latn"]}}, "random"]
    out = tmp_path / "model"
    stats = initialize_embeddings(src_dir, tgt_dir, init, out, vocab="extend", factorize=8,
                                  resources=InitResources(word_vectors={"wv": wv_dir}))
    assert stats["added"] == 6 and stats["ofa"] == 5 and stats["random"] == 1  # ▁house is a source piece
    assert stats["report"]["ofa"]["predicted"] == 5 and stats["factorize"]["dim"] == 8
    assert stats["factorize"]["random_rows"] == 1  # drawn in the coordinate space (HyperOFA §3.4)
    assert json.loads((out / "init_stats.json").read_text())["report"]["ofa"]["unmatched"] == 1
    f = read_factorization(out)
    assert f.coordinates.shape == (len(src) + 6, 8) and f.primitives.shape == (8, 16)
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert torch.allclose(model.get_input_embeddings().weight, f.product(), atol=1e-6)
    # OFA rows with dim = factorize lie in the span of the primitives: kept exactly
    from langadapt.models.factorization import factorize

    _, p = factorize(XLMRobertaForMaskedLM.from_pretrained(src_dir).get_input_embeddings().weight.detach(), 8)
    assert torch.allclose(f.primitives, p, atol=1e-6)
    batch = AutoTokenizer.from_pretrained(out)(["haus hund", "katze"], return_tensors="pt", padding=True)
    ref = model(**batch).logits
    install_factorized(model, f.coordinates, f.primitives)
    assert torch.allclose(model(**batch).logits, ref, atol=1e-4)


def test_word_variants_are_the_reference_four_forms():
    """OFA's get_subword_embeddings_in_word_embedding_space (reused by HyperOFA) tokenizes a ColexNet+ word as
    the word, the word after a space, and the capitalised word: `$`-initial words (surface " haus")
    capitalise word[1:] with no space ("Haus"), others get " Haus" (issue 17: "Haus" was missing)."""
    from langadapt.vectors.matching import _pairs_tokenize, word_variants

    assert word_variants(" haus") == [" haus", "  haus", "Haus"]
    assert word_variants("haus") == ["haus", " haus", " Haus"]
    assert word_variants("   ") == []

    class Whole:  # a tokenizer that keeps each text whole: one id per distinct string
        vocab = {" haus": 0, "  haus": 1, "Haus": 2, "haus": 3, " Haus": 4}

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[self.vocab[t]] for t in texts]}

    pieces, words = _pairs_tokenize(Whole(), [" haus", "haus"], np.array([0, 1]), np.ones(5, dtype=bool))
    assert sorted(zip(pieces.tolist(), words.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 0), (2, 0), (3, 1), (4, 1)]
