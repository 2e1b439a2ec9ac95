"""bible_genre (Taxi1500 stand-in): genres, data selection, end-to-end fine-tuning on a tiny model."""

import random

import numpy as np
import pandas as pd
import pytest
from eval_helpers import SPECIALS, WORDS  # noqa: F401
from eval_helpers import make_model_dir as _make_model_dir

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation import build_task, evaluate
from langadapt.evaluation.classification import book_genre
from langadapt.evaluation.tasks import TaskData

BOOKS = [1, 3, 6, 10, 18, 20, 23, 30, 40, 43, 45, 66]  # two books of each genre


def make_model_dir(path, n_layers=2, seed=0, arch="bert"):
    return _make_model_dir(path, n_layers=n_layers, seed=seed, arch=arch)


def make_corpora(tmp_path, per_book=12):
    """Three languages; genre g verses use words w{10g}..w{10g+9} so the task is learnable."""
    rng = random.Random(0)
    rows = []
    for book in BOOKS:
        g = int(book_genre([book])[0])
        for v in range(1, per_book + 1):
            split = ("train", "train", "dev", "test")[v % 4]
            words = [f"w{10 * g + rng.randrange(10)}" for _ in range(rng.randint(3, 8))]
            rows.append((book * 1_000_000 + 1_000 + v, book, " ".join(words), split))
    eng = pd.DataFrame(rows, columns=["verse_id", "book", "text", "split"]).astype({"book": "int16"})
    paths = {}
    for lang, df in {
        "eng_Latn": eng,
        "deu_Latn": eng.sample(frac=1.0, random_state=1),
        "nya_Latn": eng.iloc[::2],
    }.items():
        paths[lang] = tmp_path / f"{lang}.parquet"
        df.to_parquet(paths[lang], index=False)
    return paths


CFG = {
    "kind": "bible_genre",
    "train_per_class": 4,
    "dev_per_class": 2,
    "test_per_class": 3,
    "epochs": 3,
    "max_steps": 4,
    "eval_every": 2,
    "lr": 1e-3,
}


def test_book_genre():
    assert book_genre([1, 5, 6, 17, 18, 22, 23, 39, 40, 44, 45, 66, 0, 67]).tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
        -1,
        -1,
    ]


def test_selection_same_test_ids(tmp_path):
    paths = make_corpora(tmp_path)
    task = build_task(CFG)
    data = TaskData(paths, "eng_Latn")
    (train, dev, _), tests = task.source_frames(data, "eng_Latn"), task.test_frames(data)
    assert train["label"].value_counts().to_dict() == {g: 4 for g in range(6)}
    assert (train["split"] == "train").all() and (dev["split"] == "dev").all()
    assert len(dev) == 12
    assert tests["eng_Latn"]["verse_id"].tolist() == tests["deu_Latn"]["verse_id"].tolist()
    assert tests["eng_Latn"]["label"].value_counts().to_dict() == {g: 3 for g in range(6)}
    assert all((t["split"] == "test").all() for t in tests.values())


def test_end_to_end_reproducible(tmp_path):
    paths = make_corpora(tmp_path)
    model_dir = make_model_dir(tmp_path / "model")
    out = tmp_path / "eval" / "seed3.csv"
    df = evaluate(model_dir, "genre", CFG, paths, None, "eng_Latn", 3, "base", "h", "v", out)
    assert set(df["language"]) == {"eng_Latn", "deu_Latn", "nya_Latn"}
    assert set(df["metric"]) == {"macro_f1", "accuracy"}
    assert np.isfinite(df["value"]).all() and df["value"].between(0, 1).all()
    assert pd.read_csv(out).shape == (6, 9)  # 6 rows; the 9 ROW_COLUMNS
    again = evaluate(
        model_dir, "genre", CFG, paths, None, "eng_Latn", 3, "base", "h", "v", tmp_path / "b.csv"
    )
    assert again["value"].tolist() == pytest.approx(df["value"].tolist(), abs=1e-9)


def test_xlmr_checkpoint(tmp_path):
    paths = make_corpora(tmp_path)
    model_dir = make_model_dir(tmp_path / "model", arch="xlmr")
    df = evaluate(
        model_dir,
        "genre",
        {**CFG, "max_steps": 2, "eval_every": None},
        paths,
        None,
        "eng_Latn",
        0,
        "base",
        "h",
        "v",
        tmp_path / "o.csv",
    )
    assert len(df) == 6 and df["value"].between(0, 1).all()


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="'learning_rate'"):
        build_task({"kind": "bible_genre", "learning_rate": 1e-5})
    with pytest.raises(ConfigError, match="max_steps"):
        build_task({"kind": "bible_genre", "max_steps": 0})
    paths = make_corpora(tmp_path)
    no_dev = pd.read_parquet(paths["eng_Latn"])
    no_dev = no_dev[no_dev["split"] != "dev"]
    no_dev.to_parquet(paths["eng_Latn"], index=False)
    with pytest.raises(DataError, match="dev split of .*eng_Latn.parquet"):
        build_task(CFG).source_frames(TaskData(paths, "eng_Latn"), "eng_Latn")


