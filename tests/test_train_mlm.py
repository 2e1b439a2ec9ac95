"""Continued MLM pretraining on a tiny random model: masking, learning, exact resume, SIGTERM."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file
from test_train_helpers import LANG_PREFIX, make_model_dir, repetitive, sentences, write_corpus

from langadapt.core.errors import ConfigError, DataError
from langadapt.train.checkpoint import latest_checkpoint
from langadapt.train.mlm import mask_tokens, pretrain

TESTS = Path(__file__).parent


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlm")
    model = make_model_dir(root / "model")
    corpora = {lang: write_corpus(root / f"{lang}.parquet", repetitive(lang, 40 + 10 * k))
               for k, lang in enumerate(LANG_PREFIX)}
    return model, corpora


def _cfg(**kw):
    cfg = dict(steps=12, batch_size=4, grad_accum=2, seq_len=24, lr=2e-3, warmup_steps=2, checkpoint_every=4,
               log_every=1, seed=7, device="cpu")
    cfg.update(kw)
    return cfg


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model.safetensors")


def _losses(path: Path) -> list[tuple[str, str, str]]:
    with open(path) as f:
        return [(r["step"], r["loss"], r["tokens"]) for r in csv.DictReader(f)]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_masking_never_touches_specials_and_follows_80_10_10():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 40, (64, 128))
    ids[:, 0], ids[:, -1] = 0, 2
    never = (ids == 0) | (ids == 2)
    never[:8, 100:] = True  # padding
    candidates = torch.arange(5, 40)
    inputs, labels = mask_tokens(ids, never, 4, candidates, gen, 0.15, (0.8, 0.1, 0.1))
    selected = labels != -100
    assert not selected[never].any() and torch.equal(inputs[never], ids[never])
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])
    share = selected.sum() / (~never).sum()
    assert abs(share.item() - 0.15) < 0.01
    n = selected.sum().item()
    masked = (inputs[selected] == 4).sum().item() / n
    same = (inputs[selected] == ids[selected]).sum().item() / n
    assert abs(masked - 0.8) < 0.03 and abs(same - 0.1 - 0.1 / 35) < 0.03
    assert ((inputs >= 5) | (inputs == 4) | never).all()  # random replacements are never special tokens
    gen2 = torch.Generator().manual_seed(0)
    again = mask_tokens(ids, never, 4, candidates, gen2, 0.15, (0.8, 0.1, 0.1))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


def test_loss_decreases_on_repetitive_corpus(world, tmp_path):
    model, corpora = world
    t0 = time.monotonic()
    res = pretrain(model, corpora, tmp_path / "out", tmp_path / "run",
                   _cfg(steps=30, batch_size=8, grad_accum=1, seq_len=32, lr=5e-3, warmup_steps=3, log_every=5),
                   {"recipe": "tiny"})
    print(f"tiny MLM: {res['tokens_per_s']:.0f} tokens/s, 30 steps in {time.monotonic() - t0:.1f} s")
    losses = [float(r[1]) for r in _losses(tmp_path / "run" / "loss.csv")]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3
    out = tmp_path / "out"
    assert {"config.json", "model.safetensors", "tokenizer.json", "langadapt.json", "loss.csv"} <= {
        p.name for p in out.iterdir()}
    prov = json.loads((out / "langadapt.json").read_text())
    assert prov["recipe"] == "tiny" and prov["training"]["stage"] == "pretrain"
    assert prov["training"]["config"]["lr"] == 5e-3 and prov["training"]["steps"] == 30
    assert latest_checkpoint(tmp_path / "run") is None  # removed once the output is saved
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    assert AutoModelForMaskedLM.from_pretrained(out) is not None and AutoTokenizer.from_pretrained(out).is_fast


def test_interrupted_and_resumed_run_is_identical(world, tmp_path):
    model, corpora = world
    full = pretrain(model, corpora, tmp_path / "full", tmp_path / "run_full", _cfg())

    def crash(step: int) -> None:
        if step == 6:
            raise KeyboardInterrupt("simulated crash after step 6")

    with pytest.raises(KeyboardInterrupt):
        pretrain(model, corpora, tmp_path / "resumed", tmp_path / "run", _cfg(), callback=crash)
    assert latest_checkpoint(tmp_path / "run").name == "step-00000004"
    assert not (tmp_path / "resumed").exists()
    res = pretrain(model, corpora, tmp_path / "resumed", tmp_path / "run", _cfg(log_every=1, checkpoint_every=5))
    assert res["resumed_from_step"] == 4 and full["resumed_from_step"] is None
    _assert_same_weights(tmp_path / "full", tmp_path / "resumed")
    assert _losses(tmp_path / "run" / "loss.csv") == _losses(tmp_path / "run_full" / "loss.csv")
    assert res["tokens"] == full["tokens"]


def test_changed_config_starts_fresh_after_moving_old_run_aside(world, tmp_path):
    model, corpora = world

    def crash(step: int) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(model, corpora, tmp_path / "out", tmp_path / "run", _cfg(steps=6), callback=crash)
    res = pretrain(model, corpora, tmp_path / "out", tmp_path / "run", _cfg(steps=6, lr=1e-3))
    assert res["resumed_from_step"] is None
    stale = [p.name for p in tmp_path.iterdir() if p.name.startswith("run.stale-")]
    assert len(stale) == 1 and latest_checkpoint(tmp_path / stale[0]) is not None


_CHILD = """
import sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from langadapt.train.mlm import pretrain
root = Path(sys.argv[1])
corpora = {{p.stem: p for p in root.glob("*_*.parquet")}}
def slow(step):
    if step >= 3:
        (root / "ready").touch()
        time.sleep(0.05)
