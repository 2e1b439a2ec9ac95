import copy

import pytest
import yaml

from langadapt import config as lc
from langadapt.core.errors import ConfigError

from conftest import REPO

CONFIGS = [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]


@pytest.fixture(scope="module")
def smoke_raw() -> dict:
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = lc.load_config(path)
    assert cfg["pivot"] in cfg["languages"]
    for recipe in cfg["recipes"]:
        assert lc.final_model_dir(cfg, recipe).startswith("results/")


def test_defaults_are_filled(smoke_raw):
    cfg = lc.prepare_config(copy.deepcopy(smoke_raw))
    assert cfg["evaluation"]["seeds"] == [1]
    assert cfg["resources"]["gpus"] == 0
    assert cfg["tokenizers"]["spm_nya"]["model_type"] == "unigram"


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        lc.prepare_config(raw, source="smoke.yaml")
    return str(exc.value)


def test_unknown_key_is_named(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["data"]["splits"]["test_fracton"] = 0.1
    msg = _error(raw)
    assert "smoke.yaml" in msg and "test_fracton" in msg and "data.splits" in msg


def test_unknown_top_level_key_is_named(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["evalution"] = {}
    assert "evalution" in _error(raw)


def test_wrong_type_is_named(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["tokenizers"]["spm_nya"]["vocab_size"] = "big"
    msg = _error(raw)
    assert "tokenizers.spm_nya.vocab_size" in msg and "'big'" in msg


def test_unknown_language_code_is_named(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["languages"].append("xqz_Latn")
    raw["data"]["sources"]["xqz_Latn"] = {"kind": "local", "path": "x.txt"}
    msg = _error(raw)
    assert "xqz_Latn" in msg and "ISO 639-3" in msg


def test_malformed_language_code_is_named(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["languages"][1] = "de"
    msg = _error(raw)
    assert "languages.1" in msg and "'de'" in msg


def test_language_without_source(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    del raw["data"]["sources"]["hin_Deva"]
    assert "no source for hin_Deva" in _error(raw)


def test_stage_language_outside_inventory(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["realignment"]["pairs_tiny"]["languages"] = ["deu_Latn", "fra_Latn"]
    msg = _error(raw)
    assert "realignment.pairs_tiny.languages" in msg and "fra_Latn" in msg


def test_dangling_recipe_reference(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["recipes"]["tiny_lapt"]["pretrain"] = "mlm_huge"
    msg = _error(raw)
    assert "recipes.tiny_lapt.pretrain" in msg and "mlm_huge" in msg


def test_recipe_cycle(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["recipes"]["a"] = {"from": "b", "realign": "pairs_tiny"}
    raw["recipes"]["b"] = {"from": "a", "realign": "pairs_tiny"}
    assert "cycle" in _error(raw)


def test_base_and_from_are_exclusive(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["recipes"]["tiny_lapt"]["from"] = "tiny"
    assert "recipes.tiny_lapt" in _error(raw)


def test_tokenizer_needs_init(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    del raw["recipes"]["tiny_spm"]["init"]
    assert "'tokenizer' and 'init' go together" in _error(raw)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("languages: [eng_Latn\n")
    with pytest.raises(ConfigError) as exc:
        lc.load_config(bad)
    assert str(bad) in str(exc.value)


def test_recipe_chains(smoke_raw):
    cfg = lc.prepare_config(copy.deepcopy(smoke_raw))
    assert lc.final_model_dir(cfg, "tiny") == "results/base/tiny"
    assert lc.own_stages(cfg, "tiny_spm") == ["init", "pretrain"]
    assert lc.stage_input_dir(cfg, "tiny_spm", "init") == "results/base/tiny"
    assert lc.stage_input_dir(cfg, "tiny_spm", "pretrain") == "results/models/tiny_spm/init"
    # a recipe built `from` another starts from that recipe's final model
    assert lc.stage_input_dir(cfg, "tiny_realigned", "realign") == "results/models/tiny_lapt/pretrain"
    assert lc.final_model_dir(cfg, "tiny_realigned") == "results/models/tiny_realigned/realign"
    stages = [s["stage"] for s in lc.recipe_spec(cfg, "tiny_realigned")["stages"]]
    assert stages == ["pretrain", "realign"]


def test_canonical_hash_ignores_key_order():
    a = {"x": 1, "y": {"b": 2, "a": [1, 2]}}
    b = {"y": {"a": [1, 2], "b": 2}, "x": 1}
    assert lc.canonical(a) == lc.canonical(b)
    assert lc.config_hash(a) == lc.config_hash(b)
    assert lc.config_hash(a) != lc.config_hash({**a, "x": 2})


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("learning_rate", 1e-4, "learning_rate"),
    ("langsamp", "lang", "'langsamp'"),
    ("variant", "adapters", "'variant'"),
    ("preset", "glot500", "'preset'"),
])
def test_pretraining_trainer_keys_are_checked_before_any_job(smoke_raw, key, value, expected):
    raw = copy.deepcopy(smoke_raw)
    raw["pretraining"]["mlm_tiny"][key] = value
    msg = _error(raw)
    assert "pretraining.mlm_tiny" in msg and expected in msg


def test_default_source_fills_languages_without_an_entry(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    del raw["data"]["sources"]["hin_Deva"]
    raw["data"]["default_source"] = {"kind": "hf_hub", "repo_id": "cis-lmu/Glot500",
                                     "data_files": "{lang}/train/*.arrow"}
    cfg = lc.prepare_config(raw)
    assert cfg["data"]["sources"]["hin_Deva"]["repo_id"] == "cis-lmu/Glot500"
    assert cfg["data"]["sources"]["eng_Latn"] == smoke_raw["data"]["sources"]["eng_Latn"]  # explicit wins


def test_unknown_selector_is_named(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["realignment"]["pairs_tiny"]["languages"] = {"select": "most_beautiful", "n": 2}
    msg = _error(raw)
    assert "realignment.pairs_tiny.languages" in msg and "most_beautiful" in msg and "uriel_diversity" in msg


def test_paper_table_specs_are_checked_before_any_job(smoke_raw):
    """`report.paper_spec.check_tables` runs as part of the config checks (not only in the tables job)."""
    cfg = copy.deepcopy(smoke_raw)
    cfg["evaluation"]["report"]["tables"]["smoke_table1"]["rows"].append({"label": "X", "task": "no_such_task"})
    with pytest.raises(ConfigError, match=r"smoke: evaluation\.report\.tables\.smoke_table1.*no_such_task"):
        lc.prepare_config(cfg, source="smoke")


def test_a_donor_task_on_a_model_without_language_embeddings_fails_the_config(smoke_raw):
    """``source: donor`` (LangSAMP §5.3) reads the evaluated model's language embeddings: a task that
    evaluates a recipe without them is rejected by the config checks."""
    cfg = copy.deepcopy(smoke_raw)
    cfg["evaluation"]["tasks"]["topic"] = {"kind": "classification", "source": "donor",
                                           "dataset": {"kind": "sib200", "path": "sib200"}}
    with pytest.raises(ConfigError, match=r"evaluation\.tasks\.topic: task 'topic' has source 'donor'"):
        lc.prepare_config(copy.deepcopy(cfg), source="smoke")
    cfg["evaluation"]["tasks"]["topic"]["recipes"] = ["ext_ident"]  # its last stage: LangSAMP `both`
    lc.prepare_config(cfg, source="smoke")
