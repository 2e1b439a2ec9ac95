"""Packing of per-language corpora into single-language sequences, and temperature sampling."""

from __future__ import annotations

import numpy as np
import pytest
from test_train_helpers import LANG_PREFIX, make_tokenizer, sentences, word, write_corpus

from langadapt.core.errors import ConfigError, DataError
from langadapt.train.packing import (
    LanguageSampler,
    PackedCorpus,
    language_sampler,
    pack_corpora,
    pack_stream,
    tokenize_texts,
)

BOS, EOS, PAD = 0, 2, 1


def test_pack_stream_by_hand():
    ids, lengths = pack_stream(np.array([10, 11, 12, 13, 14, 15, 16], dtype=np.int32), 5, BOS, EOS, PAD)
    assert ids.tolist() == [[0, 10, 11, 12, 2], [0, 13, 14, 15, 2], [0, 16, 2, 1, 1]]
    assert lengths.tolist() == [5, 5, 3]
    ids, lengths = pack_stream(np.array([10, 11, 12], dtype=np.int32), 5, BOS, EOS, PAD)
    assert ids.tolist() == [[0, 10, 11, 12, 2]] and lengths.tolist() == [5]
    with pytest.raises(ConfigError, match="seq_len"):
        pack_stream(np.array([1], dtype=np.int32), 2, BOS, EOS, PAD)


def test_packing_keeps_every_token_once_and_no_sequence_mixes_languages(tmp_path):
    tokenizer = make_tokenizer()
    paths, streams, texts_kept = {}, {}, {}
    for k, lang in enumerate(LANG_PREFIX):
        texts = sentences(lang, 40 + 17 * k, seed=k)
        texts[3] = ""  # empty rows are skipped
        splits = ["train"] * len(texts)
        splits[5], splits[6] = "dev", "test"  # only the train split is packed
        paths[lang] = write_corpus(tmp_path / f"{lang}.parquet", texts, splits)
        kept = [t for t, s in zip(texts, splits, strict=True) if s == "train" and t]
        streams[lang] = tokenize_texts(tokenizer, kept, batch_size=7)
        texts_kept[lang] = kept
    packed = pack_corpora(tokenizer, paths, seq_len=16)
    assert packed.langs == sorted(LANG_PREFIX)
    vocab = tokenizer.get_vocab()
    for k, lang in enumerate(packed.langs):
        rows = packed.rows_of(k)
        own = {vocab[word(lang, w)] for w in ("cat", "dog", "sun", "moon", "tree", "river", "stone", "bird",
                                              "fish", "house", "road", "king")}
        body = []
        for r in rows:
            n = int(packed.lengths[r])
            seq = packed.input_ids[r]
            assert seq[0] == BOS and seq[n - 1] == EOS and (seq[n:] == PAD).all()
            assert set(seq[1 : n - 1].tolist()) <= own  # one language per sequence
            body.extend(seq[1 : n - 1].tolist())
        assert body == streams[lang].tolist()  # every token exactly once, in order
        assert packed.tokens[k] == len(streams[lang])
        assert packed.sentences[k] == len(texts_kept[lang])
        assert (packed.lengths[rows[:-1]] == 16).all()  # only the last chunk may be short


def test_packed_cache_roundtrip(tmp_path):
    tokenizer = make_tokenizer()
    paths = {"eng_Latn": write_corpus(tmp_path / "e.parquet", sentences("eng_Latn", 30))}
    packed = pack_corpora(tokenizer, paths, seq_len=12)
    packed.save(tmp_path / "cache")
    again = PackedCorpus.load(tmp_path / "cache")
    assert np.array_equal(again.input_ids, packed.input_ids) and again.langs == packed.langs
    assert again.tokens == packed.tokens and again.pad_id == packed.pad_id
    assert again.sentences == packed.sentences


