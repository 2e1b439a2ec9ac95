"""REINIT-SCRIPT / REINIT-SCRIPT+POSN and fuzzy IDENT (vocabulary-specialization paper, Sec. 3.2)."""

from __future__ import annotations

import json
import random

import pytest
import torch
from init_helpers import save_tiny_xlmr
from transformers import AutoModelForMaskedLM

from langadapt.core.errors import ConfigError, DataError
from langadapt.models.tokenization import train_sentencepiece
from langadapt.vocab.base import INIT_METHODS, InitContext
from langadapt.vocab.chain import assign_embeddings, initialize_embeddings
from langadapt.vocab.methods.script import is_wordpiece, piece_position, piece_script

D = 4
SPECIALS = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}


@pytest.mark.parametrize(
    ("piece", "script", "position"),
    [
        ("▁Haus", "Latn", "initial"),
        ("haus", "Latn", "medial"),
        ("ция", "Cyrl", "medial"),
        ("▁Երևան", "Armn", "initial"),
        ("▁12", "Zyyy", "initial"),  # only Common characters
        ("▁", "Zyyy", "initial"),  # the bare word-boundary marker
        (",", "Zyyy", "medial"),
        ("é", "Latn", "medial"),  # precomposed letter
        ("e\u0301", "Latn", "medial"),  # Inherited combining mark ignored
        ("\u0301", "Zyyy", "medial"),  # only an Inherited character
        ("\U000f0000", "Zzzz", "medial"),  # private use only: Unknown
        ("▁abcЖЖ", "Latn", "initial"),  # majority wins
        ("ЖЖab", "Cyrl", "medial"),
        ("aЖ", "Latn", "medial"),  # tie: the script seen first
    ],
)
def test_piece_script_and_position(piece, script, position):
    assert piece_script(piece) == script and piece_position(piece) == position


def test_wordpiece_convention():
    vocab = {"[CLS]": 0, "haus": 1, "##haus": 2, "##en": 3}
    assert is_wordpiece(vocab) and not is_wordpiece({"▁haus": 0, "haus": 1})
    assert piece_position("##en", wordpiece=True) == "medial"
    assert piece_position("haus", wordpiece=True) == "initial"
    assert piece_script("##ция", wordpiece=True) == "Cyrl"


def make_ctx(src_pieces: dict[str, list[float]], tgt_pieces: list[str], special_row: float = 1e4) -> InitContext:
    """Source: the four specials (rows `special_row`) then `src_pieces` with the given rows; target: the four
    specials then `tgt_pieces`."""
    src_vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    rows = [[special_row] * D for _ in range(4)]
    for p, row in src_pieces.items():
        src_vocab[p] = len(src_vocab)
        rows.append(row)
    tgt_vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for p in tgt_pieces:
        tgt_vocab[p] = len(tgt_vocab)
    return InitContext(
        torch.tensor(rows, dtype=torch.float32), src_vocab, tgt_vocab,
        source_specials=dict(SPECIALS), target_specials=dict(SPECIALS),
    )  # fmt: skip


def run(ctx: InitContext, name: str, seed: int = 0, **params) -> dict[str, torch.Tensor]:
    ids, rows = INIT_METHODS.get(name)(ctx, set(range(len(ctx.target_vocab))), torch.Generator().manual_seed(seed),
                                       **params)
    inv = {i: p for p, i in ctx.target_vocab.items()}
    return {inv[int(i)]: r for i, r in zip(ids, rows, strict=True)}


LAT, CYR = [1.0, 2.0, 3.0, 4.0], [-5.0, 0.0, 5.0, 10.0]


def test_script_rows_equal_script_mean_when_sources_are_constant():
    src = {"▁ab": LAT, "cd": LAT, "▁ef": LAT, "жз": CYR, "▁ик": CYR}
    ctx = make_ctx(src, ["▁xy", "zw", "▁лм", "но", "▁77"])
    rows = run(ctx, "script")
    for p in ("▁xy", "zw"):
        assert torch.equal(rows[p], torch.tensor(LAT))
    for p in ("▁лм", "но"):
        assert torch.equal(rows[p], torch.tensor(CYR))
    assert set(rows) == {"▁xy", "zw", "▁лм", "но", "▁77"}  # specials never assigned
    rep = ctx.report["script"]
    assert rep["assigned"] == {"Cyrl": 2, "Latn": 2, "Zyyy": 1}
    assert rep["source_pieces"] == {"Cyrl": 2, "Latn": 3}
    # no Common source piece: the digits fall back to all non-special source pieces (specials excluded)
    assert rep["fallbacks"] == {"Zyyy": {"stats": "all", "pieces": 1}} and rep["n_fallback"] == 1
    assert rep["skipped_special"] == 4 and rep["min_count"] == 2
    allrows = torch.tensor([LAT] * 3 + [CYR] * 2)
    assert rows["▁77"].abs().max() < 1e3  # the 1e4 special rows are not in the statistics
    assert torch.isfinite(rows["▁77"]).all() and not torch.equal(rows["▁77"], allrows.mean(0))


