"""token_classification (NER / POS): metrics, word alignment and pooling, O weighting, end-to-end runs."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_helpers import make_model_dir
from init_helpers import unigram

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation import build_task
from langadapt.evaluation.datasets import build_dataset
from langadapt.evaluation.tasks import TaskData
from langadapt.evaluation.token_classification import entity_f1, is_bio, tag_accuracy
from langadapt.evaluation.words import (
    encode_words,
    first_subword_labels,
    pool_words,
    weighted_loss,
    word_logits,
    word_weights,
)

TINY = {"lr": 1e-3, "batch_size": 8, "grad_accum": 1, "max_steps": 4, "eval_every": 2, "device": "cpu",
        "max_train_sentences": 32, "max_dev_sentences": 12, "max_test_sentences": 16, "max_length": 64}  # fmt: skip


def task_data(langs):
    return TaskData({lang: Path(f"/nonexistent/{lang}.parquet") for lang in langs}, "eng_Latn")


# ------------------------------------------------------------------------------------------ metrics
def test_is_bio():
    assert is_bio(["O", "B-PER", "I-PER"])
    assert not is_bio(["NOUN", "VERB"])
    assert not is_bio(["O"])


def test_entity_f1_tricky_bio():
    # s1: I- without B- (PER), entity at sentence end (LOC); s2: type change inside an entity at the end
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"]]
    pred = [["I-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-LOC"]]
    # default (conlleval) chunking: pred = PER(0-1), LOC(3), ORG(1), LOC(2); gold = PER, LOC, ORG(1-2)
    # tp 2 -> P 2/4, R 2/3, F1 4/7
    assert entity_f1(gold, pred) == pytest.approx(4 / 7)
    # strict IOB2: the I-PER run starts no entity, I-LOC after B-ORG is invalid -> pred = LOC(3), ORG(1)
    # tp 1 -> P 1/2, R 1/3, F1 2/5
    assert entity_f1(gold, pred, "strict") == pytest.approx(2 / 5)
    assert tag_accuracy(gold, pred) == pytest.approx(5 / 7)
    assert entity_f1(gold, gold) == 1.0 and entity_f1(gold, gold, "strict") == 1.0
    # nothing predicted: F1 0 (no division warning/NaN)
    assert entity_f1(gold, [["O"] * 4, ["O"] * 3]) == 0.0


def test_entity_f1_raw_pos_tags_quirk():
    # XTREME-style seqeval F1 on raw tags merges runs of identical tags into one chunk
    gold, pred = [["NOUN", "NOUN", "VERB"]], [["NOUN", "VERB", "VERB"]]
    assert entity_f1(gold, pred) == 0.0
    assert tag_accuracy(gold, pred) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        tag_accuracy(gold, [["NOUN"]])


# ------------------------------------------------------------------------------ alignment & pooling
@pytest.fixture(scope="module")
def piece_model(tmp_path_factory):
    from init_helpers import save_tiny_xlmr

    d = tmp_path_factory.mktemp("pieces")
    unigram(["▁ab", "c", "▁d", "e", "f", "▁g"]).save_pretrained(d)
    save_tiny_xlmr(d)
    return d


def test_alignment_first_and_mean(piece_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(piece_model)
    enc = encode_words(tok, [["abc", "def"], ["def"]], max_length=16)
    assert tok.convert_ids_to_tokens(enc.inputs["input_ids"][0].tolist()) == ["▁ab", "c", "▁d", "e", "f"]
    assert enc.tok_word.tolist() == [[0, 0, 1, 1, 1], [2, 2, 2, -1, -1]]
    assert enc.first.tolist() == [[True, False, True, False, False], [True, False, False, False, False]]
    assert enc.offsets == [0, 2, 3] and enc.present.tolist() == [True, True, True]
    # the "first" scheme's token labels: label on the first subword, -100 on the others
    word_ids = [None, 0, 0, 1, 1, 1, None]
    assert first_subword_labels(word_ids, [5, 7]) == [-100, 5, -100, 7, -100, -100, -100]

    hidden = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)
    first = pool_words(hidden, enc, "first")
    assert first.tolist() == [hidden[0, 0].tolist(), hidden[0, 2].tolist(), hidden[1, 0].tolist()]
    mean = pool_words(hidden, enc, "mean")
    expected = [hidden[0, :2].mean(0), hidden[0, 2:].mean(0), hidden[1, :3].mean(0)]
    assert torch.allclose(mean, torch.stack(expected))


def test_truncated_words_are_absent(piece_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(piece_model)
    enc = encode_words(tok, [["abc", "def", "g"]], max_length=3)  # no specials: 3 subwords kept
    assert enc.present.tolist() == [True, True, False]


def test_word_logits_match_hf_token_classification(piece_model):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(piece_model)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(piece_model, num_labels=3).eval()
    enc = encode_words(tok, [["abc", "def"], ["def", "g"]], max_length=16)
    with torch.no_grad():
        ref = model(**enc.inputs).logits  # [B, T, 3]
        first = word_logits(model, enc, "first")
        assert torch.allclose(first, ref[enc.first], atol=1e-6)
        hidden = model.roberta(**enc.inputs)[0]
        mean = word_logits(model, enc, "mean")
        manual = torch.stack([model.classifier(hidden[b, enc.tok_word[b] == w].mean(0))
                              for b in range(2) for w in range(enc.offsets[b], enc.offsets[b + 1])])  # fmt: skip
        assert torch.allclose(mean, manual, atol=1e-6)
        assert not torch.allclose(mean, first)


# ------------------------------------------------------------------------------------ O weighting
def test_o_weight_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.5, 0.0, 2.0]])
    labels = torch.tensor([0, 1, 0, 2])  # O = 0; entity words 1 and 3
    ce = [-math.log(math.exp(x[y]) / sum(math.exp(v) for v in x)) for x, y in
          zip(logits.tolist(), labels.tolist(), strict=True)]  # fmt: skip

    w = word_weights(labels, 0, None)
    assert w.tolist() == [1, 1, 1, 1]
    plain = weighted_loss(logits, labels, w, float(w.sum()))
    assert plain.item() == pytest.approx(sum(ce) / 4, rel=1e-6)

    w = word_weights(labels, 0, 0.25)
    assert w.tolist() == [0.25, 1, 0.25, 1]
    fixed = weighted_loss(logits, labels, w, float(w.sum()))
    assert fixed.item() == pytest.approx((0.25 * ce[0] + ce[1] + 0.25 * ce[2] + ce[3]) / 2.5, rel=1e-6)
    assert fixed.item() != pytest.approx(plain.item())

    labels3 = torch.tensor([0, 0, 0, 2])  # 3 O, 1 entity: balanced O weight 1/3, total weight 2
    w = word_weights(labels3, 0, "balanced")
    assert w.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1])
    assert word_weights(torch.tensor([0, 0]), 0, "balanced").tolist() == [1, 1]  # no entity: off


# ------------------------------------------------------------------------------------- end to end
def char_model(directory, sentences):
    """Character-piece Unigram tokenizer over `sentences` + a tiny random XLM-R (positions for 128)."""
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

    chars = sorted({c for words in sentences for w in words for c in w} - {"▁"})
    unigram(["▁"] + chars).save_pretrained(directory)
    tok = AutoTokenizer.from_pretrained(directory)
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=160, pad_token_id=1, hidden_size=16,
                           num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)  # fmt: skip
    XLMRobertaForMaskedLM(cfg).save_pretrained(directory)
    return directory


@pytest.mark.parametrize(
    ("spec", "lang", "extra", "metrics"),
    [
        (
            {"kind": "hironsan"},
            "jpn_Jpan",
            {"word_pooling": "mean", "o_weight": "balanced"},
            {"f1", "accuracy"},
        ),
        ({"kind": "turkish_treebanks"}, "tur_Latn", {"word_pooling": "first"}, {"accuracy"}),
    ],
)
def test_in_language_embedded(tmp_path, spec, lang, extra, metrics):
    ds = build_dataset(spec)
    model_dir = char_model(tmp_path / "m", ds.load(lang, "train").words[:200])
    task = build_task({"kind": "token_classification", "dataset": spec, "protocol": "in_language", **TINY,
                       **extra})  # fmt: skip
    rows = task.run(model_dir, task_data(["eng_Latn", lang]), seed=1)
    assert {r["language"] for r in rows} == {lang}
    assert {r["metric"] for r in rows} == metrics
    for r in rows:
        assert np.isfinite(r["value"]) and 0.0 <= r["value"] <= 1.0
    print(lang, rows)


def write_conllu(path, sentences):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for words in sentences:
        lines.append(f"# text = {' '.join(words)}")
        for i, w in enumerate(words, 1):
            lines.append("\t".join([str(i), w, "_", POS_OF[int(w[1:]) % 3], "_", "_", "0", "dep", "_", "_"]))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


POS_OF = ["NOUN", "VERB", "ADJ"]


def test_zero_shot_ud(tmp_path):
    rng = np.random.default_rng(0)

    def sents(n):
        return [[f"w{i}" for i in rng.integers(0, 60, rng.integers(3, 9))] for _ in range(n)]

    root = tmp_path / "ud"
    for split, n in (("train", 40), ("dev", 10), ("test", 10)):
        write_conllu(root / "UD_English-Fake" / f"en_fake-ud-{split}.conllu", sents(n))
    write_conllu(root / "UD_German-Fake" / "de_fake-ud-test.conllu", sents(12))
    (root / "UD_Chichewa-Empty").mkdir()  # covered by the spec but without a test file: skipped
    spec = {"kind": "ud", "path": str(root), "treebanks": {"eng_Latn": "UD_English-Fake",
            "deu_Latn": "UD_German-Fake", "nya_Latn": "UD_Chichewa-Empty"}}  # fmt: skip
    model_dir = make_model_dir(tmp_path / "m", n_layers=1)
    task = build_task({"kind": "token_classification", "dataset": spec, **TINY, "max_steps": 6, "lr": 5e-3})
    rows = task.run(model_dir, task_data(["eng_Latn", "deu_Latn", "nya_Latn", "fra_Latn"]), seed=0)
    assert {r["language"] for r in rows} == {"eng_Latn", "deu_Latn"}
    assert {r["metric"] for r in rows} == {"accuracy"}
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)
    # metric f1 on a POS tag set: XTREME-style seqeval F1 on raw tags is reported as well
    task = build_task({"kind": "token_classification", "dataset": spec, **TINY, "max_steps": 2,
                       "metric": "f1", "word_pooling": "mean"})  # fmt: skip
    rows = task.run(model_dir, task_data(["eng_Latn", "deu_Latn"]), seed=0)
    assert {(r["language"], r["metric"]) for r in rows} == {
        (lang, m) for lang in ("eng_Latn", "deu_Latn") for m in ("accuracy", "f1")
    }


def test_no_language_covered_fails_before_training(tmp_path):
    task = build_task({"kind": "token_classification", "dataset": {"kind": "hironsan"}})
    with pytest.raises(DataError, match="covers none"):
        task.run(tmp_path / "no_model", task_data(["eng_Latn", "deu_Latn"]), seed=0)


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"dataset": {"kind": "hironsan"}, "bogus": 1}, "bogus"),
        ({"dataset": {"kind": "hironsan"}, "protocol": "few_shot"}, "protocol"),
        ({"dataset": {"kind": "hironsan"}, "word_pooling": "last"}, "word_pooling"),
        ({"dataset": {"kind": "hironsan"}, "o_weight": "half"}, "o_weight"),
        ({"dataset": {"kind": "hironsan"}, "max_steps": 0}, "max_steps"),
        ({}, "dataset"),
        ({"dataset": {"kind": "hironsan", "colour": 1}}, "colour"),
    ],
)
def test_config_errors(cfg, key):
    with pytest.raises(ConfigError, match=key):
        build_task({"kind": "token_classification", **cfg})


def test_in_language_job_evaluates_exactly_its_languages_zero_shot_adds_the_pivot(tmp_path):
    """evaluation.recipe_languages narrows a job to a recipe's own languages: an in-language job then
    fine-tunes on those only (no pivot), a zero-shot job still reports the pivot (its source)."""
    from langadapt.evaluation.tasks import evaluate

    rng = np.random.default_rng(1)

    def sents(n):
        return [[f"w{i}" for i in rng.integers(0, 60, rng.integers(3, 9))] for _ in range(n)]

    root = tmp_path / "ud"
    for tb, code in (("UD_English-Fake", "en_fake"), ("UD_German-Fake", "de_fake")):
        for split, n in (("train", 24), ("dev", 8), ("test", 8)):
            write_conllu(root / tb / f"{code}-ud-{split}.conllu", sents(n))
    spec = {"kind": "ud", "path": str(root), "treebanks": {"eng_Latn": "UD_English-Fake",
                                                            "deu_Latn": "UD_German-Fake"}}
    model_dir = make_model_dir(tmp_path / "m", n_layers=1)
    langs_of = {}
    for protocol in ("in_language", "zero_shot"):
        cfg = {"kind": "token_classification", "dataset": spec, "protocol": protocol, **TINY, "max_steps": 2}
        assert build_task(cfg).uses_pivot is (protocol == "zero_shot")
        df = evaluate(model_dir, "pos", cfg, corpus_paths=None, parallel_path=None, pivot="eng_Latn", seed=1,
                      recipe="deu_model", config_hash="h", code_version="c",
                      out_csv=tmp_path / f"{protocol}.csv", languages=["deu_Latn"])
        langs_of[protocol] = set(df["language"])
    assert langs_of == {"in_language": {"deu_Latn"}, "zero_shot": {"eng_Latn", "deu_Latn"}}
