"""Torch-free facts about the embedding init methods of a recipe's ``init`` list.

The methods themselves are functions registered in `langadapt.vocab.base.INIT_METHODS` by the modules of
`langadapt.vocab.methods`. This module imports no torch: the workflow reads :data:`NEEDS` while it builds
the DAG (which inputs an init job needs) and validates recipes with :func:`parse_init` before any job runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langadapt.core.errors import ConfigError

#: Resources an init method reads besides the source model and the two tokenizers:
#: ``texts`` (train splits of the target tokenizer's languages), ``word_vectors`` (a named entry of the
#: config's ``word_vectors`` section, given as the method's ``word_vectors`` parameter), ``hypernet`` (the
#: trained hypernetwork of the recipe's base model). Every registered method has an entry (tested).
NEEDS: dict[str, frozenset[str]] = {
    "ident": frozenset(),
    "random": frozenset(),
    "random_normal": frozenset(),
    "script": frozenset(),  # vocab/methods/script.py (vocabulary paper §3.2 REINIT-SCRIPT)
    "script_posn": frozenset(),  # vocab/methods/script.py (REINIT-SCRIPT+POSN)
    "focus": frozenset({"texts"}),  # vocab/methods/focus.py (Dobler & de Melo 2023)
    "ofa": frozenset({"word_vectors"}),  # vocab/methods/ofa.py (Liu et al. 2024)
    "hyperofa": frozenset({"word_vectors", "hypernet"}),  # vocab/methods/hyperofa.py (HyperOFA)
}



def parse_init(items: Sequence[Any], where: str = "init") -> list[tuple[str, dict[str, Any]]]:
    """``[name | {name: {params}}]`` -> ``[(name, params)]``; ConfigError for a bad entry, an unknown or a
    repeated method (names are checked against :data:`NEEDS`)."""
    if isinstance(items, str | bytes) or not isinstance(items, Sequence) or not items:
        raise ConfigError(f"{where}: expected a non-empty list of init methods, e.g. [ident, random], got {items!r}")
    out: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, Mapping) and len(item) == 1:
            name, params = next(iter(item.items()))
            if params is None:
                params = {}
            if not isinstance(name, str) or not isinstance(params, Mapping):
                raise ConfigError(f"{where}[{i}]: expected {{method: {{parameter: value}}}}, got {item!r}")
            params = dict(params)
        else:
            raise ConfigError(f"{where}[{i}]: expected a method name or {{method: {{parameters}}}}, got {item!r}")
        if name not in NEEDS:
            raise ConfigError(f"{where}[{i}]: unknown embedding init method {name!r}; known: "
                              f"{', '.join(sorted(NEEDS))}")
        if any(name == n for n, _ in out):
            raise ConfigError(f"{where}: init method {name!r} listed twice")
        out.append((name, params))
    return out


def needs_of(items: Sequence[Any], where: str = "init") -> frozenset[str]:
    """Union of the resources the listed methods need."""
    return frozenset().union(*(NEEDS[name] for name, _ in parse_init(items, where)))


def word_vector_names(items: Sequence[Any], where: str = "init") -> list[str]:
    """Names of the ``word_vectors`` entries the listed methods read (their ``word_vectors`` parameter)."""
    names = []
    for name, params in parse_init(items, where):
        if "word_vectors" in NEEDS[name]:
            wv = params.get("word_vectors")
            if not isinstance(wv, str):
                raise ConfigError(f"{where}: init method {name!r} needs a 'word_vectors' parameter naming an "
                                  f"entry of the config's word_vectors section, e.g. {{{name}: {{word_vectors: "
                                  f"colexnet}}}}")
            names.append(wv)
    return names
