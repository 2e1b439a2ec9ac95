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

Eq. 1 read literally also treats two pairs that share the identical pivot sentence (one Bible verse
paired with two languages in the same batch) as each other's negatives; with ``mask_same_source`` (the
default) such false negatives are left out of the denominators.

``loss: word`` is the word-level realignment the paper compares against (App. A.2, Table 2; Wu and
Dredze, 2020): word pairs from an aligner (:mod:`langadapt.realign.word_align`), a word's vector the mean of its
subword states, and the same contrastive form over the batch's words (:func:`word_alignment_loss`).

`realign` trains the encoder of an MLM model with either loss (AdamW, lr 2e-5, batch 16, max length
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

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.runtime import resolve_device
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
from langadapt.train.settings import NEGATIVES, REALIGN_DEFAULTS, check_realign_config, merge_config

log = logging.getLogger(__name__)

_COLUMNS = ("lang", "split", "src_text", "tgt_text")


def sentence_mean(hidden: torch.Tensor, attention_mask: torch.Tensor,
                  special_tokens_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, L, d) over the positions with attention 1 that are not special tokens.

    A sentence without such positions gets the zero vector (its cosine similarities are then 0).
    """
    keep = (attention_mask.bool() & ~special_tokens_mask.bool()).to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def realignment_loss(src: torch.Tensor, tgt: torch.Tensor, temperature: float = 0.1,
                     groups: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1 of the realignment paper over H = {h_1..h_B, h~_1..h~_B} (see the module docstring).

    `src`, `tgt`: (B, d) sentence vectors, row i of `src` aligned with row i of `tgt`. `groups` (B,):
    pairs with equal group ids are translations of one another (e.g. the same pivot sentence); their
    vectors are left out of each other's denominators, except the aligned one.
    """
    if src.shape != tgt.shape or src.ndim != 2:
        raise ValueError(f"src and tgt must both be (B, d), got {tuple(src.shape)} and {tuple(tgt.shape)}")
    b = src.shape[0]
    h = F.normalize(torch.cat([src, tgt]).float(), dim=-1)
    sim = h @ h.T / temperature
    aligned = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(sim.device)
    drop = torch.eye(2 * b, dtype=torch.bool, device=sim.device)
    if groups is not None:
        g = torch.as_tensor(groups, device=sim.device).repeat(2)
        same = g[:, None] == g[None, :]
        same[torch.arange(2 * b, device=sim.device), aligned] = False
        drop |= same
    return F.cross_entropy(sim.masked_fill(drop, float("-inf")), aligned)


def word_alignment_loss(src: torch.Tensor, tgt: torch.Tensor, links: torch.Tensor, temperature: float = 0.1,
                        negatives: str = "all") -> torch.Tensor:
    """Contrastive loss over aligned word pairs, both directions, in the form of Eq. 1.

    `src` (Ns, d) and `tgt` (Nt, d): every word vector of the batch's source and target sentences;
    `links` (P, 2): aligned (source word, target word) index pairs. Each linked word is a query whose
    positive is its aligned word; candidates are all other words of the batch (``negatives="all"``) or
    only those of the other side (``"cross"``). Other words linked to the same query word (one-to-many
    links) are left out of its denominator. Mean over the 2P queries; 0 (with a gradient) when P = 0.
    """
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    ns = src.shape[0]
    if links.numel() == 0:
        return (src.sum() + tgt.sum()) * 0.0
    h = F.normalize(torch.cat([src, tgt]).float(), dim=-1)
    n = h.shape[0]
    s_idx, t_idx = links[:, 0], links[:, 1] + ns
    queries = torch.cat([s_idx, t_idx])
    targets = torch.cat([t_idx, s_idx])
    sim = h[queries] @ h.T / temperature
    linked = torch.zeros(n, n, dtype=torch.bool, device=h.device)
    linked[s_idx, t_idx] = True
    linked[t_idx, s_idx] = True
    rows = torch.arange(queries.numel(), device=h.device)
    drop = linked[queries]
    drop[rows, targets] = False
    drop[rows, queries] = True
    if negatives == "cross":
        same_side = (torch.arange(n, device=h.device) >= ns)[None, :] == (queries >= ns)[:, None]
        drop |= same_side
    return F.cross_entropy(sim.masked_fill(drop, float("-inf")), targets)


def word_means(hidden: torch.Tensor, word_index: torch.Tensor, n_words: int) -> torch.Tensor:
    """(n_words, d) mean of `hidden` (B, L, d) over the positions whose `word_index` (B, L) is that word.

    `word_index` holds a batch-global word index per position, -1 for special tokens and padding.
    """
    flat = hidden.reshape(-1, hidden.shape[-1])
    idx = word_index.reshape(-1)
    keep = idx >= 0
    sums = torch.zeros(n_words, flat.shape[-1], dtype=flat.dtype, device=flat.device)
    sums = sums.index_add(0, idx[keep], flat[keep])
    counts = torch.bincount(idx[keep], minlength=n_words).clamp(min=1).to(flat.dtype)
    return sums / counts.unsqueeze(-1)


def _layer_states(model: torch.nn.Module, enc: Mapping[str, torch.Tensor],
                  layers: list[int] | None) -> list[torch.Tensor]:
    out = model.base_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           output_hidden_states=layers is not None)
    return [out.last_hidden_state] if layers is None else [out.hidden_states[k] for k in layers]


