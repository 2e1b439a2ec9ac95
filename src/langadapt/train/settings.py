"""Settings of the training stages, free of torch (the workflow validates them before any job runs).

:data:`PRETRAIN_DEFAULTS` are the continued-pretraining keys with LangSAMP's values (each with its
citation); :data:`PRESETS` are the papers' hyperparameter sets; :func:`resolve_config` merges defaults,
preset and the user's keys and validates them with errors that name the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError
from langadapt.core.languages import parse_lang

#: LangSAMP §5.1 ablation variants (see `langadapt.train.objective`, which owns the tables)
LANGSAMP_CHOICES = ("none", "language", "script", "both")


def merge_config(cfg: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Defaults overlaid with `cfg`; an unknown key raises ConfigError naming it and the known keys."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {where} config key(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **cfg}


def check_positive(cfg: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    """ConfigError unless every key is a positive int."""
    for k in keys:
        check_int(cfg[k], f"{where} config {k!r}")


def check_processes(processes: Any) -> None:
    """`processes` is null or a positive integer."""
    check_int(processes, "'processes'", optional=True)


PRETRAIN_DEFAULTS: dict[str, Any] = {
    "preset": "langsamp",  # hyperparameter set the values below come from; see PRESETS
    "steps": 150_000,  # LangSAMP §4.1: "We set the maximum steps to 150K"
    "batch_size": 32,  # LangSAMP §4.1: per-GPU batch size 32 (sequences per process and micro-batch)
    "grad_accum": 8,  # LangSAMP §4.1: gradient accumulation 8 (x 4 GPUs x 32 = 1,024 effective)
    "effective_batch": None,  # sequences per optimizer step; set -> grad_accum = it / (batch_size x processes)
    "seq_len": 512,  # LangSAMP §4.1: sentences of one language-script concatenated to 512-token chunks
    "lr": 5e-5,  # LangSAMP §4.1: initial learning rate 5e-5
    "betas": [0.9, 0.999],  # LangSAMP §4.1: AdamW (beta1, beta2) = (0.9, 0.999)
    "eps": 1e-6,  # LangSAMP §4.1: epsilon 1e-6
    # LangSAMP §4.1 states AdamW's betas and eps but no weight decay; its run script (cisnlp/LangSAMP run_mlm.sh)
    # passes no --weight_decay, so the Hugging Face Trainer default 0.0 applied
    "weight_decay": 0.0,
    "warmup_steps": 0,  # not stated in LangSAMP / vocab-specialization Table 6
    "schedule": "linear",  # vocab-specialization Table 6: lr_schedule linear
    "max_grad_norm": 1.0,  # vocab-specialization Table 6: max_gradient_norm 1.0
    "mlm_probability": 0.15,  # vocab-specialization Table 6: mlm_masking_prob 0.15 (Devlin et al. 2019)
    "mask_ratios": [0.8, 0.1, 0.1],  # BERT (Devlin et al. 2019 §3.1): <mask> / random token / unchanged
    "alpha": 0.3,  # LangSAMP §4.1: multinomial sampling temperature 0.3 (vocab-specialization §4: 0.2)
    "data_fraction": 1.0,  # LangSAMP §5.1: the ablation variants train on 5% of each language's data
    "langsamp": "none",  # LangSAMP §3: none | language | script | both embeddings before the MLM head
    "variant": "full",  # vocab-specialization §4: LAPT-FULL (all trainable) | LAPT-EMB (blocks frozen)
    "freeze_body_steps": 0,  # transformer blocks frozen for the first N steps (LAPT-FULL: 10k of 100k)
    "freeze_body_fraction": 0.0,  # the same as a share of `steps` (vocab-specialization §4: 0.1)
    "checkpoint_every": 5000,  # LangSAMP §4.1: checkpoints every 5K steps
    # which step's weights the stage keeps: last; dev_mlm = the best held-out MLM loss (vocabulary paper §4;
    # langadapt.train.devloss); downstream = the best average score over `select_tasks`, each step's model
    # evaluated by the workflow (LangSAMP §4.1: "early stopping with the best average performance on
    # downstream tasks"; langadapt.train.stepselect)
    "select": "last",
    "select_tasks": [],  # evaluation tasks whose average main metric picks the step; select: downstream
    "eval_every": None,  # steps between evaluations (null = checkpoint_every); select: dev_mlm / downstream
    "dev_sentences": 200,  # dev sentences per language, masked once with the run's seed; select: dev_mlm
    "keep_checkpoints": 2,  # newest checkpoints kept in run_dir while training
    "keep_final_checkpoint": False,  # true: checkpoint the last step and keep checkpoints after saving
    "log_every": 100,  # rows of run_dir/loss.csv (mean loss over the steps since the previous row)
    "seed": 42,
    "device": "auto",  # auto = cuda if available, else cpu
    "bf16": False,  # bf16 autocast (GPU); float32 master weights either way
    "processes": None,  # data-parallel processes (torchrun); null = one per visible GPU, 1 on CPU
    # OFA §3 / HyperOFA §3.2: train coordinates x primitives instead of the embedding matrix when the model
    # directory has a factorization (factorized.safetensors, from the init stage's `factorize: k`)
    "factorized": "auto",  # auto = when present | true = required | false = train the plain matrix
}

#: Paper hyperparameter sets; `preset` picks one, explicit keys override it.
PRESETS: dict[str, dict[str, Any]] = {
    "langsamp": {},  # LangSAMP §4.1 (= PRETRAIN_DEFAULTS)
    "vocab_lapt": {  # vocabulary specialization (Downey et al. 2023) §4 and Table 6
        "steps": 100_000,  # §4: "LAPT for 100k training steps"
        "checkpoint_every": 1000,  # §4: "evaluation checkpoints every 1000 steps"
        "batch_size": 200,  # Table 6: batch_size 200 (per step; no accumulation stated)
        "grad_accum": 1,
        "seq_len": 256,  # Table 6: max_sequence_length 256
        "lr": 1e-5,  # Table 6: learning_rate 1e-5
        "schedule": "linear",  # Table 6: lr_schedule linear
        "max_grad_norm": 1.0,  # Table 6 (0.5 when NaN losses appeared, App. B)
        "alpha": 0.2,  # §4: multinomial alpha = 0.2, sampled sentence-wise
        "freeze_body_fraction": 0.1,  # §4 LAPT-FULL: blocks frozen for the first 10k of 100k steps
        "select": "dev_mlm",  # §4: "The checkpoint obtaining the best MLM loss on a development set is selected"
        "weight_decay": 0.0,  # App. B: "the Adam optimizer" (no decoupled weight decay); Table 6 lists none
    },
}


def resolve_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults, overlaid with the preset named in `cfg`, overlaid with `cfg`; validated."""
    cfg = dict(cfg or {})
    preset = cfg.get("preset", PRETRAIN_DEFAULTS["preset"])
    if preset not in PRESETS:
        raise ConfigError(f"pretrain config 'preset' {preset!r} is unknown; known: {sorted(PRESETS)}")
    merged = merge_config({**PRESETS[preset], **cfg}, PRETRAIN_DEFAULTS, "pretrain")
    _validate(merged)
    return merged


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
        check_int(cfg[k], f"pretrain config {k!r}", low=0)
    if cfg["schedule"] not in ("linear", "constant"):
        raise ConfigError(f"pretrain config 'schedule' must be 'linear' or 'constant', got {cfg['schedule']!r}")
    if cfg["langsamp"] not in LANGSAMP_CHOICES:
        raise ConfigError(f"pretrain config 'langsamp' must be one of {list(LANGSAMP_CHOICES)}, "
                          f"got {cfg['langsamp']!r}")
    if cfg["variant"] not in ("full", "emb"):
        raise ConfigError(f"pretrain config 'variant' must be 'full' (LAPT-FULL) or 'emb' (LAPT-EMB), "
                          f"got {cfg['variant']!r}")
    if not 0.0 <= float(cfg["freeze_body_fraction"]) <= 1.0:
        raise ConfigError(f"pretrain config 'freeze_body_fraction' must be in [0, 1], "
                          f"got {cfg['freeze_body_fraction']}")
    if cfg["freeze_body_steps"] and cfg["freeze_body_fraction"]:
        raise ConfigError("pretrain config: give 'freeze_body_steps' or 'freeze_body_fraction', not both")
    if not 0.0 < float(cfg["data_fraction"]) <= 1.0:
        raise ConfigError(f"pretrain config 'data_fraction' must be in (0, 1], got {cfg['data_fraction']}")
    check_int(cfg["effective_batch"], "pretrain config 'effective_batch'", optional=True)
    if cfg["select"] not in SELECT_CHOICES:
        raise ConfigError(f"pretrain config 'select' must be one of {', '.join(SELECT_CHOICES)}, "
                          f"got {cfg['select']!r}")
    tasks = cfg["select_tasks"]
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise ConfigError(f"pretrain config 'select_tasks' must be a list of evaluation task names, got {tasks!r}")
    if (cfg["select"] == "downstream") != bool(tasks):
        raise ConfigError("pretrain config: select 'downstream' needs 'select_tasks' (evaluation tasks), and "
                          f"'select_tasks' is read only by it (select is {cfg['select']!r}, select_tasks {tasks})")
    if cfg["select"] == "downstream" and cfg["factorized"] is True:
        raise ConfigError("pretrain config: select 'downstream' exports plain models at every checkpoint; "
                          "factorized: true is not supported with it")
    check_int(cfg["eval_every"], "pretrain config 'eval_every'", optional=True)
    check_int(cfg["dev_sentences"], "pretrain config 'dev_sentences'")
    check_processes(cfg["processes"])
    if cfg["factorized"] not in ("auto", True, False):
        raise ConfigError(f"pretrain config 'factorized' must be auto, true or false, got {cfg['factorized']!r}")


