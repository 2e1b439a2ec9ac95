"""LangSAMP objective: language/script embeddings before the MLM head only; plain backbone afterwards."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from test_train_helpers import LANG_PREFIX, make_model_dir, repetitive, write_corpus

from langadapt.core.errors import ConfigError
from langadapt.train.mlm import pretrain
from langadapt.train.objective import IdMaps, MLMObjective, read_tables

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# more varieties than scripts, and a script (Cyrl) whose id differs from its languages' ids
INVENTORY = ["eng_Latn", "deu_Latn", "rus_Cyrl", "ukr_Cyrl", "hin_Deva", "fra_Latn"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("langsamp")
    corpora = {lang: write_corpus(root / f"{lang}.parquet", repetitive(lang, 30 + 10 * k))
               for k, lang in enumerate(LANG_PREFIX)}
    return {"xlmr": make_model_dir(root / "xlmr"), "bert": make_model_dir(root / "bert", arch="bert")}, corpora


def _cfg(**kw):
    cfg = dict(steps=4, batch_size=4, grad_accum=1, seq_len=24, lr=5e-3, warmup_steps=0, checkpoint_every=100,
               log_every=1, seed=3, device="cpu")
    cfg.update(kw)
    return cfg


def _objective(model_dir, variant="both", seed=0):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    model.eval()
    return MLMObjective(model, variant, IdMaps.from_inventory(INVENTORY), seed=seed)


def test_id_maps_index_scripts_by_script_not_language():
    maps = IdMaps.from_inventory(INVENTORY)
    assert maps.scripts == ("Cyrl", "Deva", "Latn")
    assert maps.language_id("ukr_Cyrl") == 3 and maps.script_id("ukr_Cyrl") == 0
    assert maps.script_id("fra_Latn") == 2 and maps.language_id("fra_Latn") == 5
    with pytest.raises(ConfigError, match="nya_Latn"):
        maps.language_id("nya_Latn")
    with pytest.raises(ConfigError, match="empty"):
        IdMaps.from_inventory([])


@pytest.mark.parametrize("arch", ["xlmr", "bert"])
def test_forward_adds_exactly_language_and_script_rows_before_the_head(world, arch):
    models, _ = world
    obj = _objective(models[arch])
    assert obj.language_embeddings.shape == (6, 32) and obj.script_embeddings.shape == (3, 32)
    torch.manual_seed(0)
    ids = torch.randint(5, 30, (3, 10))
    mask = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5], labels[2, 7], labels[2, 8] = 7, 8, 9, 10
    lang = torch.tensor([3, 0, 4])  # ukr, eng, hin
    script = torch.tensor([0, 2, 1])  # Cyrl, Latn, Deva
    with torch.no_grad():
        plain = obj.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden = obj.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.equal(hidden, plain)  # nothing is added to the backbone output
        sel = labels != -100
        rows = sel.nonzero()[:, 0]
        expected_in = hidden[sel] + obj.language_embeddings[lang[rows]] + obj.script_embeddings[script[rows]]
        got_in = obj.head_inputs(hidden[sel], rows, lang, script)
        assert torch.allclose(got_in, expected_in, atol=0, rtol=0)
        # ukr_Cyrl (row 0) gets script row 0 (Cyrl), not row 3 (its language id)
        delta = got_in[0] - hidden[sel][0] - obj.language_embeddings[3]
        assert torch.allclose(delta, obj.script_embeddings[0], atol=1e-6)
        logits = obj.head(expected_in)
        expected = F.cross_entropy(logits, labels[sel])
        assert torch.allclose(obj(ids, mask, labels, lang, script), expected, atol=1e-6)
        # a 'none' objective on the same model is the plain MLM loss
        none = MLMObjective(obj.model, "none")
        plain_logits = obj.model(input_ids=ids, attention_mask=mask).logits[sel]
        assert torch.allclose(none(ids, mask, labels), F.cross_entropy(plain_logits, labels[sel]), atol=1e-5)


def test_variants_differ_only_in_their_tables(world):
    models, _ = world
    keys = {}
    for variant in ("none", "language", "script", "both"):
        obj = _objective(models["xlmr"], variant)
        keys[variant] = set(obj.state_dict())
    base = keys["none"]
    assert keys["language"] - base == {"language_embeddings"}
    assert keys["script"] - base == {"script_embeddings"}
    assert keys["both"] - base == {"language_embeddings", "script_embeddings"}
    assert all(base <= k for k in keys.values())
    with pytest.raises(ConfigError, match="variant"):
        MLMObjective(_objective(models["xlmr"]).model, "lang")


@pytest.mark.parametrize("arch", ["xlmr", "bert"])
def test_pretrained_backbone_loads_without_custom_code(world, tmp_path, arch):
    from transformers import (
        AutoModel,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    models, corpora = world
    out = tmp_path / "out"
    pretrain(models[arch], corpora, out, tmp_path / "run", _cfg(langsamp="both"), inventory=INVENTORY)
    meta = json.loads((out / "langsamp.json").read_text())
    assert meta["variant"] == "both" and meta["languages"]["ukr_Cyrl"] == 3 and meta["scripts"]["Cyrl"] == 0
    tables, _ = read_tables(out)
    assert tables["language_embeddings"].shape == (6, 32) and tables["script_embeddings"].shape == (3, 32)
    # trained rows moved from their initialisation, rows of languages without data did not
    init = _objective(models[arch], "both", seed=3)
    moved = (tables["language_embeddings"] - init.language_embeddings.detach()).abs().sum(1)
    trained = [IdMaps.from_inventory(INVENTORY).language_id(c) for c in corpora]
    assert all(moved[i] > 0 for i in trained)
    assert all(moved[i] < 1e-3 for i in set(range(6)) - set(trained))  # only weight decay touches them
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok(["cat dog sun", "decat dedog"], return_tensors="pt", padding=True)
    backbone = AutoModel.from_pretrained(out).eval()
    with torch.no_grad():
        h = backbone(**enc).last_hidden_state
    assert h.shape[:2] == enc["input_ids"].shape and torch.isfinite(h).all()
    for cls in (AutoModelForTokenClassification, AutoModelForSequenceClassification):
        m = cls.from_pretrained(out, num_labels=3)
        assert m(**enc).logits.shape[-1] == 3


def test_variant_none_writes_no_tables_and_ablation_runs_share_the_data(world, tmp_path):
    models, corpora = world
    runs = {}
    for variant in ("none", "script"):
        out = tmp_path / variant
        pretrain(models["xlmr"], corpora, out, tmp_path / f"run-{variant}", _cfg(langsamp=variant),
                 inventory=INVENTORY)
        runs[variant] = out
    assert not (runs["none"] / "langsamp.safetensors").exists()
    assert set(load_file(runs["script"] / "langsamp.safetensors")) == {"script_embeddings"}
    # same data order and masks: the token counts of every logged step agree
    rows = [(tmp_path / f"run-{v}" / "loss.csv").read_text().splitlines() for v in runs]
    assert [r.split(",")[3] for r in rows[0]] == [r.split(",")[3] for r in rows[1]]


def test_continuing_from_a_langsamp_model_keeps_its_tables(world, tmp_path):
    models, corpora = world
    first = tmp_path / "first"
    pretrain(models["xlmr"], corpora, first, tmp_path / "run1", _cfg(langsamp="both"), inventory=INVENTORY)
    saved, _ = read_tables(first)
    more = [*INVENTORY, "jpn_Jpan"]
    obj = MLMObjective(_objective(first).model, "both", IdMaps.from_inventory(more), seed=9)
    copied = obj.load_tables_from(first)
    assert copied == {"language_embeddings": 6, "script_embeddings": 3}
    assert torch.equal(obj.language_embeddings.detach()[:6], saved["language_embeddings"])
    assert torch.equal(obj.script_embeddings.detach()[0], saved["script_embeddings"][0])  # Cyrl
    jpan = IdMaps.from_inventory(more).script_id("jpn_Jpan")
    assert not any(torch.equal(obj.script_embeddings.detach()[jpan], r) for r in saved["script_embeddings"])


def test_corpus_language_outside_the_inventory_is_an_error(world, tmp_path):
    models, corpora = world
    with pytest.raises(ConfigError, match="fra_Latn"):
        pretrain(models["xlmr"], corpora, tmp_path / "o", tmp_path / "r", _cfg(langsamp="language"),
                 inventory=["eng_Latn", "deu_Latn"])
    with pytest.raises(ConfigError, match="'langsamp'"):
        pretrain(models["xlmr"], corpora, tmp_path / "o", tmp_path / "r", _cfg(langsamp="yes"))
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_sparse_embedding_gradient_equals_the_dense_one(world):
    models, _ = world
    torch.manual_seed(1)
    ids = torch.randint(5, 30, (4, 12))
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, torch.full_like(ids, -100))
    grads = []
    for sparse in (False, True):
        obj = _objective(models["xlmr"], "both")
        obj.fused_loss = False  # the sparse rows are used with autograd's loss path only
        if sparse:
            assert obj.single_process_gradients()
        obj(ids, torch.ones_like(ids), labels, torch.tensor([0, 1, 3, 4]), torch.tensor([2, 2, 0, 1])).backward()
        g = obj.model.get_input_embeddings().weight.grad
        assert not g.is_sparse  # the decoder's dense gradient came first; the lookup rows were added into it
        grads.append(g.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
