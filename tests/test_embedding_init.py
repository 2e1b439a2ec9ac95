"""Tests of vocabulary replacement + embedding re-initialization on tiny random models."""

from __future__ import annotations

import json
import random

import pytest
import torch
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from langadapt.core.errors import ConfigError, DataError
from langadapt.models.tokenization import train_sentencepiece
from langadapt.vocab.base import INIT_METHODS, InitContext, special_roles
from langadapt.vocab.chain import assign_embeddings, initialize_embeddings, normalize_assignment

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def corpus(syllables: list[str], seed: int, n: int = 120) -> list[str]:
    rng = random.Random(seed)
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(50)]
    return [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("init")
    src_syl = ["ka", "lo", "mi", "ne", "tu", "ra"]
    tgt_syl = ["ka", "lo", "mi", "zu", "xe", "qo"]  # partly shared with the source
    train_sentencepiece({"eng_Latn": corpus(src_syl, 0)}, root / "src", vocab_size=48)
    train_sentencepiece({"nya_Latn": corpus(tgt_syl, 1)}, root / "tgt", vocab_size=45)
    tok = AutoTokenizer.from_pretrained(root / "src")
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=40, pad_token_id=1, **TINY)
    model = XLMRobertaForMaskedLM(cfg)
    with torch.no_grad():
        model.lm_head.bias.copy_(torch.randn(len(tok)))
    model.save_pretrained(root / "src")
    return root



@pytest.mark.parametrize("chain", [["random_normal"], ["random"], ["script_posn", "random_normal"]])
def test_every_chain_copies_the_special_tokens_by_role(dirs, tmp_path, chain):
    """Issue 17: a chain without IDENT (REINIT-RANDOM, OFA's random baseline, SCRIPT+POSN) still starts from
    the source model's <s>, </s>, <pad>, <unk>, <mask> rows (copied by role, counted as `specials`), not from
    random rows; the other pieces are the chain's."""
    out = tmp_path / "model"
    stats = initialize_embeddings(dirs / "src", dirs / "tgt", chain, out, seed=0)
    src_tok, tgt_tok = AutoTokenizer.from_pretrained(dirs / "src"), AutoTokenizer.from_pretrained(out)
    e_src = AutoModelForMaskedLM.from_pretrained(dirs / "src").get_input_embeddings().weight.detach()
    e_new = AutoModelForMaskedLM.from_pretrained(out).get_input_embeddings().weight.detach()
    for tok in ("<s>", "<pad>", "</s>", "<unk>", "<mask>"):
        assert torch.equal(e_new[tgt_tok.convert_tokens_to_ids(tok)], e_src[src_tok.convert_tokens_to_ids(tok)])
    assert stats["specials"] == 5 and sum(stats[m] for m in chain) == stats["total"] - 5
    with_ident = initialize_embeddings(dirs / "src", dirs / "tgt", ["ident", *chain], tmp_path / "i", seed=0)
    assert "specials" not in with_ident  # IDENT copies (and counts) them itself

