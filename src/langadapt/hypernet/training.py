"""HyperOFA's hypernetwork (hyperofa.txt, Sec. 3.2-3.4, App. A): external word vectors -> token embeddings.

Training data (Sec. 3.3-3.4): every non-special source piece ``i`` that matches at least one word of the
external (aligned, multilingual) word vectors gives one pair ``(W_{s_i}, F_i)``: the *set* of vectors of the
words that contain the piece (`piece_word_sets`) and the piece's row of the SVD-factorized source
embeddings (`langadapt.models.factorization.factorize`, ``dim`` = D'). Pieces without a matched word are
left out (footnote 5). The network (`HYPERNETS`: ``bilstm``, the paper's; ``mlp``, a mean-pool baseline;
``set_transformer``, the paper's "Setformer" ablation of App. A.1) maps a set to coordinates and is trained
with `hyperofa_loss` under the paper's augmentation (every set shuffled, half of them cut to 50-100%).
`langadapt.vocab.methods.hyperofa` then predicts new target pieces (Sec. 3.5).

Output directory (``results/hypernet/{base}``, `train_hypernetwork`): ``hypernet.safetensors`` (weights),
``factorization.safetensors`` (``primitives [dim, d]``: predicted coordinates @ primitives = embedding
rows; ``coordinate_scale [dim]``), ``hypernet.json`` (kind, sizes, config, word vectors, metrics incl. the
held-out cosine against the mean-embedding baseline and the training time), ``loss.csv`` (one row per
epoch) and ``pieces.csv`` (``token_id, piece, n_words, split``).

The networks are in `langadapt.hypernet.nets`; the word vectors it reads are a `langadapt.vectors` directory.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from langadapt.core.atomic import atomic_dir
from langadapt.core.errors import DataError
from langadapt.core.progress import Progress
from langadapt.hypernet.nets import HYPERNETS, build_hypernetwork
from langadapt.hypernet.sets import WordSets, choose_words, collate, hyperofa_loss, piece_word_sets, predict
from langadapt.hypernet.settings import resolve_cfg

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- matching


# ------------------------------------------------------------------------------------ sets -> batches


# ------------------------------------------------------------------------------------------- training
def _split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = min(n - 1, max(1, round(fraction * n))) if fraction > 0 else 0
    return perm[n_held:], perm[:n_held]


def _mean_cosine(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(F.cosine_similarity(pred, target, dim=-1).mean()) if len(target) else float("nan")


@dataclass
class FitResult:
    net: nn.Module  # best epoch's weights (patience > 0) or the last epoch's, eval mode, on the CPU
    model_params: dict[str, Any]
    rows: list[dict[str, float]]  # one per epoch (loss.csv)
    metrics: dict[str, Any]
    train_idx: torch.Tensor
    heldout_idx: torch.Tensor
    heldout_pred: torch.Tensor  # [n_heldout, d_out]


def fit_hypernetwork(vectors: torch.Tensor, sets: Sequence[np.ndarray], targets: torch.Tensor,
                     cfg: dict | None = None) -> FitResult:
    """Train a hypernetwork on pairs (set of word vectors ``vectors[sets[k]]``, ``targets[k]``).

    `vectors` ``[n_words, d_in]``; `sets` one non-empty array of word indices per target row. A seeded
    ``heldout_fraction`` of the pairs is held out: it is evaluated after every epoch (loss, cosine), picks
    the best epoch and stops training after ``patience`` epochs without improvement. Adam with the paper's
    step decay of the learning rate. Metrics: ``heldout_cosine`` (mean cosine of predicted and true
    held-out targets, HyperOFA Fig. 2), ``baseline_cosine`` (the same for the mean training target),
    ``train_cosine`` (up to 2,000 training pairs), sizes, epochs, ``train_seconds``.
    """
    cfg = resolve_cfg(cfg)
    if len(sets) != len(targets):
        raise ValueError(f"{len(sets)} sets for {len(targets)} targets")
    if len(sets) < 2:
        raise DataError(f"need at least 2 matched pieces to train the hypernetwork, got {len(sets)}")
    if any(len(s) == 0 for s in sets):
        raise ValueError("every set of matched words needs at least one word")
    from langadapt.core.runtime import resolve_device

    device = resolve_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    used = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in sets]))  # only these go to `device`
    remap = np.full(len(vectors), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    sets = [remap[np.asarray(s, dtype=np.int64)] for s in sets]
    vectors, targets = vectors[torch.from_numpy(used)].float().to(device), targets.float()
    train_idx, held_idx = _split(len(sets), cfg["heldout_fraction"], cfg["seed"])
    net, model_params = build_hypernetwork(cfg["kind"], vectors.shape[1], targets.shape[1], cfg)
    if hasattr(net, "init_output"):  # start at the mean training target (not in the paper)
        net.init_output(targets[train_idx].mean(0))
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg["lr_decay_epochs"], gamma=cfg["lr_decay"])
    held_sets = [sets[i] for i in held_idx.tolist()]
    held_y = targets[held_idx]
    bs = min(cfg["batch_size"], len(train_idx))
    rows: list[dict[str, float]] = []
    best: tuple[float, int, dict | None] = (math.inf, 0, None)
    steps, start = 0, time.perf_counter()
    per_epoch = len(train_idx) // bs + (len(train_idx) % bs >= 2)  # a last batch of 1 pair is skipped
    progress = Progress("hypernetwork", per_epoch * cfg["epochs"], cfg["log_every"], unit="pairs", logger=log)
    for epoch in range(1, cfg["epochs"] + 1):
        order = train_idx[torch.from_numpy(rng.permutation(len(train_idx)))].tolist()
        means, n_batches = _train_epoch(net, opt, order, sets, vectors, targets, cfg, rng, device, bs, epoch,
                                        progress, steps)
        steps += n_batches
        row = {"epoch": epoch, "steps": steps, "lr": opt.param_groups[0]["lr"]}
        row |= dict(zip(("loss", "contrastive", "l1"), means, strict=True))
        sched.step()
        if len(held_sets):
            ho_loss, ho_cos = _heldout(net, vectors, held_sets, held_y, cfg, device, bs)
            row |= {"heldout_loss": ho_loss, "heldout_cosine": ho_cos}
            if ho_loss < best[0]:
                best = (ho_loss, epoch, copy.deepcopy(net.state_dict()) if cfg["patience"] else None)
        row["elapsed_s"] = time.perf_counter() - start
        rows.append(row)
        log.info("hypernetwork epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        progress.tracker.log({k: v for k, v in row.items() if k.startswith("heldout_")}, steps)
        if cfg["patience"] and len(held_sets) and epoch - best[1] >= cfg["patience"]:
            break
    progress.close()
    seconds = time.perf_counter() - start
    if best[2] is not None:
        net.load_state_dict(best[2])
    pred_ho = predict(net, vectors, held_sets, cfg, device=device) if len(held_sets) else torch.zeros(0, 0)
    sample = train_idx[: min(2000, len(train_idx))]
    pred_tr = predict(net, vectors, [sets[i] for i in sample.tolist()], cfg, device=device)
    mean_y = targets[train_idx].mean(0, keepdim=True).expand(len(held_idx), -1)
    metrics = {
        "n_pairs": len(sets),
        "n_train": len(train_idx),
        "n_heldout": len(held_idx),
        "heldout_cosine": _mean_cosine(pred_ho, held_y),
        "baseline_cosine": _mean_cosine(mean_y, held_y),
        "train_cosine": _mean_cosine(pred_tr, targets[sample]),
        "final_loss": rows[-1]["loss"] if rows else float("nan"),
        "epochs_run": len(rows),
        "best_epoch": best[1] if best[2] is not None else len(rows),
        "steps": steps,
        "n_parameters": sum(p.numel() for p in net.parameters()),
        "device": str(device),
        "train_seconds": seconds,
    }
    return FitResult(net.cpu().eval(), model_params, rows, metrics, train_idx, held_idx, pred_ho)


def _train_epoch(net: nn.Module, opt: torch.optim.Optimizer, order: list[int], sets: Sequence[np.ndarray],
                 vectors: torch.Tensor, targets: torch.Tensor, cfg: dict[str, Any], rng: np.random.Generator,
                 device: Any, bs: int, epoch: int, progress: Progress, step0: int) -> tuple[list[float], int]:
    """One pass over the training pairs in `order`: (mean loss, contrastive and L1 parts; optimizer steps).
    Each batch is counted by `progress` (global step `step0` + batches so far)."""
    net.train()
    sums = np.zeros(3)
    n_batches = 0
    for b0 in range(0, len(order), bs):
        batch = order[b0 : b0 + bs]
        if len(batch) < 2:  # a contrastive loss needs negatives
            continue
        idx, mask = collate([choose_words(sets[i], cfg, rng) for i in batch])
        pred = net(vectors[idx.to(device)], mask.to(device))
        loss, l_c, l_1 = hyperofa_loss(pred, targets[batch].to(device), cfg["lambda"], cfg["temperature"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sums += [loss.item(), l_c.item(), l_1.item()]
        n_batches += 1
        progress.update(step0 + n_batches, len(batch), loss=loss.item(), contrastive=l_c.item(), l1=l_1.item())
        if not math.isfinite(loss.item()):
            raise DataError(f"hypernetwork loss is not finite in epoch {epoch}; lower lr (now {cfg['lr']})")
    return (sums / max(n_batches, 1)).tolist(), n_batches


def _heldout(net: nn.Module, vectors: torch.Tensor, held_sets: list[np.ndarray], held_y: torch.Tensor,
             cfg: dict[str, Any], device: Any, bs: int) -> tuple[float, float]:
    """(loss, mean cosine) on the held-out pairs; the loss over batches of about the training size, so that
    it is comparable with the training loss."""
    pred_ho = predict(net, vectors, held_sets, cfg, device=device)
    parts = math.ceil(len(held_y) / bs)
    ho_loss = float(np.mean([hyperofa_loss(p, y, cfg["lambda"], cfg["temperature"])[0].item() for p, y in
                             zip(pred_ho.tensor_split(parts), held_y.tensor_split(parts), strict=True)]))
    return ho_loss, _mean_cosine(pred_ho, held_y)


def train_hypernetwork(source_model_dir: Path, word_vectors_dir: Path, out_dir: Path, cfg: dict | None,
                       word_vectors_name: str | None = None) -> dict:
    """Train the configured hypernetwork from external word vectors to a source model's token embeddings.

    `word_vectors_dir` is a `langadapt.vectors.base` directory (``results/word_vectors/{name}``). The
    source embeddings ``E [V, d]`` are factorized (``dim``); pieces are matched to words
    (`piece_word_sets`); `fit_hypernetwork` trains on the matched non-special source pieces. Besides the
    metrics of `fit_hypernetwork` (coordinate space), ``heldout_cosine_embedding`` /
    ``baseline_cosine_embedding`` compare held-out rows of ``E`` with the predictions mapped back by the
    primitives and with the mean training row, and ``factorization_cosine`` is the ceiling a perfect
    prediction of the ``dim`` coordinates reaches. Writes `out_dir` atomically (module docstring);
    returns the metrics.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from langadapt.models.factorization import factorize
    from langadapt.vectors.base import load_word_vectors as load_vector_dir
    from langadapt.vectors.base import read_meta

    cfg = resolve_cfg(cfg)
    word_vectors_dir, source_model_dir = Path(word_vectors_dir), Path(source_model_dir)
    wv = load_vector_dir(word_vectors_dir)
    wv_meta = read_meta(word_vectors_dir)
    if not source_model_dir.is_dir():
        raise DataError(f"source model directory {source_model_dir} does not exist")
    tok = AutoTokenizer.from_pretrained(str(source_model_dir))
    emb = AutoModelForMaskedLM.from_pretrained(str(source_model_dir)).get_input_embeddings().weight
    emb = emb.detach().float()
    coords, prims = factorize(emb, cfg["dim"])
    if cfg["coordinates"] == "u":  # U * sqrt(V): unit RMS per coordinate (the losses are scale-free)
        scale = coords.norm(dim=0).clamp(min=1e-12) / math.sqrt(len(coords))
    else:  # U S / rms(U S): one global factor
        scale = coords.pow(2).mean().sqrt().clamp(min=1e-12).expand(cfg["dim"]).clone()
    t0 = time.perf_counter()
    sets = piece_word_sets(wv.words, tok, match=cfg["match"], boundary_marker=wv_meta.get("boundary_marker"))
    sets = _drop_out_of_range(sets, len(emb))
    match_seconds = time.perf_counter() - t0
    n_candidates = len(set(tok.get_vocab().values()) - set(tok.all_special_ids))
    if len(sets) < 2:
        raise DataError(
            f"{len(sets)} of the {n_candidates} source pieces of {source_model_dir} match a word of "
            f"{word_vectors_dir} ({len(wv)} words, match={cfg['match']}); the hypernetwork needs at least 2"
        )
    targets = coords / scale
    primitives = scale[:, None] * prims  # predicted coordinates @ primitives = embedding rows
    ids = torch.from_numpy(sets.ids)
    fit = fit_hypernetwork(torch.from_numpy(wv.vectors), sets.as_lists(), targets[ids], cfg)
    held_ids, train_ids = ids[fit.heldout_idx], ids[fit.train_idx]
    true_rows = emb[held_ids]
    metrics = {
        **fit.metrics,
        "heldout_cosine_embedding": _mean_cosine(fit.heldout_pred @ primitives, true_rows) if len(held_ids)
        else math.nan,
        "baseline_cosine_embedding": _mean_cosine(emb[train_ids].mean(0, keepdim=True).expand_as(true_rows),
                                                  true_rows),
        "factorization_cosine": _mean_cosine(coords[held_ids] @ prims, true_rows),
        "n_source_pieces": n_candidates,
        "coverage": len(sets) / max(n_candidates, 1),
        "median_words_per_piece": float(np.median(sets.sizes())),
        "match_seconds": match_seconds,
    }
    meta = {
        "format": 2,
        "kind": cfg["kind"],
        "model_params": fit.model_params,
        "cfg": cfg,
        "dim": cfg["dim"],
        "hidden_size": int(emb.shape[1]),
        "source_model": str(source_model_dir),
        "source_vocab_size": int(emb.shape[0]),
        "word_vectors": {"name": word_vectors_name or word_vectors_dir.name, "path": str(word_vectors_dir),
                         "dim": wv.dim, "n": len(wv), "boundary_marker": wv_meta.get("boundary_marker")},
        "metrics": metrics,
    }
    split = {int(i): "train" for i in fit.train_idx} | {int(i): "heldout" for i in fit.heldout_idx}
    inv = {i: p for p, i in tok.get_vocab().items()}
    sizes = sets.sizes()
    with atomic_dir(Path(out_dir)) as tmp:
        save_file({k: v.contiguous() for k, v in fit.net.state_dict().items()}, str(tmp / "hypernet.safetensors"))
        save_file({"primitives": primitives.contiguous(), "coordinate_scale": scale.contiguous()},
                  str(tmp / "factorization.safetensors"))
        (tmp / "hypernet.json").write_text(json.dumps(meta, indent=2) + "\n")
        _write_csv(tmp / "loss.csv", list(fit.rows[0]) if fit.rows else ["epoch"], fit.rows)
        _write_csv(tmp / "pieces.csv", ["token_id", "piece", "n_words", "split"],
                   [{"token_id": int(t), "piece": inv.get(int(t), ""), "n_words": int(sizes[k]),
                     "split": split[k]} for k, t in enumerate(sets.ids)])
    log.info("hypernetwork %s: %s", out_dir, metrics)
    return metrics


