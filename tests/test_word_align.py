"""Word alignments (eflomal, Pharaoh files) and word-level realignment (realignment paper App. A.2)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from init_helpers import unigram
from test_train_helpers import make_model_dir, write_parallel

from langadapt.core.errors import ConfigError, DataError
from langadapt.realign.trainer import WordPairs, realign, realignment_loss, word_alignment_loss, word_means
from langadapt.realign.word_align import (
    ALIGNED_SCHEMA,
    align_job,
    check_aligner,
    parse_pharaoh,
    read_pharaoh,
    split_words,
    symmetrize,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_split_words_keeps_marks_and_splits_punctuation():
    assert split_words("Jesus wept.") == ["Jesus", "wept", "."]
    assert split_words('  "Hello, world!"  ') == ['"', "Hello", ",", "world", "!", '"']
    assert split_words("don't stop—now") == ["don't", "stop—now"]  # inner punctuation stays
    # Devanagari vowel signs (Mc/Mn) are not \w; they must stay inside their word
    assert split_words("यीशु रोया।") == ["यीशु", "रोया", "।"]
    assert split_words("...") == [".", ".", "."]
    assert split_words("") == []


def test_grow_diag_final_and_by_hand():
    # forward  (s->t): 0-0 1-1 2-1 3-3       reverse (t->s): 0-0 1-1 1-2 3-2
    # intersection: 0-0 1-1. grow-diag adds union links next to a link (8-neighbourhood) with an unaligned
    # source OR target word: 2-1 and 1-2 (next to 1-1; source 2 / target 2 unaligned), then 3-2 (next to 2-1,
    # source 3 unaligned), then 3-3 (next to 3-2, target 3 unaligned). Nothing is left for final-and.
    fwd = [(0, 0), (1, 1), (2, 1), (3, 3)]
    rev = [(0, 0), (1, 1), (1, 2), (3, 2)]
    assert symmetrize(fwd, rev, "intersection") == [(0, 0), (1, 1)]
    assert symmetrize(fwd, rev, "union") == sorted(set(fwd) | set(rev))
    assert symmetrize(fwd, rev) == [(0, 0), (1, 1), (1, 2), (2, 1), (3, 2), (3, 3)]
    # links far from the intersection come from final-and, only when both of their words are unaligned:
    # forward 4-4 is added, then reverse 4-5 is not (source 4 is taken) but reverse 6-6 is
    assert symmetrize([(0, 0), (4, 4)], [(0, 0), (4, 5), (6, 6)]) == [(0, 0), (4, 4), (6, 6)]
    # final-and: a union link whose both ends are unaligned and that touches nothing is added at the end
    assert symmetrize([(0, 0), (5, 7)], [(0, 0)]) == [(0, 0), (5, 7)]
    assert symmetrize([(0, 0), (5, 7)], [(0, 0)], "forward") == [(0, 0), (5, 7)]
    with pytest.raises(ConfigError, match="symmetrization"):
        symmetrize(fwd, rev, "grow")


def test_pharaoh_parsing_and_files(tmp_path):
    assert parse_pharaoh("0-0 2-1", 3, 2, "x") == [(0, 0), (2, 1)]
    with pytest.raises(DataError, match="x: malformed Pharaoh link '0:1'"):
        parse_pharaoh("0:1", 3, 3, "x")
    with pytest.raises(DataError, match="outside the sentence"):
        parse_pharaoh("3-0", 3, 3, "x")
    text, align = tmp_path / "deu.txt", tmp_path / "deu.align"
    text.write_text("the house ||| das Haus\nbad line\n")
    align.write_text("0-0 1-1\n0-0\n")
    with pytest.raises(DataError, match=r"deu.txt:2: expected 'source \|\|\| target'"):
        read_pharaoh(text, align)
    text.write_text("the house ||| das Haus\nthe cat ||| die Katze\n")
    src, tgt, links = read_pharaoh(text, align)
    assert src == [["the", "house"], ["the", "cat"]] and tgt[1] == ["die", "Katze"] and links == [[(0, 0), (1, 1)], [(0, 0)]]
    align.write_text("0-0\n")
    with pytest.raises(DataError, match="1 lines but"):
        read_pharaoh(text, align)


def test_pharaoh_aligner_job_reads_one_file_pair_per_language(tmp_path):
    for iso, text, align in [("deu", "the house ||| das Haus\nthe cat sleeps ||| die Katze schläft\n", "0-0 1-1\n0-0 1-1 2-2\n"),
                             ("fra", "the house ||| la maison\n", "0-0 1-1\n")]:
        (tmp_path / f"{iso}.txt").write_text(text)
        (tmp_path / f"{iso}.align").write_text(align)
    spec = {"kind": "pharaoh", "text": str(tmp_path / "{iso}.txt"), "alignment": str(tmp_path / "{iso}.align")}
    stats = align_job(spec, None, ["fra_Latn", "deu_Latn"], tmp_path / "out.parquet")
    assert stats == {"deu_Latn": {"pairs": 2, "links_per_pair": 2.5}, "fra_Latn": {"pairs": 1, "links_per_pair": 2.0}}
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("lang").to_pylist() == ["deu_Latn", "deu_Latn", "fra_Latn"]
    assert table.column("tgt_words").to_pylist()[1] == ["die", "Katze", "schläft"]
    assert table.column("tgt_index").to_pylist()[1] == [0, 1, 2]


def test_aligner_config_checks():
    check_aligner({"kind": "eflomal", "symmetrize": "intersection"}, "aligners.e")
    with pytest.raises(ConfigError, match="aligners.e: unknown eflomal key"):
        check_aligner({"kind": "eflomal", "iterations": 3}, "aligners.e")
    with pytest.raises(ConfigError, match="aligners.p: the pharaoh aligner needs"):
        check_aligner({"kind": "pharaoh", "text": "x/{lang}.txt"}, "aligners.p")
    with pytest.raises(ConfigError, match="n_iterations must be"):
        check_aligner({"kind": "eflomal", "n_iterations": 5}, "aligners.e")
    with pytest.raises(ConfigError, match="max_pairs must be"):
        check_aligner({"kind": "eflomal", "max_pairs": 0}, "aligners.e")
    with pytest.raises(ConfigError, match="unknown aligner kind 'giza'"):
        check_aligner({"kind": "giza"}, "aligners.g")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """eflomal on the fixture pairs: word-by-word translations of 3-8 words (gold links i-i)."""
    root = tmp_path_factory.mktemp("align")
    parallel = write_parallel(root / "parallel.parquet", ["deu_Latn", "fra_Latn"], 200)
    out = root / "aligned.parquet"
    stats = align_job({"kind": "eflomal", "n_iterations": [4, 4, 4], "n_samplers": 2}, parallel, None, out)
    return parallel, out, stats


def test_eflomal_recovers_word_by_word_links(aligned):
    _, out, stats = aligned
    table = pq.read_table(out)
    assert table.schema.equals(ALIGNED_SCHEMA)
    assert set(stats) == {"deu_Latn", "fra_Latn"} and stats["deu_Latn"]["pairs"] == 180  # train rows only
    right = total = gold = 0
    for src, tgt, si, ti in zip(*(table.column(c).to_pylist() for c in ("src_words", "tgt_words", "src_index",
                                                                          "tgt_index")), strict=True):
        assert len(src) == len(tgt)
        gold += len(src)
        total += len(si)
        right += sum(src[i] == tgt[j][2:] for i, j in zip(si, ti, strict=True))  # "decat" is "cat"
    precision, recall = right / total, right / gold
    assert precision > 0.9 and recall > 0.9, (precision, recall)
    # max_pairs keeps the first N train pairs of each language
    parallel, _, _ = aligned
    align_job({"kind": "eflomal", "max_pairs": 7, "n_samplers": 1}, parallel, ["fra_Latn"], out.with_name("m.parquet"))
    small = pq.read_table(out.with_name("m.parquet"))
    assert small.num_rows == 7 and small.column("pair_id").to_pylist() == table.column("pair_id").to_pylist()[180:187]


def test_align_job_errors_leave_no_output(tmp_path):
    parallel = write_parallel(tmp_path / "p.parquet", ["deu_Latn"], 10)
    out = tmp_path / "a.parquet"
    with pytest.raises(DataError, match="no train pairs"):
        align_job({"kind": "eflomal"}, parallel, ["fra_Latn"], out)
    with pytest.raises(DataError, match="does not exist"):
        align_job({"kind": "pharaoh", "text": str(tmp_path / "{iso}.txt"), "alignment": str(tmp_path / "{iso}.al")},
                  None, ["deu_Latn"], out)
    assert not out.exists()


def test_word_loss_equals_hand_computed_value():
    # source words s0=(1,0) s1=(0,1); target words t0=(3,4) t1=(0,2) t2=(-1,0); links s0-t0, s1-t1
    src = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[3.0, 4.0], [0.0, 2.0], [-1.0, 0.0]])
    links = torch.tensor([[0, 0], [1, 1]])
    e = math.exp
    # cosines: s0: s1 0, t0 .6, t1 0, t2 -1 | s1: s0 0, t0 .8, t1 1, t2 0
    #          t0: s0 .6, s1 .8, t1 .8, t2 -.6 | t1: s0 0, s1 1, t0 .8, t2 0   (T = 0.1)
    all_terms = [
        6 - math.log(e(0) + e(6) + e(0) + e(-10)),  # s0 -> t0
        10 - math.log(e(0) + e(8) + e(10) + e(0)),  # s1 -> t1
        6 - math.log(e(6) + e(8) + e(8) + e(-6)),  # t0 -> s0
        10 - math.log(e(0) + e(10) + e(8) + e(0)),  # t1 -> s1
    ]
    assert word_alignment_loss(src, tgt, links, 0.1).item() == pytest.approx(-sum(all_terms) / 4, rel=1e-5)
    cross_terms = [
        6 - math.log(e(6) + e(0) + e(-10)),  # s0 over t0, t1, t2
        10 - math.log(e(8) + e(10) + e(0)),
        6 - math.log(e(6) + e(8)),  # t0 over s0, s1
        10 - math.log(e(0) + e(10)),
    ]
    assert word_alignment_loss(src, tgt, links, 0.1, "cross").item() == pytest.approx(-sum(cross_terms) / 4,
                                                                                      rel=1e-5)
    # one-to-many: s0 linked to t0 and t2; for query s0 -> t0, t2 leaves the denominator (and vice versa)
    multi = torch.tensor([[0, 0], [0, 2]])
    loss = word_alignment_loss(src, tgt, multi, 0.1, "cross")
    terms = [
        6 - math.log(e(6) + e(0)),  # s0 -> t0 over t0, t1 (t2 is another positive of s0)
        -10 - math.log(e(-10) + e(0)),  # s0 -> t2 over t2, t1
        6 - math.log(e(6) + e(8)),  # t0 -> s0 over s0, s1
        -10 - math.log(e(-10) + e(0)),  # t2 -> s0 over s0, s1
    ]
    assert loss.item() == pytest.approx(-sum(terms) / 4, rel=1e-5)
    empty = word_alignment_loss(src.requires_grad_(), tgt, torch.zeros(0, 2, dtype=torch.long))
    assert empty.item() == 0.0 and empty.requires_grad


def test_same_source_pairs_are_not_negatives():
    # pairs 0 and 1 share the pivot sentence: with groups, h1 and h~1 leave the denominators of 0's vectors
    src = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[1.0, 0.1], [0.9, 0.0], [0.0, 1.0]])
    plain = realignment_loss(src, tgt, 0.1)
    grouped = realignment_loss(src, tgt, 0.1, torch.tensor([7, 7, 8]))
    assert grouped < plain
    # with distinct groups it is Eq. 1 unchanged
    assert realignment_loss(src, tgt, 0.1, torch.tensor([1, 2, 3])).item() == pytest.approx(plain.item())
    # by hand (vectors 0-2 = h0..h2, 3-5 = h~0..h~2; vector i is aligned with i+3 mod 6): pairs 0 and 1
    # form one group, so h0's denominator leaves out h1 and h~1, h~0's leaves out h1 and h~1, and so on
    vecs = [np.array(v) / np.linalg.norm(v) for v in torch.cat([src, tgt]).tolist()]
    candidates = {0: (2, 3, 5), 1: (2, 4, 5), 2: (0, 1, 3, 4, 5), 3: (0, 2, 5), 4: (1, 2, 5), 5: (0, 1, 2, 3, 4)}
    total = 0.0
    for i, cands in candidates.items():
        logits = {k: float(vecs[i] @ vecs[k]) / 0.1 for k in cands}
        total -= logits[(i + 3) % 6] - math.log(sum(math.exp(v) for v in logits.values()))
    assert grouped.item() == pytest.approx(total / 6, abs=1e-5)


def test_word_vectors_are_means_of_subword_spans():
    tok = unigram(["▁the", "▁ho", "use", "▁das", "▁Ha", "us"])
    pairs = WordPairs.__new__(WordPairs)
    pairs.tokenizer, pairs.cfg = tok, {"max_length": 16}
    pairs.src, pairs.tgt = [["the", "house"]], [["das", "Haus"]]
    pairs.links = [[(0, 0), (1, 1)]]
    enc, word_index, n_words, n_src, links = pairs.batch(np.array([0]))
    pieces = [tok.convert_ids_to_tokens(ids) for ids in enc["input_ids"].tolist()]
    assert pieces == [["▁the", "▁ho", "use"], ["▁das", "▁Ha", "us"]]
    assert word_index.tolist() == [[0, 1, 1], [2, 3, 3]] and n_words == 4 and n_src == 2
    assert links.tolist() == [[0, 0], [1, 1]]
    hidden = torch.tensor([[[1.0], [2.0], [4.0]], [[8.0], [16.0], [32.0]]])
    assert word_means(hidden, word_index, n_words).squeeze(-1).tolist() == [1.0, 3.0, 8.0, 24.0]
    # truncation: a word cut away by max_length drops out with its links
    pairs.cfg = {"max_length": 2}
    _, word_index, n_words, n_src, links = pairs.batch(np.array([0]))
    assert word_index.tolist() == [[0, 1], [2, 3]] and links.tolist() == [[0, 0], [1, 1]]


def test_word_level_realignment_trains_and_resumes(aligned, tmp_path):
    parallel, out, _ = aligned
    model = make_model_dir(tmp_path / "model")
    cfg = dict(loss="word", steps=30, batch_size=8, max_length=16, lr=3e-3, checkpoint_every=10, log_every=10,
               seed=3, device="cpu", layer=[1, 2])
    res = realign(model, parallel, tmp_path / "out", tmp_path / "run", cfg, alignments_path=out)
    with open(tmp_path / "run" / "loss.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert res["steps"] == 30 and losses[-1] < losses[0] - 0.3, losses
    prov = json.loads((tmp_path / "out" / "langadapt.json").read_text())
    assert prov["training"]["config"]["loss"] == "word" and prov["training"]["train_pairs"]["deu_Latn"] == 180
    with pytest.raises(ConfigError, match="needs word alignments"):
        realign(model, parallel, tmp_path / "o2", tmp_path / "r2", {**cfg, "steps": 1})
    with pytest.raises(DataError, match="swh_Latn"):
        realign(model, parallel, tmp_path / "o2", tmp_path / "r2", {**cfg, "languages": ["swh_Latn"]},
                alignments_path=out)
    with pytest.raises(ConfigError, match="negatives"):
        realign(model, parallel, tmp_path / "o2", tmp_path / "r2", {**cfg, "negatives": "weak"}, alignments_path=out)
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda c: c["realignment"]["words_tiny"].pop("aligner"), "realignment.words_tiny: loss 'word' needs `aligner:`"),
    (lambda c: c["realignment"]["words_tiny"].update(aligner="giza"), "naming an entry of aligners, got 'giza'"),
    (lambda c: c["realignment"]["pairs_tiny"].update(aligner="eflomal"), "`aligner` is only read by loss 'word'"),
    (lambda c: c["realignment"]["words_tiny"].update(negatives="weak"), "realignment.words_tiny: realign config "
                                                                          "'negatives'"),
    (lambda c: c["realignment"]["words_tiny"].update(stepz=3), "realignment.words_tiny: unknown realign config key"),
    (lambda c: c["aligners"]["eflomal"].update(symmetrize="gdfa"), "aligners.eflomal: symmetrize must be"),
], ids=["no-aligner", "undefined-aligner", "aligner-on-sentence-loss", "bad-negatives", "unknown-key",
        "bad-symmetrization"])
def test_config_errors_name_the_entry(mutate, fragment):
    import copy

    import yaml

    from langadapt import config as lc

    from conftest import REPO

    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    mutate(raw)
    with pytest.raises(ConfigError) as exc:
        lc.prepare_config(copy.deepcopy(raw), source="smoke.yaml")
    assert fragment in str(exc.value)


def test_word_realignment_dry_run_aligns_once_per_data_and_aligner(workdir):
    import subprocess
    import sys
    from pathlib import Path

    snakemake = str(Path(sys.executable).parent / "snakemake")
    proc = subprocess.run([snakemake, "-n", "--cores", "1", "results/models/tiny_words/realign", "--configfile",
                           "configs/smoke.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule align_words:" in out and "results/alignments/bible/eflomal.parquet" in out
    assert "rule parallel:" in out  # the aligner reads the Bible verse pairs

