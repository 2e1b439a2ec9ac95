"""Continued masked-language-model pretraining (LangSAMP §4.1 baseline; LAPT of vocab-specialization §4).

`pretrain` packs each language's train split into single-language sequences (`packing`), draws the
language of every sequence by temperature sampling, masks 15% of the real tokens (80% ``<mask>``,
10% random token, 10% unchanged; special tokens and padding never), and trains with AdamW + a linear
schedule, gradient accumulation and clipping. The run is resumable (`checkpoint`, `loop`): calling
`pretrain` again with the same run_dir, config and inputs continues from the newest checkpoint and
ends with weights identical to an uninterrupted run.

Composable options (each a config value): LangSAMP language/script embeddings before the MLM head
(`langadapt.train.objective`, variants none/language/script/both); the vocabulary paper's LAPT-FULL
(optionally with the transformer blocks frozen for the first share of steps) and LAPT-EMB (blocks frozen
throughout); a `preset` of paper hyperparameters (`PRESETS`); data-parallel training under torchrun
(`langadapt.train.distributed`) with the effective batch reached by gradient accumulation.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.core.runtime import resolve_device
from langadapt.models.factorized import (
    Factorization,
    factorization_of,
    install_factorized,
    materialize,
    read_factorization,
    save_factorization,
)
from langadapt.models.mlm_head import mask_candidates, mask_tokens
from langadapt.train.checkpoint import (
    fingerprint,
    inputs_digest,
    prepare_run_dir,
    remove_checkpoints,
    save_model_dir,
    seed_everything,
)
from langadapt.train.distributed import Dist, init_distributed, rank_device, shard, wrap_ddp
from langadapt.train.dropout import cpu_dropout
from langadapt.train.loop import (
    GeneratorState,
    Trainer,
    fingerprint_config,
    load_model_dir,
    make_optimizer,
    make_scheduler,
    max_positions,
)
from langadapt.train.objective import IdMaps, MLMObjective
from langadapt.train.packing import PackedCorpus, language_sampler, pack_corpora
from langadapt.train.settings import (
    PRESETS,
    PRETRAIN_DEFAULTS,
    accumulation,
    frozen_steps,
    resolve_config,
)
from langadapt.train.stepselect import downstream_exports, step_export

__all__ = ["PRESETS", "PRETRAIN_DEFAULTS", "accumulation", "frozen_steps", "mask_tokens", "pretrain",
           "resolve_config"]

log = logging.getLogger(__name__)

def body_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Transformer-block parameters (``base_model.encoder``): frozen in LAPT-EMB and while
    `freeze_body_steps` lasts; embeddings, the MLM head and LangSAMP tables stay trainable."""
    encoder = getattr(model.base_model, "encoder", None)
    if encoder is None:
        raise ConfigError(f"{type(model).__name__}: freezing the transformer blocks needs base_model.encoder")
    return list(encoder.parameters())


def _packed(tokenizer: Any, corpus_paths: Mapping[str, Path], cfg: Mapping[str, Any], run_dir: Path,
            dist: Dist) -> PackedCorpus:
    """Packed corpus cached in ``run_dir/packed`` (valid: the run dir's fingerprint covers the inputs);
    rank 0 builds it, the other ranks wait and load it."""
    cache = Path(run_dir) / "packed"
    if dist.is_main and not (cache / "meta.json").is_file():
        pack_corpora(tokenizer, corpus_paths, cfg["seq_len"], fraction=float(cfg["data_fraction"]),
                     seed=int(cfg["seed"]), out_dir=cache)
    dist.barrier()
    return PackedCorpus.load(cache)


def _factorization(model_dir: Path, mode: Any) -> Factorization | None:
    """The factorization to train (`factorized` = auto | true | false), or None."""
    if mode is False:
        return None
    found = read_factorization(model_dir)
    if found is None and mode is True:
        raise DataError(f"pretrain config 'factorized: true' but {model_dir} has no factorized.safetensors "
                        f"(give the init stage a 'factorize: k')")
    return found


