"""Model directories (docs/architecture.md): load and save an MLM + its tokenizer + ``langadapt.json``.

A model directory is a Hugging Face ``save_pretrained`` directory of an ``AutoModelForMaskedLM`` (BERT or
XLM-R architecture, safetensors, tied input/output embeddings) with its fast tokenizer saved beside it
and a ``langadapt.json`` provenance record. Writing is atomic: the directory is built under a temporary
name next to the target and renamed into place, so a failed save leaves nothing (and keeps any old one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers import logging as hf_logging

from langadapt.core.atomic import atomic_dir
from langadapt.core.errors import DataError
from langadapt.models.card import PROVENANCE_FILE, write_provenance


def check_model_dir(model_dir: str | Path) -> Path:
    """Return `model_dir` as a Path, or raise DataError if it is missing or not a model directory."""
    d = Path(model_dir)
    if not d.is_dir():
        raise DataError(f"model directory not found: {d}")
    missing = [f for f in ("config.json", "tokenizer.json") if not (d / f).is_file()]
    if missing:
        raise DataError(f"{d} is not a model directory: no {', '.join(missing)}")
    return d


def load_mlm(model_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(AutoModelForMaskedLM, AutoTokenizer)`` from a model directory."""
    d = check_model_dir(model_dir)
    try:
        model = AutoModelForMaskedLM.from_pretrained(d)
        tokenizer = AutoTokenizer.from_pretrained(d)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load the model in {d}: {e}") from e
    return model, tokenizer


def load_encoder(model_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(AutoModel, AutoTokenizer)`` (the encoder without MLM head and, where supported, without
    the untrained pooler) from a model directory."""
    d = check_model_dir(model_dir)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the dropped MLM head is expected: no "unexpected keys" report
    try:
        try:
            model = AutoModel.from_pretrained(d, add_pooling_layer=False)
        except TypeError:  # architectures without a pooler option
            model = AutoModel.from_pretrained(d)
        tokenizer = AutoTokenizer.from_pretrained(d)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load the model in {d}: {e}") from e
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def read_provenance(model_dir: str | Path) -> dict[str, Any]:
    """The ``langadapt.json`` record of a model directory."""
    d = Path(model_dir)
    path = d / PROVENANCE_FILE
    if not d.is_dir():
        raise DataError(f"model directory not found: {d}")
    if not path.is_file():
        raise DataError(f"{d} has no {PROVENANCE_FILE}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from e


def model_info(model: PreTrainedModel) -> dict[str, Any]:
    """Summary of a model: architecture, parameter count (tied weights once), vocabulary, layers, hidden."""
    cfg = model.config
    return {
        "architecture": type(model).__name__,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "vocab_size": int(cfg.vocab_size),
        "num_layers": int(cfg.num_hidden_layers),
        "hidden_size": int(cfg.hidden_size),
    }


def write_model_files(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: Path, provenance: dict[str, Any],
    final: str | Path | None = None,
) -> None:
    """Write model (safetensors), tokenizer, ``langadapt.json`` and its ``README.md`` model card into an
    existing directory (`final`: where it is renamed to, named in the card; default `directory`)."""
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    model.save_pretrained(directory)  # safetensors (the only format in transformers 5)
    tokenizer.save_pretrained(directory)
    record = dict(provenance)
    record.setdefault("model", model_info(model))
    write_provenance(directory, record, final=final)


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    provenance: dict[str, Any],
) -> Path:
    """Save a model directory atomically (model + tokenizer + ``langadapt.json``); return its path.

    ``langadapt.json`` holds `provenance` (recipe, stage, config hash, code version, ... as the caller
    gives them) plus a ``model`` summary (:func:`model_info`) unless the caller gave one.
    """
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        write_model_files(model, tokenizer, tmp, provenance, final=out)
    return out
