"""Tiny random encoders with a word-level tokenizer, shared by the evaluation tests."""

import torch

WORDS = [f"w{i}" for i in range(60)]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_model_dir(path, n_layers=3, seed=0, arch="bert"):
    """A tiny random BertForMaskedLM (or XLMRobertaForMaskedLM) + word-level fast tokenizer in `path`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        PreTrainedTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaForMaskedLM,
    )

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(seed)
    config_cls, model_cls = (
        (BertConfig, BertForMaskedLM) if arch == "bert" else (XLMRobertaConfig, XLMRobertaForMaskedLM)
    )
    cfg = config_cls(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,
        pad_token_id=0,
    )
    model_cls(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path