SELECT_CHOICES = ("last", "dev_mlm", "downstream")


def selection_steps(cfg: Mapping[str, Any]) -> list[int]:
    """The steps whose model ``select: downstream`` exports and the workflow evaluates: every
    ``eval_every`` (default ``checkpoint_every``) steps, and the last step."""
    steps, every = int(cfg["steps"]), int(cfg["eval_every"] or cfg["checkpoint_every"])
    return sorted({*range(every, steps + 1, every), steps})


def frozen_steps(cfg: Mapping[str, Any]) -> int:
    """Number of initial steps with the transformer blocks frozen (all steps for LAPT-EMB)."""
    if cfg["variant"] == "emb":
        return int(cfg["steps"])
    if cfg["freeze_body_fraction"]:
        return round(float(cfg["freeze_body_fraction"]) * int(cfg["steps"]))
    return int(cfg["freeze_body_steps"])


def accumulation(cfg: Mapping[str, Any], world: int) -> int:
    """Micro-batches per step: `grad_accum`, or `effective_batch` / (batch_size x processes)."""
    eb = cfg["effective_batch"]
    if eb is None:
        return int(cfg["grad_accum"])
    per_step = int(cfg["batch_size"]) * world
    if eb % per_step:
        raise ConfigError(f"pretrain config 'effective_batch' {eb} is not a multiple of batch_size "
                          f"{cfg['batch_size']} x {world} process(es)")
    return eb // per_step


