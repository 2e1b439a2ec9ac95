"""Evaluation inputs: what each task kind reads from the workflow (Task.inputs / task_inputs), TaskData's own
`languages`, the `pbc` Bible dataset of SR-B, and the evaluate jobs' declared inputs in the DAG."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from eval_helpers import WORDS, make_model_dir
from test_workflow import snakemake

from langadapt import config as lc
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.evaluation.datasets import build_dataset
from langadapt.evaluation.tasks import TaskData, build_task, evaluate, task_inputs, task_local_inputs

PBC_HEADER = "# language_name:\tGerman\n# closed:\tverses\n# year_short:\t1912\n"


def write_pbc(path: Path, verses: dict[int, str], header: str = PBC_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "".join(f"{vid}\t{text}\n" for vid, text in verses.items()), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- TaskData
def test_task_data_languages_field_and_legacy_constructor(tmp_path: Path) -> None:
    data = TaskData(pivot="eng_Latn", languages=["fra_Latn", "deu_Latn"])
    assert data.languages == ["deu_Latn", "eng_Latn", "fra_Latn"]  # sorted, pivot included
    assert data.targets == ["deu_Latn", "fra_Latn"] and data.corpus_paths is None
    with pytest.raises(DataError, match="no corpus of deu_Latn among the task's inputs"):
        data.corpus("deu_Latn")
    legacy = TaskData({"eng_Latn": tmp_path / "e.parquet", "deu_Latn": tmp_path / "d.parquet"}, "eng_Latn")
    assert legacy.languages == ["deu_Latn", "eng_Latn"] and legacy.targets == ["deu_Latn"]
    narrowed = TaskData({"eng_Latn": "e", "deu_Latn": "d", "fra_Latn": "f"}, "eng_Latn", languages=["deu_Latn"])
    assert narrowed.languages == ["deu_Latn", "eng_Latn"]
    with pytest.raises(ValueError, match=r"languages \['fra_Latn'\] have no corpus"):
        TaskData({"eng_Latn": "e"}, "eng_Latn", languages=["fra_Latn"])
    with pytest.raises(ValueError, match="needs languages or corpus_paths"):
        TaskData()


# ------------------------------------------------------------------------------------ declared inputs
@pytest.mark.parametrize(("cfg", "expected"), [
    ({"kind": "retrieval_bible"}, {"corpora"}),
    ({"kind": "bible_genre"}, {"corpora"}),
    ({"kind": "retrieval_bible", "dataset": {"kind": "pbc", "path": "x/{iso}.txt"}}, set()),
    ({"kind": "classification", "dataset": {"kind": "sib200"}}, set()),
    ({"kind": "nli", "dataset": {"kind": "xnli"}}, set()),
    ({"kind": "retrieval_tatoeba", "dataset": {"kind": "tatoeba", "path": "x"}}, set()),
    ({"kind": "token_classification", "dataset": {"kind": "hironsan"}}, set()),
], ids=["srb", "genre", "srb-pbc", "sib200", "xnli", "tatoeba", "ner"])
def test_task_inputs_per_kind(cfg: dict, expected: set) -> None:
    assert task_inputs(cfg) == expected
    build_task(cfg)  # a valid config


def test_task_inputs_errors() -> None:
    with pytest.raises(ConfigError, match="'kind'"):
        task_inputs({"layer": 8})
    with pytest.raises(ConfigError, match="unknown evaluation task 'nope'"):
        task_inputs({"kind": "nope"})
    with pytest.raises(ConfigError, match=r"retrieval_bible\.dataset must be a dataset spec \{kind: pbc"):
        build_task({"kind": "retrieval_bible", "dataset": {"kind": "sib200"}})


def test_task_languages_and_config_check() -> None:
    raw = yaml.safe_load((Path(__file__).parents[1] / "configs" / "smoke.yaml").read_text())
    raw["evaluation"]["tasks"]["srb_bible"]["languages"] = ["deu_Latn"]
    raw["evaluation"]["tasks"]["jpn_ner"]["languages"] = ["jpn_Jpan", "fra_Latn"]  # no corpus needed
    cfg = lc.prepare_config(raw)
    assert lc.task_languages(cfg, "srb_bible") == ["deu_Latn", "eng_Latn"]
    assert lc.task_languages(cfg, "jpn_ner") == ["jpn_Jpan", "fra_Latn", "eng_Latn"]
    assert lc.task_languages(cfg, "taxi1500_standin") == cfg["languages"]
    raw["evaluation"]["tasks"]["srb_bible"]["languages"] = ["fra_Latn"]
    with pytest.raises(ConfigError, match=r"evaluation\.tasks\.srb_bible\.languages: \['fra_Latn'\] are not in"):
        lc.prepare_config(raw, source="smoke.yaml")


# ------------------------------------------------------------------------------------------------ pbc
def test_pbc_reads_verse_files(tmp_path: Path) -> None:
    f = write_pbc(tmp_path / "pbc" / "deu-x-bible.txt", {40001001: "Das ist das Buch", 40001002: "  ",
                                                         40001003: "Abraham zeugte Isaak"})  # fmt: skip
    ds = build_dataset({"kind": "pbc", "path": str(tmp_path / "pbc" / "{iso}-x-bible.txt")})
    assert ds.covers(["deu_Latn", "fra_Latn"]) == ["deu_Latn"]
    ex = ds.load("deu_Latn", "test")
    assert ex.ids == [40001001, 40001003]  # a verse with empty text is one the translation lacks
    assert ex.texts == ["Das ist das Buch", "Abraham zeugte Isaak"]
    assert ds.local_inputs(["deu_Latn", "fra_Latn"]) == [str(f)]
    with pytest.raises(DataError, match="only a test split"):
        ds.load("deu_Latn", "train")
    write_pbc(tmp_path / "pbc" / "deu-x-bible.txt", {40001001: "a"}, header=PBC_HEADER + "4000100x\tb\n")
    with pytest.raises(DataError, match=r"deu-x-bible\.txt: line 4: expected verse_id<TAB>text"):
        ds.load("deu_Latn", "test")
    (tmp_path / "pbc" / "deu-x-bible.txt").write_text("40001001\ta\n40001001\tb\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: verse 40001001 already on line 1"):
        ds.load("deu_Latn", "test")
    globbed = build_dataset({"kind": "pbc", "path": str(tmp_path / "g" / "{iso}-x-bible-*.txt")})
    write_pbc(tmp_path / "g" / "eng-x-bible-kingjames.txt", {1001001: "In the beginning"})
    assert globbed.load("eng_Latn", "test").ids == [1001001]
    # several editions of one language: the one with the most verses (Taxi1500's rule), ties by name
    write_pbc(tmp_path / "g" / "eng-x-bible-web.txt", {1001001: "In the beginning", 1001002: "And the earth"})
    assert globbed.file(parse_lang("eng_Latn")).name == "eng-x-bible-web.txt"
    assert globbed.load("eng_Latn", "test").ids == [1001001, 1001002]
    write_pbc(tmp_path / "g" / "eng-x-bible-aaa.txt", {1001001: "In", 1001002: "And", 1001003: ""})
    assert globbed.file(parse_lang("eng_Latn")).name == "eng-x-bible-aaa.txt"  # empty verses do not count: a tie
    with pytest.raises(ConfigError, match="needs key"):
        build_dataset({"kind": "pbc"})


def test_ud_dev_carved_from_train(tmp_path: Path) -> None:
    tb = tmp_path / "ud" / "UD_Erzya-JR"
    tb.mkdir(parents=True)
    sent = "1\tvaj\tvaj\tINTJ\t_\t_\t0\troot\t_\t_\n\n"
    (tb / "myv_jr-ud-train.conllu").write_text(sent * 10)
    (tb / "myv_jr-ud-test.conllu").write_text(sent * 2)
    spec = {"kind": "ud", "path": str(tmp_path / "ud"), "treebanks": {"myv_Cyrl": "UD_Erzya-JR"}}
    ds = build_dataset({**spec, "dev_from_train": {"myv_Cyrl": 3}})
    assert (len(ds.load("myv_Cyrl", "train")), len(ds.load("myv_Cyrl", "dev"))) == (7, 3)
    assert len(ds.load("myv_Cyrl", "test")) == 2
    assert ds.local_inputs(["myv_Cyrl"]) == [str(tmp_path / "ud")]
    with pytest.raises(DataError, match="file not found"):
        build_dataset(spec).load("myv_Cyrl", "dev")
    with pytest.raises(ConfigError, match="dev_from_train"):
        build_dataset({**spec, "dev_from_train": {"myv_Cyrl": 0}})


# ---------------------------------------------------------------------------------- evaluate() + pbc
def test_retrieval_bible_on_pbc_files_reads_no_corpus(tmp_path: Path) -> None:
    model_dir = make_model_dir(tmp_path / "model", n_layers=1)
    words = list(WORDS)
    verses = {40001000 + i: " ".join(words[(3 * i + j) % len(words)] for j in range(i % 4 + 2)) for i in range(1, 13)}
    for iso in ("eng", "deu"):
        write_pbc(tmp_path / "pbc" / f"{iso}-x-bible.txt", verses)
    cfg = {"kind": "retrieval_bible", "layer": 1, "k": [1],
           "dataset": {"kind": "pbc", "path": str(tmp_path / "pbc" / "{iso}-x-bible.txt")}}  # fmt: skip
    assert task_local_inputs(cfg, ["eng_Latn", "deu_Latn", "fra_Latn"]) == sorted(
        str(tmp_path / "pbc" / f"{iso}-x-bible.txt") for iso in ("deu", "eng")
    )
    out = tmp_path / "o.csv"
    df = evaluate(model_dir, "sr_b", cfg, None, None, "eng_Latn", 1, "r", "h", "v", out,
                  languages=["eng_Latn", "deu_Latn", "fra_Latn"])  # fmt: skip
    assert df["language"].tolist() == ["deu_Latn"]  # fra_Latn: no file, skipped
    assert df["value"].iloc[0] == 1.0  # identical verses retrieve perfectly
    assert pd.read_csv(out)["task"].tolist() == ["sr_b"]


def test_evaluate_checks_languages_before_the_model(tmp_path: Path) -> None:
    out, no_model = tmp_path / "o.csv", tmp_path / "missing"
    corpus = {"eng_Latn": tmp_path / "eng.parquet"}
    with pytest.raises(ConfigError, match=r"languages \['deu_Latn'\] have no corpus among the inputs"):
        evaluate(no_model, "t", {"kind": "retrieval_bible"}, corpus, None, "eng_Latn", 1, "r", "h", "v", out,
                 languages=["eng_Latn", "deu_Latn"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"languages \['fra_Latn'\] are not among the task's languages"):
        evaluate(no_model, "t", {"kind": "nli", "dataset": {"kind": "xnli"}, "languages": ["fra_Latn"]}, None,
                 None, "eng_Latn", 1, "r", "h", "v", out, languages=["eng_Latn"])  # fmt: skip
    with pytest.raises(ConfigError, match="malformed language code"):
        evaluate(no_model, "t", {"kind": "nli", "dataset": {"kind": "xnli"}}, None, None, "eng_Latn", 1, "r",
                 "h", "v", out, languages=["french"])  # fmt: skip
    # a dataset task needs no corpus: the first missing thing is the model
    with pytest.raises(DataError, match="has no config.json"):
        evaluate(no_model, "t", {"kind": "nli", "dataset": {"kind": "xnli"}}, None, None, "eng_Latn", 1, "r",
                 "h", "v", out, languages=["eng_Latn", "fra_Latn"])  # fmt: skip
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ DAG
def _dag_config(workdir: Path) -> str:
    """smoke.yaml evaluating one recipe whose model (a hub base, no corpus-trimmed vocabulary) reads no corpus."""
    cfg = yaml.safe_load((workdir / "configs" / "smoke.yaml").read_text())
    cfg["base_models"]["hubbase"] = {"kind": "hf", "name_or_path": "FacebookAI/xlm-roberta-base"}
    cfg["recipes"]["plain"] = {"base": "hubbase"}
    cfg["evaluation"]["recipes"] = ["plain"]
    cfg["evaluation"]["tasks"]["jpn_ner"]["recipes"] = ["plain"]
    cfg["evaluation"]["report"].pop("tables")  # its layout names the smoke recipes, now not evaluated
    cfg["evaluation"]["report"].pop("claims")  # so do the claims
    (workdir / "configs" / "dag.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return "configs/dag.yaml"


def _evaluate_jobs(out: str) -> dict[str, str]:
    """{task: input line} of the `rule evaluate` blocks of a dry run's output."""
    jobs, blocks = {}, out.split("rule evaluate:")[1:]
    for block in blocks:
        lines = block.strip().splitlines()
        inputs = next((ln for ln in lines if ln.strip().startswith("input:")), "")
        output = next(ln for ln in lines if ln.strip().startswith("output:"))
        jobs[output.split("/")[3]] = inputs
    return jobs