pretrain(root / "model", corpora, root / "out", root / "run", {cfg}, callback=slow)
"""


def test_sigterm_checkpoints_exits_nonzero_and_resumes(world, tmp_path):
    model, corpora = world
    root = tmp_path
    (root / "model").symlink_to(model, target_is_directory=True)
    for lang, p in corpora.items():
        (root / f"{lang}.parquet").symlink_to(p)
    cfg = _cfg(steps=400, checkpoint_every=1000, log_every=10)
    script = textwrap.dedent(_CHILD.format(cfg=repr(cfg)))
    proc = subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 90
    while not (root / "ready").exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "child never reached step 3"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, output
    ck = latest_checkpoint(root / "run")
    assert ck is not None and 3 <= int(ck.name.split("-")[1]) < 400
    assert not (root / "out").exists()
    step = int(ck.name.split("-")[1])
    res = pretrain(root / "model", corpora, root / "out", root / "run", cfg)
    assert res["resumed_from_step"] == step and res["steps"] == 400
    assert [int(r[0]) for r in _losses(root / "run" / "loss.csv")] == list(range(10, 401, 10))


def test_bad_inputs_raise_early(world, tmp_path):
    model, corpora = world
    with pytest.raises(ConfigError, match="learning_rate"):
        pretrain(model, corpora, tmp_path / "o", tmp_path / "r", {"learning_rate": 1e-4})
    with pytest.raises(ConfigError, match="seq_len"):
        pretrain(model, corpora, tmp_path / "o", tmp_path / "r", _cfg(seq_len=1000))
    empty = write_corpus(tmp_path / "nya_Latn.parquet", sentences("eng_Latn", 5), ["dev"] * 5)
    with pytest.raises(DataError, match="nya_Latn.parquet"):
        pretrain(model, {"nya_Latn": empty}, tmp_path / "o", tmp_path / "r2", _cfg())
    with pytest.raises(ConfigError, match="english"):
        pretrain(model, {"english": corpora["eng_Latn"]}, tmp_path / "o", tmp_path / "r3", _cfg())
    assert not (tmp_path / "o").exists()


def test_freeze_body_trains_only_embeddings_and_head(world, tmp_path):
    model, corpora = world
    pretrain(model, corpora, tmp_path / "out", tmp_path / "run", _cfg(steps=3, freeze_body_steps=3))
    before, after = _weights(model), _weights(tmp_path / "out")
    for k in before:
        if ".encoder." in k:
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["roberta.embeddings.word_embeddings.weight"],
                           after["roberta.embeddings.word_embeddings.weight"])


def test_keep_final_checkpoint_and_rerun_from_it(world, tmp_path):
    model, corpora = world
    cfg = _cfg(steps=5, keep_final_checkpoint=True, bf16=True)
    first = pretrain(model, corpora, tmp_path / "out", tmp_path / "run", cfg)
    assert latest_checkpoint(tmp_path / "run").name == "step-00000005"
    assert first["resumed_from_step"] is None and first["final_loss"] == first["final_loss"]  # not NaN
    w1 = _weights(tmp_path / "out")
    again = pretrain(model, corpora, tmp_path / "out2", tmp_path / "run", cfg)
    assert again["resumed_from_step"] == 5 and again["steps"] == 5
    w2 = _weights(tmp_path / "out2")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_lapt_emb_keeps_blocks_frozen_and_fraction_unfreezes_them(world, tmp_path):
    model, corpora = world
    before = _weights(model)
    pretrain(model, corpora, tmp_path / "emb", tmp_path / "run_emb", _cfg(steps=4, variant="emb"))
    emb = _weights(tmp_path / "emb")
    assert all(torch.equal(before[k], emb[k]) for k in before if ".encoder." in k)
    assert not torch.equal(before["roberta.embeddings.word_embeddings.weight"],
                           emb["roberta.embeddings.word_embeddings.weight"])
    # freeze_body_fraction 0.5 of 4 steps: blocks frozen in steps 1-2, trained in steps 3-4
    key = "roberta.encoder.layer.0.attention.self.query.weight"
    pretrain(model, corpora, tmp_path / "frac", tmp_path / "run_frac",
             _cfg(steps=4, freeze_body_fraction=0.5, checkpoint_every=2, keep_final_checkpoint=True))
    at = {int(d.name.split("-")[1]): torch.load(d / "trainer.pt", weights_only=True)["model"][f"model.{key}"]
          for d in (tmp_path / "run_frac" / "checkpoints").glob("step-*")}
    assert sorted(at) == [2, 4]
    assert torch.equal(at[2], before[key]) and not torch.equal(at[4], before[key])
    prov = json.loads((tmp_path / "frac" / "langadapt.json").read_text())
    assert prov["training"]["frozen_body_steps"] == 2


def test_presets_give_paper_values_and_explicit_keys_win():
    from langadapt.train.mlm import PRETRAIN_DEFAULTS, frozen_steps, resolve_config

    lapt = resolve_config({"preset": "vocab_lapt"})
    assert (lapt["steps"], lapt["lr"], lapt["seq_len"], lapt["batch_size"], lapt["alpha"]) == (
        100_000, 1e-5, 256, 200, 0.2)
    assert frozen_steps(lapt) == 10_000  # LAPT-FULL: first 10k of 100k steps
    assert frozen_steps({**lapt, "variant": "emb"}) == 100_000
    assert resolve_config({"preset": "vocab_lapt", "lr": 3e-5})["lr"] == 3e-5
    ls = resolve_config({})
    assert ls == {**PRETRAIN_DEFAULTS} and (ls["steps"], ls["alpha"], ls["seq_len"]) == (150_000, 0.3, 512)
    # LangSAMP §4.1: AdamW (0.9, 0.999), eps 1e-6, lr 5e-5, no weight decay stated (its run_mlm.sh sets none:
    # the HF Trainer's 0.0); the vocabulary paper trains with Adam (App. B): no weight decay either
    assert (ls["betas"], ls["eps"], ls["lr"], ls["weight_decay"]) == ([0.9, 0.999], 1e-6, 5e-5, 0.0)
    assert lapt["weight_decay"] == 0.0
    with pytest.raises(ConfigError, match="preset"):
        resolve_config({"preset": "glot500"})
    with pytest.raises(ConfigError, match="not both"):
        resolve_config({"freeze_body_steps": 5, "freeze_body_fraction": 0.1})
    with pytest.raises(ConfigError, match="variant"):
        resolve_config({"variant": "adapter"})
    with pytest.raises(ConfigError, match="data_fraction"):
        resolve_config({"data_fraction": 0})


def test_data_fraction_trains_on_a_seeded_share_of_each_language(world, tmp_path):
    model, corpora = world
    pretrain(model, corpora, tmp_path / "out", tmp_path / "run", _cfg(steps=2, data_fraction=0.25))
    prov = json.loads((tmp_path / "out" / "langadapt.json").read_text())
    assert prov["training"]["train_sentences"] == {"deu_Latn": 12, "eng_Latn": 10, "fra_Latn": 15}


def test_factorized_embeddings_are_trained_as_coordinates_and_primitives(world, tmp_path):
    import shutil

    from langadapt.models.factorized import factorize_init, read_factorization, save_factorization

    model, corpora = world
    fac_dir = tmp_path / "fac"
    shutil.copytree(model, fac_dir)
    emb = _weights(model)["roberta.embeddings.word_embeddings.weight"]
    _, fac = factorize_init(emb, emb, 32)  # full rank: C @ P reproduces the matrix
    save_factorization(fac_dir, fac.coordinates, fac.primitives, fac.meta)
    pretrain(fac_dir, corpora, tmp_path / "out", tmp_path / "run", _cfg(steps=3))
    out = read_factorization(tmp_path / "out")
    assert out is not None and out.dim == 32
    trained = _weights(tmp_path / "out")["roberta.embeddings.word_embeddings.weight"]
    assert torch.allclose(out.coordinates @ out.primitives, trained, atol=1e-5)  # model = its factors
    assert not torch.equal(out.primitives, fac.primitives) and not torch.equal(out.coordinates, fac.coordinates)
    prov = json.loads((tmp_path / "out" / "langadapt.json").read_text())
    assert prov["training"]["factorized_dim"] == 32
    pretrain(fac_dir, corpora, tmp_path / "plain", tmp_path / "run2", _cfg(steps=1, factorized=False))
    assert read_factorization(tmp_path / "plain") is None
    with pytest.raises(DataError, match="factorized.safetensors"):
        pretrain(model, corpora, tmp_path / "o", tmp_path / "r", _cfg(steps=1, factorized=True))


def test_dev_mlm_selection_keeps_the_best_checkpoint(world, tmp_path):
    """Vocabulary paper §4: "The checkpoint obtaining the best MLM loss on a development set is selected". With
    select: dev_mlm the dev loss (fixed seeded masks on each corpus' dev split) is logged every eval_every steps;
    the saved model is the best step's (its recomputed dev loss equals the logged minimum), and the chosen step
    and the curve are recorded beside it. A learning rate warming up to 2.0 over the whole run makes the later
    steps diverge whatever the dropout masks draw (dev loss 7.2, 14.4, 38.6, 62.6 at steps 4-16), so the best
    step is not the last one."""
    from langadapt.train.devloss import BestKeeper, build_dev_set, dev_losses
    from langadapt.train.mlm import mask_tokens

    model, corpora = world
    dev = {}
    for lang, path in corpora.items():  # the same texts, now with a dev split
        texts = pq.read_table(path).column("text").to_pylist()
        dev[lang] = write_corpus(tmp_path / "c" / f"{lang}.parquet", texts, ["dev" if i % 4 == 0 else "train"
                                                                          for i in range(len(texts))])
    cfg = _cfg(steps=16, checkpoint_every=4, lr=2.0, warmup_steps=16, select="dev_mlm", dev_sentences=8)
    res = pretrain(model, dev, tmp_path / "out", tmp_path / "run", cfg)
    prov = json.loads((tmp_path / "out" / "langadapt.json").read_text())["training"]
    curve = {int(k): v for k, v in prov["dev_loss"].items()}
    assert sorted(curve) == [0, 4, 8, 12, 16] and res["steps"] == 16
    best = min((s for s in curve if s > 0), key=curve.get)
    assert prov["select"] == "dev_mlm" and prov["selected_step"] == best
    assert best != 16, curve  # the overshooting run's last step is not its best
    print("dev curve", curve, "selected", best)
    rows = (tmp_path / "out" / "dev_loss.csv").read_text().splitlines()
    assert rows[0] == "step,language,loss" and len(rows) == 1 + 5 * (len(dev) + 1)
    # the saved weights are the best step's: their dev loss is the logged minimum
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from langadapt.data.corpus import corpus_texts_by_lang
    from langadapt.train.objective import MLMObjective

    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    saved = MLMObjective(AutoModelForMaskedLM.from_pretrained(tmp_path / "out"), "none", None, seed=7)
    specials = torch.tensor(sorted(set(tok.all_special_ids)))
    candidates = torch.tensor([i for i in range(len(tok)) if i not in set(tok.all_special_ids)])
    devset = build_dev_set(tok, corpus_texts_by_lang(dev, split="dev"),
                           lambda ids, never, g: mask_tokens(ids, never | torch.isin(ids, specials), tok.mask_token_id,
                                                             candidates, g), 24, 8, 7, lambda c: (0, 0))  # fmt: skip
    losses = dev_losses(saved, devset, torch.device("cpu"))
    assert sum(losses.values()) / len(losses) == pytest.approx(curve[best], abs=1e-4)
    assert not (tmp_path / "run" / "best.pt").exists() and BestKeeper(tmp_path / "run").curve() == curve
    last = pretrain(model, dev, tmp_path / "last", tmp_path / "run_last", _cfg(steps=4))
    assert json.loads((tmp_path / "last" / "langadapt.json").read_text())["training"]["selected_step"] == 4
    assert last["steps"] == 4 and not (tmp_path / "last" / "dev_loss.csv").exists()
