"""Tiny tokenizers shared by the init-method tests (no tests here)."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def unigram(pieces: list[str]) -> PreTrainedTokenizerFast:
    """A Unigram fast tokenizer with XLM-R-style specials: `pieces` after <s> <pad> </s> <unk>, <mask> last."""
    vocab = [(p, 0.0) for p in SPECIALS] + [(p, -1.0) for p in pieces] + [("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