def test_script_samples_follow_each_scripts_statistics():
    g = torch.Generator().manual_seed(0)
    src: dict[str, list[float]] = {}
    lat = torch.randn(400, D, generator=g) * torch.tensor([0.5, 1.0, 2.0, 0.1])
    lat += torch.tensor([3.0, -1.0, 0.0, 7.0])
    cyr = torch.randn(400, D, generator=g) * 0.3 - 4.0
    for k in range(400):
        src[f"▁lat{chr(97 + k % 26)}{k}"] = lat[k].tolist()
        src[f"кир{k}"] = cyr[k].tolist()
    tgt = [f"new{k}" for k in range(4000)] + [f"▁нов{k}" for k in range(4000)]
    ctx = make_ctx(src, tgt)
    rows = run(ctx, "script")
    new_lat = torch.stack([rows[f"new{k}"] for k in range(4000)])
    new_cyr = torch.stack([rows[f"▁нов{k}"] for k in range(4000)])
    torch.testing.assert_close(new_lat.mean(0), lat.mean(0), atol=0.08, rtol=0.02)
    torch.testing.assert_close(new_lat.std(0), lat.std(0), atol=0.05, rtol=0.05)
    torch.testing.assert_close(new_cyr.mean(0), cyr.mean(0), atol=0.05, rtol=0.02)
    torch.testing.assert_close(new_cyr.std(0), cyr.std(0), atol=0.03, rtol=0.05)
    again = run(make_ctx(src, tgt), "script")
    other = run(make_ctx(src, tgt), "script", seed=1)
    assert torch.equal(again["new0"], rows["new0"]) and not torch.equal(other["new0"], rows["new0"])


def test_script_posn_separates_word_initial_and_medial():
    ini, med = [10.0, 0.0, 0.0, 0.0], [-10.0, 0.0, 0.0, 0.0]
    src = {"▁ab": ini, "▁cd": ini, "ef": med, "gh": med, "▁жз": CYR, "▁ик": CYR}
    ctx = make_ctx(src, ["▁xy", "zw", "▁лм", "но", "αβ"])
    rows = run(ctx, "script_posn")
    assert torch.equal(rows["▁xy"], torch.tensor(ini)) and torch.equal(rows["zw"], torch.tensor(med))
    rep = ctx.report["script_posn"]
    assert rep["source_pieces"] == {"Cyrl/initial": 2, "Latn/initial": 2, "Latn/medial": 2}
    assert rep["source_pieces_script"] == {"Cyrl": 2, "Latn": 4}
    assert rep["assigned"] == {"Cyrl/initial": 1, "Cyrl/medial": 1, "Grek/medial": 1, "Latn/initial": 1,
                               "Latn/medial": 1}
    # no medial Cyrillic source piece: the script's statistics; no Greek at all: every source piece
    assert torch.equal(rows["но"], torch.tensor(CYR))
    assert rep["fallbacks"] == {"Cyrl/medial": {"stats": "Cyrl", "pieces": 1},
                                "Grek/medial": {"stats": "all", "pieces": 1}}
    assert rep["n_fallback"] == 2
    # SCRIPT alone mixes the two positions of Latin into one distribution
    ctx = make_ctx(src, ["▁xy", "zw"])
    rows = run(ctx, "script")
    assert abs(float(rows["▁xy"][0])) < 40 and not torch.equal(rows["▁xy"], torch.tensor(ini))


def test_groups_below_min_count_fall_back():
    src = {"▁ab": LAT, "cd": LAT, "ef": LAT, "▁жз": CYR}  # one Cyrillic piece: no standard deviation
    ctx = make_ctx(src, ["▁ик", "xy"])
    rows = run(ctx, "script_posn")
    rep = ctx.report["script_posn"]
    assert rep["fallbacks"] == {"Cyrl/initial": {"stats": "all", "pieces": 1}}  # Cyrl has 1 piece in all
    assert "Cyrl" not in rep["source_pieces_script"] and rep["source_pieces"] == {"Latn/medial": 2}
    assert torch.equal(rows["xy"], torch.tensor(LAT))
    # a higher min_count pushes Latin/medial (2 pieces) to the Latin statistics (3 pieces), still constant
    ctx = make_ctx(src, ["xy"])
    rows = run(ctx, "script_posn", min_count=3)
    assert ctx.report["script_posn"]["fallbacks"] == {"Latn/medial": {"stats": "Latn", "pieces": 1}}
    assert torch.equal(rows["xy"], torch.tensor(LAT))


