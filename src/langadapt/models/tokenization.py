"""New vocabularies: SentencePiece training, hub tokenizers, Glot500-style extension, tokenizer statistics.

`train_sentencepiece` trains one SentencePiece model on the texts of several languages and writes a
*tokenizer directory* (docs/architecture.md): ``spm.model`` plus a Hugging Face fast tokenizer
(``tokenizer.json`` ...) with the XLM-R special tokens

    <s>=0  <pad>=1  </s>=2  <unk>=3  ...pieces...  <mask>=V-1,   post-processor  <s> A </s>

SentencePiece is trained with exactly these ids for its own special pieces, so a piece has the same id in
``spm.model`` and in the HF tokenizer (no fairseq offset); ``<mask>`` is appended after the last piece.
The fast tokenizer is built directly from the pieces and scores of the trained model (a tokenizers
``Unigram`` model + SentencePiece's precompiled normalization map), which needs neither ``protobuf`` nor
network access; its segmentation is checked against ``spm.encode`` on a sample of the training texts.

`load_hf_tokenizer` fetches a pretrained fast tokenizer (hub id or local directory) instead, e.g. the
Glot500-m tokenizer ``cis-lmu/glot500-base`` of LangSAMP's setup. `extend_tokenizer` merges a new Unigram
vocabulary into a source model's Unigram tokenizer (vocabulary *extension*, Glot500 / LangSAMP Sec. 4.1):
source ids and scores are kept, new pieces are appended after them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.atomic import atomic_dir, atomic_file
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.data.corpus import SplitTexts
from langadapt.data.sampling import sample_quotas

log = logging.getLogger(__name__)

#: XLM-R special tokens and their ids (``<mask>`` is always the last id).
BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
SPECIAL_IDS = {BOS: 0, PAD: 1, EOS: 2, UNK: 3}

#: ISO 15924 scripts written without spaces between words: fertility is measured per character there.
SCRIPTS_WITHOUT_SPACES = frozenset({"Jpan", "Hani", "Hans", "Hant", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"})

MODEL_TYPES = ("unigram", "bpe")
_CHECK_SAMPLE = 200  # training sentences on which the HF tokenizer is checked against SentencePiece


def _validate_texts(texts_by_lang: Mapping[str, Sequence[str]]) -> None:
    if not texts_by_lang:
        raise DataError("no languages given to train a tokenizer on (texts_by_lang is empty)")
    for lang, texts in texts_by_lang.items():
        parse_lang(lang, where="texts_by_lang")
        empty = len(texts) == 0 if isinstance(texts, SplitTexts) else not any(t.strip() for t in texts)
        if empty:
            raise DataError(f"no text for language {lang!r}: cannot train a tokenizer on an empty corpus")


def _training_sentences(
    texts_by_lang: Mapping[str, Sequence[str]], max_sentences: int | None, seed: int, alpha: float | None = None
) -> list[str]:
    """All non-empty lines, languages in sorted order; with `max_sentences`, a seeded sample of that many: per
    language as many as `sample_quotas` gives (vocabulary paper §4: "5 million lines according to the same
    distribution as the training data", whose languages are sampled with alpha = 0.2), uniform within each.

    A language given as :class:`SplitTexts` (a corpus file) is counted in one pass and only the sampled lines
    are read in a second, so the corpus is never loaded whole."""
    langs = sorted(texts_by_lang)
    per_lang = [x if isinstance(x := texts_by_lang[lang], SplitTexts) else [t for t in x if t.strip()]
                for lang in langs]  # fmt: skip
    sizes = [len(x) for x in per_lang]
    if max_sentences is None or sum(sizes) <= max_sentences:
        return [t for lines in per_lang for t in lines]
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for lines, n, k in zip(per_lang, sizes, sample_quotas(sizes, max_sentences, alpha), strict=True):
        idx = np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
        out += list(lines.select(idx)) if isinstance(lines, SplitTexts) else [lines[i] for i in idx]
    return out


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Decode one level of a protobuf message: yield (field number, wire type, value)."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while pos < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, varint()
        elif wire == 1:
            yield field, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == 2:
            n = varint()
            yield field, wire, buf[pos : pos + n]
            pos += n
        elif wire == 5:
            yield field, wire, buf[pos : pos + 4]
            pos += 4
        else:
            raise DataError(f"cannot parse SentencePiece model: unsupported protobuf wire type {wire}")


def _precompiled_charsmap(model_proto: bytes) -> bytes:
    """`ModelProto.normalizer_spec.precompiled_charsmap` (fields 3 and 2 of sentencepiece_model.proto)."""
    for field, wire, value in _proto_fields(model_proto):
        if field == 3 and wire == 2:
            for f2, w2, v2 in _proto_fields(value):
                if f2 == 2 and w2 == 2:
                    return bytes(v2)
    return b""


def hf_tokenizer_from_spm(spm_path: Path):
    """Build an XLM-R-style HF fast tokenizer from a trained ``spm.model`` (pieces, scores, normalizer).

    The SentencePiece model must have been trained with the ids of `SPECIAL_IDS` (as
    `train_sentencepiece` does); ``<mask>`` is appended as the last id. The pipeline is XLM-R's
    (Unigram, Metaspace ``▁`` pre-tokenizer/decoder, ``<s> A </s>`` / ``<s> A </s></s> B </s>``), wrapped in
    the generic ``PreTrainedTokenizerFast`` so that ``AutoTokenizer`` reloads ``tokenizer.json`` as saved
    (``XLMRobertaTokenizer`` would rebuild the normalizer on load and drop the NFKC step below).
    """
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    for piece, i in SPECIAL_IDS.items():
        if sp.id_to_piece(i) != piece:
            raise DataError(f"{spm_path}: id {i} is {sp.id_to_piece(i)!r}, expected {piece!r} (XLM-R order)")
    vocab = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(sp.get_piece_size())]
    for i in SPECIAL_IDS.values():
        vocab[i] = (vocab[i][0], 0.0)
    vocab.append((MASK, 0.0))
    backend = Tokenizer(Unigram(vocab=vocab, unk_id=SPECIAL_IDS[UNK], byte_fallback=False))
    charsmap = _precompiled_charsmap(sp.serialized_model_proto())
    if charsmap:
        # NFKC first: tokenizers' `Precompiled` applies the map per grapheme cluster and so misses
        # SentencePiece's compositions of decomposed vowel signs (e.g. Bengali U+09C7 U+09BE -> U+09CB,
        # 66% of the Bengali Bible lines); NFKC composes them. Remaining difference: NFKC also puts
        # combining marks in canonical order (Arabic shadda/fatha), which SentencePiece does not
        # (2 of 75k Bible lines in 12 languages segment differently).
        backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Precompiled(charsmap)])
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = SPECIAL_IDS[BOS], SPECIAL_IDS[EOS]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
        special_tokens=[(BOS, bos), (EOS, eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        sep_token=EOS,
        cls_token=BOS,
        unk_token=UNK,
        pad_token=PAD,
        mask_token=MASK,
        model_max_length=512,
    )


def train_sentencepiece(
    texts_by_lang: dict[str, list[str]],
    out_dir: Path,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 0.9995,
    seed: int = 0,
    max_sentences: int | None = None,
    num_threads: int = 1,
    alpha: float | None = None,
) -> None:
    """Train a SentencePiece model on all languages' texts and write a tokenizer directory.

    Args:
        texts_by_lang: ``{lang_Script: [line, ...]}``; every language needs at least one non-empty line.
        out_dir: written atomically: ``spm.model``, ``spm.vocab`` and the HF tokenizer files.
        vocab_size: size of the *final* vocabulary including the special tokens and ``<mask>`` (the
            vocabulary paper counts 32,770 "including special tokens", Sec. 4); SentencePiece itself is
            trained with ``vocab_size - 1`` pieces.
        model_type: ``unigram`` (XLM-R's algorithm) or ``bpe``.
        character_coverage: SentencePiece's ``character_coverage``; rarer characters become ``<unk>``.
        seed: seeds SentencePiece's random generator and the line sample of `max_sentences`.
        max_sentences: if set, a seeded sample of at most this many lines is used (also SentencePiece's
            ``input_sentence_size``): per language in proportion to the data, or with `alpha` to
            ``(n_l / N)^alpha`` (`sample_quotas`), uniform within each language.
        alpha: the multinomial exponent of the sample (vocabulary paper §4: 0.2 for multilingual models).
        num_threads: SentencePiece training threads (1 keeps training bit-for-bit reproducible).

    Raises:
        DataError: empty input for a language, or `vocab_size` too large for the data.
        ConfigError: unknown `model_type` or bad `vocab_size`.
    """
    import sentencepiece as spm

    if model_type not in MODEL_TYPES:
        raise ConfigError(f"unknown SentencePiece model_type {model_type!r}; known: {', '.join(MODEL_TYPES)}")
    if vocab_size < len(SPECIAL_IDS) + 2:
        raise ConfigError(f"vocab_size {vocab_size} is too small (special tokens alone take 5 ids)")
    _validate_texts(texts_by_lang)
    sentences = _training_sentences(texts_by_lang, max_sentences, seed, alpha)
    langs = ", ".join(sorted(texts_by_lang))

    with atomic_dir(Path(out_dir)) as tmp:
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_prefix=str(tmp / "spm"),
                vocab_size=vocab_size - 1,  # + <mask>
                model_type=model_type,
                character_coverage=character_coverage,
                bos_id=SPECIAL_IDS[BOS],
                pad_id=SPECIAL_IDS[PAD],
                eos_id=SPECIAL_IDS[EOS],
                unk_id=SPECIAL_IDS[UNK],
                input_sentence_size=max_sentences or 0,
                shuffle_input_sentence=True,
                num_threads=num_threads,
                minloglevel=2,
            )
        except RuntimeError as e:
            if "vocabulary size" in str(e).lower() or "vocab_size" in str(e).lower():
                m = re.search(r"<= (\d+)", str(e))
                limit = f" (at most {int(m.group(1)) + 1} including <mask>)" if m else ""
                raise DataError(
                    f"vocab_size {vocab_size} is too large for the training text of languages [{langs}] "
                    f"({len(sentences)} lines){limit}; SentencePiece says: {e}"
                ) from None
            raise DataError(f"SentencePiece training failed on languages [{langs}]: {e}") from None
        hf_tokenizer_from_spm(tmp / "spm.model").save_pretrained(str(tmp))
        sample = sentences[:: max(1, len(sentences) // _CHECK_SAMPLE)]
        n_bad = check_against_spm(_load_tokenizer(tmp), tmp / "spm.model", sample)
        if n_bad:
            log.warning(
                "%s: HF tokenizer and SentencePiece segment %d of %d sample lines differently",
                out_dir,
                n_bad,
                len(sample),
            )


def check_against_spm(tokenizer, spm_path: Path, texts: Sequence[str]) -> int:
    """Number of `texts` whose HF pieces differ from ``spm.encode(text, out_type=str)``."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    bad = 0
    for text in texts:
        if tokenizer.tokenize(text) != sp.encode(text, out_type=str):
            bad += 1
    return bad


def _load_tokenizer(tokenizer):
    if isinstance(tokenizer, str | os.PathLike):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer))
    return tokenizer


