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


def save_tiny_xlmr(directory) -> None:
    """A 1-layer XLM-R MLM (hidden 16) sized to the tokenizer already saved in `directory`, saved there."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

    tok = AutoTokenizer.from_pretrained(directory)
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=40, pad_token_id=1, hidden_size=16,
                           num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    XLMRobertaForMaskedLM(cfg).save_pretrained(directory)
