"""classification (SIB200 / Taxi1500), nli (XNLI) and retrieval_tatoeba (SR-T) on tiny fixtures in the
real file layouts (local-path dataset specs) with a tiny random XLM-R (tests/test_train_helpers.py)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_train_helpers import LANG_PREFIX, WORDS, make_model_dir, make_tokenizer, word

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation import TASKS, build_task, evaluate
from langadapt.evaluation.datasets import SIB200_LABELS, TAXI1500_LABELS
from langadapt.evaluation.sequence_tasks import cap
from langadapt.evaluation.tasks import TaskData

LANGS = ["eng_Latn", "deu_Latn", "fra_Latn"]
FAST = {"max_steps": 4, "eval_every": 2, "lr": 1e-3, "batch_size": 4, "grad_accum": 1, "max_length": 32}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("model") / "m", dropout=0.0)


def task_data(langs: list[str], tmp_path: Path) -> TaskData:
    """TaskData whose languages are `langs` (these tasks read no corpus)."""
    return TaskData({lang: tmp_path / f"{lang}.parquet" for lang in langs}, "eng_Latn")


def topic_sentences(lang: str, labels: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """(label, text): label i uses the words WORDS[3i..3i+2] (learnable); same seed = translations."""
    rng = random.Random(seed)
    out = []
    for j in range(n):
        i = j % len(labels)
        text = " ".join(word(lang, WORDS[3 * i + rng.randrange(3)]) for _ in range(rng.randint(3, 6)))
        out.append((labels[i], text))
    return out


SIZES = {"train": 16, "dev": 8, "test": 12}


def sib200_tree(root: Path, langs: list[str]) -> dict:
    for lang in langs:
        for split, n in SIZES.items():
            rows = topic_sentences(lang, SIB200_LABELS[:4], n, seed=list(SIZES).index(split))
            body = "".join(f"{i}\t{label}\t{text}\n" for i, (label, text) in enumerate(rows))
            f = root / "data" / lang / f"{split}.tsv"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("index_id\tcategory\ttext\n" + body, encoding="utf-8")
    return {"kind": "sib200", "path": str(root)}


def taxi1500_tree(root: Path, langs: list[str]) -> dict:
    for lang in langs:
        for split, n in SIZES.items():
            rows = topic_sentences(lang, TAXI1500_LABELS[:4], n, seed=len(split))
            f = root / lang / f"{lang}_{split}.tsv"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("".join(f"{40001001 + i}\t{y}\t{t}\n" for i, (y, t) in enumerate(rows)), "utf-8")
    return {"kind": "taxi1500", "path": str(root / "{lang}" / "{lang}_{split}.tsv")}


def xnli_tree(root: Path, codes: list[str]) -> dict:
    """{iso639-1}/{train,validation,test}-00000-of-00001.parquet; entailment = same words."""
    for code in codes:
        lang = {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn"}[code]
        for split, n in {"train": 24, "validation": 9, "test": 12}.items():
            rng = random.Random(len(split))
            premise, hypothesis, label = [], [], []
            for j in range(n):
                ws = [word(lang, rng.choice(WORDS)) for _ in range(rng.randint(3, 5))]
                other = [word(lang, rng.choice(WORDS)) for _ in range(rng.randint(2, 4))]
                premise.append(" ".join(ws))
                hypothesis.append(" ".join(ws if j % 3 == 0 else other if j % 3 == 1 else ws[:1] + other))
                label.append(j % 3)
            f = root / code / f"{split}-00000-of-00001.parquet"
            f.parent.mkdir(parents=True, exist_ok=True)
            table = pa.table(
                {"premise": premise, "hypothesis": hypothesis, "label": pa.array(label, pa.int64())}
            )
            pq.write_table(table, f)
    return {"kind": "xnli", "path": str(root)}


def tatoeba_tree(root: Path, sides: dict[str, tuple[list[str], list[str]]]) -> dict:
    """tatoeba.{xxx}-eng.{xxx} (the language) and tatoeba.{xxx}-eng.eng (English), line-aligned."""
    root.mkdir(parents=True, exist_ok=True)
    for code, (texts, english) in sides.items():
        (root / f"tatoeba.{code}-eng.{code}").write_text("".join(t + "\n" for t in texts), "utf-8")
        (root / f"tatoeba.{code}-eng.eng").write_text("".join(t + "\n" for t in english), "utf-8")
    return {"kind": "tatoeba", "path": str(root)}


def test_fixture_words_are_in_the_vocabulary() -> None:
    tok = make_tokenizer()
    for lang in LANG_PREFIX:
        for _, text in topic_sentences(lang, SIB200_LABELS[:4], 8, seed=0):
            assert tok.unk_token_id not in tok(text)["input_ids"]


def test_registered_with_cited_defaults() -> None:
    assert {"classification", "nli", "retrieval_tatoeba"} <= set(TASKS.names())
    cls = build_task({"kind": "classification", "dataset": {"kind": "sib200", "path": "x"}}).params
    assert (cls["lr"], cls["batch_size"], cls["grad_accum"], cls["epochs"]) == (1e-5, 8, 2, 40)
    assert cls["source"] == "eng_Latn" and cls["max_train"] is None
    nli = build_task({"kind": "nli", "dataset": {"kind": "xnli"}}).params
    assert (nli["lr"], nli["batch_size"], nli["max_length"], nli["epochs"]) == (2e-5, 32, 200, 2)
    srt = build_task({"kind": "retrieval_tatoeba", "dataset": {"kind": "tatoeba", "path": "x"}}).params
    assert (srt["layer"], srt["max_sentences"], srt["k"]) == (8, 1000, [1, 5, 10])


@pytest.mark.parametrize("kind", ["sib200", "taxi1500"])
def test_classification_end_to_end(kind: str, model_dir: Path, tmp_path: Path) -> None:
    make = sib200_tree if kind == "sib200" else taxi1500_tree
    spec = make(tmp_path / kind, ["eng_Latn", "deu_Latn"])
    paths = {lang: tmp_path / f"{lang}.parquet" for lang in LANGS}  # evaluate() checks they exist
    for p in paths.values():
        p.write_bytes(b"")
    cfg = {"kind": "classification", "dataset": spec, **FAST, "max_test": 10}
    df = evaluate(model_dir, "topic", cfg, paths, None, "eng_Latn", 3, "base", "h", "v", tmp_path / "o.csv")
    assert sorted(set(df["language"])) == ["deu_Latn", "eng_Latn"]  # fra_Latn not covered: skipped
    assert sorted(df["metric"]) == ["accuracy", "accuracy", "macro_f1", "macro_f1"]
    assert df["value"].between(0, 1).all()
    again = evaluate(
        model_dir, "topic", cfg, paths, None, "eng_Latn", 3, "base", "h", "v", tmp_path / "p.csv"
    )
    assert again["value"].tolist() == pytest.approx(df["value"].tolist(), abs=1e-9)  # seeded


def test_classification_caps_and_labels(tmp_path: Path) -> None:
    spec = sib200_tree(tmp_path / "sib", ["eng_Latn", "deu_Latn"])
    task = build_task(
        {"kind": "classification", "dataset": spec, "max_train": 5, "max_dev": 3, "max_test": 7}
    )
    train, dev, names = task.source_data("eng_Latn")
    tests = task.test_data(task_data(LANGS, tmp_path))
    assert names == SIB200_LABELS and (len(train), len(dev)) == (5, 3)
    assert set(tests) == {"eng_Latn", "deu_Latn"} and all(len(t) == 7 for t in tests.values())
    assert set(train["label"]) <= {0, 1, 2, 3} and isinstance(train["text"].iloc[0], str)
    # the same test positions in every language: the deu test set is the eng one translated
    eng, deu = tests["eng_Latn"]["text"].tolist(), tests["deu_Latn"]["text"].tolist()
    assert [" ".join("de" + w for w in t.split()) for t in eng] == deu
    assert cap(10, 4, 0).tolist() == cap(10, 4, 0).tolist() and len(set(cap(10, 4, 0))) == 4
    assert cap(3, 5, 0).tolist() == [0, 1, 2] and cap(3, None, 0).tolist() == [0, 1, 2]


def test_nli_end_to_end(model_dir: Path, tmp_path: Path) -> None:
    spec = xnli_tree(tmp_path / "xnli", ["en", "fr"])
    task = build_task({"kind": "nli", "dataset": spec, **FAST, "max_train": 16})
    train, _, names = task.source_data("eng_Latn")
    assert names == ["entailment", "neutral", "contradiction"] and isinstance(train["text"].iloc[0], tuple)
    # a (premise, hypothesis) pair is encoded as the tokenizer's sentence pair: <s> A </s> </s> B </s>
    batch = task._batch(make_tokenizer(), [("cat dog", "sun")], "cpu")
    assert batch["input_ids"][0].tolist() == make_tokenizer()("cat dog", "sun")["input_ids"]
    assert (batch["input_ids"][0] == 2).sum() == 3
    rows = task.run(model_dir, task_data(LANGS, tmp_path), seed=0)
    assert {r["language"] for r in rows} == {"eng_Latn", "fra_Latn"}  # deu: no de/ folder
    assert {(r["language"], r["metric"]) for r in rows} == {
        (lang, m) for lang in ("eng_Latn", "fra_Latn") for m in ("accuracy", "macro_f1")
    }
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)


def test_best_dev_checkpoint_is_kept(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state returned by the fine-tuning loop is the one of the best dev score, not the last one."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec = sib200_tree(tmp_path / "sib", ["eng_Latn"])
    task = build_task({"kind": "classification", "dataset": spec, **FAST, "max_steps": 6, "eval_every": 2})
    train, dev, names = task.source_data("eng_Latn")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(names))
    snapshots: list[dict] = []
    real_predict = task._predict

    def predict(model, tokenizer, texts):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_predict(model, tokenizer, texts)

    scores = iter([0.2, 0.9, 0.5])  # dev evaluations at steps 2, 4, 6: the second one is the best
    monkeypatch.setattr(task, "_predict", predict)
    monkeypatch.setattr(task, "_dev_score", lambda gold, pred: next(scores))
    best = task._train(model, AutoTokenizer.from_pretrained(model_dir), train, dev, seed=0)
    assert len(snapshots) == 3
    key = "classifier.out_proj.weight"
    assert torch.equal(best[key], snapshots[1][key])
    assert not torch.equal(best[key], snapshots[2][key]) and not torch.equal(best[key], snapshots[0][key])
    # NLI selects on dev accuracy, classification on dev macro-F1
    nli = build_task({"kind": "nli", "dataset": {"kind": "xnli"}})
    gold, pred = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])
    assert nli._dev_score(gold, pred) == 0.75 and build_task(
        {"kind": "classification", "dataset": spec}
    )._dev_score(gold, pred) == pytest.approx(3 / 7)


def test_tatoeba_identical_texts_retrieve_perfectly(model_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(0)
    english = [" ".join(rng.sample(WORDS, 4)) for _ in range(12)]
    assert len(set(english)) == 12
    french = [" ".join(word("fra_Latn", w) for w in t.split()) for t in english]
    spec = tatoeba_tree(tmp_path / "tatoeba", {"deu": (english, english), "fra": (french, english)})
    task = build_task({"kind": "retrieval_tatoeba", "dataset": spec, "layer": 2})
    rows = task.run(model_dir, task_data(LANGS, tmp_path), seed=0)
    got = {(r["language"], r["metric"]): r["value"] for r in rows}
    assert set(got) == {(lang, f"top{k}") for lang in ("deu_Latn", "fra_Latn") for k in (1, 5, 10)}
    assert got["deu_Latn", "top1"] == 1.0  # identical sentences in both languages
    assert all(0.0 <= v <= 1.0 for v in got.values())
    assert got["fra_Latn", "top1"] <= got["fra_Latn", "top5"] <= got["fra_Latn", "top10"]
    capped = build_task(
        {"kind": "retrieval_tatoeba", "dataset": spec, "layer": 2, "max_sentences": 5, "k": [5]}
    )
    assert {r["value"] for r in capped.run(model_dir, task_data(["deu_Latn"], tmp_path), 0)} == {1.0}


def test_tatoeba_hand_computed_topk(tmp_path: Path) -> None:
    """Layer 0 of a model whose embedding output is the word vector itself: the sentence vector is the
    mean of its word vectors, so the ranks can be computed by hand (numpy) here."""
    from transformers import AutoModelForMaskedLM

    model_dir = make_model_dir(tmp_path / "m", dropout=0.0)
    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    tok = make_tokenizer()
    emb = model.roberta.embeddings
    rng = np.random.default_rng(0)
    # balanced +-1 vectors: mean 0, variance 1, so the embedding LayerNorm (weight 1, bias 0) is the identity
    vecs = np.stack([rng.permutation([1.0] * 16 + [-1.0] * 16) for _ in range(len(tok))])
    de = {w: tok.convert_tokens_to_ids(word("deu_Latn", w)) for w in WORDS}
    en = {w: tok.convert_tokens_to_ids(w) for w in WORDS}
    vecs[de["cat"]] = vecs[en["cat"]]  # decat == cat, dedog == dog: exact translations
    vecs[de["dog"]] = vecs[en["dog"]]
    with torch.no_grad():
        emb.word_embeddings.weight.copy_(torch.tensor(vecs, dtype=torch.float32))
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.LayerNorm.weight.fill_(1.0)
        emb.LayerNorm.bias.zero_()
    model.save_pretrained(model_dir)
    english = ["cat", "dog", "sun moon", "tree river", "stone", "bird fish house"]
    german = ["decat", "dedog", "desun demoon", "detree deriver", "destone", "debird defish dehouse"]
    spec = tatoeba_tree(tmp_path / "t", {"deu": (german, english)})
    task = build_task({"kind": "retrieval_tatoeba", "dataset": spec, "layer": 0, "k": [1, 2, 3]})
    rows = task.run(model_dir, task_data(["eng_Latn", "deu_Latn"], tmp_path), seed=0)

    def pooled(texts: list[str]) -> np.ndarray:
        return np.stack([vecs[[tok.convert_tokens_to_ids(w) for w in t.split()]].mean(0) for t in texts])

    q, c = pooled(english), pooled(german)
    sim = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T
    rank = (sim > np.diag(sim)[:, None] + 1e-6).sum(1)  # candidates strictly better than the gold one
    assert rank[0] == rank[1] == 0  # the exact translations are found first
    expected = {f"top{k}": float((rank < k).mean()) for k in (1, 2, 3)}
    assert {r["metric"]: r["value"] for r in rows} == pytest.approx(expected, abs=1e-9)
    assert expected["top1"] < 1.0  # a non-trivial case


def test_config_errors() -> None:
    sib = {"kind": "sib200", "path": "x"}
    with pytest.raises(ConfigError, match="'learning_rate'"):
        build_task({"kind": "classification", "dataset": sib, "learning_rate": 1e-5})
    with pytest.raises(ConfigError, match=r"classification\.dataset must be a dataset spec"):
        build_task({"kind": "classification"})
    with pytest.raises(ConfigError, match=r"classification\.dataset: kind 'xnli' is not supported"):
        build_task({"kind": "classification", "dataset": {"kind": "xnli"}})
    with pytest.raises(ConfigError, match=r"nli\.dataset: unknown key\(s\) \['split'\]"):
        build_task({"kind": "nli", "dataset": {"kind": "xnli", "split": "test"}})
    with pytest.raises(ConfigError, match=r"classification\.dataset: .*needs key\(s\) \['path'\]"):
        build_task({"kind": "classification", "dataset": {"kind": "taxi1500"}})
    with pytest.raises(ConfigError, match=r"classification\.max_train must be a positive integer"):
        build_task({"kind": "classification", "dataset": sib, "max_train": 0})
    with pytest.raises(ConfigError, match=r"nli\.source"):
        build_task({"kind": "nli", "dataset": {"kind": "xnli"}, "source": "english"})
    with pytest.raises(ConfigError, match=r"retrieval_tatoeba\.k must be"):
        build_task({"kind": "retrieval_tatoeba", "dataset": {"kind": "tatoeba", "path": "x"}, "k": []})
    with pytest.raises(ConfigError, match=r"retrieval_tatoeba\.sample"):
        build_task({"kind": "retrieval_tatoeba", "dataset": {"kind": "tatoeba", "path": "x"}, "sample": "x"})
    with pytest.raises(ConfigError, match="'preset'"):  # LangSAMP App. A: one setting for both datasets
        build_task({"kind": "classification", "dataset": sib, "preset": "sib200"})


def test_uncovered_languages_fail_before_training(tmp_path: Path) -> None:
    no_model = tmp_path / "no-model"  # never reached: the data errors come first
    sib = sib200_tree(tmp_path / "sib", ["eng_Latn", "deu_Latn"])
    with pytest.raises(DataError, match=r"covers none of the evaluated languages fra_Latn"):
        build_task({"kind": "classification", "dataset": sib}).run(
            no_model, task_data(["fra_Latn"], tmp_path), 0
        )
    with pytest.raises(DataError, match="has no data for the source fra_Latn"):
        build_task({"kind": "classification", "dataset": sib, "source": "fra_Latn"}).run(
            no_model, task_data(LANGS, tmp_path), 0
        )
    xnli = xnli_tree(tmp_path / "xnli", ["de"])
    with pytest.raises(DataError, match="covers none of the evaluated languages"):
        build_task({"kind": "nli", "dataset": xnli}).run(
            no_model, task_data(["eng_Latn", "fra_Latn"], tmp_path), 0
        )
    tat = tatoeba_tree(tmp_path / "tat", {"deu": (["a"], ["b"])})
    with pytest.raises(DataError, match="covers none of the evaluated languages eng_Latn, fra_Latn"):
        build_task({"kind": "retrieval_tatoeba", "dataset": tat}).run(
            no_model, task_data(["eng_Latn", "fra_Latn"], tmp_path), 0
        )
