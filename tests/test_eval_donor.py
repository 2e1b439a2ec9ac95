"""``source: donor`` (LangSAMP §5.3): donor choice, one fine-tuned model per used donor, config checks."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_helpers import make_model_dir as make_bert_dir
from test_eval_sequence_tasks import FAST, sib200_tree
from test_eval_token_classification import TINY, write_conllu
from test_train_helpers import make_model_dir as make_xlmr_dir

from langadapt.config.checks import check_donor_task
from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation import build_task
from langadapt.evaluation.donor import (
    LANGUAGE_EMBEDDING_VARIANTS,
    PAPER_DONORS,
    SIMILARITY_METRIC,
    SourcePlan,
    choose_donors,
    plan_sources,
    run_plan,
)
from langadapt.evaluation.tasks import TaskData
from langadapt.report.aggregate import main_metric

DONOR_LOG = "langadapt.evaluation.donor"


def vec(*xs: float) -> np.ndarray:
    return np.asarray(xs, dtype=np.float32)


# a 2-d toy space: eng on the x axis, rus on the y axis, zho on the diagonal
EMB = {
    "eng_Latn": vec(1, 0),
    "rus_Cyrl": vec(0, 1),
    "zho_Hani": vec(1, 1),
    "deu_Latn": vec(0.9, 0.1),  # closest: eng
    "ukr_Cyrl": vec(0.1, 0.9),  # closest: rus
    "yue_Hani": vec(0.8, 0.9),  # closest: zho
}


# ----------------------------------------------------------------------------------- donor choice
def test_each_target_gets_its_most_similar_donor_and_a_donor_itself(caplog):
    """LangSAMP §5.3: the donor most cosine-similar to the target. A donor language's closest donor is itself
    (cosine 1): English is scored from its English-source run, as in the paper's Table 4 / App. D tables."""
    caplog.set_level(logging.INFO, logger=DONOR_LOG)
    targets = ["deu_Latn", "eng_Latn", "ukr_Cyrl", "yue_Hani", "rus_Cyrl"]
    plan = choose_donors(EMB, targets, ["eng_Latn", "rus_Cyrl", "zho_Hani"], "eng_Latn")
    assert plan.groups == {
        "eng_Latn": ["deu_Latn", "eng_Latn"],
        "zho_Hani": ["yue_Hani"],
        "rus_Cyrl": ["ukr_Cyrl", "rus_Cyrl"],
    }
    assert list(plan.groups) == ["eng_Latn", "rus_Cyrl", "zho_Hani"]  # fine-tuning order = donor order
    assert plan.source_of("eng_Latn") == "eng_Latn" and plan.similarity["eng_Latn"] == 1.0
    assert plan.similarity["deu_Latn"] == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-6)
    assert set(plan.similarity) == set(targets)
    logged = [r.getMessage() for r in caplog.records if "donor map" in r.getMessage()]
    assert len(logged) == 5 and any("deu_Latn -> eng_Latn (similarity 0.99" in m for m in logged)


def test_ties_go_to_the_first_donor_in_list_order():
    emb = {"eng_Latn": vec(1, 0), "spa_Latn": vec(1, 0), "x": vec(2, 0)}
    assert choose_donors(emb, ["x"], ["spa_Latn", "eng_Latn"], "eng_Latn").source_of("x") == "spa_Latn"
    assert choose_donors(emb, ["x"], ["eng_Latn", "spa_Latn"], "eng_Latn").source_of("x") == "eng_Latn"


def test_donors_without_data_are_dropped_before_choosing(caplog):
    caplog.set_level(logging.INFO, logger=DONOR_LOG)
    plan = choose_donors(
        EMB, ["ukr_Cyrl", "deu_Latn"], ["eng_Latn", "rus_Cyrl", "zho_Hani"], "eng_Latn",
        usable=lambda lang: lang != "rus_Cyrl",
    )  # fmt: skip
    # ukr would pick rus; rus has no train/dev data, so the next best candidate (zho) is chosen
    assert plan.groups == {"eng_Latn": ["deu_Latn"], "zho_Hani": ["ukr_Cyrl"]}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("['rus_Cyrl'] dropped: the dataset has no train + dev data" in m for m in warned)


