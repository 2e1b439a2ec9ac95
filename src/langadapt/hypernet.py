"""HyperOFA's hypernetwork, walking-skeleton version: word vectors -> source token embeddings.

HyperOFA (hyperofa.txt, Sec. 3.3-3.4) trains a network that maps external word vectors to the PLM's
token embedding space on source tokens, then predicts embeddings of new target tokens. This module
implements the training half with the simplest matching: a word ``w`` of the word-vector vocabulary is
paired with the source piece ``"▁" + w`` when that is a single (non-special) piece, so each token has one
matched word. The network interface already takes a *set* of matched vectors per token
(``[batch, n_words, d_in]`` + mask), as the paper's BiLSTM does; more kinds register in `HYPERNETS`.

Not yet (later issue): the BiLSTM kind, subword matching of all words containing a token, SVD-factorized
targets (Sec. 3.2), and the init method that applies a trained hypernetwork to target tokens.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from langadapt.atomic import atomic_dir
from langadapt.errors import ConfigError, DataError
from langadapt.registry import Registry

log = logging.getLogger(__name__)

HYPERNETS: Registry[type[nn.Module]] = Registry("hypernetwork")

#: Training configuration (keys of `cfg`) and defaults; paper constants cite HyperOFA (hyperofa.txt).
DEFAULT_CFG: dict[str, Any] = {
    "kind": "mlp",  # registered in HYPERNETS (the paper's is a BiLSTM, Sec. 3.4; later issue)
    "hidden": 256,  # walking-skeleton size (paper: BiLSTM hidden 800/1600, Appendix Table 6)
    "layers": 2,  # hidden layers of the MLP (paper: 2-4 BiLSTM layers, Table 6)
    "dropout": 0.4,  # HyperOFA App. A.2/A.3: "a dropout rate of 0.4"
    "lr": 1e-4,  # HyperOFA App. A.2: learning rate starts at 1e-4 (Adam; we use AdamW, no decay)
    "weight_decay": 0.01,
    "steps": 2000,
    "batch_size": 128,
    "lambda": 0.1,  # HyperOFA App. A.2: "lambda = 0.1 for all hypernetworks" (weight of L_c, Sec. 3.4)
    "temperature": 0.25,  # HyperOFA App. A.2: T = 0.25 for XLM-R (multi); 0.5 for RoBERTa (mono)
    "heldout_fraction": 0.1,
    "seed": 0,
    "device": "cpu",
}
_FASTTEXT_BUCKET = 20000  # hashed character n-gram rows; small to keep the model file small


@HYPERNETS.register("mlp")
class MLPHypernet(nn.Module):
    """Mean of the matched word vectors, then an MLP ``d_in -> hidden (x layers) -> d_out`` (GELU)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 256, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        dims = [d_in] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        blocks.append(nn.Linear(dims[-1], d_out))
        self.net = nn.Sequential(*blocks)

    @torch.no_grad()
    def init_output(self, mean: torch.Tensor) -> None:
        """Start from the mean target embedding: last bias = `mean`, last weight scaled down."""
        last = self.net[-1]
        last.bias.copy_(mean)
        last.weight.mul_(0.1)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`vectors` ``[B, n, d_in]`` (or ``[B, d_in]``), `mask` ``[B, n]`` (True = real) -> ``[B, d_out]``."""
        if vectors.dim() == 2:
            return self.net(vectors)
        if mask is None:
            pooled = vectors.mean(1)
        else:
            m = mask.to(vectors.dtype).unsqueeze(-1)
            pooled = (vectors * m).sum(1) / m.sum(1).clamp(min=1)
        return self.net(pooled)


def resolve_cfg(cfg: dict | None) -> dict[str, Any]:
    """`DEFAULT_CFG` updated with `cfg`; ConfigError on unknown keys or out-of-range values."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULT_CFG))
    if unknown:
        raise ConfigError(f"hypernetwork config: unknown key(s) {unknown}; known: {sorted(DEFAULT_CFG)}")
    out = {**DEFAULT_CFG, **cfg}
    HYPERNETS.get(out["kind"])
    if not 0.0 <= out["lambda"] <= 1.0:
        raise ConfigError(f"hypernetwork config: lambda must be in [0, 1], got {out['lambda']}")
    if not 0.0 <= out["heldout_fraction"] < 1.0:
        raise ConfigError(
            f"hypernetwork config: heldout_fraction must be in [0, 1), got {out['heldout_fraction']}"
        )
    for key in ("temperature", "lr"):
        if out[key] <= 0:
            raise ConfigError(f"hypernetwork config: {key} must be > 0, got {out[key]}")
    for key in ("steps", "batch_size", "hidden"):
        if int(out[key]) < 1:
            raise ConfigError(f"hypernetwork config: {key} must be >= 1, got {out[key]}")
    return out


