"""A bad corpus fails its job with one clear error naming the file, and leaves no partial output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def test_empty_local_corpus_fails_cleanly(workdir):
    empty = workdir / "empty.txt"
    empty.write_text("")
    cfg = yaml.safe_load((workdir / "configs/smoke.yaml").read_text())
    cfg["data"]["sources"]["nya_Latn"] = {"kind": "local", "path": str(empty)}
    (workdir / "configs/bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(
        [SNAKEMAKE, "results/data/corpora/nya_Latn.parquet", "--cores", "1",
         "--configfile", "configs/bad.yaml"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    log = (workdir / "results/logs/corpus/nya_Latn.log").read_text()
    assert "DataError" in log and str(empty) in log and "empty" in log
    assert not (workdir / "results/data/corpora/nya_Latn.parquet").exists()
    assert not (workdir / "results/data/filter_stats/nya_Latn.csv").exists()
