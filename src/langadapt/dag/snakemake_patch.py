"""Dry-run speed: cache the parameter lists Snakemake reads off callables.

Snakemake inspects every input function, params function and resource evaluator each time it applies one
to a job (``snakemake.common.get_function_params`` -> ``inspect.signature``): ~19 signatures per job, about
12% of a dry run of the four-paper reproduction (``workflow/reproduce.smk``; benchmarks/dryrun_budget.py).
A callable's parameters never change, so :func:`cache_function_params` wraps that function in an LRU cache
keyed by the callable (unhashable callables, and any error, fall through to Snakemake's own function). It
replaces the name in the modules that imported it (``snakemake.common``, ``.rules``, ``.jobs``) and is a
no-op when called again or when a Snakemake release no longer has the function.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

_MODULES = ("snakemake.common", "snakemake.rules", "snakemake.jobs")


def cache_function_params(maxsize: int = 16384) -> bool:
    """Install the cache; True if it is active (now or from an earlier call)."""
    common = importlib.import_module("snakemake.common")
    original = getattr(common, "get_function_params", None)
    if original is None:
        return False
    if getattr(original, "_langadapt_cached", False):
        return True

    @functools.lru_cache(maxsize=maxsize)
    def cached(func: Callable) -> Any:
        return original(func)

    def get_function_params(func: Callable) -> Any:
        try:
            return cached(func)
        except TypeError:  # unhashable callable (e.g. a callable instance defining __eq__ only)
            return original(func)

    get_function_params._langadapt_cached = True  # type: ignore[attr-defined]
    get_function_params.cache_info = cached.cache_info  # type: ignore[attr-defined]
    get_function_params.original = original  # type: ignore[attr-defined]
    for name in _MODULES:
        module = importlib.import_module(name)
        if getattr(module, "get_function_params", None) is original:
            module.get_function_params = get_function_params
    return True
