"""The one fine-tuning loop of the classification tasks (sequence classification, NLI, token
classification): a step budget from epochs (or ``max_steps``), gradient accumulation over micro-batches,
gradient clipping, dev evaluation every ``eval_every`` steps (or at the end of each epoch), keeping the
weights of the best dev score, and optional early stopping after ``patience`` evaluations without
improvement. What differs between tasks — how a group of micro-batches becomes a loss, and the dev score —
comes in as two functions."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: backpropagates the loss of one optimizer step's micro-batches (lists of item indices) and returns its
#: value; None when the group carries no training signal (the step is skipped, no optimizer update)
GroupLoss = Callable[[list[list[int]]], float | None]


def step_budget(n_items: int, params: Mapping[str, Any]) -> int:
    """Optimizer steps: ``epochs`` x steps per epoch (micro-batches of ``batch_size``, ``grad_accum`` per
    step), capped by ``max_steps``."""
    steps_per_epoch = math.ceil(math.ceil(n_items / params["batch_size"]) / params["grad_accum"])
    total = steps_per_epoch * params["epochs"]
    return total if params.get("max_steps") is None else min(total, params["max_steps"])


def fine_tune(model: Any, n_items: int, group_loss: GroupLoss, dev_score: Callable[[], float],
              params: Mapping[str, Any], seed: int, desc: str, metric: str) -> dict[str, Any]:
    """Fine-tune `model` (in place) on `n_items` training items; return the state dict (on CPU) of the best
    dev score (ties: the earlier step). The last state is always a candidate.

    `params`: ``lr, weight_decay, batch_size, grad_accum, epochs, max_steps, max_grad_norm, eval_every`` and
    optionally ``patience`` and ``log_every`` (a progress line + tracker point every N steps: mean training
    loss, examples/s, ETA; `langadapt.core.progress`). Items are shuffled each epoch by a generator seeded
    with `seed`."""
    import torch
    from tqdm.auto import tqdm

    from langadapt.core.progress import Progress
    from langadapt.train.loop import adamw

    opt = adamw(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])  # fused where possible
    gen = torch.Generator().manual_seed(seed)
    total = step_budget(n_items, params)
    patience, eval_every = params.get("patience"), params["eval_every"]
    best = {"score": -1.0, "state": None, "step": 0}
    step, evaluated_at, stale = 0, -1, 0
    bar = tqdm(total=total, desc=f"{desc} fine-tune", unit="step", mininterval=5.0, leave=False)
    progress = Progress(f"{desc} fine-tune", total, params.get("log_every") or 10, unit="ex", logger=log)

    def dev_eval() -> None:
        nonlocal evaluated_at, stale
        evaluated_at = step
        score = dev_score()
        log.info("%s step %d/%d: dev %s %.4f", desc, step, total, metric, score)
        progress.tracker.log({f"dev_{metric}": score}, step)
        if score > best["score"]:
            best.update(score=score, step=step)
            best["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            stale = 0
        else:
            stale += 1
        model.train()

    def stop() -> bool:
        return step >= total or (patience is not None and stale >= patience)

    model.train()
    while not stop():
        order = torch.randperm(n_items, generator=gen).tolist()
        micro = [order[i : i + params["batch_size"]] for i in range(0, n_items, params["batch_size"])]
        for start in range(0, len(micro), params["grad_accum"]):
            group = micro[start : start + params["grad_accum"]]
            loss = group_loss(group)
            if loss is None:
                continue
            if params["max_grad_norm"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), params["max_grad_norm"])
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            progress.update(step, sum(len(b) for b in group), loss=loss)
            if eval_every is not None and step % eval_every == 0:
                dev_eval()
            if stop():
                break
        if eval_every is None and evaluated_at != step:
            dev_eval()  # end of epoch
    bar.close()
    if evaluated_at != step:
        dev_eval()
    progress.close()
    log.info("%s: best dev %s %.4f at step %d of %d", desc, metric, best["score"], best["step"], step)
    assert best["state"] is not None
    return best["state"]
