"""A small named registry: one per family of methods (sources, filters, init methods, tasks, ...).

Adding a method is one decorated class or function plus one config value::

    FILTERS = Registry("filter")

    @FILTERS.register("dedup")
    class Dedup: ...

    FILTERS.get("dedup")  # -> Dedup; unknown names raise a ConfigError listing the known ones
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from langadapt.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps config names to implementations of one family of methods."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.family} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
