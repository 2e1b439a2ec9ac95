"""HyperOFA hypernetwork training settings: the defaults with their paper sources (HyperOFA §3.4, App. Table 6) and their checks."""

from __future__ import annotations

from typing import Any

from langadapt.core.checks import check_int, check_number
from langadapt.core.errors import ConfigError
from langadapt.hypernet.nets import HYPERNETS

MATCH_MODES = ("tokenize", "substring")


COORDINATES = ("u", "us")


#: Training configuration (the config's ``hypernetwork.train``) and defaults; constants cite HyperOFA.
DEFAULT_CFG: dict[str, Any] = {
    "kind": "bilstm",  # HyperOFA §3.4 and App. A.1: a BiLSTM (better than the Setformer, Table 5)
    "dim": 100,  # D' of the SVD factorization (§3.2); §4.1 uses 100, 200 and 400
    "coordinates": "u",  # targets: "u" = U of E = U S Vᵀ as in HyperOFA's code (F = U, P = S Vᵀ), times
    #                      sqrt(V) for unit RMS (the losses are scale-free); "us" = factorize's U S
    "match": "tokenize",  # piece ~ word: "tokenize" (the word's segmentation has the piece; OFA/HyperOFA
    #                       code) or "substring" (`piece_word_sets`)
    "hidden": 800,  # App. Table 6: BiLSTM hidden size 800 (D' 100/200), 1600 (D' 400)
    "layers": 2,  # App. Table 6: 2 layers (RoBERTa), 4 (XLM-R)
    "heads": 4,  # set_transformer only (attention heads; must divide hidden)
    "dropout": 0.4,  # App. A.2/A.3: "a dropout rate of 0.4"
    "max_set": 256,  # App. A.2: "a maximum context size of 256" (matched words per piece)
    "augment_prob": 0.5,  # App. A.3: "with 50% probability, the number of word vectors is randomly limited
    "augment_min_fraction": 0.5,  # to 50-100% of the available vectors"
    "augment_min_size": 4,  # HyperOFA's code (augmentation_threshold): sets of <= 4 words are only shuffled
    "lr": 1e-4,  # App. A.2: Adam, "the learning rate starts at 1e-4
    "lr_decay": 0.95,  # and decays ... by a factor of 0.95
    "lr_decay_epochs": 10,  # every 10 epochs"
    "weight_decay": 0.0,  # HyperOFA's code: Adam without weight decay
    "batch_size": 256,  # HyperOFA's code (not in the paper); also the contrastive loss's negatives
    "epochs": 400,  # App. Table 6: converged after 80-470 epochs
    "patience": 20,  # App. A.2 "trained until the validation loss converged": stop after this many epochs
    #                  without a better held-out loss and keep the best epoch (0 = run all epochs)
    "lambda": 0.1,  # App. A.2: "lambda = 0.1 for all hypernetworks" (weight of L_c, §3.4)
    "temperature": 0.25,  # App. A.2: T = 0.25 for XLM-R (multi), 0.5 for RoBERTa (mono)
    "heldout_fraction": 0.1,
    "log_every": 100,  # a progress line (loss, pairs/s, ETA) + tracker point every N batches
    "seed": 0,
    "device": "auto",  # auto = cuda if available, else cpu
}


_POSITIVE_INTS = ("dim", "hidden", "layers", "heads", "max_set", "lr_decay_epochs", "batch_size", "epochs",
                  "log_every")


def resolve_cfg(cfg: dict | None) -> dict[str, Any]:
    """`DEFAULT_CFG` updated with `cfg`; ConfigError naming the key for unknown keys or bad values."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULT_CFG))
    if unknown:
        raise ConfigError(f"hypernetwork config: unknown key(s) {unknown}; known: {sorted(DEFAULT_CFG)}")
    out = {**DEFAULT_CFG, **cfg}
    HYPERNETS.get(out["kind"])

    def bad(key: str, what: str) -> ConfigError:
        return ConfigError(f"hypernetwork config: {key} must be {what}, got {out[key]!r}")

    for key in (*_POSITIVE_INTS, "augment_min_size", "patience", "seed"):
        check_int(out[key], f"hypernetwork config: {key}", 1 if key in _POSITIVE_INTS else 0)
    for key, lo, hi in (("lambda", 0, 1), ("augment_prob", 0, 1), ("augment_min_fraction", 0, 1),
                        ("dropout", 0, 0.99), ("heldout_fraction", 0, 0.99), ("lr_decay", 1e-9, 1)):
        check_number(out[key], f"hypernetwork config: {key}", lo, hi)
    for key in ("temperature", "lr"):
        check_number(out[key], f"hypernetwork config: {key}", 0, low_open=True)
    if out["batch_size"] < 2:
        raise bad("batch_size", ">= 2 (the contrastive loss needs negatives)")
    if out["weight_decay"] < 0:
        raise bad("weight_decay", ">= 0")
    if out["match"] not in MATCH_MODES:
        raise bad("match", f"one of {', '.join(MATCH_MODES)}")
    if out["coordinates"] not in COORDINATES:
        raise bad("coordinates", f"one of {', '.join(COORDINATES)}")
    if out["kind"] == "set_transformer" and out["hidden"] % out["heads"]:
        raise bad("hidden", f"a multiple of heads ({out['heads']}) for set_transformer")
    return out
