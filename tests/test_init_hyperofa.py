"""HyperOFA init (vocab/methods/hyperofa.py): copy / predict / random on hand-made Unigram tokenizers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from init_helpers import SPECIALS, unigram
from transformers import (
    AutoModelForMaskedLM,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from langadapt.core.errors import ConfigError, DataError
from langadapt.hypernet.sets import piece_word_sets
from langadapt.hypernet.training import load_trained_hypernet, train_hypernetwork
from langadapt.vectors.base import load_word_vectors, save_word_vectors
from langadapt.vocab.base import INIT_METHODS, InitContext, InitResources, special_roles
from langadapt.vocab.chain import initialize_embeddings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SRC_SYL = ["ka", "lo", "mi", "ne", "tu"]
TGT_SYL = ["ba", "du", "fe"]
SOURCE = [f"▁{s}" for s in SRC_SYL] + SRC_SYL + ["▁kalo", "▁mine"]
# shared with the source: ▁ka, lo; new and in some word: ▁ba, du, ▁badu, fe, ▁kadu; new and in no word: ▁xq, zz
TARGET = ["▁ka", "lo", "▁ba", "du", "▁badu", "fe", "▁kadu", "▁xq", "zz"]
HN = {"kind": "bilstm", "dim": 8, "hidden": 8, "layers": 1, "epochs": 2, "batch_size": 8, "dropout": 0.0,
      "patience": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Source model + tokenizer, target tokenizer, word vectors (two 'languages'), a trained hypernetwork."""
    root = tmp_path_factory.mktemp("hyperofa")
    src, tgt = unigram(SOURCE), unigram(TARGET)
    src.save_pretrained(root / "src")
    tgt.save_pretrained(root / "tgt")
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(src), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=24, pad_token_id=1)
    XLMRobertaForMaskedLM(cfg).save_pretrained(root / "src")
    rng = np.random.default_rng(0)
    words = sorted({"".join(rng.choice(SRC_SYL, rng.integers(1, 4))) for _ in range(120)})
    words += ["badu", "bafe", "$kadu$", "du"]
    (root / "wv").mkdir()
    save_word_vectors(root / "wv", words, ["xxx_Latn"] * len(words), rng.normal(size=(len(words), 6)),
                      {"kind": "test", "boundary_marker": "$"})
    train_hypernetwork(root / "src", root / "wv", root / "hn", HN, word_vectors_name="toy")
    return root


def context(root, **resources) -> InitContext:
    src, tgt = unigram(SOURCE), unigram(TARGET)
    emb = AutoModelForMaskedLM.from_pretrained(root / "src").get_input_embeddings().weight.detach().float()
    res = {"word_vectors": {"toy": root / "wv"}, "hypernet_dir": root / "hn", **resources}
    return InitContext(source_emb=emb, source_vocab=src.get_vocab(), target_vocab=tgt.get_vocab(),
                       source_specials=special_roles(src), target_specials=special_roles(tgt), source_tokenizer=src,
                       target_tokenizer=tgt, resources=InitResources(**res))


def run(ctx: InitContext, unassigned: set[int], **params):
    return INIT_METHODS.get("hyperofa")(ctx, unassigned, torch.Generator(), **{"word_vectors": "toy", **params})


def test_predicts_only_unassigned_pieces_with_matched_words(world):
    ctx = context(world)
    tv = ctx.target_vocab
    new = {tv[p] for p in ["▁ba", "du", "▁badu", "fe", "▁kadu", "▁xq", "zz"]}
    unassigned = new | {tv["<unk>"]}  # shared pieces and the other specials: assigned earlier (ident)
    ids, rows = run(ctx, set(unassigned), device="cpu")
    got = {ctx.target_tokenizer.convert_ids_to_tokens(int(i)) for i in ids}
    assert got == {"▁ba", "du", "▁badu", "fe", "▁kadu"} and rows.shape == (5, 16)
    rep = ctx.report["hyperofa"]
    assert (rep["copied"], rep["predicted"], rep["unmatched"], rep["special"]) == (len(tv) - 8, 5, 2, 1)
    # the rows are the hypernetwork's prediction from the matched words, mapped back by the primitives
    trained = load_trained_hypernet(world / "hn")
    wv = load_word_vectors(world / "wv")
    sets = piece_word_sets(wv.words, ctx.target_tokenizer, pieces=sorted(new), boundary_marker="$")
    assert sets.ids.tolist() == ids.tolist()
    expected = trained.embeddings(torch.from_numpy(wv.vectors), sets.as_lists())
    torch.testing.assert_close(rows, expected)
    assert torch.isfinite(rows).all()
    # an already assigned piece is never predicted again
    ids2, _ = run(ctx, {tv["▁ba"], tv["▁xq"]}, device="cpu")
    assert ids2.tolist() == [tv["▁ba"]]


def test_chain_copy_predict_random(world, tmp_path):
    out = tmp_path / "model"
    init = ["ident", {"hyperofa": {"word_vectors": "toy", "device": "cpu"}}, "random"]
    res = InitResources(word_vectors={"toy": world / "wv"}, hypernet_dir=world / "hn")
    stats = initialize_embeddings(world / "src", world / "tgt", init, out, resources=res)
    n = len(unigram(TARGET))
    assert (stats["ident"], stats["hyperofa"], stats["random"], stats["total"]) == (7, 5, 2, n)  # 5 specials
    rep = json.loads((out / "init_stats.json").read_text())["report"]["hyperofa"]
    assert (rep["copied"], rep["predicted"], rep["unmatched"]) == (7, 5, 2)  # HyperOFA Table 2's columns
    emb = AutoModelForMaskedLM.from_pretrained(out).get_input_embeddings().weight.detach()
    ctx = context(world)
    direct, rows = run(ctx, set(range(n)) - {ctx.target_vocab[p] for p in ["▁ka", "lo", *SPECIALS, "<mask>"]},
                       device="cpu")
    torch.testing.assert_close(emb[direct], rows)