def test_empty_train_split_names_the_file(tmp_path):
    tokenizer = make_tokenizer()
    bad = write_corpus(tmp_path / "nya_Latn.parquet", ["cat dog", "sun"], ["dev", "test"])
    with pytest.raises(DataError, match="nya_Latn.parquet"):
        pack_corpora(tokenizer, {"nya_Latn": bad}, seq_len=8)
    with pytest.raises(DataError, match="missing.parquet"):
        pack_corpora(tokenizer, {"nya_Latn": tmp_path / "missing.parquet"}, seq_len=8)


def test_language_sampler_epochs_and_exact_state_roundtrip():
    groups = [np.arange(0, 5), np.arange(5, 8)]
    s = LanguageSampler(groups, [0.5, 0.5], seed=3)
    items, g = s.sample(40)
    for k, grp in enumerate(groups):  # each full epoch of a group visits every item once
        seen = items[g == k]
        n_full = len(seen) // len(grp) * len(grp)
        for e in range(0, n_full, len(grp)):
            assert sorted(seen[e : e + len(grp)].tolist()) == grp.tolist()
    state = s.state_dict()
    a, ga = s.sample(25)
    t = LanguageSampler(groups, [0.5, 0.5], seed=3)
    t.load_state_dict(state)
    b, gb = t.sample(25)
    assert np.array_equal(a, b) and np.array_equal(ga, gb)


def test_language_sampler_follows_temperature(tmp_path):
    tokenizer = make_tokenizer()
    paths = {"eng_Latn": write_corpus(tmp_path / "e.parquet", sentences("eng_Latn", 200)),
             "deu_Latn": write_corpus(tmp_path / "d.parquet", sentences("deu_Latn", 20, seed=1))}
    packed = pack_corpora(tokenizer, paths, seq_len=10)
    sampler = language_sampler(packed, alpha=0.0, seed=0)
    _, g = sampler.sample(4000)
    assert abs((g == 0).mean() - 0.5) < 0.05  # alpha 0: uniform over languages
    sampler = language_sampler(packed, alpha=1.0, seed=0)
    _, g = sampler.sample(4000)
    assert packed.sentences == [20, 200]  # deu_Latn, eng_Latn
    share = 20 / 220  # alpha 1: proportional to train sentences
    assert abs((g == packed.langs.index("deu_Latn")).mean() - share) < 0.03


def test_packing_to_disk_in_small_chunks_equals_packing_in_memory(tmp_path):
    """The bounded path (token files, memory-mapped arrays filled `chunk_rows` rows at a time) packs exactly
    what one pass over whole lists would, and `fraction` draws the same sentences (LangSAMP §5.1's 5%)."""
    from langadapt.data.corpus import read_split_texts
    from langadapt.train.packing import subsample_indices

    tokenizer = make_tokenizer()
    paths = {lang: write_corpus(tmp_path / f"{lang}.parquet", sentences(lang, 300 + 40 * k, seed=k))
             for k, lang in enumerate(LANG_PREFIX)}  # fmt: skip
    whole = pack_corpora(tokenizer, paths, seq_len=12)
    disk = pack_corpora(tokenizer, paths, seq_len=12, out_dir=tmp_path / "packed", chunk_rows=3)
    assert isinstance(disk.input_ids, np.memmap) and not list(tmp_path.glob("langadapt-pack-*"))
    for name in ("input_ids", "lengths", "lang"):
        assert np.array_equal(getattr(disk, name), getattr(whole, name))
    assert (disk.tokens, disk.sentences) == (whole.tokens, whole.sentences)
    part = pack_corpora(tokenizer, paths, seq_len=12, fraction=0.05, seed=4)
    bos, eos, pad = 0, 2, 1
    for k, lang in enumerate(sorted(paths)):
        texts = read_split_texts(paths[lang])
        keep = subsample_indices(len(texts), 0.05, 4 + k)
        stream = tokenize_texts(tokenizer, [texts[i] for i in keep])
        ids, _ = pack_stream(stream, 12, bos, eos, pad)
        assert np.array_equal(part.input_ids[part.rows_of(k)], ids)
        assert part.sentences[k] == len(keep) == max(1, round(0.05 * len(texts)))