def test_unknown_and_empty_scripts_use_all_pieces():
    src = {"▁ab": LAT, "cd": LAT, "жз": CYR}
    # the bare marker (Common), a private-use character (Unknown), Ethiopic (not in the source)
    ctx = make_ctx(src, ["▁", "\U000f0000", "▁ዐማ"])
    rows = run(ctx, "script")
    assert set(rows) == {"▁", "\U000f0000", "▁ዐማ"}
    assert ctx.report["script"]["fallbacks"] == {
        "Ethi": {"stats": "all", "pieces": 1}, "Zyyy": {"stats": "all", "pieces": 1},
        "Zzzz": {"stats": "all", "pieces": 1},
    }  # fmt: skip
    assert all(torch.isfinite(r).all() for r in rows.values())


def test_bad_inputs_raise_clear_errors():
    ctx = make_ctx({}, ["▁ab"])  # only special tokens in the source
    with pytest.raises(DataError, match="no non-special piece"):
        run(ctx, "script")
    with pytest.raises(DataError, match="only 1 non-special piece"):
        run(make_ctx({"▁ab": LAT}, ["cd"]), "script_posn")
    with pytest.raises(ConfigError, match="min_count must be an integer >= 2.*got 1"):
        run(make_ctx({"▁ab": LAT, "cd": LAT}, ["x"]), "script", min_count=1)
    with pytest.raises(ConfigError, match="unknown parameter.*'std'.*accepted: \\['min_count'\\]"):
        assign_embeddings(make_ctx({"▁ab": LAT, "cd": LAT}, ["x"]), ["script"], params={"script": {"std": 1}})
    ctx = make_ctx({"▁ab": LAT, "cd": LAT}, ["x"])
    ctx.source_vocab["▁zz"] = 99  # a piece without an embedding row
    with pytest.raises(DataError, match="'▁zz' has id 99, outside the source embedding matrix"):
        run(ctx, "script")
    with pytest.raises(ConfigError, match="fuzzy must be true or false"):
        INIT_METHODS.get("ident")(ctx, set(), torch.Generator(), fuzzy="yes")


