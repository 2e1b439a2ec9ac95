"""Value checks of config parameters, one ConfigError naming the key and the value: integers (booleans are
not integers here, although Python says they are) and numbers in a range."""

from __future__ import annotations

import math
from typing import Any

from langadapt.core.errors import ConfigError


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_phrase(low: int, optional: bool) -> str:
    phrase = "a positive integer" if low == 1 else f"an integer >= {low}"
    return phrase + (" or null" if optional else "")


def check_int(value: Any, where: str, low: int = 1, optional: bool = False) -> None:
    """`value` is an integer >= `low` (or None when `optional`); else ConfigError
    ``{where} must be a positive integer [or null], got {value!r}``."""
    if value is None and optional:
        return
    if not is_int(value) or value < low:
        raise ConfigError(f"{where} must be {_int_phrase(low, optional)}, got {value!r}")


def check_ints(params: Any, prefix: str, *keys: str, low: int = 1, optional: bool = False) -> None:
    """`check_int` on ``params[key]`` for each key, named ``{prefix}.{key}``."""
    for key in keys:
        check_int(params[key], f"{prefix}.{key}" if prefix else key, low, optional)


def check_number(value: Any, where: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> None:
    """`value` is a finite number in ``[low, high]`` (``(low, high]`` with `low_open`); else ConfigError."""
    ok = is_number(value) and (low is None or (value > low if low_open else value >= low)) and (
        high is None or value <= high)
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        rng = " and ".join(x for x in (lo, hi) if x)
        raise ConfigError(f"{where} must be a number{' ' + rng if rng else ''}, got {value!r}")
