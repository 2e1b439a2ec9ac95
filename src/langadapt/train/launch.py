"""Entry point of each process launched by ``torchrun`` (see `langadapt.train.distributed.launch`).

``python -m langadapt.train.launch ARGS.json`` where the JSON holds ``{"stage": "pretrain", "kwargs":
{...}}`` (the keyword arguments of :func:`langadapt.train.mlm.pretrain`). Every rank logs to stderr;
rank 0 also appends to the files named in ``LANGADAPT_LOG_FILES`` (the rule's ``log:`` file and the run's
attempts log, set by `langadapt.core.runtime.job`), so its progress lines reach the rule's log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch

from langadapt.core.runtime import LOG_FILES_ENV


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m langadapt.train.launch ARGS.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    rank = os.environ.get("RANK", "0")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if rank == "0":  # the rule's log (and the run's attempts log): the parent opened them for appending
        files = [f for f in os.environ.get(LOG_FILES_ENV, "").split(os.pathsep) if f]
        handlers += [logging.FileHandler(f, mode="a", encoding="utf-8") for f in files]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    threads = os.environ.get("LANGADAPT_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    stage, kwargs = spec["stage"], spec["kwargs"]
    if stage == "pretrain":
        from langadapt.train.mlm import pretrain

        pretrain(**kwargs)
    else:
        print(f"unknown stage {stage!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
