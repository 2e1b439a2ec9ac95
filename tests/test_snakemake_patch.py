"""langadapt.dag.snakemake_patch: Snakemake's callable-parameter lookup, cached, with unchanged answers."""

from __future__ import annotations

import inspect

import snakemake.common
import snakemake.jobs
import snakemake.rules

from langadapt.dag.snakemake_patch import cache_function_params


def test_cached_lookup_answers_as_snakemake_does_and_is_installed_everywhere():
    assert cache_function_params() and cache_function_params()  # idempotent
    lookup = snakemake.common.get_function_params
    assert snakemake.rules.get_function_params is lookup and snakemake.jobs.get_function_params is lookup

    def input_fn(wildcards, attempt, **kwargs):
        return []

    assert list(lookup(input_fn)) == list(inspect.signature(input_fn).parameters) == ["wildcards", "attempt",
                                                                                      "kwargs"]
    before = lookup.cache_info().hits
    lookup(input_fn)
    assert lookup.cache_info().hits == before + 1
    # the aux-param filter Snakemake builds on it still sees **kwargs and plain names
    got = snakemake.common.get_input_function_aux_params(lambda wildcards, threads: 0, {"threads": 2, "x": 1})
    assert got == {"threads": 2}


def test_unhashable_callables_and_overwritten_params_fall_through():
    class Unhashable:
        __hash__ = None

        def __call__(self, wildcards, input):
            return []

    lookup = snakemake.common.get_function_params
    cache_function_params()
    assert list(snakemake.common.get_function_params(Unhashable())) == ["wildcards", "input"]

    def wrapper(*args):
        return args

    snakemake.common.overwrite_function_params(wrapper, ["wildcards", "output"])
    assert snakemake.common.get_function_params(wrapper) == ["wildcards", "output"]
    assert lookup is snakemake.common.get_function_params
