"""The workflow as users run it: dry runs of every config, config errors before any job, lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CONFIGS = ["config.yaml", *sorted(f"configs/{p.name}" for p in (REPO / "configs").glob("*.yaml"))]


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run_every_config(workdir, configfile):
    proc = snakemake(workdir, "-n", "--configfile", configfile)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout + proc.stderr
    for rule in ("corpus", "base_model", "evaluate", "tables"):
        assert rule in out
    assert not (workdir / "results").exists()


def test_lint_is_clean(workdir):
    proc = subprocess.run([SNAKEMAKE, "--lint"], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def _write_config(workdir: Path, mutate) -> str:
    raw = yaml.safe_load((workdir / "configs" / "smoke.yaml").read_text())
    mutate(raw)
    path = workdir / "configs" / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return "configs/bad.yaml"


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda c: c["data"].update(filterz={}), ["data", "filterz"]),
        (lambda c: c["pretraining"]["mlm_tiny"].update(objective=3), ["pretraining.mlm_tiny.objective"]),
        (lambda c: c["languages"].append("qqq_Latn"), ["qqq_Latn", "ISO 639-3"]),
    ],
    ids=["unknown-key", "wrong-type", "unknown-language"],
)
def test_bad_config_fails_before_any_job(workdir, mutate, fragments):
    configfile = _write_config(workdir, mutate)
    proc = snakemake(workdir, "--configfile", configfile)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "invalid configuration" in out
    for fragment in fragments:
        assert fragment in out
    assert not (workdir / "results").exists(), "a bad config must not leave partial output"


def _job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    out = proc.stdout + proc.stderr
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}


def test_smoke_dry_run_schedules_the_vocabulary_extension(workdir):
    proc = snakemake(workdir, "-n", "results/models/ext_ident/init", "--configfile", "configs/smoke.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule init_model:" in out and "recipe=ext_ident" in out
    assert "results/tokenizers/spm_nya" in out and "results/base/tiny" in out
    proc = snakemake(workdir, "-n", "--quiet", "rules", "--configfile", "configs/smoke.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # tiny_spm (replace), ext_ident (extend), tiny_ofa (OFA, factorized), tiny_hyperofa (HyperOFA)
    assert _job_counts(proc)["init_model"] == 4


@pytest.mark.parametrize(("languages", "n_corpora"), [(None, 0), (["nya_Latn"], 1)])
def test_hf_tokenizer_needs_only_the_corpora_of_its_stats_languages(workdir, languages, n_corpora):
    def mutate(c):
        c["tokenizers"]["glot500"] = {"kind": "hf", "name_or_path": "cis-lmu/glot500-base"}
        if languages:
            c["tokenizers"]["glot500"]["languages"] = languages
        c["recipes"]["xlmr_glot500"] = {"base": "tiny", "tokenizer": "glot500", "vocab": "extend",
                                        "init": ["ident", "random"]}

    configfile = _write_config(workdir, mutate)
    proc = snakemake(workdir, "-n", "results/tokenizers/glot500", "--quiet", "rules", "--configfile", configfile)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = _job_counts(proc)
    assert counts["tokenizer"] == 1 and counts.get("corpus", 0) == n_corpora
    proc = snakemake(workdir, "-n", "results/models/xlmr_glot500/init", "--configfile", configfile)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "recipe=xlmr_glot500" in out and "tok=glot500" in out


def test_selector_subset_is_a_job_that_realignment_reads(workdir):
    cfg = yaml.safe_load((workdir / "configs/smoke.yaml").read_text())
    cfg["realignment"]["pairs_tiny"]["languages"] = {"select": "uriel_diversity", "n": 2, "direction": "max"}
    (workdir / "configs/sel.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(workdir, "-n", "results/models/tiny_realigned/realign", "--configfile", "configs/sel.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule select_languages:" in out and "results/selection/pairs_tiny.json" in out
    cfg["realignment"]["pairs_tiny"]["languages"] = {"select": "uriel_diversity", "n": 9}
    (workdir / "configs/sel.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(workdir, "-n", "--configfile", "configs/sel.yaml")
    assert proc.returncode != 0 and "realignment.pairs_tiny.languages: n = 9" in proc.stdout + proc.stderr


REPRODUCE = {"langsamp": "langsamp", "realignment": "realignment", "vocab": "vocab-specialization",
             "hyperofa": "hyperofa"}  # module name in workflow/reproduce.smk -> config and results/ folder


def job_counts(text: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in text.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit() and line.split()[0] != "total"}


def test_reproduce_runs_the_four_papers_side_by_side(workdir):
    proc = snakemake(workdir, "-s", "workflow/reproduce.smk", "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    together = job_counts(out)
    for module, paper in REPRODUCE.items():
        alone = snakemake(workdir, "--configfile", f"configs/{paper}.yaml", "-n", "--quiet", "rules")
        assert alone.returncode == 0
        # the same jobs as the paper's own run, renamed MODULE_RULE
        assert {f"{module}_{rule}": n for rule, n in job_counts(alone.stdout + alone.stderr).items() if rule != "all"} \
            == {rule: n for rule, n in together.items() if rule.startswith(f"{module}_")}
    # ... each writing under its own results/PAPER/ (outputs, and the undeclared training run dirs)
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        if rule == "all":
            continue
        paper = REPRODUCE[next(m for m in REPRODUCE if rule.startswith(f"{m}_"))]
        for line in block.splitlines():
            if line.strip().startswith(("output:", "log:")):
                paths = line.split(":", 1)[1].split(", ")
                assert all(p.strip().startswith(f"results/{paper}/") for p in paths), (rule, line)
