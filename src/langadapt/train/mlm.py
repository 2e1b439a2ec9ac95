"""Continued masked-language-model pretraining (LangSAMP §4.1 baseline; LAPT of vocab-specialization §4).

`pretrain` packs each language's train split into single-language sequences (`packing`), draws the
language of every sequence by temperature sampling, masks 15% of the real tokens (80% ``<mask>``,
10% random token, 10% unchanged; special tokens and padding never), and trains with AdamW + a linear
schedule, gradient accumulation and clipping. The run is resumable (`checkpoint`, `loop`): calling
`pretrain` again with the same run_dir, config and inputs continues from the newest checkpoint and
ends with weights identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from langadapt.errors import ConfigError, DataError
from langadapt.languages import parse_lang
from langadapt.runtime import resolve_device
from langadapt.train.checkpoint import (
    fingerprint,
    inputs_digest,
    merge_config,
    prepare_run_dir,
    remove_checkpoints,
    save_model_dir,
    seed_everything,
)
from langadapt.train.loop import (
    GeneratorState,
    Trainer,
    check_positive,
    fingerprint_config,
    load_model_dir,
    make_optimizer,
    make_scheduler,
    max_positions,
)
from langadapt.train.packing import PackedCorpus, language_sampler, pack_corpora

log = logging.getLogger(__name__)

PRETRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 150_000,  # LangSAMP §4.1: "We set the maximum steps to 150K"
    "batch_size": 32,  # LangSAMP §4.1: per-GPU batch size 32
    "grad_accum": 8,  # LangSAMP §4.1: gradient accumulation 8 (x 4 GPUs x 32 = 1,024 effective)
    "seq_len": 512,  # LangSAMP §4.1: sentences of one language-script concatenated to 512-token chunks
    "lr": 5e-5,  # LangSAMP §4.1: initial learning rate 5e-5
    "betas": [0.9, 0.999],  # LangSAMP §4.1: AdamW (beta1, beta2) = (0.9, 0.999)
    "eps": 1e-6,  # LangSAMP §4.1: epsilon 1e-6
    "weight_decay": 0.01,  # not stated in LangSAMP; RoBERTa/XLM-R pretraining value (Liu et al. 2019)
    "warmup_steps": 0,  # not stated in LangSAMP / vocab-specialization Table 6
    "schedule": "linear",  # vocab-specialization Table 6: lr_schedule linear
    "max_grad_norm": 1.0,  # vocab-specialization Table 6: max_gradient_norm 1.0
    "mlm_probability": 0.15,  # vocab-specialization Table 6: mlm_masking_prob 0.15 (Devlin et al. 2019)
    "mask_ratios": [0.8, 0.1, 0.1],  # BERT (Devlin et al. 2019 §3.1): <mask> / random token / unchanged
    "alpha": 0.3,  # LangSAMP §4.1: multinomial sampling temperature 0.3 (vocab-specialization §4: 0.2)
    "freeze_body_steps": 0,  # vocab-specialization §4: body frozen 10k steps (LAPT-FULL), all (LAPT-EMB)
    "checkpoint_every": 5000,  # LangSAMP §4.1: checkpoints every 5K steps
    "keep_checkpoints": 2,  # newest checkpoints kept in run_dir while training
    "keep_final_checkpoint": False,  # true: checkpoint the last step and keep checkpoints after saving
    "log_every": 100,  # rows of run_dir/loss.csv (mean loss over the steps since the previous row)
    "seed": 42,
    "device": "auto",  # auto = cuda if available, else cpu
    "bf16": False,  # bf16 autocast (GPU); float32 master weights either way
}


def _validate(cfg: Mapping[str, Any]) -> None:
    check_positive(cfg, ("steps", "batch_size", "grad_accum", "seq_len", "checkpoint_every",
                         "keep_checkpoints", "log_every"), "pretrain")
    if not 0.0 < float(cfg["mlm_probability"]) < 1.0:
        raise ConfigError(f"pretrain config 'mlm_probability' must be in (0, 1), got {cfg['mlm_probability']}")
    ratios = [float(r) for r in cfg["mask_ratios"]]
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"pretrain config 'mask_ratios' must be 3 non-negative numbers summing to 1, "
                          f"got {cfg['mask_ratios']}")
    if float(cfg["alpha"]) < 0:
        raise ConfigError(f"pretrain config 'alpha' must be >= 0, got {cfg['alpha']}")
    for k in ("warmup_steps", "freeze_body_steps"):
        if isinstance(cfg[k], bool) or not isinstance(cfg[k], int) or cfg[k] < 0:
            raise ConfigError(f"pretrain config {k!r} must be an integer >= 0, got {cfg[k]!r}")
    if cfg["schedule"] not in ("linear", "constant"):
        raise ConfigError(f"pretrain config 'schedule' must be 'linear' or 'constant', got {cfg['schedule']!r}")


def mask_tokens(input_ids: torch.Tensor, never_mask: torch.Tensor, mask_id: int, candidates: torch.Tensor,
                generator: torch.Generator, probability: float = 0.15,
                ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: select `probability` of the maskable positions; of those, ratios[0] -> ``<mask>``,
    ratios[1] -> a random token from `candidates`, the rest unchanged.

    `never_mask` is True at special tokens and padding. Returns (inputs, labels) with labels -100 at
    unselected positions. Draws a fixed amount of randomness from `generator` per call (exact resume).
    """
    probs = torch.full(input_ids.shape, probability)
    probs.masked_fill_(never_mask, 0.0)
    selected = torch.bernoulli(probs, generator=generator).bool()
    u = torch.rand(input_ids.shape, generator=generator)
    random_ids = candidates[torch.randint(len(candidates), input_ids.shape, generator=generator)]
    to_mask = selected & (u < ratios[0])
    to_random = selected & (u >= ratios[0]) & (u < ratios[0] + ratios[1])
    inputs = input_ids.clone()
    inputs[to_mask] = mask_id
    inputs[to_random] = random_ids[to_random]
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    return inputs, labels