def test_source_language_trains_on_that_languages_verses(tmp_path, monkeypatch):
    """Every corpus is verse-aligned: ``source`` picks the language fine-tuned on (same genres, own text)."""
    paths = make_corpora(tmp_path)
    deu = pd.read_parquet(paths["deu_Latn"])
    task = build_task({**CFG, "source": "deu_Latn"})
    fitted = []

    class Stop(Exception):
        pass

    def fit(model_dir, train, dev, names, seed):
        fitted.append(train)
        raise Stop  # before any model is loaded

    monkeypatch.setattr(task, "_fit", fit)
    with pytest.raises(Stop):
        task.run(tmp_path / "unused", TaskData(paths, "eng_Latn"), seed=0)
    train = fitted[0]
    assert set(train["verse_id"]) <= set(deu.loc[deu["split"] == "train", "verse_id"])
    by_id = deu.set_index("verse_id")["text"]
    assert train["text"].tolist() == by_id.loc[train["verse_id"]].tolist()
    with pytest.raises(ConfigError, match="bible_genre.source"):
        build_task({**CFG, "source": "german"})
    with pytest.raises(DataError, match="source fra_Latn is not among the job's languages"):
        build_task({**CFG, "source": "fra_Latn"}).run(tmp_path / "unused", TaskData(paths, "eng_Latn"), seed=0)


def test_donor_source_scores_each_target_with_its_donors_model(tmp_path, monkeypatch):
    """LangSAMP §5.3 on the Bible genre task: nya's language embedding is closest to deu's, so nya is scored
    by the model fine-tuned on German; a donor scores itself; each used donor is fine-tuned once, seeded as a
    single-source run."""
    from test_eval_donor import vec, write_langsamp_tables

    paths = make_corpora(tmp_path)
    model_dir = make_model_dir(tmp_path / "model", arch="xlmr")
    write_langsamp_tables(model_dir, {"eng_Latn": vec(1, 0), "deu_Latn": vec(0, 1), "nya_Latn": vec(0.1, 1)})
    task = build_task({**CFG, "source": "donor", "donors": ["eng_Latn", "deu_Latn", "hin_Deva"]})
    fits, scored, real_fit, real_score = [], {}, task._fit, task._score

    def fit(model_dir, train, dev, names, seed):
        fits.append(train.attrs["source"])
        return real_fit(model_dir, train, dev, names, seed)

    monkeypatch.setattr(task, "_fit", fit)
    real_frames = task.source_frames

    def source_frames(data, lang):
        train, dev, names = real_frames(data, lang)
        train.attrs["source"] = lang
        return train, dev, names

    monkeypatch.setattr(task, "source_frames", source_frames)
    monkeypatch.setattr(task, "_score", lambda m, t, test, source, lang: scored.setdefault(lang, source)
                        and real_score(m, t, test, source, lang))  # fmt: skip
    rows = task.run(model_dir, TaskData(paths, "eng_Latn"), seed=3)
    assert fits == ["eng_Latn", "deu_Latn"]  # hin_Deva: not among the job's languages, dropped
    assert scored == {"eng_Latn": "eng_Latn", "deu_Latn": "deu_Latn", "nya_Latn": "deu_Latn"}
    sims = {r["language"]: r["value"] for r in rows if r["metric"] == "donor_similarity"}
    assert sims["nya_Latn"] == pytest.approx(1 / np.hypot(0.1, 1), abs=1e-5) and sims["eng_Latn"] == 1.0
    fixed = build_task({**CFG, "source": "deu_Latn"}).run(model_dir, TaskData(paths, "eng_Latn"), seed=3)
    want = {(r["language"], r["metric"]): r["value"] for r in fixed}
    for r in rows:
        if r["language"] == "nya_Latn" and r["metric"] != "donor_similarity":
            assert r["value"] == pytest.approx(want["nya_Latn", r["metric"]], abs=1e-9)


def test_probe_protocol_learns_the_genres_and_is_deterministic(tmp_path, caplog):
    """protocol probe: logistic regression on frozen mean-pooled states, the C with the best source-dev
    macro-F1 kept. Each genre has its own words here, so even a random encoder's pooled states separate them."""
    import logging

    caplog.set_level(logging.INFO)
    paths = make_corpora(tmp_path, per_book=24)
    model_dir = make_model_dir(tmp_path / "model", n_layers=2)
    cfg = {**CFG, "protocol": "probe", "train_per_class": 8, "probe_c": [0.1, 1.0]}
    rows = build_task(cfg).run(model_dir, TaskData(paths, "eng_Latn"), seed=0)
    f1 = {r["language"]: r["value"] for r in rows if r["metric"] == "macro_f1"}
    assert set(f1) == {"eng_Latn", "deu_Latn", "nya_Latn"} and min(f1.values()) > 0.8
    probe_lines = [r.getMessage() for r in caplog.records if "probe (layer 2)" in r.getMessage()]
    assert len(probe_lines) == 2 and "C 0.1, dev macro-F1" in probe_lines[0]
    again = build_task(cfg).run(model_dir, TaskData(paths, "eng_Latn"), seed=7)  # the seed changes nothing
    assert [r["value"] for r in again] == [r["value"] for r in rows]
    layer1 = build_task({**cfg, "probe_layer": 1}).run(model_dir, TaskData(paths, "eng_Latn"), seed=0)
    assert len(layer1) == len(rows)
    with pytest.raises(ConfigError, match="layer 3 requested"):
        build_task({**cfg, "probe_layer": 3}).run(model_dir, TaskData(paths, "eng_Latn"), seed=0)
    for bad, match in (({"protocol": "linear"}, "protocol must be finetune or probe"),
                       ({"probe_c": []}, "probe_c must be a non-empty list"),
                       ({"probe_layer": 0}, "probe_layer must be a positive integer")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            build_task({**CFG, **bad})
