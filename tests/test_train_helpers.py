"""Tiny fixtures shared by the tests/test_train_*.py files (no tests here).

A word-level fast tokenizer trained on the fixture text and a randomly initialized XLM-R-style (or
BERT) masked LM with hidden size 32 and 2 layers, saved like every model directory of the workflow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
WORDS = ["cat", "dog", "sun", "moon", "tree", "river", "stone", "bird", "fish", "house", "road", "king"]
LANG_PREFIX = {"eng_Latn": "", "deu_Latn": "de", "fra_Latn": "fr"}


def word(lang: str, w: str) -> str:
    """The fixture 'translation' of an English word: a language prefix (disjoint vocabularies)."""
    return LANG_PREFIX[lang] + w


def sentences(lang: str, n: int, seed: int = 0) -> list[str]:
    """`n` sentences of 3-8 words; same seed -> word-by-word translations across languages."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(3, 9))
        out.append(" ".join(word(lang, WORDS[int(i)]) for i in rng.integers(0, len(WORDS), k)))
    return out


def repetitive(lang: str, n: int) -> list[str]:
    """A highly predictable corpus: the word list in order, cut into sentences of 6 words."""
    stream = [word(lang, WORDS[i % len(WORDS)]) for i in range(6 * n)]
    return [" ".join(stream[6 * i : 6 * i + 6]) for i in range(n)]


def write_corpus(path: Path, texts: list[str], splits: list[str] | None = None) -> Path:
    """A corpus parquet in the workflow's format (verse_id, book, text, split)."""
    splits = splits or ["train"] * len(texts)
    table = pa.table({
        "verse_id": pa.array(range(1, len(texts) + 1), pa.int64()),
        "book": pa.array([1] * len(texts), pa.int16()),
        "text": pa.array(texts, pa.string()),
        "split": pa.array(splits, pa.string()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_parallel(path: Path, langs: list[str], n: int, seed: int = 0) -> Path:
    """A parallel-pairs parquet (lang, verse_id, book, split, src_text, tgt_text); 10% dev rows."""
    rows: dict[str, list] = {k: [] for k in ("lang", "verse_id", "book", "split", "src_text", "tgt_text")}
    src = sentences("eng_Latn", n, seed)
    for lang in langs:
        for i, (s, t) in enumerate(zip(src, sentences(lang, n, seed), strict=True)):
            rows["lang"].append(lang)
            rows["verse_id"].append(i + 1)
            rows["book"].append(1)
            rows["split"].append("dev" if i % 10 == 9 else "train")
            rows["src_text"].append(s)
            rows["tgt_text"].append(t)
    table = pa.table({**rows, "verse_id": pa.array(rows["verse_id"], pa.int64()),
                      "book": pa.array(rows["book"], pa.int16())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def make_tokenizer():
    """Word-level fast tokenizer over every fixture word of every language (XLM-R special ids)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for lang in LANG_PREFIX:
        for w in WORDS:
            vocab.setdefault(word(lang, w), len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")


def make_model_dir(path: Path, arch: str = "xlmr", seed: int = 0, max_len: int = 64, dropout: float = 0.1) -> Path:
    """Save a tiny random masked LM (hidden 32, 2 layers) + its fast tokenizer to `path`."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

    tokenizer = make_tokenizer()
    common = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    if arch == "xlmr":
        model = XLMRobertaForMaskedLM(XLMRobertaConfig(max_position_embeddings=max_len + 2, **common))
    else:
        model = BertForMaskedLM(BertConfig(max_position_embeddings=max_len, **common))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