def _drop_out_of_range(sets: WordSets, n_rows: int) -> WordSets:
    """Tokenizer ids beyond the embedding matrix (added tokens of a padded vocabulary) are not targets."""
    keep = sets.ids < n_rows
    if keep.all():
        return sets
    lists = [s for s, k in zip(sets.as_lists(), keep, strict=True) if k]
    sizes = np.array([len(s) for s in lists], dtype=np.int64)
    members = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    return WordSets(sets.ids[keep], np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), members)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------------------------------- loading
@dataclass
class TrainedHypernet:
    """A `train_hypernetwork` directory, loaded: the network, ``hypernet.json`` and the primitives."""

    net: nn.Module
    meta: dict[str, Any]
    primitives: torch.Tensor  # [dim, d]: coordinates @ primitives = embedding rows

    @property
    def cfg(self) -> dict[str, Any]:
        return self.meta["cfg"]

    def embeddings(self, vectors: torch.Tensor, sets: Sequence[np.ndarray], batch_size: int = 512,
                   device: str = "cpu") -> torch.Tensor:
        """Embedding rows ``[len(sets), d]`` predicted from sets of word indices into `vectors`."""
        from langadapt.core.runtime import resolve_device

        dev = resolve_device(device)
        self.net.to(dev)
        try:
            coords = predict(self.net, vectors.float(), sets, self.cfg, batch_size=batch_size, device=dev)
        finally:
            self.net.cpu()
        return coords @ self.primitives if len(sets) else torch.zeros(0, self.primitives.shape[1])