def test_bad_inputs_give_clear_errors(world, tmp_path):
    tv = context(world).target_vocab
    new = {tv["▁ba"], tv["du"]}
    with pytest.raises(ConfigError, match="needs a 'word_vectors' parameter"):
        run(context(world), new, word_vectors=None)
    with pytest.raises(ConfigError, match="trained hypernetwork"):
        run(context(world, hypernet_dir=None), new)
    ctx = context(world, word_vectors={"toy": world / "wv", "other": world / "wv"})
    with pytest.raises(ConfigError, match="trained on 'toy'"):
        run(ctx, new, word_vectors="other")
    with pytest.raises(ConfigError, match="not among the inputs"):
        run(context(world), new, word_vectors="missing")
    with pytest.raises(ConfigError, match="batch_size"):
        run(context(world), new, batch_size=0)
    # no unassigned target piece matches a word: the word vectors do not cover the target language
    with pytest.raises(DataError, match=r"none of the 2 unassigned target pieces matches a word"):
        run(context(world), {tv["▁xq"], tv["zz"]})
    # word vectors of another dimension than the hypernetwork's input
    other = tmp_path / "wv3"
    other.mkdir()
    save_word_vectors(other, ["badu"], [""], np.ones((1, 3)), {"kind": "test"})
    with pytest.raises(DataError, match="dimension 3"):
        run(context(world, word_vectors={"toy": other}), new)
    empty = tmp_path / "empty"
    empty.mkdir()
    np.save(empty / "vectors.npy", np.zeros((0, 6), np.float32))
    (empty / "words.tsv").write_text("word\tlang\n")
    with pytest.raises(DataError, match="empty"):
        run(context(world, word_vectors={"toy": empty}), new)
    broken = tmp_path / "hn"
    shutil.copytree(world / "hn", broken)
    (broken / "hypernet.json").unlink()
    with pytest.raises(DataError, match="not a hypernetwork directory"):
        run(context(world, hypernet_dir=broken), new)
    # nothing to do is not an error
    ids, rows = run(context(world), set())
    assert len(ids) == 0 and rows.shape[0] == 0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c["hypernetwork"].pop("word_vectors"), "hypernetwork: 'word_vectors' is a required property"),
        (lambda c: c["hypernetwork"].update(word_vectors="nope"), "hypernetwork.word_vectors 'nope' is not defined"),
        (lambda c: c["hypernetwork"].update(per_base={"huge": {}}), "per_base.huge: not in base_models"),
        (lambda c: c["hypernetwork"]["train"].update(epoch=3), "Additional properties are not allowed"),
        (lambda c: c["hypernetwork"]["train"].update(kind="gru"), "'gru' is not one of"),
        (lambda c: c["word_vectors"].update(other={"kind": "bible_aligned"})
         or c["recipes"]["tiny_hyperofa"]["init"][1]["hyperofa"].update(word_vectors="other"),
         "hyperofa reads word_vectors 'other', but the hypernetwork is trained on 'bible_smoke'"),
        (lambda c: c["hypernetwork"].update(per_dim={"big": {}}), "per_dim.big: keys are factorization"),
        (lambda c: c["hypernetwork"].update(enabled=False), "set hypernetwork.enabled"),
    ],
)
def test_config_checks_of_the_hypernetwork(mutate, match):
    from langadapt.config import prepare_config, read_yaml
    from langadapt.core.provenance import REPO_ROOT

    cfg = read_yaml(REPO_ROOT / "configs" / "smoke.yaml")
    mutate(cfg)
    with pytest.raises(ConfigError, match=match):
        prepare_config(cfg, source="smoke")


def test_each_hyperofa_recipe_reads_the_hypernetwork_of_its_base_and_dimension():
    from langadapt.config import (
        hypernet_dirs,
        hypernet_train,
        prepare_config,
        read_yaml,
        recipe_hypernet,
    )
    from langadapt.core.provenance import REPO_ROOT

    cfg = read_yaml(REPO_ROOT / "configs" / "smoke.yaml")
    cfg["recipes"]["tiny_hyperofa_8"] = {**cfg["recipes"]["tiny_hyperofa"], "factorize": 8}
    cfg["hypernetwork"]["per_dim"] = {8: {"hidden": 32}}
    prepare_config(cfg, source="smoke")
    assert recipe_hypernet(cfg, "tiny_hyperofa") == ("tiny", 16)     # no factorize: the base's own dim
    assert recipe_hypernet(cfg, "tiny_hyperofa_8") == ("tiny", 8)
    assert hypernet_dirs(cfg) == ["results/hypernet/tiny_d16", "results/hypernet/tiny_d8"]
    # train < per_base < per_dim, and D' is the dimension asked for
    assert hypernet_train(cfg, "tiny", 8) == {**cfg["hypernetwork"]["train"], "hidden": 32, "dim": 8}
    assert hypernet_train(cfg, "tiny")["hidden"] == 16
