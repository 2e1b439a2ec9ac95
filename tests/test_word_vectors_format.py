"""The word-vector directory format and the SVD factorization shared by OFA and HyperOFA."""

import numpy as np
import pytest
import torch

from langadapt.core.errors import ConfigError, DataError
from langadapt.models.factorization import factorize
from langadapt.vectors.base import load_word_vectors, save_word_vectors


def test_word_vectors_roundtrip_and_errors(tmp_path):
    vec = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_word_vectors(tmp_path, ["haus", "house", "tab\\x"], ["deu_Latn", "eng_Latn", ""], vec, {"kind": "test"})
    wv = load_word_vectors(tmp_path)
    assert wv.words == ["haus", "house", "tab\\x"] and wv.langs == ["deu_Latn", "eng_Latn", ""]
    assert np.array_equal(wv.vectors, vec) and wv.dim == 4 and len(wv) == 3
    (tmp_path / "words.tsv").write_text("word\tlang\nhaus\tdeu_Latn\n")
    with pytest.raises(DataError, match="2 words|1 words"):
        load_word_vectors(tmp_path)
    (tmp_path / "words.tsv").write_text("w\tl\n")
    with pytest.raises(DataError, match="words.tsv: line 1"):
        load_word_vectors(tmp_path)
    with pytest.raises(DataError, match="vectors.npy is missing"):
        load_word_vectors(tmp_path / "nope")


def test_factorization_reconstructs_at_full_rank_and_is_best_low_rank():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(50, 8, generator=g)
    c, p = factorize(emb, 8)
    assert c.shape == (50, 8) and p.shape == (8, 8)
    assert torch.allclose(c @ p, emb, atol=1e-5)
    c3, p3 = factorize(emb, 3)
    err = torch.linalg.norm(emb - c3 @ p3)
    s = torch.linalg.svdvals(emb)
    assert torch.isclose(err, torch.sqrt((s[3:] ** 2).sum()), rtol=1e-4)  # Eckart-Young
    assert torch.equal(factorize(emb, 3)[0], c3)  # deterministic
    with pytest.raises(ConfigError, match="1..8"):
        factorize(emb, 9)