def test_dataset_task_job_declares_no_corpus_and_a_touched_corpus_reruns_only_corpus_tasks(workdir: Path) -> None:
    configfile = _dag_config(workdir)
    targets = [f"results/eval/plain/{t}/seed1.csv" for t in ("srb_bible", "taxi1500_standin", "jpn_ner")]
    proc = snakemake(workdir, "-n", *targets, "--configfile", configfile)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    jobs = _evaluate_jobs(out)
    assert set(jobs) == {"srb_bible", "taxi1500_standin", "jpn_ner"}
    assert "corpora" not in jobs["jpn_ner"] and "parallel" not in jobs["jpn_ner"]
    assert jobs["jpn_ner"].split(":", 1)[1].strip() == "results/base/hubbase"
    for task in ("srb_bible", "taxi1500_standin"):
        assert all(f"results/data/corpora/{lang}.parquet" in jobs[task] for lang in ("eng_Latn", "nya_Latn"))
        assert "parallel.parquet" not in jobs[task]

    # everything exists and is up to date; then one corpus changes
    (workdir / "results/base/hubbase").mkdir(parents=True)
    (workdir / "results/base/hubbase/config.json").write_text("{}")
    corpora = [workdir / f"results/data/corpora/{lang}.parquet" for lang in yaml.safe_load(
        (workdir / configfile).read_text())["languages"]]  # fmt: skip
    for f in corpora:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")
    past = time.time() - 100
    for f in [*corpora, workdir / "results/base/hubbase"]:
        os.utime(f, (past, past))
    for t in targets:
        (workdir / t).parent.mkdir(parents=True, exist_ok=True)
        (workdir / t).write_text("x")
    args = ("-n", *targets, "--rerun-triggers", "mtime", "--configfile", configfile)
    proc = snakemake(workdir, *args)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    os.utime(corpora[1], None)  # touch deu_Latn's corpus
    proc = snakemake(workdir, *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert set(_evaluate_jobs(out)) == {"srb_bible", "taxi1500_standin"}  # not jpn_ner


def test_recipe_languages_narrow_a_jobs_corpora_and_languages_in_the_dag(workdir: Path) -> None:
    cfg = yaml.safe_load((workdir / _dag_config(workdir)).read_text())
    cfg["evaluation"]["recipe_languages"] = {"pla*": ["nya_Latn"]}
    (workdir / "configs" / "dag.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = "results/eval/plain/srb_bible/seed1.csv"
    proc = snakemake(workdir, "-n", target, "--configfile", "configs/dag.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    inputs = _evaluate_jobs(out)["srb_bible"]
    # the recipe's language and the pivot (the retrieval queries), no other corpus
    assert sorted(re.findall(r"corpora/(\w+)\.parquet", inputs)) == ["eng_Latn", "nya_Latn"]
    # a task whose languages do not include the recipe's is not run for the recipe at all
    cfg["evaluation"]["tasks"]["jpn_ner"]["languages"] = ["jpn_Jpan"]
    (workdir / "configs" / "dag.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(workdir, "-n", "--configfile", "configs/dag.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "results/eval/plain/jpn_ner" not in out and "results/eval/plain/srb_bible/seed1.csv" in out
