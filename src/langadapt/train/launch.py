"""Entry point of each process launched by ``torchrun`` (see `langadapt.train.distributed.launch`).

``python -m langadapt.train.launch ARGS.json`` where the JSON holds ``{"stage": "pretrain", "kwargs":
{...}}`` (the keyword arguments of :func:`langadapt.train.mlm.pretrain`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m langadapt.train.launch ARGS.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
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