def test_targets_without_embedding_use_the_fallback(caplog):
    caplog.set_level(logging.INFO, logger=DONOR_LOG)
    plan = choose_donors(EMB, ["fra_Latn", "ukr_Cyrl", "deu_Latn"], ["eng_Latn", "rus_Cyrl"], "eng_Latn")
    # the fallback is a donor in use: its model is shared (one model per source)
    assert plan.groups == {"eng_Latn": ["fra_Latn", "deu_Latn"], "rus_Cyrl": ["ukr_Cyrl"]}
    assert "fra_Latn" not in plan.similarity
    assert any("no language embedding for ['fra_Latn']" in r.getMessage() for r in caplog.records)
    # a fallback outside the donors comes last; a donor without an embedding is dropped
    plan = choose_donors(EMB, ["fra_Latn", "ukr_Cyrl"], ["swa_Latn", "rus_Cyrl"], "spa_Latn")
    assert list(plan.groups.items()) == [("rus_Cyrl", ["ukr_Cyrl"]), ("spa_Latn", ["fra_Latn"])]
    assert any(
        "['swa_Latn'] dropped: the model has no language embedding" in r.getMessage() for r in caplog.records
    )
    # the only candidate donor as a target: it is its own donor
    plan = choose_donors(EMB, ["rus_Cyrl"], ["rus_Cyrl"], "eng_Latn")
    assert plan.groups == {"rus_Cyrl": ["rus_Cyrl"]} and plan.similarity == {"rus_Cyrl": 1.0}
    with pytest.raises(DataError, match="fallback_source eng_Latn is needed for"):
        choose_donors(EMB, ["fra_Latn"], ["rus_Cyrl"], "eng_Latn", usable=lambda lang: lang != "eng_Latn")


def test_fixed_source_plan_and_run_plan_fit_once_per_source():
    plan = plan_sources(
        "x", {"source": "eng_Latn"}, Path("/no/model"), ["deu_Latn", "eng_Latn"], lambda _: True
    )
    assert plan == SourcePlan({"eng_Latn": ["deu_Latn", "eng_Latn"]})  # English = the one-donor case
    plan = SourcePlan({"eng_Latn": ["eng_Latn", "zzz_Latn"], "rus_Cyrl": ["aaa_Latn"]}, {"aaa_Latn": 0.5})
    fits: list[str] = []

    def fit(source: str) -> str:
        fits.append(source)
        return f"model<{source}>"

    rows = run_plan(plan, fit, lambda m, s, t: [{"language": t, "metric": "acc", "value": float(len(m))}])
    assert fits == ["eng_Latn", "rus_Cyrl"]
    assert [r["language"] for r in rows] == ["aaa_Latn", "eng_Latn", "zzz_Latn", "aaa_Latn"]
    assert rows[-1] == {"language": "aaa_Latn", "metric": SIMILARITY_METRIC, "value": 0.5}


def test_similarity_rows_never_become_the_main_metric():
    for metrics in (["accuracy"], ["accuracy", "f1"], ["accuracy", "macro_f1"]):
        assert main_metric([*metrics, SIMILARITY_METRIC]) == main_metric(metrics)


# ------------------------------------------------------------------------------------ build time
def test_defaults_are_the_papers_donors():
    assert len(PAPER_DONORS) == 10 and PAPER_DONORS[0] == "eng_Latn"
    for cfg in (
        {"kind": "token_classification", "dataset": {"kind": "hironsan"}},
        {"kind": "classification", "dataset": {"kind": "sib200", "path": "x"}},
        {"kind": "nli", "dataset": {"kind": "xnli"}},
    ):
        p = build_task(cfg).params
        assert p["donors"] == list(PAPER_DONORS) and p["fallback_source"] == "eng_Latn"
        assert build_task({**cfg, "source": "donor"}).params["source"] == "donor"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"source": "donor", "donors": ["eng_Latn", "english"]}, r"donors\[1\]"),
        ({"source": "donor", "donors": ["eng_Latn", 3]}, r"donors\[1\] must be a language code"),
        ({"source": "donor", "donors": []}, "donors must be a non-empty list"),
        ({"source": "donor", "donors": ["eng_Latn", "eng_Latn"]}, "more than once"),
        ({"source": "donor", "fallback_source": "en"}, "fallback_source"),
        ({"source": "donr"}, "source"),
    ],
)
@pytest.mark.parametrize("kind", ["token_classification", "classification"])
def test_bad_donor_params_fail_at_build_time(kind, extra, match):
    dataset = {"kind": "hironsan"} if kind == "token_classification" else {"kind": "sib200", "path": "x"}
    with pytest.raises(ConfigError, match=match):
        build_task({"kind": kind, "dataset": dataset, **extra})


