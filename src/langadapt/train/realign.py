"""Sentence-level contrastive realignment on translation pairs ("Rethinking realignment", §2, Eq. 1).

A batch holds B pairs (h_i, h~_i): h_i the mean hidden state of the source (English pivot) sentence
over all its real tokens (attention mask = 1, special tokens ``<s>``/``</s>`` excluded), h~_i that of its
translation. Eq. 1, read literally, with H the set of all 2B sentence vectors:

    L = -1/(2B) * sum_{h in H} log( exp(sim(h, aligned(h))/T) / sum_{h' in H, h' != h} exp(sim(h, h')/T) )

i.e. for every one of the 2B vectors a softmax over the 2B - 1 others (its translation included in the
denominator; both directions, source->target and target->source, plus same-side negatives), sim = cosine,
T = 0.1. The printed equation has no leading minus sign; as written it is a log-likelihood (<= 0) and
we minimise its negative. Unlike the reference implementation, which averages only the first
n-words positions, the mean covers every real token of the sentence.

`realign` trains the encoder of an MLM model with this loss (AdamW, lr 2e-5, batch 16, max length
96: realignment App. A.6) and saves the full MLM model so later stages can continue from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from langadapt.errors import ConfigError, DataError
from langadapt.languages import parse_lang
from langadapt.runtime import resolve_device
from langadapt.train.checkpoint import (
    fingerprint,
    inputs_digest,
    prepare_run_dir,
    remove_checkpoints,
    save_model_dir,
    seed_everything,
)
from langadapt.train.loop import (
    Trainer,
    fingerprint_config,
    load_model_dir,
    make_optimizer,
    make_scheduler,
    max_positions,
)
from langadapt.train.packing import LanguageSampler
from langadapt.train.settings import check_positive, merge_config

log = logging.getLogger(__name__)

REALIGN_DEFAULTS: dict[str, Any] = {
    "languages": None,  # realignment §3.1: the language subset S; null = every language in the file
    "steps": 24_544,  # realignment App. A.6: "Realignment is performed for 24,544 steps"
    "batch_size": 16,  # realignment App. A.6: realignment batch size 16
    "max_length": 96,  # realignment App. A.6: realignment maximum sequence length 96
    "lr": 2e-5,  # realignment App. A.6: learning rate 2e-5
    "temperature": 0.1,  # realignment §2, Eq. 1: T = 0.1
    "layer": None,  # hidden-state layer pooled (0 = embeddings, n = last); null = last layer
    "sampling": "uniform",  # uniform over pairs, or by_language (uniform over languages, then pairs)
    "betas": [0.9, 0.999],  # not stated; AdamW defaults
    "eps": 1e-8,  # not stated; AdamW default
    "weight_decay": 0.0,  # not stated; Hugging Face Trainer default
    "warmup_steps": 0,  # not stated
    "schedule": "linear",  # not stated; Hugging Face Trainer default (linear decay)
    "max_grad_norm": 1.0,  # not stated; Hugging Face Trainer default
    "checkpoint_every": 1000,
    "keep_checkpoints": 2,
    "keep_final_checkpoint": False,
    "log_every": 100,
    "seed": 42,
    "device": "auto",
    "bf16": False,
}
SAMPLING = ("uniform", "by_language")
_COLUMNS = ("lang", "split", "src_text", "tgt_text")


def sentence_mean(hidden: torch.Tensor, attention_mask: torch.Tensor,
                  special_tokens_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, L, d) over the positions with attention 1 that are not special tokens.

    A sentence without such positions gets the zero vector (its cosine similarities are then 0).
    """
    keep = (attention_mask.bool() & ~special_tokens_mask.bool()).to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def realignment_loss(src: torch.Tensor, tgt: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Eq. 1 of the realignment paper over H = {h_1..h_B, h~_1..h~_B} (see the module docstring).

    `src`, `tgt`: (B, d) sentence vectors, row i of `src` aligned with row i of `tgt`.
    """
    if src.shape != tgt.shape or src.ndim != 2:
        raise ValueError(f"src and tgt must both be (B, d), got {tuple(src.shape)} and {tuple(tgt.shape)}")
    b = src.shape[0]
    h = F.normalize(torch.cat([src, tgt]).float(), dim=-1)
    sim = h @ h.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=sim.device), float("-inf"))
    aligned = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(sim.device)
    return F.cross_entropy(sim, aligned)


def encode_sentences(model: torch.nn.Module, enc: Mapping[str, torch.Tensor], layer: int | None) -> torch.Tensor:
    """Sentence vectors of a tokenized batch: :func:`sentence_mean` of the encoder's `layer` states."""
    base = model.base_model
    out = base(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
               output_hidden_states=layer is not None)
    hidden = out.last_hidden_state if layer is None else out.hidden_states[layer]
    return sentence_mean(hidden, enc["attention_mask"], enc["special_tokens_mask"])


def read_pairs(path: Path, languages: list[str] | None) -> tuple[list[str], list[np.ndarray], list[str], list[str]]:
    """Train-split pairs of `languages` (None = all, sorted): (langs, row indices per lang, src, tgt)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"parallel file {path} does not exist")
    try:
        table = pq.read_table(path, columns=list(_COLUMNS))
    except (pa.ArrowInvalid, OSError, KeyError) as e:
        raise DataError(f"cannot read columns {', '.join(_COLUMNS)} of parallel file {path}: {e}") from None
    table = table.filter(pc.equal(table["split"], "train"))
    lang_col, src, tgt = (table[c].to_pylist() for c in ("lang", "src_text", "tgt_text"))
    keep = [i for i in range(len(src)) if src[i] and src[i].strip() and tgt[i] and tgt[i].strip()]
    present = sorted({lang_col[i] for i in keep})
    langs = present if languages is None else sorted(languages)
    missing = [code for code in langs if code not in present]
    if missing or not langs:
        raise DataError(f"parallel file {path} has no non-empty train pairs for {missing or 'any language'}")
    index = {code: k for k, code in enumerate(langs)}
    rows: list[list[int]] = [[] for _ in langs]
    src_out, tgt_out = [], []
    for i in keep:
        k = index.get(lang_col[i])
        if k is not None:
            rows[k].append(len(src_out))
            src_out.append(src[i])
            tgt_out.append(tgt[i])
    return langs, [np.asarray(r, dtype=np.int64) for r in rows], src_out, tgt_out


def _validate(cfg: Mapping[str, Any]) -> list[str] | None:
    check_positive(cfg, ("steps", "batch_size", "max_length", "checkpoint_every", "keep_checkpoints",
                         "log_every"), "realign")
    if cfg["sampling"] not in SAMPLING:
        raise ConfigError(f"realign config 'sampling' must be one of {SAMPLING}, got {cfg['sampling']!r}")
    if not float(cfg["temperature"]) > 0:
        raise ConfigError(f"realign config 'temperature' must be > 0, got {cfg['temperature']!r}")
    if cfg["batch_size"] < 2:
        raise ConfigError("realign config 'batch_size' must be >= 2 (in-batch negatives)")
    langs = cfg["languages"]
    if langs is None:
        return None
    if isinstance(langs, str) or not langs:
        raise ConfigError(f"realign config 'languages' must be a non-empty list or null, got {langs!r}")
    for code in langs:
        parse_lang(code, where="realign config 'languages'")
    return sorted(set(langs))


def realign(model_dir: Path, parallel_path: Path, out_dir: Path, run_dir: Path, cfg: Mapping[str, Any] | None,
            provenance: Mapping[str, Any] | None = None, *,
            callback: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Realign the encoder of the MLM model in `model_dir` on the train pairs of `parallel_path`.

    Saves the full MLM model + tokenizer + ``langadapt.json`` + ``loss.csv`` atomically to `out_dir`;
    resumable from `run_dir` exactly like :func:`langadapt.train.mlm.pretrain`.
    """
    cfg = merge_config(cfg, REALIGN_DEFAULTS, "realign")
    languages = _validate(cfg)
    model_dir, parallel_path, out_dir, run_dir = Path(model_dir), Path(parallel_path), Path(out_dir), Path(run_dir)
    if not (model_dir / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    langs, groups, src, tgt = read_pairs(parallel_path, languages)
    record = {"stage": "realign", "config": fingerprint_config(cfg), "languages": langs,
              "inputs": inputs_digest({"model": model_dir, "parallel": parallel_path})}
    fp = fingerprint(record)
    prepare_run_dir(run_dir, fp, record)

    model, tokenizer = load_model_dir(model_dir)
    limit = max_positions(model)
    if cfg["max_length"] > limit:
        raise ConfigError(f"realign config 'max_length' {cfg['max_length']} exceeds the model's limit {limit}")
    n_layers = int(model.config.num_hidden_layers)
    layer = cfg["layer"]
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)
                              or not -(n_layers + 1) <= layer <= n_layers):
        raise ConfigError(f"realign config 'layer' must be null or an int in [-{n_layers + 1}, {n_layers}], "
                          f"got {layer!r}")
    device = resolve_device(cfg["device"])
    model.to(device)
    if cfg["sampling"] == "uniform":
        sampler = LanguageSampler([np.concatenate(groups)], [1.0], cfg["seed"])
    else:
        sampler = LanguageSampler(groups, np.full(len(groups), 1.0 / len(groups)), cfg["seed"])
    optimizer = make_optimizer(model, cfg["lr"], cfg["betas"], cfg["eps"], cfg["weight_decay"])
    scheduler = make_scheduler(optimizer, cfg["steps"], cfg["warmup_steps"], cfg["schedule"])
    seed_everything(cfg["seed"])
    trainer = Trainer(run_dir=run_dir, model=model, optimizer=optimizer, scheduler=scheduler, device=device,
                      steps=cfg["steps"], grad_accum=1, max_grad_norm=cfg["max_grad_norm"],
                      checkpoint_every=cfg["checkpoint_every"], keep_checkpoints=cfg["keep_checkpoints"],
                      log_every=cfg["log_every"], bf16=cfg["bf16"], desc="realign",
                      json_state={"sampler": sampler})
    trainer.resume()

    def micro_step() -> tuple[torch.Tensor, int]:
        rows, _ = sampler.sample(cfg["batch_size"])
        texts = [src[i] for i in rows] + [tgt[i] for i in rows]
        enc = tokenizer(texts, truncation=True, max_length=cfg["max_length"], padding=True,
                        return_special_tokens_mask=True, return_tensors="pt")
        enc = {k: enc[k].to(device) for k in ("input_ids", "attention_mask", "special_tokens_mask")}
        vectors = encode_sentences(model, enc, layer)
        b = len(rows)
        loss = realignment_loss(vectors[:b], vectors[b:], float(cfg["temperature"]))
        return loss, int(enc["attention_mask"].sum())

    stats = trainer.run(micro_step, callback=callback,
                        final_checkpoint=cfg["keep_final_checkpoint"])
    training = {"stage": "realign", "config": cfg, "fingerprint": fp, "languages": langs,
                "train_pairs": {code: len(g) for code, g in zip(langs, groups, strict=True)},
                "steps": stats["steps"], "tokens_seen": stats["tokens"], "final_loss": stats["final_loss"]}
    save_model_dir(model, tokenizer, out_dir, {**(provenance or {}), "training": training},
                   run_dir / "loss.csv")
    if not cfg["keep_final_checkpoint"]:
        remove_checkpoints(run_dir)
    log.info("realign done: %s (%d steps)", out_dir, stats["steps"])
    return {"out_dir": str(out_dir), "fingerprint": fp, **stats}
