"""Experiment trackers: one interface, one registry (``tracking:`` in the workflow config).

Every training loop (continued pretraining, realignment, hypernetwork training, fine-tuning) reports its
numbers through `langadapt.core.progress.Progress`, which writes the log line and feeds the tracker opened
here with the same values. The setting reaches a job through the environment (``LANGADAPT_TRACKING``, set
by `langadapt.core.runtime.job` from ``snakemake.config``, inherited by torchrun's workers), never through
a rule's params: switching trackers reruns nothing.

Backends: ``none`` (default), ``tensorboard`` (event files under ``dir/<run>``; ``torch.utils.tensorboard``),
``wandb``, ``trackio`` and ``mlflow`` (thin adapters over each library's init/log/finish; the library is
imported only when chosen, and a missing one is a ConfigError naming the package to install).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langadapt.core.errors import ConfigError
from langadapt.core.registry import Registry

log = logging.getLogger(__name__)

ENV = "LANGADAPT_TRACKING"
DEFAULTS: dict[str, Any] = {
    "backend": "none",
    "project": "langadapt",  # wandb / trackio project, mlflow experiment
    "dir": "results/tracking",  # tensorboard event files (one folder per run); wandb's local files
    "uri": None,  # mlflow tracking URI (None = MLFLOW_TRACKING_URI or ./mlruns)
}


class Tracker:
    """Receives ``{name: value}`` at a step; `close` flushes. The base class tracks nothing (``none``)."""

    def __init__(self, run: str, settings: Mapping[str, Any]) -> None:
        self.run, self.settings = run, dict(settings)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


TRACKERS: Registry[type[Tracker]] = Registry("tracking backend")
TRACKERS.register("none")(Tracker)


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"tracking backend needs the `{package}` package: pip install {package} ({e})") from None


@TRACKERS.register("tensorboard")
class TensorBoard(Tracker):
    """``SummaryWriter(dir/run)``: one scalar series per metric name."""

    def __init__(self, run: str, settings: Mapping[str, Any]) -> None:
        super().__init__(run, settings)
        tb = _require("torch.utils.tensorboard", "tensorboard")
        self.log_dir = Path(self.settings["dir"]) / run
        self.writer = tb.SummaryWriter(log_dir=str(self.log_dir))

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, float(value), global_step=step)

    def close(self) -> None:
        self.writer.close()


@TRACKERS.register("wandb")
class WandB(Tracker):
    """``wandb.init(project, name=run, dir)`` / ``run.log(metrics, step)`` / ``run.finish()``."""

    def __init__(self, run: str, settings: Mapping[str, Any]) -> None:
        super().__init__(run, settings)
        wandb = _require("wandb", "wandb")
        Path(self.settings["dir"]).mkdir(parents=True, exist_ok=True)
        self.handle = wandb.init(project=self.settings["project"], name=run, dir=self.settings["dir"],
                                 reinit="create_new")

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.handle.log(dict(metrics), step=step)

    def close(self) -> None:
        self.handle.finish()


@TRACKERS.register("trackio")
class Trackio(Tracker):
    """``trackio.init(project, name=run)`` / ``trackio.log(metrics, step)`` / ``trackio.finish()``."""

    def __init__(self, run: str, settings: Mapping[str, Any]) -> None:
        super().__init__(run, settings)
        self.trackio = _require("trackio", "trackio")
        self.trackio.init(project=self.settings["project"], name=run)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.trackio.log(dict(metrics), step=step)

    def close(self) -> None:
        self.trackio.finish()


@TRACKERS.register("mlflow")
class MLflow(Tracker):
    """``mlflow.start_run(run_name=run)`` in experiment `project` / ``log_metrics`` / ``end_run``."""

    def __init__(self, run: str, settings: Mapping[str, Any]) -> None:
        super().__init__(run, settings)
        self.mlflow = _require("mlflow", "mlflow")
        if self.settings.get("uri"):
            self.mlflow.set_tracking_uri(self.settings["uri"])
        self.mlflow.set_experiment(self.settings["project"])
        self.mlflow.start_run(run_name=run)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics({_mlflow_key(k): float(v) for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


def _mlflow_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def settings_of(value: Any, where: str = "tracking") -> dict[str, Any]:
    """The full tracking settings of a config value: a backend name or a mapping; ConfigError otherwise."""
    if value is None:
        value = "none"
    if isinstance(value, str):
        value = {"backend": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a backend name or a mapping, got {value!r}")
    if unknown := sorted(set(value) - set(DEFAULTS)):
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **value}
    TRACKERS.get(settings["backend"])  # unknown backend -> ConfigError listing the known ones
    return settings


#: the module each backend imports and the package that provides it
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
            "trackio": ("trackio", "trackio"), "mlflow": ("mlflow", "mlflow")}


def check_installed(settings: Mapping[str, Any], where: str = "tracking") -> None:
    """ConfigError naming the package when the chosen backend's library is not importable here (run by
    the config checks, before any job)."""
    import importlib.util

    module, package = PACKAGES.get(settings["backend"], (None, None))
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(f"{where}: backend {settings['backend']!r} needs the `{package}` package "
                          f"(pip install {package}, or pip install 'langadapt[tracking]')")


def configure(value: Any, run: str) -> dict[str, Any]:
    """Put the tracking settings and the job's run name into the environment (this process and its
    children, e.g. torchrun workers); return the settings."""
    settings = settings_of(value)
    os.environ[ENV] = json.dumps({**settings, "run": run})
    return settings


def open_tracker(name: str) -> Tracker:
    """The tracker of this job for a loop called `name` (run ``<job run>/<name>``); ``none`` when the job
    configured no tracking. A missing package is a ConfigError; a backend that fails to start (e.g. its
    server is unreachable) logs a warning and tracks nothing."""
    raw = os.environ.get(ENV)
    if not raw:
        return Tracker(name, DEFAULTS)
    settings = json.loads(raw)
    backend = settings.get("backend", "none")
    if backend == "none":
        return Tracker(name, settings)
    run = "/".join(p for p in (settings.get("run"), _slug(name)) if p)
    try:
        tracker = TRACKERS.get(backend)(run, settings)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a tracker is an observer: a failing service never stops training
        log.warning("tracking backend %s could not start (%s: %s); tracking nothing", backend, type(e).__name__, e)
        return Tracker(name, settings)
    log.info("tracking %s with %s", run, backend)
    return tracker


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-")
