"""New SentencePiece vocabularies (vocabulary replacement) and per-language tokenizer statistics.

`train_sentencepiece` trains one SentencePiece model on the texts of several languages and writes a
*tokenizer directory* (docs/architecture.md): ``spm.model`` plus a Hugging Face fast tokenizer
(``tokenizer.json`` ...) with the XLM-R special tokens

    <s>=0  <pad>=1  </s>=2  <unk>=3  ...pieces...  <mask>=V-1,   post-processor  <s> A </s>

SentencePiece is trained with exactly these ids for its own special pieces, so a piece has the same id in
``spm.model`` and in the HF tokenizer (no fairseq offset); ``<mask>`` is appended after the last piece.
The fast tokenizer is built directly from the pieces and scores of the trained model (a tokenizers
``Unigram`` model + SentencePiece's precompiled normalization map), which needs neither ``protobuf`` nor
network access; its segmentation is checked against ``spm.encode`` on a sample of the training texts.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.atomic import atomic_dir
from langadapt.errors import ConfigError, DataError
from langadapt.languages import parse_lang

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
        if not any(t.strip() for t in texts):
            raise DataError(f"no text for language {lang!r}: cannot train a tokenizer on an empty corpus")


def _training_sentences(
    texts_by_lang: Mapping[str, Sequence[str]], max_sentences: int | None, seed: int
) -> list[str]:
    """All non-empty lines, languages in sorted order; a seeded uniform sample if `max_sentences`."""
    sents = [t for lang in sorted(texts_by_lang) for t in texts_by_lang[lang] if t.strip()]
    if max_sentences is not None and len(sents) > max_sentences:
        # Uniform over all lines = "the same distribution as the training data" (vocab paper, Sec. 4).
        idx = np.random.default_rng(seed).choice(len(sents), size=max_sentences, replace=False)
        sents = [sents[i] for i in sorted(idx)]
    return sents


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
        max_sentences: if set, a seeded uniform sample of at most this many lines (over all languages,
            i.e. in proportion to the data) is used; also SentencePiece's ``input_sentence_size``.
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
    sentences = _training_sentences(texts_by_lang, max_sentences, seed)
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
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_csv.name}.", dir=out_csv.parent)
    os.close(fd)
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, out_csv)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return df
