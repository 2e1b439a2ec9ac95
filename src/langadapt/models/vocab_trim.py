"""Trim a Unigram (SentencePiece-style) vocabulary and the tied embedding matrix to the pieces a corpus uses.

A CPU-speed option of the embedded default: the XLM-R vocabulary has 250k pieces, a Bible corpus uses
~20k, and the MLM softmax over the full vocabulary dominates a training step.

Guarantee: on the texts it was trimmed to, the new tokenizer yields exactly the same pieces as the old
one (ids renumbered) and the model the same hidden states. To make the first hold for the Viterbi
segmentation of a Unigram model, the kept set is: special tokens, every piece the texts use, the
single-character pieces of every character of the (normalized) texts, the lowest-scoring piece (so the
score of the unknown token, ``min score - 10``, is unchanged) and any `keep_pieces`. The new lattice is
then a sub-lattice of the old one that contains the old best path. The property is checked on the texts
before returning (DataError if it fails).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from langadapt.core.errors import ConfigError, DataError

_BATCH = 1024
_CHECK_SAMPLE = 20_000  # texts re-tokenized to verify a trimmed tokenizer


def _special_order(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """Ids of special tokens to put first (XLM-R order <s>, <pad>, </s>, <unk>, then any others) and
    last (<mask>)."""
    last = [tokenizer.mask_token_id] if tokenizer.mask_token_id is not None else []
    first: list[int] = []
    for names in (("bos_token", "cls_token"), ("pad_token",), ("eos_token", "sep_token"), ("unk_token",)):
        for name in names:
            tid = getattr(tokenizer, f"{name}_id", None)
            if tid is not None and tid not in first and tid not in last:
                first.append(tid)
                break
    others = sorted(i for i in tokenizer.all_special_ids if i not in first and i not in last)
    return first + others, last


def _batches(texts: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(texts), _BATCH):
        yield list(texts[i : i + _BATCH])


def _encode_all(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    out: list[list[int]] = []
    for batch in _batches(texts):
        out.extend(tokenizer(batch, add_special_tokens=False)["input_ids"])
    return out


def select_pieces(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], keep_pieces: Iterable[str] = ()
) -> list[int]:
    """Old ids to keep, in new-id order: specials first, used pieces by old id, <mask> last."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend["model"]
    if model.get("type") != "Unigram":
        raise ConfigError(f"trim_vocab needs a Unigram tokenizer, this one is {model.get('type')!r}")
    vocab = tokenizer.get_vocab()
    scores = [float(s) for _, s in model["vocab"]]
    used: set[int] = set()
    for ids in _encode_all(tokenizer, texts):
        used.update(ids)
    normalizer = tokenizer.backend_tokenizer.normalizer
    chars: set[str] = set()
    for t in texts:
        chars.update(normalizer.normalize_str(t) if normalizer is not None else t)
    chars.add("\u2581")  # the Metaspace word-boundary marker
    used.update(vocab[c] for c in chars if c in vocab)
    first, last = _special_order(tokenizer)
    special = set(first) | set(last)
    regular = [i for i in range(len(scores)) if i not in special]
    if regular:
        used.add(min(regular, key=lambda i: scores[i]))
    missing = [p for p in keep_pieces if p not in vocab]
    if missing:
        raise ConfigError(f"keep_pieces not in the vocabulary: {missing[:5]}")
    used.update(vocab[p] for p in keep_pieces)
    return first + sorted(used - special) + last


def _remap_post_processor(pp: Any, remap: dict[int, int]) -> Any:
    if pp is None:
        return None
    if pp.get("type") == "Sequence":
        pp["processors"] = [_remap_post_processor(p, remap) for p in pp["processors"]]
    elif pp.get("type") == "TemplateProcessing":
        for spec in pp["special_tokens"].values():
            spec["ids"] = [remap[i] for i in spec["ids"]]
    elif pp.get("type") in ("RobertaProcessing", "BertProcessing"):
        for key in ("sep", "cls"):
            pp[key] = [pp[key][0], remap[pp[key][1]]]
    return pp