def test_donor_needs_zero_shot():
    with pytest.raises(ConfigError, match="needs protocol zero_shot"):
        build_task({"kind": "token_classification", "dataset": {"kind": "hironsan"}, "protocol": "in_language",
                    "source": "donor"})  # fmt: skip


# ---------------------------------------------------------------------------------- end to end
def write_langsamp_tables(model_dir: Path, vectors: dict[str, np.ndarray], variant: str = "both") -> None:
    """Language embeddings `vectors` saved by the real LangSAMP writer (``MLMObjective.save_tables``)."""
    from transformers import AutoModelForMaskedLM

    from langadapt.train.objective import IdMaps, MLMObjective

    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    d = model.config.hidden_size
    objective = MLMObjective(model, variant, IdMaps.from_inventory(list(vectors)))
    with torch.no_grad():
        for i, v in enumerate(vectors.values()):
            objective.language_embeddings[i] = 0.0
            objective.language_embeddings[i, : len(v)] = torch.as_tensor(v) * (d**0.5)
    objective.save_tables(model_dir)


def spy(task, monkeypatch) -> tuple[Counter, dict[str, str]]:
    """Count `_fit` calls per source; map each scored language to the source of the model scoring it."""
    fits: Counter = Counter()
    model_source: dict[int, str] = {}
    scored: dict[str, str] = {}
    real_fit, real_score = task._fit, task._score

    def fit(model_dir, train, dev, *args):
        source = args[-1] if task.kind == "token_classification" else train.attrs["source"]
        fits[source] += 1
        out = real_fit(model_dir, train, dev, *args)
        model_source[id(out[0])] = source
        return out

    def score(model, tokenizer, test, *args):
        lang = args[0] if task.kind == "token_classification" else args[-1]
        scored[lang] = model_source[id(model)]
        return real_score(model, tokenizer, test, *args)

    monkeypatch.setattr(task, "_fit", fit)
    monkeypatch.setattr(task, "_score", score)
    if task.kind != "token_classification":  # tag the train frames with their language
        real_source_data = task.source_data

        def source_data(lang):
            train, dev, names = real_source_data(lang)
            train.attrs["source"] = lang
            return train, dev, names

        monkeypatch.setattr(task, "source_data", source_data)
    return fits, scored


def ud_fixture(root: Path) -> dict:
    rng = np.random.default_rng(0)

    def sents(n):
        return [[f"w{i}" for i in rng.integers(0, 60, rng.integers(3, 9))] for _ in range(n)]

    banks = {"eng_Latn": "UD_English-Fake", "rus_Cyrl": "UD_Russian-Fake", "deu_Latn": "UD_German-Fake",
             "fra_Latn": "UD_French-Fake", "tur_Latn": "UD_Turkish-Fake"}  # fmt: skip
    for lang, bank in banks.items():
        code = lang[:2]
        # eng and rus are usable donors; tur (a donor) has only a test split: dropped before choosing
        splits = ("train", "dev", "test") if lang in ("eng_Latn", "rus_Cyrl") else ("test",)
        for split in splits:
            write_conllu(root / bank / f"{code}_fake-ud-{split}.conllu", sents(12 if split == "test" else 24))
    return {"kind": "ud", "path": str(root), "treebanks": banks}


