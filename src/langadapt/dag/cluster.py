"""Which partition a job goes to on a Slurm cluster, decided while the DAG is built so that a dry run shows
it: a job that requests GPUs (its `gpu` resource, from the config's ``resources.gpus``) gets the profile's
GPU partition, every other job the profile's default partition. Both names are site values of the
profile's ``default-resources`` (``slurm_partition``, ``slurm_gpu_partition``); the rules never name a
partition, so this holds for every rule, module-renamed ones (``langsamp_pretrain``) included."""

from __future__ import annotations

import ast
from typing import Any

#: the profile's default resource naming the GPU partition
GPU_PARTITION = "slurm_gpu_partition"


def profile_value(default_resources: Any, name: str) -> str | None:
    """The value of default resource `name` as the profile or ``--default-resources`` gave it (a quoted or
    bare string), or None when it is not set. `default_resources`: Snakemake's
    ``workflow.resource_settings.default_resources`` (a mapping of name to resource with a ``raw`` value)."""
    if not default_resources or name not in default_resources:
        return None
    raw = getattr(default_resources[name], "raw", default_resources[name])
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        return str(value) if value not in (None, "") else None
    return str(raw)


def gpu_resources(gpus: int, default_resources: Any) -> dict[str, Any]:
    """A rule's ``gpu`` resource and, when it asks for GPUs and the profile names a GPU partition, its
    ``slurm_partition`` (otherwise the job keeps the profile's default partition)."""
    out: dict[str, Any] = {"gpu": int(gpus)}
    partition = profile_value(default_resources, GPU_PARTITION)
    if gpus > 0 and partition:
        out["slurm_partition"] = partition
    return out