def load_trained_hypernet(hypernet_dir: Path) -> TrainedHypernet:
    """Network (eval mode), metadata and primitives of a `train_hypernetwork` output directory."""
    from safetensors.torch import load_file

    hypernet_dir = Path(hypernet_dir)
    meta_path = hypernet_dir / "hypernet.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path} is missing (not a hypernetwork directory)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != 2:
        raise DataError(f"{meta_path}: hypernetwork format {meta.get('format', 1)}, expected 2 (rerun the "
                        f"hypernet rule)")
    net = HYPERNETS.get(meta["kind"])(**meta["model_params"])
    net.load_state_dict(load_file(str(hypernet_dir / "hypernet.safetensors")))
    prims = load_file(str(hypernet_dir / "factorization.safetensors"))["primitives"]
    return TrainedHypernet(net.eval(), meta, prims.float())


def load_hypernetwork(hypernet_dir: Path) -> nn.Module:
    """The trained network of a `train_hypernetwork` output directory, in eval mode."""
    return load_trained_hypernet(hypernet_dir).net


def hypernet_job(spec: dict, model_dir: Path, word_vectors_dir: Path, out_dir: Path,
                 threads: int = 1, log: logging.Logger = log) -> dict:
    """The `hypernet` rule: HyperOFA's hypernetwork from external word vectors (``results/word_vectors/
    {spec["word_vectors"]}``) to the base model's factorized token embeddings (`langadapt.hypernet.training`)."""
    metrics = train_hypernetwork(model_dir, word_vectors_dir, out_dir, spec.get("train", {}),
                                 word_vectors_name=spec.get("word_vectors"))
    log.info("hypernetwork: %s", metrics)
    return metrics