def test_token_classification_fits_one_model_per_used_donor(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    spec = ud_fixture(tmp_path / "ud")
    model_dir = make_bert_dir(tmp_path / "m", n_layers=1)
    # deu is made closest to rus (not eng); fra has no language embedding: fallback eng
    write_langsamp_tables(model_dir, {"eng_Latn": vec(1, 0), "rus_Cyrl": vec(0, 1), "tur_Latn": vec(0.1, 1),
                                      "deu_Latn": vec(0.2, 1)})  # fmt: skip
    task = build_task({"kind": "token_classification", "dataset": spec, **TINY, "source": "donor",
                       "donors": ["eng_Latn", "rus_Cyrl", "tur_Latn"]})  # fmt: skip
    fits, scored = spy(task, monkeypatch)
    langs = ["eng_Latn", "rus_Cyrl", "deu_Latn", "fra_Latn"]
    rows = task.run(model_dir, TaskData({x: tmp_path / f"{x}.parquet" for x in langs}, "eng_Latn"), seed=0)
    assert fits == Counter({"eng_Latn": 1, "rus_Cyrl": 1})  # exactly one model per used donor
    assert scored == {  # a donor target is scored from its own run (LangSAMP §5.3)
        "deu_Latn": "rus_Cyrl",
        "eng_Latn": "eng_Latn",
        "rus_Cyrl": "rus_Cyrl",
        "fra_Latn": "eng_Latn",
    }
    sims = {r["language"]: r["value"] for r in rows if r["metric"] == SIMILARITY_METRIC}
    assert set(sims) == {"eng_Latn", "rus_Cyrl", "deu_Latn"}  # not fra (fallback, no embedding)
    assert sims["deu_Latn"] == pytest.approx(1 / np.hypot(0.2, 1), abs=1e-5)
    assert {(r["language"], r["metric"]) for r in rows if r["metric"] != SIMILARITY_METRIC} == {
        (lang, "accuracy") for lang in langs
    }
    messages = [r.getMessage() for r in caplog.records]
    assert any("['tur_Latn'] dropped: the dataset has no train + dev data" in m for m in messages)
    assert any("deu_Latn -> rus_Cyrl (similarity" in m for m in messages)
    # the same run with a fixed source: one model, every language scored with it
    task = build_task({"kind": "token_classification", "dataset": spec, **TINY})
    fits, scored = spy(task, monkeypatch)
    rows = task.run(model_dir, TaskData({x: tmp_path / f"{x}.parquet" for x in langs}, "eng_Latn"), seed=0)
    assert fits == Counter({"eng_Latn": 1}) and set(scored.values()) == {"eng_Latn"}
    assert SIMILARITY_METRIC not in {r["metric"] for r in rows}


def test_classification_scores_each_target_with_its_donors_model(tmp_path, monkeypatch):
    spec = sib200_tree(tmp_path / "sib", ["eng_Latn", "deu_Latn", "fra_Latn"])
    model_dir = make_xlmr_dir(tmp_path / "m", dropout=0.0)
    write_langsamp_tables(model_dir, {"eng_Latn": vec(1, 0), "fra_Latn": vec(0, 1), "deu_Latn": vec(0.3, 1)})
    task = build_task({"kind": "classification", "dataset": spec, **FAST, "source": "donor",
                       "donors": ["eng_Latn", "fra_Latn", "spa_Latn"]})  # fmt: skip
    fits, scored = spy(task, monkeypatch)
    data = TaskData({x: tmp_path / f"{x}.parquet" for x in ["eng_Latn", "deu_Latn", "fra_Latn"]}, "eng_Latn")
    rows = task.run(model_dir, data, seed=3)
    assert fits == Counter({"eng_Latn": 1, "fra_Latn": 1})  # spa_Latn: no data, dropped
    assert scored == {"deu_Latn": "fra_Latn", "eng_Latn": "eng_Latn", "fra_Latn": "fra_Latn"}
    assert {r["metric"] for r in rows} == {"macro_f1", "accuracy", SIMILARITY_METRIC}
    assert all(0.0 <= r["value"] <= 1.0 for r in rows if r["metric"] != SIMILARITY_METRIC)
    # seeded as the English run: fra's rows equal those of a fixed-source run from eng (same seed)
    fixed = build_task({"kind": "classification", "dataset": spec, **FAST}).run(model_dir, data, seed=3)
    pick = {(r["language"], r["metric"]): r["value"] for r in fixed}
    for r in rows:
        if r["language"] == "fra_Latn" and r["metric"] != SIMILARITY_METRIC:
            assert r["value"] == pytest.approx(pick["fra_Latn", r["metric"]], abs=1e-9)


@pytest.mark.parametrize("variant", [None, "script"])
def test_donor_on_a_model_without_language_embeddings_fails_before_fine_tuning(
    tmp_path, monkeypatch, variant
):
    spec = ud_fixture(tmp_path / "ud")
    model_dir = make_bert_dir(tmp_path / "m", n_layers=1)
    if variant is not None:  # tables, but only the script table
        from transformers import AutoModelForMaskedLM

        from langadapt.train.objective import IdMaps, MLMObjective

        model = AutoModelForMaskedLM.from_pretrained(model_dir)
        MLMObjective(model, variant, IdMaps.from_inventory(["eng_Latn"])).save_tables(model_dir)
    task = build_task({"kind": "token_classification", "dataset": spec, **TINY, "source": "donor"})
    fits, _ = spy(task, monkeypatch)
    with pytest.raises(ConfigError, match=rf"source 'donor' needs .*model directory {model_dir}"):
        task.run(model_dir, TaskData({"eng_Latn": tmp_path / "e.parquet"}, "eng_Latn"), seed=0)
    assert not fits
    sib = sib200_tree(tmp_path / "sib", ["eng_Latn"])
    task = build_task({"kind": "classification", "dataset": sib, **FAST, "source": "donor"})
    with pytest.raises(ConfigError, match=str(model_dir)):
        task.run(model_dir, TaskData({"eng_Latn": tmp_path / "e.parquet"}, "eng_Latn"), seed=0)


# ---------------------------------------------------------------------------------- config time
def small_config(**tasks) -> dict:
    return {
        "pretraining": {
            "plain": {"objective": "mlm"},
            "samp": {"objective": "mlm", "langsamp": "both"},
            "samp_lang": {"objective": "mlm", "langsamp": "language"},
            "samp_script": {"objective": "mlm", "langsamp": "script"},
        },
        "recipes": {
            "base": {"base": "xlmr"},
            "glot": {"base": "xlmr", "pretrain": "plain"},
            "langsamp": {"base": "xlmr", "pretrain": "samp"},
            "langsamp_l": {"base": "xlmr", "pretrain": "samp_lang"},
            "langsamp_child": {"from": "langsamp"},  # no own stage: the parent's model
            "langsamp_realigned": {"from": "langsamp", "realign": "r"},  # realign writes no tables
            "script_only": {"base": "xlmr", "pretrain": "samp_script"},
        },
        "evaluation": {"recipes": None, "tasks": tasks},
    }


def test_language_embedding_variants_mirror_the_objective():
    from langadapt.train.objective import LANGSAMP_VARIANTS

    assert {v for v, (lang, _) in LANGSAMP_VARIANTS.items() if lang} == LANGUAGE_EMBEDDING_VARIANTS


def test_check_donor_task():
    ok = ["langsamp", "langsamp_l", "langsamp_child"]
    spec = {"kind": "classification", "source": "donor", "recipes": ok}
    config = small_config(topic=spec)
    check_donor_task(config, "topic", spec, "cfg: evaluation.tasks.topic")  # fine
    check_donor_task(config, "topic", {"kind": "classification"}, "w")  # not a donor task: nothing to check
    check_donor_task(config, "topic", {"kind": "classification", "source": "eng_Latn"}, "w")
    for bad in ("base", "glot", "langsamp_realigned", "script_only"):
        spec = {"kind": "classification", "source": "donor", "recipes": [*ok, bad]}
        with pytest.raises(ConfigError, match=rf"^cfg: evaluation.tasks.topic: .*\['{bad}'\]"):
            check_donor_task(config, "topic", spec, "cfg: evaluation.tasks.topic")
    # without `recipes`, every evaluated recipe is checked
    with pytest.raises(ConfigError, match=r"\['base', 'glot', 'langsamp_realigned', 'script_only'\]"):
        check_donor_task(config, "topic", {"kind": "nli", "source": "donor"}, "w")
    config["evaluation"]["recipes"] = ok
    check_donor_task(config, "topic", {"kind": "nli", "source": "donor"}, "w")