def test_ident_random_chain(dirs, tmp_path):
    out = tmp_path / "model"
    stats = initialize_embeddings(
        dirs / "src", dirs / "tgt", ["ident", "random"], out, seed=0, provenance={"recipe": "r1"}
    )
    src_tok, tgt_tok = AutoTokenizer.from_pretrained(dirs / "src"), AutoTokenizer.from_pretrained(out)
    src = AutoModelForMaskedLM.from_pretrained(dirs / "src")
    new = AutoModelForMaskedLM.from_pretrained(out)
    v_tgt = len(tgt_tok)
    assert stats["total"] == v_tgt == 45 and stats["ident"] + stats["random"] == v_tgt
    assert 0 < stats["ident"] < v_tgt
    assert json.loads((out / "init_stats.json").read_text()) == stats
    prov = json.loads((out / "langadapt.json").read_text())
    assert (
        prov["recipe"] == "r1" and prov["stage"] == "init" and prov["init"]["methods"] == ["ident", "random"]
    )

    e_src, e_new = src.get_input_embeddings().weight.detach(), new.get_input_embeddings().weight.detach()
    assert e_new.shape == (45, 32) and new.config.vocab_size == 45
    assert new.get_output_embeddings().weight.data_ptr() == e_new.data_ptr()  # tied after reload
    b_src, b_new = src.lm_head.bias.detach(), new.lm_head.bias.detach()
    src_vocab, shared = src_tok.get_vocab(), 0
    specials = set(tgt_tok.all_special_ids)
    for piece, t in tgt_tok.get_vocab().items():
        if t in specials:
            continue
        if piece in src_vocab:
            shared += 1
            assert torch.equal(e_new[t], e_src[src_vocab[piece]])
            assert b_new[t] == b_src[src_vocab[piece]]
        else:
            assert float(b_new[t]) == pytest.approx(float(b_src.mean()), abs=1e-6)
    assert stats["ident"] == shared + 5 and stats["overlap"] == pytest.approx(shared / 40)
    for tok in ("<s>", "<pad>", "</s>", "<unk>", "<mask>"):  # specials by role
        t, s = tgt_tok.convert_tokens_to_ids(tok), src_tok.convert_tokens_to_ids(tok)
        assert torch.equal(e_new[t], e_src[s]) and b_new[t] == b_src[s]
    # the new model runs with the target tokenizer
    batch = tgt_tok(["kalo zuxe", "mi"], return_tensors="pt", padding=True)
    assert new(**batch).logits.shape[-1] == 45


def test_random_rows_follow_source_statistics_and_seed(dirs, tmp_path):
    a = initialize_embeddings(dirs / "src", dirs / "tgt", ["random"], tmp_path / "a", seed=0)
    assert a == {"random": 40, "specials": 5, "total": 45, "overlap": pytest.approx(a["overlap"])}
    e = [AutoModelForMaskedLM.from_pretrained(tmp_path / d).get_input_embeddings().weight for d in "a"]
    initialize_embeddings(dirs / "src", dirs / "tgt", ["random"], tmp_path / "b", seed=0)
    initialize_embeddings(dirs / "src", dirs / "tgt", ["random"], tmp_path / "c", seed=1)
    e += [AutoModelForMaskedLM.from_pretrained(tmp_path / d).get_input_embeddings().weight for d in "bc"]
    assert torch.equal(e[0], e[1]) and not torch.equal(e[0], e[2])


def test_random_method_statistics():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(2000, 8, generator=g) * torch.linspace(0.1, 2, 8) + torch.arange(8.0)
    src[0] = 1000.0  # a special token: excluded from the statistics
    ctx = InitContext(src, {"a": 0}, {}, source_specials={"pad": 0})
    ids, rows = INIT_METHODS.get("random")(ctx, set(range(5000)), g)
    assert ids.tolist() == list(range(5000))
    torch.testing.assert_close(rows.mean(0), src[1:].mean(0), atol=0.1, rtol=0.05)
    torch.testing.assert_close(rows.std(0), src[1:].std(0), atol=0.05, rtol=0.05)
    _, rows = INIT_METHODS.get("random_normal")(ctx, set(range(5000)), g)
    assert abs(float(rows.mean())) < 0.05 and float(rows.std()) == pytest.approx(1.0, abs=0.05)
    _, rows = INIT_METHODS.get("random_normal")(ctx, set(range(5000)), g, std=0.02)
    assert float(rows.std()) == pytest.approx(0.02, abs=0.002)


def test_precedence_and_return_forms():
    src = torch.arange(12.0).reshape(4, 3)
    ctx = InitContext(src, {"a": 0, "b": 1, "c": 2, "d": 3}, {"b": 0, "x": 1, "d": 2})
    emb, src_of, counts = assign_embeddings(
        ctx, ["ident", "random_normal"], params={"random_normal": {"std": 0}}
    )
    assert counts == {"ident": 2, "random_normal": 1}
    assert emb.tolist() == [[3.0, 4.0, 5.0], [0.0, 0.0, 0.0], [9.0, 10.0, 11.0]]
    assert src_of.tolist() == [1, -1, 3]
    ids, rows, srcs = normalize_assignment((torch.tensor([1]), torch.ones(1, 3)), "m", ctx, {1})
    assert (ids, rows.tolist(), srcs) == ([1], [[1.0, 1.0, 1.0]], [-1])
    with pytest.raises(RuntimeError, match="'m'"):
        normalize_assignment({0: 2}, "m", ctx, {1})