# fastText >= 0.9.3 allocates its input matrix without zeroing it (intgemm::AlignedVector) and, with
# one thread, randomly initializes only the first tenth of it (`DenseMatrix::uniform`): the rest is
# whatever the allocator returns. Fresh mmap'd pages are zero (the 0.9.2 behaviour), reused heap memory
# is garbage: results then vary from call to call and training may stop with "Encountered NaN.".
# Training therefore runs in a fresh interpreter whose large allocations are always mmap'd.
_FASTTEXT_SCRIPT = """
import json, sys
import fasttext
a = json.loads(sys.argv[1])
model = fasttext.train_unsupervised(a["input"], **a["kwargs"])
model.save_model(a["output"])
print(len(model.words))
"""


def build_word_vectors(
    texts: list[str],
    out_path: Path,
    dim: int = 100,
    epochs: int = 5,
    min_count: int = 2,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, int]:
    """Train fastText skipgram word vectors on `texts` and save the binary model to `out_path` (atomic).

    With ``threads=1`` the result is reproducible (fastText seeds its generators with fixed values; see
    the note above `_FASTTEXT_SCRIPT`); `seed` shuffles the order of the lines. Words are whitespace
    tokens (no segmentation for scripts written without spaces). ``bucket`` is 20,000 hashed character
    n-gram rows to keep the model small. Returns ``{"words": vocabulary size, "dim": dim}``.
    """
    lines = [t.strip() for t in texts if t.strip()]
    if not lines:
        raise DataError(f"no text to train word vectors for {out_path}")
    random.Random(seed).shuffle(lines)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f".{out_path.name}.tmp-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        kwargs = dict(
            model="skipgram", dim=dim, epoch=epochs, minCount=min_count, bucket=_FASTTEXT_BUCKET,
            thread=threads, verbose=0,
        )  # fmt: skip
        job = {"input": str(corpus), "output": str(Path(tmp) / "vectors.bin"), "kwargs": kwargs}
        proc = subprocess.run(
            [sys.executable, "-c", _FASTTEXT_SCRIPT, json.dumps(job)],
            env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise DataError(f"fastText training for {out_path} failed ({len(lines)} lines): {reason}")
        os.replace(Path(tmp) / "vectors.bin", out_path)
    return {"words": int(proc.stdout.split()[-1]), "dim": dim}


def load_word_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """Words and vectors ``[n, d]`` from a fastText ``.bin`` model or a word2vec text file (``.vec``/``.txt``).

    The text format is ``word v1 ... vd`` per line, optionally after a ``n d`` header line.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"word-vector file {path} is missing or empty")
    if path.suffix in (".vec", ".txt"):
        words, rows = [], []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.rstrip("\n").split(" ")
                if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue
                if not line.strip():
                    continue
                try:
                    rows.append([float(v) for v in parts[1:]])
                except ValueError:
                    raise DataError(f"{path}:{lineno}: malformed word-vector line") from None
                if rows and len(rows[-1]) != len(rows[0]):
                    raise DataError(f"{path}:{lineno}: {len(rows[-1])} values, expected {len(rows[0])}")
                words.append(parts[0])
        vecs = np.asarray(rows, dtype=np.float32)
    else:
        import fasttext

        try:
            model = fasttext.load_model(str(path))
        except ValueError as e:
            raise DataError(f"cannot read fastText model {path}: {e}") from None
        words = list(model.words)
        vecs = np.stack([model.get_word_vector(w) for w in words]) if words else np.zeros((0, 0), np.float32)
    if not words:
        raise DataError(f"word-vector file {path} contains no words")
    return words, vecs


def match_words(words: list[str], vocab: dict[str, int], special_ids: set[int]) -> list[tuple[int, int]]:
    """``(word index, token id)`` for every word ``w`` whose ``"▁" + w`` is a single non-special piece."""
    pairs = []
    for i, w in enumerate(words):
        if not w or any(c.isspace() for c in w):
            continue
        tid = vocab.get("▁" + w)
        if tid is not None and tid not in special_ids:
            pairs.append((i, tid))
    return pairs


def hyperofa_loss(
    pred: torch.Tensor, target: torch.Tensor, lam: float, tau: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HyperOFA Sec. 3.4: ``lam * L_c + (1 - lam) * L_L1``; returns (loss, L_c, L_L1).

    ``L_c`` is InfoNCE over the batch: for prediction i the positive is target i and the other targets
    are negatives, with cosine similarity / `tau`. ``L_L1`` is the L1 distance normalised by the
    dimension (mean absolute error per coordinate), to keep it on the scale of the embedding values.
    """
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / tau
    l_c = F.cross_entropy(logits, torch.arange(len(pred), device=pred.device))
    l_1 = (pred - target).abs().mean()
    return lam * l_c + (1 - lam) * l_1, l_c, l_1


def _split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = min(n - 1, max(1, round(fraction * n))) if fraction > 0 else 0
    return perm[n_held:], perm[:n_held]


@torch.no_grad()
def _mean_cosine(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(F.cosine_similarity(pred, target, dim=-1).mean()) if len(target) else float("nan")


def fit_hypernetwork(
    x: torch.Tensor, y: torch.Tensor, cfg: dict | None = None
) -> tuple[nn.Module, list[dict[str, float]], dict[str, Any]]:
    """Train a hypernetwork on pairs ``x [N, d_in]`` (or ``[N, n, d_in]``) -> ``y [N, d_out]``.

    Networks with an ``init_output`` method (the MLP) start at the mean training embedding (not in the
    paper; it only sets the starting point). Returns (network in eval mode, per-step loss rows, metrics). Metrics: ``heldout_cosine`` (mean
    cosine of predicted vs true held-out embeddings), ``baseline_cosine`` (same for predicting the mean
    training embedding), ``train_cosine``, sizes, ``final_loss`` and ``train_seconds``.
    """
    cfg = resolve_cfg(cfg)
    if len(x) < 2:
        raise DataError(f"need at least 2 training pairs for the hypernetwork, got {len(x)}")
    torch.manual_seed(cfg["seed"])
    device = torch.device(cfg["device"])
    x, y = x.float(), y.float()
    train_idx, held_idx = _split(len(x), cfg["heldout_fraction"], cfg["seed"])
    net = HYPERNETS.get(cfg["kind"])(
        d_in=x.shape[-1],
        d_out=y.shape[-1],
        hidden=cfg["hidden"],
        layers=cfg["layers"],
        dropout=cfg["dropout"],
    )
    if hasattr(net, "init_output"):  # start at the mean-embedding baseline
        net.init_output(y[train_idx].mean(0))
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    bs = min(int(cfg["batch_size"]), len(train_idx))
    order, pos, rows = train_idx[torch.randperm(len(train_idx), generator=gen)], 0, []
    start = time.perf_counter()
    net.train()
    for step in range(1, int(cfg["steps"]) + 1):
        if pos + bs > len(order):  # new epoch
            order, pos = train_idx[torch.randperm(len(train_idx), generator=gen)], 0
        batch = order[pos : pos + bs]
        pos += bs
        pred = net(x[batch].to(device))
        loss, l_c, l_1 = hyperofa_loss(pred, y[batch].to(device), cfg["lambda"], cfg["temperature"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        rows.append({"step": step, "loss": loss.item(), "contrastive": l_c.item(), "l1": l_1.item()})
        if not math.isfinite(rows[-1]["loss"]):
            raise DataError(f"hypernetwork loss is not finite at step {step}; lower lr (now {cfg['lr']})")
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        pred_tr = net(x[train_idx].to(device)).cpu()
        pred_ho = net(x[held_idx].to(device)).cpu() if len(held_idx) else torch.zeros(0, y.shape[-1])
    mean_emb = y[train_idx].mean(0, keepdim=True).expand(len(held_idx), -1)
    metrics = {
        "n_pairs": len(x),
        "n_train": len(train_idx),
        "n_heldout": len(held_idx),
        "heldout_cosine": _mean_cosine(pred_ho, y[held_idx]),
        "baseline_cosine": _mean_cosine(mean_emb, y[held_idx]),
        "train_cosine": _mean_cosine(pred_tr, y[train_idx]),
        "final_loss": rows[-1]["loss"],
        "train_seconds": seconds,
    }
    return net.cpu(), rows, metrics


def train_hypernetwork(source_model_dir: Path, word_vectors_path: Path, out_dir: Path, cfg: dict) -> dict:
    """Train the configured hypernetwork from word vectors to a source model's token embeddings.

    Pairs: (vector of word ``w``, source embedding of piece ``"▁" + w``) for every word whose ``"▁" + w``
    is a single non-special source piece (`match_words`); split train/held-out by a seeded permutation.
    Writes `out_dir` atomically: ``hypernet.safetensors`` (weights), ``hypernet.json`` (kind, sizes,
    config, metrics, inputs), ``loss.csv`` (``step, loss, contrastive, l1``) and ``pairs.csv``
    (``word, token_id, split``). Returns the metrics of `fit_hypernetwork`.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    cfg = resolve_cfg(cfg)
    word_vectors_path, source_model_dir = Path(word_vectors_path), Path(source_model_dir)
    words, vecs = load_word_vectors(word_vectors_path)
    if not source_model_dir.is_dir():
        raise DataError(f"source model directory {source_model_dir} does not exist")
    tok = AutoTokenizer.from_pretrained(str(source_model_dir))
    pairs = match_words(words, dict(tok.get_vocab()), set(tok.all_special_ids))
    if not pairs:
        raise DataError(
            f"no word of {word_vectors_path} ({len(words)} words) is a single '▁word' piece of the source "
            f"tokenizer in {source_model_dir}"
        )
    model = AutoModelForMaskedLM.from_pretrained(str(source_model_dir))
    emb = model.get_input_embeddings().weight.detach().float()
    x = torch.from_numpy(vecs[[w for w, _ in pairs]])
    y = emb[[t for _, t in pairs]].clone()
    net, rows, metrics = fit_hypernetwork(x, y, cfg)
    train_idx, held_idx = _split(len(pairs), cfg["heldout_fraction"], cfg["seed"])
    split = {int(i): "train" for i in train_idx} | {int(i): "heldout" for i in held_idx}
    meta = {
        "kind": cfg["kind"],
        "model_params": {
            "d_in": int(x.shape[1]),
            "d_out": int(y.shape[1]),
            "hidden": cfg["hidden"],
            "layers": cfg["layers"],
            "dropout": cfg["dropout"],
        },
        "cfg": cfg,
        "metrics": metrics,
        "source_model": str(source_model_dir),
        "word_vectors": str(word_vectors_path),
        "n_words": len(words),
    }
    with atomic_dir(Path(out_dir)) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp / "hypernet.safetensors"))
        (tmp / "hypernet.json").write_text(json.dumps(meta, indent=2) + "\n")
        _write_csv(tmp / "loss.csv", ["step", "loss", "contrastive", "l1"], rows)
        _write_csv(
            tmp / "pairs.csv",
            ["word", "token_id", "split"],
            [{"word": words[w], "token_id": t, "split": split[k]} for k, (w, t) in enumerate(pairs)],
        )
    log.info("hypernetwork %s: %s", out_dir, metrics)
    return metrics


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def load_hypernetwork(hypernet_dir: Path) -> nn.Module:
    """The trained network of a `train_hypernetwork` output directory, in eval mode."""
    from safetensors.torch import load_file

    hypernet_dir = Path(hypernet_dir)
    meta_path = hypernet_dir / "hypernet.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path} is missing (not a hypernetwork directory)")
    meta = json.loads(meta_path.read_text())
    net = HYPERNETS.get(meta["kind"])(**meta["model_params"])
    net.load_state_dict(load_file(str(hypernet_dir / "hypernet.safetensors")))
    return net.eval()
