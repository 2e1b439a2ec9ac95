"""Progress lines for long loops: the rule's log gets one line every ``every`` steps, and the job's
experiment tracker (`langadapt.core.tracking`) the same numbers.

A line reads::

    pretrain step 40/200 (20%) | loss 7.1234 | lr 5.00e-05 | 1,234 tok/s | elapsed 0:01:02 | ETA 0:04:08

Throughput is over the steps since the previous line; the ETA extrapolates the mean step time of this
process (a resumed run counts from its resume step).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from langadapt.core.tracking import Tracker, open_tracker

log = logging.getLogger(__name__)


def clock(seconds: float) -> str:
    """``H:MM:SS`` (``?`` for an unknown time)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _value(name: str, v: float) -> str:
    if name == "lr" or (v != 0 and abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.4f}"


class Progress:
    """Log line + tracker feed every `every` steps (and at the last step) of a loop of `total` steps.

    `advance(units)` counts the work of a step (tokens, examples, pairs: `unit`); `emit(step, **metrics)`
    writes a line with given values (the caller's own averages, e.g. those of ``loss.csv``);
    `update(step, units, **values)` does both for loops without their own averaging: it averages each value
    over the steps since the previous line. ``enabled=False`` (non-zero ranks) does nothing."""

    def __init__(self, desc: str, total: int, every: int, *, unit: str = "tok", start: int = 0,
                 enabled: bool = True, logger: logging.Logger | None = None,
                 tracker: Tracker | None = None) -> None:
        self.desc, self.total, self.every, self.unit = desc, int(total), max(1, int(every)), unit
        self.enabled, self.log = enabled, logger or log
        self.start = self.last_step = int(start)
        self.t0 = self.t_last = time.monotonic()
        self.units = 0
        self.sums: dict[str, float] = {}
        self.n = 0
        self.tracker = (tracker or open_tracker(desc)) if enabled else Tracker(desc, {})

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step >= self.total

    def advance(self, units: float) -> None:
        self.units += units

    def emit(self, step: int, **metrics: float) -> None:
        """One line at `step` with `metrics`, throughput, elapsed and ETA; the tracker gets `metrics`
        and the throughput."""
        if not self.enabled:
            return
        now = time.monotonic()
        window = now - self.t_last
        rate = self.units / window if window > 0 else float("nan")
        done = step - self.start
        elapsed = now - self.t0
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        parts = [f"{self.desc} step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {_value(k, v)}" for k, v in metrics.items()]
        parts += [f"{rate:,.0f} {self.unit}/s", f"elapsed {clock(elapsed)}", f"ETA {clock(eta)}"]
        self.log.info(" | ".join(parts))
        self.tracker.log({**metrics, f"{self.unit}_per_s": rate}, step)
        self.t_last, self.units, self.last_step = now, 0, step

    def update(self, step: int, units: float = 0, **values: float) -> dict[str, float] | None:
        """Count a step's `units` and `values`; at a due step emit the window means and return them."""
        self.advance(units)
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.n += 1
        if not self.due(step):
            return None
        means = {k: v / max(self.n, 1) for k, v in self.sums.items()}
        self.emit(step, **means)
        self.sums, self.n = {}, 0
        return means

    def close(self) -> None:
        self.tracker.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def log_items(what: str, i: int, n: int, t0: float, logger: logging.Logger | None = None,
              detail: Mapping[str, Any] | str = "") -> None:
    """A progress line for item `i` (1-based) of `n` of a data job (languages aligned, vector models
    trained): elapsed since `t0` (``time.monotonic()``) and the ETA from the mean time per item."""
    elapsed = time.monotonic() - t0
    eta = elapsed / i * (n - i) if i > 0 else float("nan")
    extra = detail if isinstance(detail, str) else ", ".join(f"{k} {v}" for k, v in detail.items())
    (logger or log).info("%s %d/%d%s | elapsed %s | ETA %s", what, i, n, f" ({extra})" if extra else "",
                         clock(elapsed), clock(eta))


class Every:
    """``due()`` is True at most once per `seconds` (progress lines of data loops of unknown length)."""

    def __init__(self, seconds: float = 30.0) -> None:
        self.seconds, self.t0 = seconds, time.monotonic()
        self.last = self.t0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0