def encode_sentences(model: torch.nn.Module, enc: Mapping[str, torch.Tensor], layer: int | None) -> torch.Tensor:
    """Sentence vectors of a tokenized batch: :func:`sentence_mean` of the encoder's `layer` states."""
    hidden = _layer_states(model, enc, None if layer is None else [layer])[0]
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
    langs, index = _languages_rows(lang_col, keep, languages, path)
    rows: list[list[int]] = [[] for _ in langs]
    src_out, tgt_out = [], []
    for i in keep:
        k = index.get(lang_col[i])
        if k is not None:
            rows[k].append(len(src_out))
            src_out.append(src[i])
            tgt_out.append(tgt[i])
    return langs, [np.asarray(r, dtype=np.int64) for r in rows], src_out, tgt_out


def _languages_rows(lang_col: list[str], keep: list[int], languages: list[str] | None,
                    path: Path) -> tuple[list[str], dict[str, int]]:
    present = sorted({lang_col[i] for i in keep})
    langs = present if languages is None else sorted(languages)
    missing = [code for code in langs if code not in present]
    if missing or not langs:
        raise DataError(f"{path} has no usable train pairs for {missing or 'any language'}")
    return langs, {code: k for k, code in enumerate(langs)}


class SentencePairs:
    """Train pairs for ``loss: sentence_average`` and the loss of a batch of them."""

    def __init__(self, path: Path, languages: list[str] | None, tokenizer: Any, cfg: Mapping[str, Any]) -> None:
        self.langs, self.groups, self.src, self.tgt = read_pairs(path, languages)
        self.tokenizer, self.cfg = tokenizer, cfg
        ids: dict[str, int] = {}
        self.source_ids = np.array([ids.setdefault(t, len(ids)) for t in self.src], dtype=np.int64)

    def loss(self, model: torch.nn.Module, rows: np.ndarray, layers: list[int] | None,
             device: torch.device) -> tuple[torch.Tensor, int]:
        texts = [self.src[i] for i in rows] + [self.tgt[i] for i in rows]
        enc = self.tokenizer(texts, truncation=True, max_length=self.cfg["max_length"], padding=True,
                             return_special_tokens_mask=True, return_tensors="pt")
        enc = {k: enc[k].to(device) for k in ("input_ids", "attention_mask", "special_tokens_mask")}
        b = len(rows)
        groups = torch.as_tensor(self.source_ids[rows]) if self.cfg["mask_same_source"] else None
        losses = [realignment_loss(v[:b], v[b:], float(self.cfg["temperature"]), groups)
                  for v in (sentence_mean(h, enc["attention_mask"], enc["special_tokens_mask"])
                            for h in _layer_states(model, enc, layers))]
        return torch.stack(losses).mean(), int(enc["attention_mask"].sum())


class WordPairs:
    """Word-aligned train pairs for ``loss: word`` (:mod:`langadapt.realign.word_align`) and the loss of a batch."""

    def __init__(self, path: Path, languages: list[str] | None, tokenizer: Any, cfg: Mapping[str, Any]) -> None:
        from langadapt.realign.word_align import read_aligned

        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError("realign loss 'word' needs a fast tokenizer (word ids of subwords)")
        table = read_aligned(path, None)
        lang_col = table.column("lang").to_pylist()
        src, tgt = table.column("src_words").to_pylist(), table.column("tgt_words").to_pylist()
        si, ti = table.column("src_index").to_pylist(), table.column("tgt_index").to_pylist()
        keep = [i for i in range(len(src)) if src[i] and tgt[i] and si[i]]
        self.langs, index = _languages_rows(lang_col, keep, languages, path)
        rows: list[list[int]] = [[] for _ in self.langs]
        self.src, self.tgt, self.links = [], [], []
        for i in keep:
            k = index.get(lang_col[i])
            if k is not None:
                rows[k].append(len(self.src))
                self.src.append(src[i])
                self.tgt.append(tgt[i])
                self.links.append(list(zip(si[i], ti[i], strict=True)))
        self.groups = [np.asarray(r, dtype=np.int64) for r in rows]
        self.tokenizer, self.cfg = tokenizer, cfg

    def batch(self, rows: np.ndarray) -> tuple[Any, torch.Tensor, int, int, torch.Tensor]:
        """Tokenized batch, batch-global word index per position, #words (all, source side), links."""
        words = [self.src[i] for i in rows] + [self.tgt[i] for i in rows]
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.cfg["max_length"],
                             padding=True, return_tensors="pt")
        word_index = torch.full(enc["input_ids"].shape, -1, dtype=torch.long)
        maps: list[dict[int, int]] = []
        n_words, n_src = 0, 0
        for k in range(len(words)):
            if k == len(rows):
                n_src = n_words
            local: dict[int, int] = {}
            for pos, w in enumerate(enc.word_ids(k)):
                if w is not None:
                    if w not in local:
                        local[w] = n_words
                        n_words += 1
                    word_index[k, pos] = local[w]
            maps.append(local)
        b = len(rows)
        links = [(maps[r][i], maps[b + r][j] - n_src) for r, row in enumerate(rows)
                 for i, j in self.links[row] if i in maps[r] and j in maps[b + r]]  # truncated words drop out
        return enc, word_index, n_words, n_src, torch.tensor(links, dtype=torch.long).reshape(-1, 2)

    def loss(self, model: torch.nn.Module, rows: np.ndarray, layers: list[int] | None,
             device: torch.device) -> tuple[torch.Tensor, int]:
        enc, word_index, n_words, n_src, links = self.batch(rows)
        enc = {k: enc[k].to(device) for k in ("input_ids", "attention_mask")}
        word_index, links = word_index.to(device), links.to(device)
        losses = []
        for h in _layer_states(model, enc, layers):
            vectors = word_means(h, word_index, n_words)
            losses.append(word_alignment_loss(vectors[:n_src], vectors[n_src:], links,
                                              float(self.cfg["temperature"]), self.cfg["negatives"]))
        return torch.stack(losses).mean(), int(enc["attention_mask"].sum())