def pretrain(model_dir: Path, corpus_paths: Mapping[str, Path], out_dir: Path, run_dir: Path,
             cfg: Mapping[str, Any] | None, provenance: Mapping[str, Any] | None = None, *,
             inventory: Sequence[str] | None = None,
             callback: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Continued MLM pretraining of the model in `model_dir` on the train splits of `corpus_paths`.

    `cfg` keys: :data:`PRETRAIN_DEFAULTS` (after the `preset`'s values). ``langsamp`` adds LangSAMP
    language/script embeddings whose rows are the varieties of `inventory` (default: the corpus languages)
    and their scripts; ``variant: emb`` / ``freeze_body_*`` freeze the transformer blocks.

    Writes `out_dir` (model + tokenizer + ``langadapt.json`` + ``loss.csv`` [+ LangSAMP tables])
    atomically; checkpoints, ``loss.csv`` and the packed-data cache live in `run_dir`. Re-calling with the
    same run_dir, config and inputs resumes; see `langadapt.train.checkpoint` for the policy when they
    differ. SIGTERM saves a checkpoint and raises ``Preempted`` (exit status 143). Under torchrun (see
    `langadapt.train.distributed`) every process calls this function. `callback(step)` runs after every
    step. Returns statistics (steps, tokens, final_loss, tokens_per_s, elapsed_s, resumed_from_step, ...).
    """
    cfg = resolve_config(cfg)
    model_dir, out_dir, run_dir = Path(model_dir), Path(out_dir), Path(run_dir)
    langs, maps = _check_inputs(cfg, corpus_paths, model_dir, inventory)
    record = {"stage": "pretrain", "config": fingerprint_config(cfg), "languages": langs,
              "inventory": maps.to_json() if maps else None,
              "inputs": inputs_digest({"model": model_dir, **{f"corpus/{c}": corpus_paths[c] for c in langs}})}
    fp = fingerprint(record)
    device = resolve_device(cfg["device"])
    dist = init_distributed(device)
    device = rank_device(device, dist)
    if dist.is_main:
        prepare_run_dir(run_dir, fp, record)
    dist.barrier()

    model, tokenizer, factorization = _load_model(model_dir, cfg)
    grad_accum = accumulation(cfg, dist.world)
    packed = _packed(tokenizer, corpus_paths, cfg, run_dir, dist)
    objective = MLMObjective(model, cfg["langsamp"], maps, seed=cfg["seed"])
    copied = objective.load_tables_from(model_dir)
    objective.to(device)
    if not dist.enabled:
        objective.single_process_gradients()
    masking = _Masking.of(tokenizer, model, cfg)
    sampler = language_sampler(packed, float(cfg["alpha"]), cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    optimizer = make_optimizer(objective, cfg["lr"], cfg["betas"], cfg["eps"], cfg["weight_decay"])
    scheduler = make_scheduler(optimizer, cfg["steps"], cfg["warmup_steps"], cfg["schedule"])
    seed_everything(cfg["seed"] + dist.rank)
    trainer = Trainer(run_dir=run_dir, model=objective, optimizer=optimizer, scheduler=scheduler, device=device,
                      steps=cfg["steps"], grad_accum=grad_accum, max_grad_norm=cfg["max_grad_norm"],
                      checkpoint_every=cfg["checkpoint_every"], keep_checkpoints=cfg["keep_checkpoints"],
                      log_every=cfg["log_every"], bf16=cfg["bf16"], desc="pretrain",
                      tensor_state={"mask_generator": GeneratorState(gen)}, json_state={"sampler": sampler},
                      dist=dist, wrap=lambda m: wrap_ddp(m, device, dist))
    trainer.resume()
    micro_step = _micro_step(trainer, packed, sampler, masking, gen, maps, cfg, dist, device)
    frozen_until = frozen_steps(cfg)
    export = step_export(cfg, model, tokenizer, objective, provenance, fp, run_dir, factorization, model_dir)
    on_step, select, move_exports = _selection(cfg, trainer, objective, tokenizer, corpus_paths, masking, maps,
                                               callback, export)
    with cpu_dropout(objective, device):  # cheaper dropout masks on CPU (issue 21)
        stats = trainer.run(micro_step, before_step=_body_freezer(model, frozen_until), callback=on_step,
                            final_checkpoint=cfg["keep_final_checkpoint"])
    selection = select()  # the kept step's weights (select: dev_mlm), before the model is unwrapped
    trained_factors = _unwrap(model, factorization)

    def extra_files(directory: Path) -> None:
        objective.save_tables(directory)
        move_exports(directory)
        if (run_dir / "dev_loss.csv").is_file():
            shutil.copyfile(run_dir / "dev_loss.csv", directory / "dev_loss.csv")
        if trained_factors is not None:
            save_factorization(directory, trained_factors.coordinates, trained_factors.primitives,
                               {**factorization.meta, "trained_by": "pretrain"})

    training = {"stage": "pretrain", "config": cfg, "fingerprint": fp, "languages": packed.langs,
                "train_tokens": dict(zip(packed.langs, packed.tokens, strict=True)),
                "train_sentences": dict(zip(packed.langs, packed.sentences, strict=True)),
                "sampling_probs": dict(zip(packed.langs, sampler.probs.tolist(), strict=True)),
                "processes": dist.world, "grad_accum": grad_accum,
                "effective_batch": cfg["batch_size"] * dist.world * grad_accum,
                "frozen_body_steps": frozen_until, "langsamp": cfg["langsamp"], "langsamp_rows_copied": copied,
                "factorized_dim": factorization.dim if factorization is not None else None,
                "steps": stats["steps"], "tokens_seen": stats["tokens"], "final_loss": stats["final_loss"],
                "resumed_from_step": stats["resumed_from_step"], **selection}
    if dist.is_main:
        save_model_dir(model, tokenizer, out_dir, {**(provenance or {}), "training": training},
                       run_dir / "loss.csv", extra=extra_files)
        if not cfg["keep_final_checkpoint"]:
            remove_checkpoints(run_dir)
            (run_dir / "best.pt").unlink(missing_ok=True)
        log.info("pretrain done: %s (%d steps, %.0f tokens/s)", out_dir, stats["steps"], stats["tokens_per_s"])
    dist.barrier()
    return {"out_dir": str(out_dir), "fingerprint": fp, **stats}


def _check_inputs(cfg: Mapping[str, Any], corpus_paths: Mapping[str, Path], model_dir: Path,
                  inventory: Sequence[str] | None) -> tuple[list[str], IdMaps | None]:
    """(corpus languages, LangSAMP id maps or None); errors name the missing corpus, model or language."""
    if not corpus_paths:
        raise ConfigError("pretrain needs at least one corpus (corpus_paths is empty)")
    for code, path in corpus_paths.items():
        parse_lang(code, where="pretrain corpora")
        if not Path(path).is_file():
            raise DataError(f"corpus file {path} ({code}) does not exist")
    if not (model_dir / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    langs = sorted(corpus_paths)
    maps = None
    if cfg["langsamp"] != "none":
        maps = IdMaps.from_inventory(list(inventory) if inventory else langs, where="pretrain inventory")
        for code in langs:
            maps.language_id(code)  # ConfigError naming a corpus language missing from the inventory
    return langs, maps


def _load_model(model_dir: Path, cfg: Mapping[str, Any]) -> tuple[Any, Any, Factorization | None]:
    """The MLM and tokenizer of `model_dir`, with factorized embeddings installed when configured."""
    model, tokenizer = load_model_dir(model_dir)
    limit = max_positions(model)
    if cfg["seq_len"] > limit:
        raise ConfigError(f"pretrain config 'seq_len' {cfg['seq_len']} exceeds the model's limit {limit}")
    if tokenizer.mask_token_id is None:
        raise DataError(f"tokenizer in {model_dir} has no mask token")
    factorization = _factorization(model_dir, cfg["factorized"])
    if factorization is not None:
        install_factorized(model, factorization.coordinates, factorization.primitives)
        log.info("training factorized embeddings: coordinates %s x primitives %s",
                 tuple(factorization.coordinates.shape), tuple(factorization.primitives.shape))
    return model, tokenizer, factorization


@dataclass(frozen=True)
class _Masking:
    """What `mask_tokens` needs besides the batch: special ids (never masked), the mask id, the ids a
    random replacement draws from, the masking probability and the mask/random/keep ratios."""

    specials: torch.Tensor
    mask_id: int
    candidates: torch.Tensor
    probability: float
    ratios: tuple[float, float, float]

    @classmethod
    def of(cls, tokenizer: Any, model: Any, cfg: Mapping[str, Any]) -> _Masking:
        special_set = set(tokenizer.all_special_ids)
        vocab = min(len(tokenizer), model.get_input_embeddings().num_embeddings)
        r0, r1, r2 = (float(r) for r in cfg["mask_ratios"])
        return cls(torch.tensor(sorted(special_set), dtype=torch.long), tokenizer.mask_token_id,
                   mask_candidates(tokenizer, vocab), float(cfg["mlm_probability"]), (r0, r1, r2))


def _micro_step(trainer: Trainer, packed: Any, sampler: Any, masking: _Masking, gen: torch.Generator,
                maps: IdMaps | None, cfg: Mapping[str, Any], dist: Any, device: Any
                ) -> Callable[[], tuple[torch.Tensor, int]]:
    """One micro-batch: every rank draws and masks the same global micro-batch, then trains on its slice."""
    positions = torch.arange(packed.seq_len)
    row_lang = torch.tensor([maps.language_id(c) for c in packed.langs] if maps else [0] * len(packed.langs))
    row_script = torch.tensor([maps.script_id(c) for c in packed.langs] if maps else [0] * len(packed.langs))
    global_batch = cfg["batch_size"] * dist.world

    def micro_step() -> tuple[torch.Tensor, int]:
        rows, groups = sampler.sample(global_batch)
        ids = torch.from_numpy(np.asarray(packed.input_ids[rows], dtype=np.int64))
        lengths = torch.from_numpy(np.asarray(packed.lengths[rows], dtype=np.int64))
        attention = positions[None, :] < lengths[:, None]
        never = ~attention | torch.isin(ids, masking.specials)
        inputs, labels = mask_tokens(ids, never, masking.mask_id, masking.candidates, gen, masking.probability,
                                     masking.ratios)
        n_masked = max(int((labels != -100).sum()), 1)
        part = shard(rows, dist)
        g = torch.from_numpy(groups[part])
        loss = trainer.net(inputs[part].to(device), attention[part].long().to(device), labels[part].to(device),
                           row_lang[g].to(device), row_script[g].to(device), n_masked / dist.world)
        return loss, int(lengths.sum())

    return micro_step


def _selection(cfg: Mapping[str, Any], trainer: Trainer, objective: Any, tokenizer: Any,
               corpus_paths: Mapping[str, Path], masking: _Masking, maps: IdMaps | None,
               callback: Callable[[int], None] | None, export: Callable[[int, Path], None],
               ) -> tuple[Callable[[int], None], Callable[[], dict], Callable[[Path], None]]:  # fmt: skip
    """(`Trainer.run`'s callback, the selection at the end, a hook that adds files to the output directory)
    for ``select``: ``dev_mlm`` evaluates the held-out MLM loss every ``eval_every`` steps (and at step 0 and
    the last step) on rank 0 and keeps the best step (`langadapt.train.devloss`); ``downstream`` exports the
    model of every selection step (`langadapt.train.stepselect.downstream_exports`); ``last`` keeps the last step."""
    from langadapt.data.corpus import corpus_texts_by_lang
    from langadapt.train.devloss import BestKeeper, build_dev_set, dev_losses

    steps = int(cfg["steps"])
    if cfg["select"] == "downstream":
        return downstream_exports(cfg, trainer, callback, export)
    if cfg["select"] != "dev_mlm":
        return ((callback or (lambda step: None)), lambda: {"select": "last", "selected_step": trainer.step},
                lambda directory: None)
    dist, device = trainer.dist, trainer.device
    dev = build_dev_set(
        tokenizer, corpus_texts_by_lang(dict(corpus_paths), split="dev"),
        lambda ids, never, g: mask_tokens(ids, never, masking.mask_id, masking.candidates, g, masking.probability,
                                          masking.ratios),
        int(cfg["seq_len"]), int(cfg["dev_sentences"]), int(cfg["seed"]),
        lambda c: (maps.language_id(c), maps.script_id(c)) if maps else (0, 0),
    )  # fmt: skip
    keeper, every = BestKeeper(trainer.run_dir), int(cfg["eval_every"] or cfg["checkpoint_every"])

    def evaluate(step: int) -> None:
        if dist.is_main:
            keeper.update(step, dev_losses(objective, dev, device), objective)
        dist.barrier()

    if trainer.step == 0 and not keeper.curve():
        evaluate(0)

    def on_step(step: int) -> None:
        if step % every == 0 or step == steps:
            evaluate(step)
        if callback is not None:
            callback(step)

    def select() -> dict:
        chosen = keeper.restore(objective) if dist.is_main else None
        return {"select": "dev_mlm", "selected_step": chosen if chosen is not None else trainer.step,
                "dev_loss": keeper.curve() if dist.is_main else {}}

    return on_step, select, lambda directory: None


def _body_freezer(model: Any, frozen_until: int) -> Callable[[int], bool] | None:
    """`Trainer.run`'s ``before_step``: transformer blocks frozen before step `frozen_until` (LAPT-EMB,
    ``freeze_body_*``); None when nothing is frozen."""
    body = body_params(model) if frozen_until > 0 else []
    if not body:
        return None
    state = {"frozen": None}

    def before_step(step: int) -> bool:
        frozen = step < frozen_until
        if frozen == state["frozen"]:
            return False
        for p in body:
            p.requires_grad_(not frozen)
        state["frozen"] = frozen
        log.info("step %d: transformer blocks %s", step, "frozen" if frozen else "trainable")
        return True

    return before_step


def _unwrap(model: Any, factorization: Factorization | None) -> Factorization | None:
    """After training: every parameter trainable again, dense embeddings, and factorized embeddings
    materialized (the model is an ordinary HF model again); returns the trained factors, if any."""
    for p in model.parameters():
        p.requires_grad_(True)
    if isinstance(model.get_input_embeddings(), torch.nn.Embedding):
        model.get_input_embeddings().sparse = False
    trained_factors = factorization_of(model) if factorization is not None else None
    if trained_factors is not None:
        materialize(model)  # the factors are saved beside it
    return trained_factors


def pretrain_job(spec: dict, model_dir: Path, corpus_paths: dict[str, Path], out_dir: Path, run_dir: Path,
                 inventory: Sequence[str] | None, provenance: dict, threads: int = 1,
                 gpus: int | None = None, log: logging.Logger = log) -> None:
    """Continued pretraining in this process, or under ``torchrun`` when it needs several processes.

    `spec` is the pretraining stage spec (its ``name`` / ``objective`` / ``languages`` keys are not
    trainer keys). The number of processes is the spec's ``processes``, else one per allocated GPU
    (`gpus`: the rule's ``gpu`` resource) that CUDA sees.
    """
    from langadapt.train.distributed import launch, world_size_for

    cfg = {k: v for k, v in spec.items() if k not in ("name", "objective", "languages")}
    nproc = world_size_for(resolve_config(cfg)["processes"], gpus)
    inventory = list(inventory) if inventory else None
    if nproc > 1:
        log.info("pretraining with %d data-parallel processes", nproc)
        kwargs = {"model_dir": str(model_dir), "corpus_paths": {k: str(v) for k, v in corpus_paths.items()},
                  "out_dir": str(out_dir), "run_dir": str(run_dir), "cfg": cfg, "provenance": provenance,
                  "inventory": inventory}
        launch("pretrain", kwargs, nproc, Path(run_dir).parent / f".{Path(run_dir).name}-launch",
               extra_env={"LANGADAPT_THREADS": str(max(1, threads // nproc))})
    else:
        pretrain(model_dir, corpus_paths, out_dir, run_dir, cfg, provenance=provenance, inventory=inventory)