def tokenizer_stats(tokenizer, texts_by_lang: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Fertility and UNK rate of a tokenizer (object or directory) per language.

    Columns ``lang, fertility, unk_rate, n_words, n_pieces``, one row per language (sorted):

    - ``n_pieces``: pieces without special tokens (``add_special_tokens=False``), summed over lines;
    - ``n_words``: whitespace-separated words, or, for scripts written without spaces
      (`SCRIPTS_WITHOUT_SPACES`: Japanese, Chinese, Thai, Khmer, Lao, Burmese, Tibetan), non-space
      characters, so that fertility is pieces per character there;
    - ``fertility = n_pieces / n_words``; ``unk_rate = (pieces equal to the unk token) / n_pieces``.

    Empty corpora give NaN rates (0 words / 0 pieces).
    """
    tok = _load_tokenizer(tokenizer)
    unk_id = tok.unk_token_id
    rows = []
    for lang in sorted(texts_by_lang):
        per_char = parse_lang(lang, where="texts_by_lang").script in SCRIPTS_WITHOUT_SPACES
        texts = [t for t in texts_by_lang[lang] if t.strip()]
        n_words = sum(len("".join(t.split())) if per_char else len(t.split()) for t in texts)
        ids = tok(texts, add_special_tokens=False)["input_ids"] if texts else []
        n_pieces = sum(len(x) for x in ids)
        n_unk = sum(sum(1 for i in x if i == unk_id) for x in ids)
        rows.append(
            {
                "lang": lang,
                "fertility": n_pieces / n_words if n_words else float("nan"),
                "unk_rate": n_unk / n_pieces if n_pieces else float("nan"),
                "n_words": n_words,
                "n_pieces": n_pieces,
            }
        )
    return pd.DataFrame(rows, columns=["lang", "fertility", "unk_rate", "n_words", "n_pieces"])


def write_tokenizer_stats(
    tokenizer, texts_by_lang: Mapping[str, Sequence[str]], out_csv: Path
) -> pd.DataFrame:
    """`tokenizer_stats` written atomically to `out_csv` (e.g. ``<tokenizer dir>/stats.csv``)."""
    df = tokenizer_stats(tokenizer, texts_by_lang)
    with atomic_file(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    return df


# ------------------------------------------------------------------ pretrained tokenizers and extension
_SPECIAL_ATTRS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def load_hf_tokenizer(
    name_or_path: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Any:
    """A pretrained *fast* tokenizer from the Hugging Face hub (id) or a local directory.

    Uses the hub cache (`cache_dir`, default ``HF_HUB_CACHE``) and honours ``HF_HUB_OFFLINE``; never runs
    remote code.

    Raises:
        DataError: the id / directory cannot be resolved or holds no tokenizer.
        ConfigError: the tokenizer has no fast (``tokenizer.json``) version.
    """
    from transformers import AutoTokenizer

    from langadapt.data.hub import MODEL_PATTERNS, local_or_hub_dir

    where = f"Hugging Face tokenizer {name_or_path!r} (revision {revision!r})"
    patterns = [p for p in MODEL_PATTERNS if not p.endswith((".safetensors", ".bin"))]
    folder = local_or_hub_dir(str(name_or_path), revision, str(cache_dir) if cache_dir else None, where, patterns)
    try:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"cannot load {where}: {type(e).__name__}: {e}") from None
    if not getattr(tok, "is_fast", False):
        raise ConfigError(
            f"{where} has no fast tokenizer ({type(tok).__name__}); model directories need tokenizer.json"
        )
    return tok


def _tokenizer_name(tok) -> str:
    return str(getattr(tok, "name_or_path", "") or type(tok).__name__)


def _unigram_json(tok, role: str) -> dict:
    """The backend ``tokenizer.json`` of a fast tokenizer as a dict; ConfigError unless it is Unigram."""
    if not getattr(tok, "is_fast", False):
        raise ConfigError(
            f"vocabulary extension: the {role} tokenizer {_tokenizer_name(tok)!r} is not a fast tokenizer"
        )
    backend = json.loads(tok.backend_tokenizer.to_str())
    kind = backend.get("model", {}).get("type")
    if kind != "Unigram":
        raise ConfigError(
            f"vocabulary extension needs Unigram (SentencePiece) tokenizers: the {role} tokenizer "
            f"{_tokenizer_name(tok)!r} has a {kind} model"
        )
    return backend


def extend_tokenizer(source_tokenizer, new_tokenizer) -> tuple[Any, dict[str, int]]:
    """Merge the pieces of `new_tokenizer` into `source_tokenizer` (Glot500-style vocabulary extension).

    Both are fast tokenizers with a Unigram model (objects or directories). The result keeps the source
    tokenizer's pipeline (normalizer, pre-tokenizer, post-processor, decoder, special tokens) and its
    Unigram vocabulary unchanged: every source piece keeps its id and score. The new tokenizer's pieces
    that are not already source pieces are appended after the last source id (``<mask>`` of XLM-R stays
    where it is), with their own unigram scores, in the new tokenizer's id order; its special tokens
    (``<s>``, ``<pad>`` ...) are not appended.

    The only side effect on source text: the Unigram unknown-token score is ``min(score) - 10`` over the
    merged vocabulary, so segmentations involving ``<unk>`` may change if new pieces score lower.

    Returns:
        ``(merged PreTrainedTokenizerFast, stats)`` with stats ``source_size, new_size, added,
        already_present, skipped_special, total``.

    Raises:
        ConfigError: a tokenizer is not fast or its model is not Unigram (e.g. BERT WordPiece).
        DataError: the source has added tokens beyond its Unigram vocabulary (no id left to append at).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    src, new = _load_tokenizer(source_tokenizer), _load_tokenizer(new_tokenizer)
    src_json, new_json = _unigram_json(src, "source"), _unigram_json(new, "new")
    vocab = list(src_json["model"]["vocab"])
    n_src = len(vocab)
    beyond = [t["content"] for t in src_json.get("added_tokens", []) if t["id"] >= n_src]
    if beyond:
        raise DataError(
            f"vocabulary extension: source tokenizer {_tokenizer_name(src)!r} has added tokens beyond its "
            f"Unigram vocabulary of {n_src} pieces ({beyond[:5]}); new pieces cannot be appended after them"
        )
    specials = {t["content"] for t in new_json.get("added_tokens", []) if t.get("special")}
    specials |= set(new.all_special_tokens)
    present = {piece for piece, _ in vocab}
    added = already = skipped = 0
    for piece, score in new_json["model"]["vocab"]:
        if piece in specials:
            skipped += 1
        elif piece in present:
            already += 1
        else:
            vocab.append([piece, score])
            present.add(piece)
            added += 1
    src_json["model"]["vocab"] = vocab
    backend = Tokenizer.from_str(json.dumps(src_json, ensure_ascii=False))
    named = {a: str(getattr(src, a)) for a in _SPECIAL_ATTRS if getattr(src, a, None) is not None}
    merged = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=src.model_max_length, **named)
    stats = {
        "source_size": n_src,
        "new_size": len(new_json["model"]["vocab"]),
        "added": added,
        "already_present": already,
        "skipped_special": skipped,
        "total": len(vocab),
    }
    log.info("extended %s by %s: %s", _tokenizer_name(src), _tokenizer_name(new), stats)
    return merged, stats
