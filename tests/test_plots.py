"""langadapt.report.plots on tiny inputs: LangSAMP PCA, cross-language similarity matrix, per-language bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_train_helpers import make_model_dir, write_parallel

from langadapt.core.errors import DataError
from langadapt.dag.targets import similarity_inputs
from langadapt.evaluation.tasks import ROW_COLUMNS
from langadapt.report.plots import (
    langsamp_tables,
    mean_pairwise_cosine,
    parallel_sentences,
    pca_2d,
    plot_all_per_language,
    plot_langsamp_embeddings,
    plot_per_language,
    plot_similarity,
    relative_improvement,
    similarity_matrix,
    write_matrix_csv,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INVENTORY = ["eng_Latn", "deu_Latn", "rus_Cyrl", "hin_Deva", "fra_Latn"]


def is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("plots") / "model")


@pytest.fixture(scope="module")
def langsamp_dir(tmp_path_factory):
    from transformers import AutoModelForMaskedLM

    from langadapt.train.objective import IdMaps, MLMObjective

    path = make_model_dir(tmp_path_factory.mktemp("plots") / "langsamp")
    obj = MLMObjective(AutoModelForMaskedLM.from_pretrained(path), "both", IdMaps.from_inventory(INVENTORY), seed=0)
    obj.save_tables(path)
    return path


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    """eng/deu/fra pairs where the 'French' side is the English text itself (identical inputs)."""
    path = write_parallel(tmp_path_factory.mktemp("plots") / "parallel.parquet", ["deu_Latn", "fra_Latn"], n=40)
    df = pq.read_table(path).to_pandas()
    fra = df["lang"] == "fra_Latn"
    df.loc[fra, "tgt_text"] = df.loc[fra, "src_text"]
    # deu lacks verse 40: the sentences are the verses every language has
    df = df[~((df["lang"] == "deu_Latn") & (df["verse_id"] == 40))]
    pq.write_table(pa.Table.from_pandas(df, schema=pq.read_schema(path), preserve_index=False), path)
    return path


# --------------------------------------------------------------------------------------------- PCA
def test_pca_recovers_the_main_axis_and_handles_degenerate_tables():
    rng = np.random.default_rng(0)
    t = rng.normal(size=50)
    x = np.outer(t, [3.0, 0.0, 4.0]) + 0.01 * rng.normal(size=(50, 3))
    xy = pca_2d(x)
    assert xy.shape == (50, 2)
    assert np.allclose(xy.mean(axis=0), 0.0, atol=1e-9)
    assert abs(np.corrcoef(xy[:, 0], t)[0, 1]) > 0.999
    assert xy[:, 0].var() > 100 * xy[:, 1].var()
    assert np.array_equal(pca_2d(np.ones((1, 4))), np.zeros((1, 2)))
    assert np.allclose(pca_2d(np.array([[0.0, 0.0], [1.0, 1.0]]))[:, 1], 0.0)


def test_langsamp_tables_and_their_pca_plot(langsamp_dir, tmp_path):
    tables = langsamp_tables(langsamp_dir)
    codes, matrix = tables["language_embeddings"]
    assert codes == INVENTORY and matrix.shape == (5, 32)
    scripts, smatrix = tables["script_embeddings"]
    assert scripts == ["Cyrl", "Deva", "Latn"] and smatrix.shape == (3, 32)
    out = plot_langsamp_embeddings(langsamp_dir, tmp_path / "sub" / "pca.png")
    assert is_png(out) and out == tmp_path / "sub" / "pca.png"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["pca.png"]  # no temporary file left


def test_a_model_without_langsamp_tables_is_a_data_error(model_dir, tmp_path):
    with pytest.raises(DataError, match="no LangSAMP tables"):
        plot_langsamp_embeddings(model_dir, tmp_path / "pca.png")
    assert not (tmp_path / "pca.png").exists()


# -------------------------------------------------------------------------------------- similarity
def test_mean_pairwise_cosine_values():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 1.0], [0.0, -1.0]])
    m = mean_pairwise_cosine([a, b, a])
    expected = (1 / np.sqrt(2) - 1.0) / 2
    assert np.allclose(m, [[1, expected, 1], [expected, 1, expected], [1, expected, 1]])


def test_parallel_sentences_are_the_verses_shared_by_every_language(parallel):
    texts = parallel_sentences(parallel, ["eng_Latn", "deu_Latn", "fra_Latn"], "eng_Latn", 100, 0, split=None)
    assert {k: len(v) for k, v in texts.items()} == {"eng_Latn": 39, "deu_Latn": 39, "fra_Latn": 39}
    assert texts["fra_Latn"] == texts["eng_Latn"]
    few = parallel_sentences(parallel, ["eng_Latn", "deu_Latn"], "eng_Latn", 5, 3, split="train")
    assert len(few["eng_Latn"]) == 5
    assert few == parallel_sentences(parallel, ["eng_Latn", "deu_Latn"], "eng_Latn", 5, 3, split="train")
    with pytest.raises(DataError, match="hin_Deva"):
        parallel_sentences(parallel, ["eng_Latn", "hin_Deva"], "eng_Latn", 5, 0, split=None)


def test_similarity_matrix_is_symmetric_with_unit_diagonal(model_dir, parallel):
    langs = ["eng_Latn", "deu_Latn", "fra_Latn"]
    m = similarity_matrix(model_dir, parallel, langs, layer=None, max_sentences=12, seed=0, split=None,
                          device="cpu")
    assert m.shape == (3, 3)
    assert np.allclose(m, m.T, atol=1e-9)
    assert np.allclose(np.diag(m), 1.0, atol=1e-5)
    assert m[0, 2] == pytest.approx(1.0, abs=1e-5)  # identical texts in eng and "fra"
    assert m[0, 1] < 0.999 and m[0, 1] == pytest.approx(m[2, 1], abs=1e-5)
    layer1 = similarity_matrix(model_dir, parallel, langs, layer=1, max_sentences=12, seed=0, split=None,
                               device="cpu")
    assert not np.allclose(layer1, m)
    with pytest.raises(Exception, match="layer 3"):
        similarity_matrix(model_dir, parallel, langs, layer=3, max_sentences=12, seed=0, split=None, device="cpu")


def test_similarity_heatmap_with_and_without_baseline(tmp_path):
    langs = ["eng_Latn", "deu_Latn"]
    m = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert is_png(plot_similarity(m, langs, tmp_path / "one.png"))
    assert is_png(plot_similarity(m, langs, tmp_path / "two.png", baseline=np.array([[1.0, 0.4], [0.4, 1.0]])))
    with pytest.raises(ValueError, match="baseline shape"):
        plot_similarity(m, langs, tmp_path / "bad.png", baseline=np.eye(3))
    with pytest.raises(ValueError, match="2 languages"):
        plot_similarity(np.eye(3), langs, tmp_path / "bad.png")
    gain = relative_improvement(m, np.array([[1.0, 0.4], [0.0, 1.0]]))
    assert np.allclose(gain[[0, 0, 1], [0, 1, 1]], [0.0, 25.0, 0.0]) and np.isnan(gain[1, 0])
    assert is_png(plot_similarity(m, langs, tmp_path / "nan.png", baseline=np.array([[1.0, 0.4], [0.0, 1.0]])))
    csv = write_matrix_csv(m, langs, tmp_path / "m.csv")
    back = pd.read_csv(csv, index_col="language")
    assert list(back.index) == langs and np.allclose(back.to_numpy(), m)
    assert csv.stat().st_mode & 0o044  # readable beyond the owner (mkstemp files are 0600)


def test_similarity_inputs_use_the_root_base_as_baseline():
    from langadapt import config as lc

    config = {"recipes": {"tiny": {"base": "tiny"}, "lapt": {"base": "tiny", "pretrain": "p"}},
              "pretraining": {"p": {}}}
    assert lc.final_model_dir(config, "lapt") == "results/models/lapt/pretrain"
    assert "baseline" not in similarity_inputs(config, "tiny", "pairs.parquet")
    assert similarity_inputs(config, "lapt", "pairs.parquet")["baseline"] == "results/base/tiny"


# ------------------------------------------------------------------------------- per-language bars
def _rows():
    rows = []
    for recipe in ("a", "b"):
        for lang in ("deu_Latn", "nya_Latn"):
            for seed in (1, 2):
                rows.append({"recipe": recipe, "task": "srb", "language": lang, "seed": seed, "metric": "top10",
                             "value": 0.5 + 0.1 * seed, "config_hash": "h", "code_version": "v"})
                rows.append({"recipe": recipe, "task": "srb", "language": lang, "seed": seed, "metric": "top1",
                             "value": 0.1, "config_hash": "h", "code_version": "v"})
        rows.append({"recipe": recipe, "task": "ner", "language": "jpn_Jpan", "seed": 1, "metric": "f1",
                     "value": 0.3, "config_hash": "h", "code_version": "v"})
    return pd.DataFrame(rows).assign(packages="torch=2")[ROW_COLUMNS]


def test_per_language_plots(tmp_path):
    df = _rows()
    assert is_png(plot_per_language(df, "srb", "top1", tmp_path / "srb_top1.png"))
    written = plot_all_per_language(df, tmp_path / "dir")
    assert sorted(p.name for p in written) == ["ner.png", "srb.png"]
    assert all(is_png(p) for p in written)
    with pytest.raises(DataError, match="no result rows"):
        plot_per_language(df, "srb", "f1", tmp_path / "x.png")
