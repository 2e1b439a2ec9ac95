"""Tokenize per-language corpora once and pack them into fixed-length single-language sequences.

Each packed sequence is ``<s>`` + ``seq_len - 2`` consecutive tokens of ONE language's train split
(sentences concatenated in corpus order, a sentence may straddle two sequences) + ``</s>``; only the
last chunk of each language may be shorter, and it is kept (padded), so every token is used exactly
once per epoch. LangSAMP §4.1: "Each training instance in a batch contains sentences from the same
language-script which is concatenated to a chunk of 512 tokens."

Languages are drawn per sequence from a multinomial with temperature alpha, q_l ∝ (n_l / N)^alpha
(Conneau & Lample 2019; LangSAMP §4.1 alpha = 0.3; vocab-specialization §4 alpha = 0.2, "sampled
sentence-wise rather than batch-wise"), where n_l is the number of (non-empty) train sentences of
language l, as in `langadapt.data.sampling` (which computes q and writes results/data/sampling.csv).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.atomic import atomic_dir
from langadapt.core.errors import ConfigError, DataError
from langadapt.data.corpus import iter_split_texts
from langadapt.data.sampling import sampling_probs

_ARRAYS = ("input_ids", "lengths", "lang")


def tokenize_texts(tokenizer: Any, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
    """Concatenated token ids (no special tokens) of `texts`, batched through the fast tokenizer."""
    chunks = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i : i + batch_size]), add_special_tokens=False,
                        return_attention_mask=False, return_token_type_ids=False)
        ids = enc["input_ids"]
        chunks.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)


def pack_stream(stream: np.ndarray, seq_len: int, bos: int, eos: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack a token stream into ``(n, seq_len)`` rows ``<s> body </s> pad*``; returns (ids, lengths).

    `lengths` counts real tokens including ``<s>`` and ``</s>``; only the last row can be shorter.
    """
    if seq_len < 3:
        raise ConfigError(f"seq_len must be >= 3 (room for <s>, one token, </s>), got {seq_len}")
    body = seq_len - 2
    n_tok = len(stream)
    n = -(-n_tok // body)
    flat = np.full(n * body, pad, dtype=np.int32)
    flat[:n_tok] = stream
    lengths = np.full(n, body, dtype=np.int32)
    if n:
        lengths[-1] = n_tok - (n - 1) * body
    ids = np.full((n, seq_len), pad, dtype=np.int32)
    ids[:, 0] = bos
    ids[:, 1 : 1 + body] = flat.reshape(n, body)
    ids[np.arange(n), lengths + 1] = eos
    return ids, lengths + 2


@dataclass
class PackedCorpus:
    """Packed sequences of several languages: row i is language ``langs[lang[i]]``."""

    input_ids: np.ndarray  # (n, seq_len) int32
    lengths: np.ndarray  # (n,) int32, real tokens incl. <s> and </s>
    lang: np.ndarray  # (n,) int32 index into `langs`
    langs: list[str]
    tokens: list[int]  # train tokens per language (without special tokens)
    sentences: list[int]  # non-empty train sentences per language
    pad_id: int

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    def rows_of(self, k: int) -> np.ndarray:
        """Row indices of language index `k` (contiguous, in corpus order)."""
        return np.flatnonzero(self.lang == k)

    def save(self, directory: Path) -> None:
        """Write ``.npy`` arrays + ``meta.json`` atomically (temp dir + rename)."""
        meta = {"langs": self.langs, "tokens": self.tokens, "sentences": self.sentences, "pad_id": self.pad_id}
        with atomic_dir(directory) as tmp:
            for name in _ARRAYS:
                np.save(tmp / f"{name}.npy", getattr(self, name))
            (tmp / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> PackedCorpus:
        """Load what :meth:`save` wrote; arrays memory-mapped when `mmap`."""
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        arrays = {n: np.load(directory / f"{n}.npy", mmap_mode="r" if mmap else None) for n in _ARRAYS}
        return cls(**arrays, langs=meta["langs"], tokens=meta["tokens"], sentences=meta["sentences"],
                   pad_id=meta["pad_id"])


def special_ids(tokenizer: Any) -> tuple[int, int, int]:
    """(<s>, </s>, <pad>) ids: cls/sep (XLM-R <s>, </s>; BERT [CLS], [SEP]) or bos/eos as fallback."""
    bos = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    eos = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    if bos is None or eos is None or pad is None:
        raise ConfigError("tokenizer needs a cls/bos, a sep/eos and a pad token for packing")
    return int(bos), int(eos), int(pad)


def subsample_indices(n: int, fraction: float, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random `fraction` of `n` items (at least one); None keeps all."""
    if fraction >= 1.0:
        return None
    k = max(1, round(fraction * n))
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _tokenize_language(tokenizer: Any, path: Path, fraction: float, seed: int, sink: Any) -> tuple[int, int]:
    """Tokenize the (subsampled) train split of one corpus batch by batch, appending int32 ids to `sink`;
    returns (sentences, tokens). Two passes over the file when subsampling: count, then select."""
    keep = None
    if fraction < 1.0:
        n = sum(len(t) for t in iter_split_texts(path))
        keep = subsample_indices(n, fraction, seed) if n else None
    start = sentences = tokens = 0
    for texts in iter_split_texts(path):
        first, start = start, start + len(texts)
        if keep is not None:
            lo, hi = np.searchsorted(keep, [first, start])
            texts = [texts[i] for i in (keep[lo:hi] - first).tolist()]
        ids = tokenize_texts(tokenizer, texts)
        sink.write(ids.tobytes())
        sentences, tokens = sentences + len(texts), tokens + len(ids)
    if not sentences:
        raise DataError(f"corpus {path} has no non-empty rows in split 'train'")
    return sentences, tokens


def pack_corpora(tokenizer: Any, corpus_paths: Mapping[str, Path], seq_len: int, fraction: float = 1.0,
                 seed: int = 0, out_dir: Path | None = None, chunk_rows: int = 1 << 14) -> PackedCorpus:
    """Tokenize each language's train split once and pack it; languages in sorted order.

    `fraction` < 1 keeps a seeded random share of each language's sentences (LangSAMP §5.1 ablation: 5%).
    Memory stays bounded by a batch of text and `chunk_rows` packed rows: token ids go to a temporary file
    per language, then into the packed arrays — memory-mapped ``.npy`` files written atomically to `out_dir`
    when given (the training cache; returned memory-mapped), else arrays in memory.
    """
    bos, eos, pad = special_ids(tokenizer)
    if seq_len < 3:
        raise ConfigError(f"seq_len must be >= 3 (room for <s>, one token, </s>), got {seq_len}")
    body = seq_len - 2
    langs = sorted(corpus_paths)
    with tempfile.TemporaryDirectory(prefix="langadapt-pack-", dir=Path(out_dir).parent if out_dir else None) as tmp:
        sentences, tokens = [], []
        for k, code in enumerate(langs):
            path = Path(corpus_paths[code])
            with open(Path(tmp) / f"{k}.bin", "wb") as sink:
                n_sent, n_tok = _tokenize_language(tokenizer, path, fraction, seed + k, sink)
            if n_tok == 0:
                raise DataError(f"train split of corpus {path} ({code}) tokenizes to no tokens")
            sentences.append(n_sent)
            tokens.append(n_tok)
        rows = [-(-t // body) for t in tokens]
        meta = {"langs": langs, "tokens": tokens, "sentences": sentences, "pad_id": pad}
        if out_dir is None:
            arrays = {"input_ids": np.empty((sum(rows), seq_len), np.int32), "lengths": np.empty(sum(rows), np.int32),
                      "lang": np.empty(sum(rows), np.int32)}
            _fill(arrays, Path(tmp), rows, body, chunk_rows, (bos, eos, pad))
            return PackedCorpus(**arrays, **meta)
        with atomic_dir(Path(out_dir)) as target:
            shapes = {"input_ids": (sum(rows), seq_len), "lengths": (sum(rows),), "lang": (sum(rows),)}
            arrays = {n: np.lib.format.open_memmap(target / f"{n}.npy", "w+", np.int32, shape)
                      for n, shape in shapes.items()}  # fmt: skip
            _fill(arrays, Path(tmp), rows, body, chunk_rows, (bos, eos, pad))
            for a in arrays.values():
                a.flush()
            del arrays
            (target / "meta.json").write_text(json.dumps(meta))
    return PackedCorpus.load(Path(out_dir))


def _fill(arrays: dict[str, np.ndarray], tmp: Path, rows: list[int], body: int, chunk_rows: int,
          special: tuple[int, int, int]) -> None:
    """Pack each language's token file into its rows of `arrays`, `chunk_rows` rows at a time."""
    row = 0
    for k, n_rows in enumerate(rows):
        stream = np.memmap(tmp / f"{k}.bin", dtype=np.int32, mode="r")
        arrays["lang"][row : row + n_rows] = k
        for r0 in range(0, n_rows, chunk_rows):
            ids, lengths = pack_stream(np.asarray(stream[r0 * body : (r0 + chunk_rows) * body]), body + 2, *special)
            arrays["input_ids"][row + r0 : row + r0 + len(ids)] = ids
            arrays["lengths"][row + r0 : row + r0 + len(ids)] = lengths
        row += n_rows
        del stream


class LanguageSampler:
    """Draws items group-by-group: a group (language) from `probs`, then the group's next item.

    Within a group items are visited in a fresh permutation per epoch
    (``default_rng([seed, group, epoch])``), so each epoch of a group uses every item exactly once.
    The group draws use a seeded numpy Generator; :meth:`state_dict` (JSON-able) captures the
    generator, cursors and epochs for exact resumption.
    """

    def __init__(self, groups: Sequence[np.ndarray], probs: Sequence[float] | np.ndarray, seed: int) -> None:
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups]
        self.probs = np.asarray(probs, dtype=np.float64)
        if len(self.groups) != len(self.probs):
            raise ValueError("one probability per group is needed")
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.cursor = [0] * len(self.groups)
        self.epoch = [0] * len(self.groups)
        self._perm: dict[int, np.ndarray] = {}

    def _order(self, g: int) -> np.ndarray:
        if g not in self._perm:
            rng = np.random.default_rng([self.seed, g, self.epoch[g]])
            self._perm[g] = self.groups[g][rng.permutation(len(self.groups[g]))]
        return self._perm[g]

    def _next(self, g: int) -> int:
        if self.cursor[g] >= len(self.groups[g]):
            self.cursor[g] = 0
            self.epoch[g] += 1
            self._perm.pop(g, None)
        item = int(self._order(g)[self.cursor[g]])
        self.cursor[g] += 1
        return item

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` items and the group index of each."""
        g = self.rng.choice(len(self.groups), size=n, p=self.probs)
        return np.array([self._next(int(k)) for k in g], dtype=np.int64), g.astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "cursor": list(self.cursor), "epoch": list(self.epoch)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.cursor = [int(c) for c in state["cursor"]]
        self.epoch = [int(e) for e in state["epoch"]]
        self._perm.clear()


def language_sampler(packed: PackedCorpus, alpha: float, seed: int) -> LanguageSampler:
    """Sequence sampler over a packed corpus: language ~ (n_l/N)^alpha (n_l = train sentences)."""
    groups = [packed.rows_of(k) for k in range(len(packed.langs))]
    q = sampling_probs(dict(zip(packed.langs, packed.sentences, strict=True)), alpha)
    return LanguageSampler(groups, [q[code] for code in packed.langs], seed)
