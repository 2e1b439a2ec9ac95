"""FOCUS embedding init (`langadapt.vocab.methods.focus`): sparsemax, the combination step, the method in a
chain on tiny tokenizers with a real (tiny) fastText model, and its errors."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

import langadapt.vocab.methods.focus as focus_mod
from langadapt.core.errors import ConfigError, DataError
from langadapt.models.tokenization import train_sentencepiece
from langadapt.vocab.base import INIT_METHODS, InitContext, InitResources, ident_pairs, special_roles
from langadapt.vocab.chain import assign_embeddings, initialize_embeddings
from langadapt.vocab.methods.focus import focus_combine, sparsemax

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: fastText settings small enough for a 150-line corpus (FOCUS's defaults are for real corpora)
TINY_FT = {"dim": 16, "epochs": 5, "min_count": 1, "bucket": 5000}


def corpus(syllables: list[str], seed: int, n: int = 150) -> list[str]:
    rng = random.Random(seed)
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(50)]
    return [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(n)]


# ---------------------------------------------------------------- sparsemax


def test_sparsemax_hand_computed():
    # sorted z = (1, .5, -1): k=2 is the largest k with 1 + k z_k > sum_{j<=k} z_j; tau = (1.5 - 1) / 2
    p = sparsemax(torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(p, torch.tensor([0.25, 0.75, 0.0], dtype=torch.float64))
    # a margin >= 1 gives all the weight to the largest entry
    assert sparsemax(torch.tensor([2.0, 0.0, 0.5])).tolist() == [1.0, 0.0, 0.0]
    # ties share equally; shift invariance
    torch.testing.assert_close(sparsemax(torch.full((3,), 0.3)), torch.full((3,), 1 / 3))
    torch.testing.assert_close(sparsemax(torch.tensor([0.5, 0.5, -2.0])), torch.tensor([0.5, 0.5, 0.0]))
    torch.testing.assert_close(sparsemax(torch.tensor([10.5, 10.5, 8.0])), torch.tensor([0.5, 0.5, 0.0]))
    # rows vs dim=0
    z = torch.tensor([[0.5, 1.0, -1.0], [0.3, 0.3, 0.3]])
    torch.testing.assert_close(sparsemax(z.T, dim=0), sparsemax(z).T)


def test_sparsemax_is_the_simplex_projection():
    z = torch.randn(200, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = sparsemax(z)
    torch.testing.assert_close(p.sum(1), torch.ones(200, dtype=torch.float64))
    assert (p >= 0).all() and (p == 0).any(1).all()  # sparse: every row has zeros here
    # KKT: on the support z_i - p_i = tau (one value per row); off it z_i <= tau
    for zi, pi in zip(z, p, strict=True):
        on = pi > 0
        tau = zi[on] - pi[on]
        torch.testing.assert_close(tau, tau[:1].expand_as(tau))
        assert (zi[~on] <= tau[0] + 1e-12).all()


# ---------------------------------------------------------------- combination step


def test_combine_equal_vector_takes_that_row_and_ties_average():
    anchors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    emb = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    new = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rows, nnz = focus_combine(new, anchors, emb, chunk=2)  # two chunks
    torch.testing.assert_close(rows[0], emb[0])  # cos 1 vs 0, 0: all weight on anchor 0
    torch.testing.assert_close(rows[1], (emb[0] + emb[1]) / 2)
    torch.testing.assert_close(rows[2], emb.mean(0))
    assert nnz.tolist() == [1, 2, 3]


# ---------------------------------------------------------------- the method on tiny tokenizers


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    root = tmp_path_factory.mktemp("focus")
    texts = {"nya_Latn": corpus(["ka", "lo", "mi", "zu", "xe", "qo"], 1)}
    train_sentencepiece({"eng_Latn": corpus(["ka", "lo", "mi", "ne", "tu", "ra"], 0)}, root / "src", vocab_size=48)
    train_sentencepiece(texts, root / "tgt", vocab_size=45)
    return root, texts


def make_ctx(toks, texts="default", source_vocab=None, emb=None) -> InitContext:
    root, default_texts = toks
    src, tgt = AutoTokenizer.from_pretrained(root / "src"), AutoTokenizer.from_pretrained(root / "tgt")
    vocab = source_vocab or dict(src.get_vocab())
    if emb is None:  # one-hot source rows: a FOCUS row *is* its weight vector over source ids
        emb = torch.eye(max(vocab.values()) + 1)
    return InitContext(
        source_emb=emb, source_vocab=vocab, target_vocab=dict(tgt.get_vocab()),
        source_specials=special_roles(src), target_specials=special_roles(tgt),
        source_tokenizer=src, target_tokenizer=tgt,
        resources=InitResources(texts=default_texts if texts == "default" else texts),
    )  # fmt: skip


def test_focus_rows_are_sparse_convex_combinations_of_overlap_rows(toks):
    ctx = make_ctx(toks)
    emb, src_of, counts = assign_embeddings(ctx, ["ident", "focus"], seed=0, params={"focus": TINY_FT})
    rep = ctx.report["focus"]
    overlap = {t: s for t, s in ident_pairs(ctx).items() if t not in set(ctx.target_specials.values())}
    assert counts["focus"] == rep["assigned"] > 0 and rep["overlap"] == len(overlap)
    left = torch.isnan(emb).any(1)
    assert counts["ident"] + counts["focus"] + int(left.sum()) == len(ctx.target_vocab)
    assert int(left.sum()) == rep["no_vector"]  # pieces without a fastText vector: for the next method
    assert 1 <= rep["mean_nonzero"] <= rep["max_nonzero"] <= rep["anchors"] <= len(overlap)
    assert rep["fasttext"]["words"] > 0 and rep["fasttext"]["model"] == "cbow"
    focus_ids = ((src_of < 0) & ~left).nonzero().flatten().tolist()
    assert len(focus_ids) == counts["focus"]
    anchor_src = set(overlap.values())
    nnz = []
    for t in focus_ids:
        w = emb[t]
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-5) and (w >= 0).all()
        assert set(w.nonzero().flatten().tolist()) <= anchor_src  # only overlapping pieces' rows
        nnz.append(int((w > 0).sum()))
    assert max(nnz) < len(anchor_src)  # sparse
    assert np.mean(nnz) == pytest.approx(rep["mean_nonzero"])
    for t, s in overlap.items():  # IDENT rows kept
        assert torch.equal(emb[t], ctx.source_emb[s])


def test_focus_is_deterministic_for_a_seed(toks):
    runs = []
    for _ in range(2):
        ctx = make_ctx(toks, emb=torch.randn(48, 8, generator=torch.Generator().manual_seed(1)))
        runs.append(assign_embeddings(ctx, ["ident", "focus"], seed=3, params={"focus": TINY_FT})[0])
    focus_rows = ~torch.isnan(runs[0]).any(1)
    assert torch.equal(torch.isnan(runs[0]), torch.isnan(runs[1]))
    assert torch.equal(runs[0][focus_rows], runs[1][focus_rows])


def test_equal_fasttext_vector_gives_that_pieces_embedding(toks, tmp_path, monkeypatch):
    ctx = make_ctx(toks, emb=torch.randn(48, 8, generator=torch.Generator().manual_seed(2)))
    overlap = {t: s for t, s in ident_pairs(ctx).items() if t not in set(ctx.target_specials.values())}
    inv = {i: p for p, i in ctx.target_vocab.items()}
    anchor = min(overlap)
    twin = next(t for t in sorted(inv) if t not in overlap and t not in ctx.target_specials.values())

    def fake_vectors(path, pieces, oov="skip"):
        vecs = -np.ones((len(pieces), 4), dtype=np.float32)  # every other piece points away
        for i, piece in enumerate(pieces):
            if piece in (inv[anchor], inv[twin]):
                vecs[i] = [1, 0, 0, 0]
        return vecs, np.ones(len(pieces), dtype=bool)

    monkeypatch.setattr(focus_mod, "token_vectors", fake_vectors)
    model = tmp_path / "given.bin"
    model.write_bytes(b"x")  # not read: token_vectors is replaced
    rows = INIT_METHODS.get("focus")(ctx, {twin}, torch.Generator(), fasttext_model=str(model))
    assert list(rows) == [twin]
    torch.testing.assert_close(rows[twin], ctx.source_emb[overlap[anchor]])
    assert ctx.report["focus"]["max_nonzero"] == 1


def test_chain_ident_focus_through_initialize_embeddings(toks, tmp_path):
    root, texts = toks
    tok = AutoTokenizer.from_pretrained(root / "src")
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=40, pad_token_id=1, hidden_size=16,
                           num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)  # fmt: skip
    model_dir = tmp_path / "src"
    XLMRobertaForMaskedLM(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="focus needs texts"):
        initialize_embeddings(model_dir, root / "tgt", ["ident", "focus", "random"], out)
    stats = initialize_embeddings(
        model_dir, root / "tgt", ["ident", {"focus": TINY_FT}, "random"], out,
        resources=InitResources(texts=texts, workdir=tmp_path),
    )  # fmt: skip
    assert stats["focus"] == stats["report"]["focus"]["assigned"] > 0
    assert json.loads((out / "init_stats.json").read_text())["report"]["focus"]["anchors"] > 0
    src = AutoModelForMaskedLM.from_pretrained(model_dir).get_input_embeddings().weight
    new = AutoModelForMaskedLM.from_pretrained(out).get_input_embeddings().weight
    tgt_vocab, src_vocab = AutoTokenizer.from_pretrained(out).get_vocab(), tok.get_vocab()
    shared = [p for p in tgt_vocab if p in src_vocab and not p.startswith("<")]
    assert shared and all(torch.equal(new[tgt_vocab[p]], src[src_vocab[p]]) for p in shared)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("focus-")] == []  # scratch removed
    # FOCUS without IDENT (issue 17): FOCUS itself copies the overlapping pieces (FOCUS §3), the chain the
    # special tokens by role; nothing shared is left to the random fallback
    alone = initialize_embeddings(model_dir, root / "tgt", [{"focus": TINY_FT}, "random"], tmp_path / "alone",
                                  resources=InitResources(texts=texts, workdir=tmp_path))  # fmt: skip
    rep = alone["report"]["focus"]
    assert rep["copied"] == len(shared) and alone["focus"] == rep["copied"] + rep["assigned"]
    assert alone["specials"] == 5 and alone["focus"] + alone["random"] + 5 == alone["total"]
    new = AutoModelForMaskedLM.from_pretrained(tmp_path / "alone").get_input_embeddings().weight
    assert all(torch.equal(new[tgt_vocab[p]], src[src_vocab[p]]) for p in [*shared, "<s>", "</s>", "<mask>"])
    assert stats["report"]["focus"]["copied"] == 0  # after IDENT there is nothing left to copy


# ---------------------------------------------------------------- errors


def test_errors(toks, tmp_path, monkeypatch):
    g = torch.Generator()
    fn = INIT_METHODS.get("focus")
    every = set(range(45))
    with pytest.raises(ConfigError, match="needs the target texts"):
        fn(make_ctx(toks, texts=None), every, g)
    with pytest.raises(DataError, match="empty"):
        fn(make_ctx(toks, texts={"nya_Latn": ["", "  "]}), every, g)
    no_overlap = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "▁völlig": 4, "anders": 5}
    with pytest.raises(DataError, match="shares no"):
        fn(make_ctx(toks, source_vocab=no_overlap), every, g, **TINY_FT)
    with pytest.raises(ConfigError, match="dim"):
        fn(make_ctx(toks), every, g, dim=0)
    with pytest.raises(ConfigError, match="oov"):
        fn(make_ctx(toks), every, g, oov="zero")
    with pytest.raises(DataError, match="does not exist"):
        fn(make_ctx(toks), every, g, fasttext_model=str(tmp_path / "missing.bin"))
    with pytest.raises(ConfigError, match="unknown parameter"):
        assign_embeddings(make_ctx(toks), ["focus"], params={"focus": {"epoch": 3}})
    with pytest.raises(DataError, match="fastText training .* failed .*minCount"):  # no word left
        fn(make_ctx(toks), every, g, **{**TINY_FT, "min_count": 10**6})
    # no overlapping piece has a fastText vector (e.g. all rarer than min_count)
    monkeypatch.setattr(focus_mod, "token_vectors", lambda path, pieces, oov: (
        np.ones((len(pieces), 4), np.float32), np.zeros(len(pieces), bool)))  # fmt: skip
    (tmp_path / "given.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="has a fastText vector"):
        fn(make_ctx(toks), every, g, fasttext_model=str(tmp_path / "given.bin"))


def test_sparsemax_partial_sort_is_exact():
    z = torch.randn(300, 500, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.3
    z[:5] = 0.0  # support of 500 > k
    z[5:10, :20] = 2.0  # ties at the top
    full = sparsemax(z)
    assert (full[:5] > 0).all() and ((full > 0).sum(1) > 8).any()
    for k in (1, 8, 64, 499, 500, 10_000):
        assert torch.equal(sparsemax(z, k=k), full)