def mlm_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The MLM head of a BERT (``cls``) or RoBERTa/XLM-R (``lm_head``) model, else None."""
    for name in ("lm_head", "cls"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    return None


def mlm_loss(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the selected positions; the vocabulary projection runs only there."""
    selected = labels != -100
    head = mlm_head(model)
    if head is not None:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = head(hidden[selected])
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[selected]
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels[selected])


def _body_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Transformer-block parameters (frozen while `freeze_body_steps` lasts): ``base_model.encoder``."""
    encoder = getattr(model.base_model, "encoder", None)
    if encoder is None:
        raise ConfigError("freeze_body_steps needs a model whose base_model has an 'encoder'")
    return list(encoder.parameters())


def _packed(tokenizer: Any, corpus_paths: Mapping[str, Path], seq_len: int, run_dir: Path) -> PackedCorpus:
    """Packed corpus cached in ``run_dir/packed`` (valid: the run dir's fingerprint covers the inputs)."""
    cache = Path(run_dir) / "packed"
    if (cache / "meta.json").is_file():
        return PackedCorpus.load(cache)
    packed = pack_corpora(tokenizer, corpus_paths, seq_len)
    packed.save(cache)
    return PackedCorpus.load(cache)


def pretrain(model_dir: Path, corpus_paths: Mapping[str, Path], out_dir: Path, run_dir: Path,
             cfg: Mapping[str, Any] | None, provenance: Mapping[str, Any] | None = None, *,
             callback: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Continued MLM pretraining of the model in `model_dir` on the train splits of `corpus_paths`.

    Writes `out_dir` (model + tokenizer + ``langadapt.json`` + ``loss.csv``) atomically; checkpoints,
    ``loss.csv`` and the packed-data cache live in `run_dir`. Re-calling with the same run_dir, config
    and inputs resumes; see `langadapt.train.checkpoint` for the policy when they differ. SIGTERM saves a
    checkpoint and raises ``Preempted`` (exit status 143). `callback(step)` runs after every step.
    Returns statistics (steps, tokens, final_loss, tokens_per_s, elapsed_s, resumed_from_step, ...).
    """
    cfg = merge_config(cfg, PRETRAIN_DEFAULTS, "pretrain")
    _validate(cfg)
    if not corpus_paths:
        raise ConfigError("pretrain needs at least one corpus (corpus_paths is empty)")
    for code, path in corpus_paths.items():
        parse_lang(code, where="pretrain corpora")
        if not Path(path).is_file():
            raise DataError(f"corpus file {path} ({code}) does not exist")
    model_dir, out_dir, run_dir = Path(model_dir), Path(out_dir), Path(run_dir)
    if not (model_dir / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    langs = sorted(corpus_paths)
    record = {"stage": "pretrain", "config": fingerprint_config(cfg), "languages": langs,
              "inputs": inputs_digest({"model": model_dir, **{f"corpus/{c}": corpus_paths[c] for c in langs}})}
    fp = fingerprint(record)
    prepare_run_dir(run_dir, fp, record)

    model, tokenizer = load_model_dir(model_dir)
    limit = max_positions(model)
    if cfg["seq_len"] > limit:
        raise ConfigError(f"pretrain config 'seq_len' {cfg['seq_len']} exceeds the model's limit {limit}")
    if tokenizer.mask_token_id is None:
        raise DataError(f"tokenizer in {model_dir} has no mask token")
    packed = _packed(tokenizer, corpus_paths, cfg["seq_len"], run_dir)
    device = resolve_device(cfg["device"])
    model.to(device)

    special_set = set(tokenizer.all_special_ids)
    specials = torch.tensor(sorted(special_set), dtype=torch.long)
    vocab = min(len(tokenizer), model.get_input_embeddings().num_embeddings)
    candidates = torch.tensor([i for i in range(vocab) if i not in special_set], dtype=torch.long)
    sampler = language_sampler(packed, float(cfg["alpha"]), cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    optimizer = make_optimizer(model, cfg["lr"], cfg["betas"], cfg["eps"], cfg["weight_decay"])
    scheduler = make_scheduler(optimizer, cfg["steps"], cfg["warmup_steps"], cfg["schedule"])
    seed_everything(cfg["seed"])
    trainer = Trainer(run_dir=run_dir, model=model, optimizer=optimizer, scheduler=scheduler, device=device,
                      steps=cfg["steps"], grad_accum=cfg["grad_accum"], max_grad_norm=cfg["max_grad_norm"],
                      checkpoint_every=cfg["checkpoint_every"], keep_checkpoints=cfg["keep_checkpoints"],
                      log_every=cfg["log_every"], bf16=cfg["bf16"], desc="pretrain",
                      tensor_state={"mask_generator": GeneratorState(gen)}, json_state={"sampler": sampler})
    trainer.resume()

    positions = torch.arange(packed.seq_len)
    r0, r1, r2 = (float(r) for r in cfg["mask_ratios"])

    def micro_step() -> tuple[torch.Tensor, int]:
        rows, _ = sampler.sample(cfg["batch_size"])
        ids = torch.from_numpy(np.asarray(packed.input_ids[rows], dtype=np.int64))
        lengths = torch.from_numpy(np.asarray(packed.lengths[rows], dtype=np.int64))
        attention = positions[None, :] < lengths[:, None]
        never = ~attention | torch.isin(ids, specials)
        inputs, labels = mask_tokens(ids, never, tokenizer.mask_token_id, candidates, gen,
                                     float(cfg["mlm_probability"]), (r0, r1, r2))
        loss = mlm_loss(model, inputs.to(device), attention.long().to(device), labels.to(device))
        return loss, int(lengths.sum())

    before_step = None
    if cfg["freeze_body_steps"] > 0:
        body = _body_params(model)

        def before_step(step: int) -> None:
            trainable = step >= cfg["freeze_body_steps"]
            for p in body:
                p.requires_grad_(trainable)

    stats = trainer.run(micro_step, before_step=before_step, callback=callback,
                        final_checkpoint=cfg["keep_final_checkpoint"])
    for p in model.parameters():
        p.requires_grad_(True)
    training = {"stage": "pretrain", "config": cfg, "fingerprint": fp, "languages": packed.langs,
                "train_tokens": dict(zip(packed.langs, packed.tokens, strict=True)),
                "train_sentences": dict(zip(packed.langs, packed.sentences, strict=True)),
                "sampling_probs": dict(zip(packed.langs, sampler.probs.tolist(), strict=True)),
                "steps": stats["steps"], "tokens_seen": stats["tokens"], "final_loss": stats["final_loss"]}
    save_model_dir(model, tokenizer, out_dir, {**(provenance or {}), "training": training},
                   run_dir / "loss.csv")
    if not cfg["keep_final_checkpoint"]:
        remove_checkpoints(run_dir)
    log.info("pretrain done: %s (%d steps, %.0f tokens/s)", out_dir, stats["steps"], stats["tokens_per_s"])
    return {"out_dir": str(out_dir), "fingerprint": fp, **stats}
