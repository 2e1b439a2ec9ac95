"""PCA diagnostics of an embedding initialization (vocabulary-specialization paper, Fig. 1-3)."""

from __future__ import annotations

import json
import logging
import random

import pytest
import torch
from init_helpers import save_tiny_xlmr

from langadapt.core.errors import DataError
from langadapt.models.tokenization import train_sentencepiece
from langadapt.vocab import diagnostics
from langadapt.vocab.chain import initialize_embeddings
from langadapt.vocab.diagnostics import fit_pca, pca_figure

PNG = b"\x89PNG\r\n\x1a\n"
SPECIALS = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}


def clustered_space(n: int = 300, d: int = 8, seed: int = 0):
    """A vocabulary of Latin / Cyrillic / Greek pieces, half word-initial, whose embeddings cluster by script
    (first dimension) and position (second dimension), like XLM-R's (Fig. 1)."""
    g = torch.Generator().manual_seed(seed)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    rows = [torch.full((d,), 50.0) for _ in range(4)]
    letters = {"Latn": "abcdefgh", "Cyrl": "абвгдежз", "Grek": "αβγδεζηθ"}
    for k in range(n):
        script = list(letters)[k % 3]
        initial = (k // 3) % 2 == 0
        chars = letters[script]
        piece = ("▁" if initial else "") + chars[k % 8] + chars[(k // 8) % 8] + str(k)
        vocab[piece] = len(vocab)
        centre = torch.zeros(d)
        centre[0] = {"Latn": -6.0, "Cyrl": 0.0, "Grek": 6.0}[script]
        centre[1] = 3.0 if initial else -3.0
        rows.append(centre + 0.5 * torch.randn(d, generator=g))
    return torch.stack(rows), vocab


def test_fit_pca_finds_the_main_direction():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(500, 1, generator=g)
    x = t * torch.tensor([[3.0, 4.0, 0.0]]) + 0.01 * torch.randn(500, 3, generator=g)
    mean, comps, ratios = fit_pca(x)
    assert comps.shape == (3, 2) and ratios[0] > 0.99 and sum(ratios) <= 1.0 + 1e-9
    assert abs(abs(float(comps[0, 0])) - 0.6) < 0.01 and abs(abs(float(comps[1, 0])) - 0.8) < 0.01
    _, comps, ratios = fit_pca(torch.tensor([[1.0], [3.0]]))  # one dimension: the 2nd component is zero
    assert comps.shape == (1, 2) and float(comps[0, 1]) == 0.0 and ratios[1] == 0.0
    with pytest.raises(DataError, match="at least 2 source pieces.*got 1"):
        fit_pca(torch.ones(1, 4))


def test_pca_figure_writes_a_png(tmp_path):
    src, vocab = clustered_space()
    tgt = src.clone()
    copied = torch.zeros(len(tgt), dtype=torch.bool)
    copied[: len(tgt) // 2] = True
    info = pca_figure(src, vocab, SPECIALS, tgt, vocab, SPECIALS, tmp_path / "sub" / "pca.png", copied=copied,
                      max_points=120, title="test")
    data = (tmp_path / "sub" / "pca.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["pca.png"]  # written atomically, no temp file
    assert info["file"] == "pca.png" and info["points"] == {"source": 120, "target": 120}
    assert set(info["scripts"]) == {"Latn", "Cyrl", "Grek"}
    # the two cluster axes (script, position) carry nearly all the variance
    assert sum(info["explained_variance"]) > 0.9
    # without `copied`: two columns; deterministic for a seed
    info2 = pca_figure(src, vocab, SPECIALS, tgt, vocab, SPECIALS, tmp_path / "b.png")
    assert info2["points"] == {"source": 300, "target": 300} and (tmp_path / "b.png").read_bytes().startswith(PNG)


def test_pca_figure_rejects_bad_input(tmp_path):
    src, vocab = clustered_space(30)
    only_specials = {p: i for p, i in vocab.items() if i < 4}
    with pytest.raises(DataError, match="source vocabulary \\(4 pieces, 34 embedding rows\\) has no non-special"):
        pca_figure(src, only_specials, SPECIALS, src, vocab, SPECIALS, tmp_path / "x.png")
    with pytest.raises(DataError, match="target vocabulary.*has no non-special"):
        pca_figure(src, vocab, SPECIALS, src, only_specials, SPECIALS, tmp_path / "x.png")
    bad = src.clone()
    bad[10] = float("nan")
    with pytest.raises(DataError, match="1 initialized embedding rows are NaN"):
        pca_figure(src, vocab, SPECIALS, bad, vocab, SPECIALS, tmp_path / "x.png")
    with pytest.raises(DataError, match="source embeddings contain NaN"):
        pca_figure(bad, vocab, SPECIALS, src, vocab, SPECIALS, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("diag")
    rng = random.Random(0)

    def lines(syllables: list[str]) -> list[str]:
        words = ["".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(40)]
        return [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(150)]

    texts = {"eng_Latn": lines(["ka", "lo", "mi", "ne"]), "rus_Cyrl": lines(["ка", "ло", "ми", "не"])}
    train_sentencepiece(texts, root / "src", vocab_size=60)
    train_sentencepiece({"myv_Cyrl": lines(["ка", "зу", "ке", "ло"])}, root / "tgt", vocab_size=30)
    save_tiny_xlmr(root / "src")
    return root


def test_initialize_embeddings_writes_pca_png(dirs, tmp_path):
    out = tmp_path / "m"
    stats = initialize_embeddings(dirs / "src", dirs / "tgt", ["ident", "script_posn", "random_normal"], out,
                                  diagnostics=True)
    assert (out / "pca.png").read_bytes().startswith(PNG) and (out / "pca.png").stat().st_size > 10_000
    assert stats["pca"]["file"] == "pca.png" and len(stats["pca"]["explained_variance"]) == 2
    assert json.loads((out / "init_stats.json").read_text()) == stats
    assert json.loads((out / "langadapt.json").read_text())["init"]["stats"]["pca"] == stats["pca"]
    assert stats["ident"] + stats["script_posn"] + stats["random_normal"] == stats["total"]  # counts kept


def test_a_plotting_failure_only_warns(dirs, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        (args[6]).write_bytes(b"partial")
        raise RuntimeError("no canvas")

    monkeypatch.setattr(diagnostics, "pca_figure", broken)
    with caplog.at_level(logging.WARNING, logger="langadapt.vocab.chain"):
        stats = initialize_embeddings(dirs / "src", dirs / "tgt", ["ident", "random"], tmp_path / "m",
                                      diagnostics=True)
    assert stats["pca"] == {"error": "RuntimeError: no canvas"}
    assert "PCA diagnostics failed" in caplog.text
    assert (tmp_path / "m" / "model.safetensors").exists() and not (tmp_path / "m" / "pca.png").exists()