def trim_tokenizer(tokenizer: PreTrainedTokenizerBase, kept_ids: Sequence[int]) -> PreTrainedTokenizerBase:
    """A new fast tokenizer of the same class with only `kept_ids` (new id = position in `kept_ids`)."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    old_vocab = backend["model"]["vocab"]
    remap = {old: new for new, old in enumerate(kept_ids)}
    backend["model"]["vocab"] = [old_vocab[i] for i in kept_ids]
    backend["model"]["unk_id"] = remap.get(backend["model"].get("unk_id"), None)
    for tok in backend.get("added_tokens", []):
        if tok["id"] not in remap:
            raise DataError(f"added token {tok['content']!r} (id {tok['id']}) was not kept")
        tok["id"] = remap[tok["id"]]
    backend["post_processor"] = _remap_post_processor(backend.get("post_processor"), remap)
    with tempfile.TemporaryDirectory(prefix="langadapt-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        Path(tmp, "tokenizer.json").write_text(json.dumps(backend, ensure_ascii=False), encoding="utf-8")
        for extra in ("sentencepiece.bpe.model", "spm.model", "vocab.json"):
            Path(tmp, extra).unlink(missing_ok=True)  # the old vocabulary must not be reloaded
        new = AutoTokenizer.from_pretrained(tmp)
    new.model_max_length = tokenizer.model_max_length
    return new


@torch.no_grad()
def slice_embeddings(model: PreTrainedModel, kept_ids: Sequence[int], pad_id: int | None = None) -> None:
    """Keep rows `kept_ids` of the input embeddings, output embeddings and output bias, in place.

    Every module holding one of those parameters gets the same new parameter, so tied weights stay tied.
    """
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    idx = torch.as_tensor(list(kept_ids), dtype=torch.long)
    old = [emb.weight]
    if out is not None:
        old += [p for p in (out.weight, getattr(out, "bias", None)) if p is not None]
    old_n = emb.weight.shape[0]
    new: dict[int, torch.nn.Parameter] = {}
    for p in old:
        if id(p) not in new and p.shape[0] == old_n:
            new[id(p)] = torch.nn.Parameter(p.data[idx].clone(), requires_grad=p.requires_grad)
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None and id(p) in new:
                module._parameters[name] = new[id(p)]
    emb.num_embeddings = len(idx)
    emb.padding_idx = pad_id
    if out is not None and hasattr(out, "out_features"):
        out.out_features = len(idx)
    model.config.vocab_size = len(idx)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()


def trim_vocabulary(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    keep_pieces: Iterable[str] = (),
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[int]]:
    """Trim `model` (in place) and `tokenizer` (a new one) to the pieces used by `texts`.

    Returns ``(model, new_tokenizer, kept_ids)`` where ``kept_ids[new_id] == old_id``. Special token ids
    of the config (pad/bos/eos) are renumbered too.
    """
    texts = [t for t in texts if t]
    if not texts:
        raise DataError("trim_vocabulary: no non-empty texts to trim the vocabulary to")
    kept = select_pieces(tokenizer, texts, keep_pieces)
    new_tok = trim_tokenizer(tokenizer, kept)
    # Self-check on an evenly spaced sample (the full corpus would cost two more tokenization passes);
    # the property holds by construction and is tested exhaustively in the unit tests.
    step = max(1, len(texts) // _CHECK_SAMPLE)
    check_same_pieces(tokenizer, new_tok, texts[::step], kept)
    remap = {old: new for new, old in enumerate(kept)}
    cfg = model.config
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        old_id = getattr(cfg, key, None)
        if isinstance(old_id, int):
            setattr(cfg, key, remap.get(old_id))
    slice_embeddings(model, kept, pad_id=new_tok.pad_token_id)
    return model, new_tok, kept


def check_same_pieces(
    old: PreTrainedTokenizerBase, new: PreTrainedTokenizerBase, texts: Sequence[str], kept: Sequence[int]
) -> None:
    """Raise DataError unless `new` segments every text exactly as `old` (ids mapped through `kept`)."""
    old_ids, new_ids = _encode_all(old, texts), _encode_all(new, texts)
    for line, (a, b) in enumerate(zip(old_ids, new_ids, strict=True), 1):
        if [kept[i] for i in b] != a:
            raise DataError(
                f"trimmed tokenizer segments text {line} differently: "
                f"{old.convert_ids_to_tokens(a)[:20]} vs {new.convert_ids_to_tokens(b)[:20]}"
            )