# ------------------------------------------------------------------------------------------ realignment
REALIGN_DEFAULTS: dict[str, Any] = {
    "loss": "sentence_average",  # realignment §2, Eq. 1; "word": aligned word pairs (App. A.2, Wu & Dredze 2020)
    "languages": None,  # realignment §3.1: the language subset S; null = every language in the file
    "steps": 24_544,  # realignment App. A.6: "Realignment is performed for 24,544 steps"
    "batch_size": 16,  # realignment App. A.6: realignment batch size 16
    "max_length": 96,  # realignment App. A.6: realignment maximum sequence length 96
    "lr": 2e-5,  # realignment App. A.6: learning rate 2e-5
    "temperature": 0.1,  # realignment §2, Eq. 1: T = 0.1
    # hidden-state layer(s) aligned (0 = embeddings, n = last): an int, a list (loss averaged over the layers,
    # like the reference code's realignment_layers), or null = the last layer (the reference code's default [-1])
    "layer": None,
    # uniform: every translation pair equally likely (languages in proportion to their number of pairs);
    # by_language: a language uniformly, then one of its pairs
    "sampling": "uniform",
    # pairs whose pivot sentences are identical are not each other's negatives (sentence_average)
    "mask_same_source": True,
    # word loss candidates: "all" = every other word of the batch on both sides (as H in Eq. 1); "cross" = only
    # the other side's words (the reference code's weak alignment)
    "negatives": "all",
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
LOSSES = ("sentence_average", "word")
NEGATIVES = ("all", "cross")


def check_realign_config(cfg: Mapping[str, Any]) -> list[str] | None:
    """Validate merged realignment settings; the sorted language subset (None = every language)."""
    check_positive(cfg, ("steps", "batch_size", "max_length", "checkpoint_every", "keep_checkpoints",
                         "log_every"), "realign")
    for key, allowed in (("sampling", SAMPLING), ("loss", LOSSES), ("negatives", NEGATIVES)):
        if cfg[key] not in allowed:
            raise ConfigError(f"realign config {key!r} must be one of {allowed}, got {cfg[key]!r}")
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