def _layers(value: Any, n_layers: int) -> list[int] | None:
    """The `layer` setting as a list of hidden-state indices (None = the last layer's output)."""
    if value is None:
        return None
    items = value if isinstance(value, list) and value else [value]
    for k in items:
        if isinstance(k, bool) or not isinstance(k, int) or not -(n_layers + 1) <= k <= n_layers:
            raise ConfigError(f"realign config 'layer' must be null, an int or a non-empty list of ints in "
                              f"[-{n_layers + 1}, {n_layers}], got {value!r}")
    return list(items)


def realign(model_dir: Path, parallel_path: Path, out_dir: Path, run_dir: Path, cfg: Mapping[str, Any] | None,
            provenance: Mapping[str, Any] | None = None, *, alignments_path: Path | None = None,
            callback: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Realign the encoder of the MLM model in `model_dir` on the train pairs of `parallel_path`
    (``loss: word``: on the word-aligned pairs of `alignments_path`).

    Saves the full MLM model + tokenizer + ``langadapt.json`` + ``loss.csv`` atomically to `out_dir`;
    resumable from `run_dir` exactly like :func:`langadapt.train.mlm.pretrain`.
    """
    cfg = merge_config(cfg, REALIGN_DEFAULTS, "realign")
    languages = check_realign_config(cfg)
    model_dir, parallel_path, out_dir, run_dir = Path(model_dir), Path(parallel_path), Path(out_dir), Path(run_dir)
    if not (model_dir / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    word = cfg["loss"] == "word"
    if word and alignments_path is None:
        raise ConfigError("realign loss 'word' needs word alignments (an `aligner`)")
    model, tokenizer = load_model_dir(model_dir)
    pairs: SentencePairs | WordPairs = (WordPairs(Path(alignments_path), languages, tokenizer, cfg) if word
                                        else SentencePairs(parallel_path, languages, tokenizer, cfg))
    inputs = {"model": model_dir, "parallel": parallel_path}
    if word:
        inputs["alignments"] = Path(alignments_path)
    record = {"stage": "realign", "config": fingerprint_config(cfg), "languages": pairs.langs,
              "inputs": inputs_digest(inputs)}
    fp = fingerprint(record)
    prepare_run_dir(run_dir, fp, record)

    limit = max_positions(model)
    if cfg["max_length"] > limit:
        raise ConfigError(f"realign config 'max_length' {cfg['max_length']} exceeds the model's limit {limit}")
    layers = _layers(cfg["layer"], int(model.config.num_hidden_layers))
    device = resolve_device(cfg["device"])
    model.to(device)
    groups = pairs.groups
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
                      log_every=cfg["log_every"], bf16=cfg["bf16"], desc=f"realign ({cfg['loss']})",
                      json_state={"sampler": sampler})
    trainer.resume()

    def micro_step() -> tuple[torch.Tensor, int]:
        rows, _ = sampler.sample(cfg["batch_size"])
        return pairs.loss(model, rows, layers, device)

    stats = trainer.run(micro_step, callback=callback,
                        final_checkpoint=cfg["keep_final_checkpoint"])
    training = {"stage": "realign", "config": cfg, "fingerprint": fp, "languages": pairs.langs,
                "train_pairs": {code: len(g) for code, g in zip(pairs.langs, groups, strict=True)},
                "steps": stats["steps"], "tokens_seen": stats["tokens"], "final_loss": stats["final_loss"],
                "resumed_from_step": stats["resumed_from_step"]}
    save_model_dir(model, tokenizer, out_dir, {**(provenance or {}), "training": training},
                   run_dir / "loss.csv")
    if not cfg["keep_final_checkpoint"]:
        remove_checkpoints(run_dir)
    log.info("realign done: %s (%d steps)", out_dir, stats["steps"])
    return {"out_dir": str(out_dir), "fingerprint": fp, **stats}