def bert_source(path, pieces: list[str]):
    """A tiny BERT MLM with a word-level tokenizer using BERT's special tokens ([CLS], [SEP], ...)."""
    vocab = {p: i for i, p in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces])}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), max_position_embeddings=40, **TINY)
    BertForMaskedLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return tok


def test_bert_source_specials_mapped_by_role(tmp_path, dirs):
    tok = bert_source(tmp_path / "b", ["▁ka", "lo"])
    assert special_roles(tok)["bos"] == 2 and special_roles(tok)["eos"] == 3
    initialize_embeddings(tmp_path / "b", dirs / "tgt", ["ident", "random"], tmp_path / "out")
    src = BertForMaskedLM.from_pretrained(tmp_path / "b").get_input_embeddings().weight.detach()
    new = AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    e, tgt = new.get_input_embeddings().weight.detach(), AutoTokenizer.from_pretrained(tmp_path / "out")
    pairs = {"<s>": 2, "<pad>": 0, "</s>": 3, "<unk>": 1, "<mask>": 4, "▁ka": 5}
    for t_piece, s_id in pairs.items():
        assert torch.equal(e[tgt.convert_tokens_to_ids(t_piece)], src[s_id])
    assert new.config.pad_token_id == 1 and new.get_output_embeddings().weight.shape == (45, 32)


def test_errors(dirs, tmp_path):
    bert_source(tmp_path / "b", ["[unused]"])  # shares no piece with the target
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"(?s)tokenizer .*/tgt shares no piece .*/b;"):
        initialize_embeddings(tmp_path / "b", dirs / "tgt", ["ident"], out)
    with pytest.raises(DataError, match=r"\['ident'\] leave"):
        initialize_embeddings(dirs / "src", dirs / "tgt", ["ident"], out)
    with pytest.raises(ConfigError, match="unknown embedding init method .glove."):
        initialize_embeddings(dirs / "src", dirs / "tgt", ["ident", "glove"], out)
    with pytest.raises(ConfigError, match="'sigma'"):
        initialize_embeddings(
            dirs / "src", dirs / "tgt", ["random_normal"], out, params={"random_normal": {"sigma": 1}}
        )
    with pytest.raises(ConfigError, match="empty"):
        initialize_embeddings(dirs / "src", dirs / "tgt", [], out)
    with pytest.raises(DataError, match="does not exist"):
        initialize_embeddings(dirs / "nope", dirs / "tgt", ["random"], out)
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_every_registered_method_declares_its_needs_and_init_lists_parse():
    from langadapt.vocab.base import INIT_METHODS
    from langadapt.vocab.spec import NEEDS, needs_of, parse_init, word_vector_names

    assert set(NEEDS) == set(INIT_METHODS.names())
    assert parse_init(["ident", {"random_normal": {"std": 0.02}}, {"random": None}]) == [
        ("ident", {}), ("random_normal", {"std": 0.02}), ("random", {})]
    assert needs_of(["ident", "random"]) == frozenset() and word_vector_names(["ident"]) == []
    for bad, msg in (([], "non-empty"), (["ident", "ident"], "twice"), (["nope"], "unknown embedding init"),
                     ([{"a": {}, "b": {}}], "method name or"), ([{"random": 3}], "parameter")):
        with pytest.raises(ConfigError, match=msg):
            parse_init(bad)


def test_init_parameters_from_the_recipe_list(dirs, tmp_path):
    stats = initialize_embeddings(dirs / "src", dirs / "tgt", [{"random_normal": {"std": 0.0, "mean": 0.5}}],
                                  tmp_path / "out")
    from transformers import AutoModelForMaskedLM

    w = AutoModelForMaskedLM.from_pretrained(tmp_path / "out").get_input_embeddings().weight
    specials = sorted(special_roles(AutoTokenizer.from_pretrained(tmp_path / "out")).values())
    rest = [i for i in range(len(w)) if i not in specials]
    assert stats["random_normal"] == stats["total"] - 5 and torch.allclose(w[rest], torch.full_like(w[rest], 0.5))
