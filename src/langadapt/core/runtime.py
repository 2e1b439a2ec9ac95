"""Glue for the workflow's thin scripts: logging to the rule's log file, threads, provenance.

Scripts do ``from langadapt.core.runtime import job``; ``job(snakemake)`` configures logging (file + stderr),
limits torch/BLAS threads to the rule's ``threads`` and returns a :class:`Job` with the parsed params.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langadapt.core.provenance import code_version, config_hash, package_versions
from langadapt.core.tracking import configure as configure_tracking


def prepend_pythonpath(directory: str | os.PathLike) -> None:
    """Put `directory` first on PYTHONPATH (if it exists and is not there yet), for this process and the
    jobs it starts: the workflow's conda envs get langadapt from the checkout's ``src/`` this way."""
    directory = os.fspath(directory)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if Path(directory).is_dir() and directory not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([directory, *parts])


@dataclass
class Job:
    """What a script needs from the `snakemake` object, in plain Python types."""

    snakemake: Any
    log: logging.Logger
    params: dict[str, Any] = field(default_factory=dict)

    def param_json(self, name: str) -> Any:
        """A param that the rule passed as canonical JSON."""
        return json.loads(getattr(self.snakemake.params, name))

    def provenance(self, spec: Any, **extra: Any) -> dict[str, Any]:
        return {
            "rule": self.snakemake.rule,
            "wildcards": dict(self.snakemake.wildcards.items()),
            "spec": spec,
            "config_hash": config_hash(spec),
            "code_version": code_version(),
            "packages": package_versions(),
            **extra,
        }


def setup_logging(log_path: str | os.PathLike | None, name: str = "langadapt", *,
                  history_path: str | os.PathLike | None = None) -> logging.Logger:
    """Log to stderr and `log_path` (replaced), and append to `history_path` when given."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    for path, mode in ((log_path, "w"), (history_path, "a")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if mode == "w":  # replaced, then appended to: torchrun's rank 0 appends to the same file
                Path(path).write_text("", encoding="utf-8")
                mode = "a"
            handlers.append(logging.FileHandler(path, mode=mode, encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logger = logging.getLogger(name)

    def log_uncaught(exc_type, exc, tb):  # noqa: ANN001
        # One clear line (the library's errors name file and value) plus the traceback, in the rule's log.
        logger.error("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))

    sys.excepthook = log_uncaught
    return logger


def resolve_device(name: str) -> Any:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)`` (ConfigError if bad)."""
    import torch

    from langadapt.core.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"bad device {name!r}: {exc}") from None


def set_threads(n: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import torch

        torch.set_num_threads(max(1, n))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


# Remote inputs (issue 16): the lock of resolved commits and the hub cache the download jobs filled. A compute
# job gets both from its download markers (a lock of its own remotes plus the cache path) and reads offline.
LOCK_ENV = "LANGADAPT_REMOTE_LOCK"
CACHE_ENV = "LANGADAPT_REMOTE_CACHE"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
# the local rules that may reach the network (rules/remote.smk; push_model: rules/report.smk)
NETWORK_RULES = ("preflight", "download", "push_model")
DOWNLOAD_MARKERS = "remote/downloads"  # results/{this}/{consumer}.json: a download job's marker


def is_network_rule(rule: str) -> bool:
    """A download/preflight rule, also when a module renamed it (``langsamp_download``)."""
    return any(rule == r or rule.endswith(f"_{r}") for r in NETWORK_RULES)


def go_online() -> None:
    """Lift the workflow's offline mode for this process (the preflight and download scripts); call it before
    huggingface_hub is imported, which reads HF_HUB_OFFLINE once."""
    for var in OFFLINE_VARS:
        os.environ.pop(var, None)


def go_offline() -> None:
    """No hub request from this process: the offline variables, also in an already imported huggingface_hub."""
    for var in OFFLINE_VARS:
        os.environ[var] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def pin_remote_inputs(inputs: list[str], log: logging.Logger) -> None:
    """Merge the download markers among `inputs` into one lock and point every hub access at it (and at the
    cache they were downloaded to): the job reads exactly the commits the markers name."""
    markers = [Path(f) for f in inputs if f"/{DOWNLOAD_MARKERS}/" in Path(f).as_posix() and f.endswith(".json")]
    if not markers:
        return
    remotes: dict[str, Any] = {}
    caches = set()
    for marker in markers:
        data = json.loads(marker.read_text(encoding="utf-8"))
        remotes.update(data["remotes"])
        caches.add(data["cache"])
    if len(caches) != 1:
        raise RuntimeError(f"download markers {markers} name different caches {sorted(caches)}")
    lock = Path(tempfile.mkdtemp(prefix="langadapt-lock-")) / "lock.json"
    lock.write_text(json.dumps({"version": 1, "remotes": remotes}), encoding="utf-8")
    os.environ[LOCK_ENV], os.environ[CACHE_ENV] = str(lock), caches.pop()
    log.info("remote inputs pinned: %s", ", ".join(f"{k} = {v['commit']}" for k, v in sorted(remotes.items())))


LOG_FILES_ENV = "LANGADAPT_LOG_FILES"


def run_name(snakemake: Any) -> str:
    """A job's name for trackers: the rule and its wildcard values (``pretrain/lapt``)."""
    values = [str(v) for v in dict(snakemake.wildcards.items()).values()]
    return "/".join([str(snakemake.rule), *values])


def job(snakemake: Any, run_dir: str | os.PathLike | None = None, resuming: bool = False) -> Job:
    """Set up the script of a rule: logging, threads, parsed params.

    `run_dir`: a training run directory (checkpoints; kept across attempts). Snakemake deletes a job's log
    before each attempt, so a training job also appends its log to ``{run_dir}.attempts.log`` beside it:
    after a preemption and a retry, that file holds the signal and checkpoint of the killed attempt and the
    resume of the next. `resuming`: the run directory holds a checkpoint of an earlier attempt
    (`langadapt.train.checkpoint.training_job` sets it).
    """
    log_file = snakemake.log[0] if len(snakemake.log) else None
    history = f"{os.fspath(run_dir).rstrip('/')}.attempts.log" if run_dir is not None else None
    log = setup_logging(log_file, f"langadapt.{snakemake.rule}", history_path=history)
    # torchrun workers: rank 0 appends its log to the same files (langadapt.train.launch)
    os.environ[LOG_FILES_ENV] = os.pathsep.join(os.fspath(p) for p in (log_file, history) if p)
    # read from the config here, never passed as a param: switching trackers reruns nothing
    configure_tracking((getattr(snakemake, "config", None) or {}).get("tracking"), run_name(snakemake))
    set_threads(int(snakemake.threads))
    log.info("rule %s, wildcards %s, threads %s%s", snakemake.rule, dict(snakemake.wildcards.items()),
             snakemake.threads, ", continuing an earlier attempt" if resuming else "")
    if not is_network_rule(str(snakemake.rule)):
        go_offline()
        pin_remote_inputs([str(f) for f in getattr(snakemake, "input", [])], log)
    return Job(snakemake=snakemake, log=log)