def test_chain_ident_takes_precedence_and_specials_stay_for_the_next_method():
    src = {"▁ab": LAT, "cd": [0.0, 0.0, 0.0, 1.0], "ef": LAT, "жз": CYR, "▁ик": CYR}
    ctx = make_ctx(src, ["cd", "▁xy", "▁ик", "но"])
    emb, src_of, counts = assign_embeddings(ctx, ["ident", "script"])
    assert counts == {"ident": 4 + 2, "script": 2}  # the 4 specials by role + 2 shared pieces
    t = ctx.target_vocab
    assert torch.equal(emb[t["cd"]], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert src_of[t["cd"]] == ctx.source_vocab["cd"]
    assert torch.equal(emb[t["▁ик"]], torch.tensor(CYR)) and torch.equal(emb[t["но"]], torch.tensor(CYR))
    assert int(src_of[t["▁xy"]]) == -1 and torch.isfinite(emb[t["▁xy"]]).all()
    assert torch.equal(emb[:4], torch.full((4, D), 1e4))  # specials copied by ident, not by script
    assert ctx.report["script"]["assigned"] == {"Cyrl": 1, "Latn": 1}
    # without ident the specials are left for the next method (here none: NaN rows)
    ctx = make_ctx(src, ["cd"])
    emb, _, counts = assign_embeddings(ctx, ["script_posn"])
    assert counts == {"script_posn": 1} and torch.isnan(emb[:4]).all() and torch.isfinite(emb[4]).all()
    emb, _, counts = assign_embeddings(make_ctx(src, ["cd"]), ["script_posn", "random_normal"])
    assert counts == {"script_posn": 1, "random_normal": 4} and torch.isfinite(emb).all()


def test_fuzzy_ident_matches_case_and_marker_only_when_exact_is_absent():
    src = {"▁Haus": [1.0] * D, "haus": [2.0] * D, "▁Baum": [3.0] * D, "▁baum": [4.0] * D, "Tür": [5.0] * D}
    tgt = ["haus", "▁HAUS", "baum", "▁tür", "▁neu"]
    ident = INIT_METHODS.get("ident")
    every = set(range(4 + len(tgt)))
    ctx = make_ctx(src, tgt)
    plain = ident(ctx, every, torch.Generator())
    assert plain == {0: 0, 1: 1, 2: 2, 3: 3, ctx.target_vocab["haus"]: ctx.source_vocab["haus"]}
    assert "ident" not in ctx.report
    pairs = ident(ctx, every, torch.Generator(), fuzzy=True)
    s, t = ctx.source_vocab, ctx.target_vocab
    assert pairs[t["haus"]] == s["haus"]  # exact match wins over ▁Haus
    assert pairs[t["▁HAUS"]] == s["▁Haus"]  # same ▁ status preferred over 'haus'
    assert pairs[t["baum"]] == s["▁baum"]  # same case preferred among the two word-initial candidates
    assert pairs[t["▁tür"]] == s["Tür"] and t["▁neu"] not in pairs
    assert ctx.report["ident"] == {"exact": 5, "fuzzy": 3}
    # exact matches keep precedence when the exact source piece exists for a fuzzy-looking target
    ctx = make_ctx({"▁Haus": [1.0] * D, "▁haus": [2.0] * D}, ["▁haus"])
    assert ident(ctx, set(range(5)), torch.Generator(), fuzzy=True)[4] == ctx.source_vocab["▁haus"]
    # only unassigned ids are offered
    ctx = make_ctx(src, tgt)
    assert ident(ctx, {t["▁HAUS"]}, torch.Generator(), fuzzy=True) == {t["▁HAUS"]: s["▁Haus"]}


# --------------------------------------------------------------------------- through initialize_embeddings
def _corpus(words: list[str], seed: int, n: int = 150) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("script_init")
    rng = random.Random(0)
    lat = ["".join(rng.choices(["ka", "lo", "mi", "ne", "tu"], k=rng.randint(1, 3))) for _ in range(40)]
    cyr = ["".join(rng.choices(["ка", "ло", "ми", "не", "ту"], k=rng.randint(1, 3))) for _ in range(40)]
    tgt_lat = ["".join(rng.choices(["ka", "zu", "xe", "qo"], k=rng.randint(1, 3))) for _ in range(40)]
    train_sentencepiece({"eng_Latn": _corpus(lat, 0), "rus_Cyrl": _corpus(cyr, 1)}, root / "src", vocab_size=80)
    train_sentencepiece({"myv_Cyrl": _corpus(cyr[:20], 2), "sme_Latn": _corpus(tgt_lat, 3)}, root / "tgt",
                        vocab_size=60)
    save_tiny_xlmr(root / "src")
    return root


def test_recipe_chain_writes_script_report(dirs, tmp_path):
    init = [{"ident": {"fuzzy": True}}, "script_posn", "random_normal"]  # SCRIPT+POSN+IDENT, as a recipe
    stats = initialize_embeddings(dirs / "src", dirs / "tgt", init, tmp_path / "m", seed=3)
    assert stats["ident"] + stats["script_posn"] + stats["random_normal"] == stats["total"] == 60
    assert stats["random_normal"] == 0 and stats["script_posn"] > 0  # specials come from ident
    rep = stats["report"]["script_posn"]
    assert sum(rep["assigned"].values()) == stats["script_posn"]
    assert {g.split("/")[0] for g in rep["assigned"]} <= {"Latn", "Cyrl", "Zyyy", "Zzzz"}
    assert stats["report"]["ident"]["exact"] + stats["report"]["ident"]["fuzzy"] == stats["ident"]
    assert json.loads((tmp_path / "m" / "init_stats.json").read_text()) == stats
    assert not (tmp_path / "m" / "pca.png").exists()  # diagnostics are opt-in (the workflow turns them on)
    prov = json.loads((tmp_path / "m" / "langadapt.json").read_text())
    assert prov["init"]["params"] == {"ident": {"fuzzy": True}}
    new = AutoModelForMaskedLM.from_pretrained(tmp_path / "m").get_input_embeddings().weight
    assert torch.isfinite(new).all() and new.shape == (60, 16)
    # SCRIPT skips the special tokens; without IDENT the chain copies them by role (issue 17: before, they
    # fell to random_normal's N(0, 1)), so SCRIPT alone is a complete chain
    stats = initialize_embeddings(dirs / "src", dirs / "tgt", ["script", "random_normal"], tmp_path / "s")
    assert stats["random_normal"] == 0 and stats["specials"] == 5
    assert stats["script"] == stats["total"] - 5
    stats = initialize_embeddings(dirs / "src", dirs / "tgt", ["script"], tmp_path / "x")
    assert stats["specials"] == 5 and stats["script"] == 55
