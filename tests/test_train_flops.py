"""FLOP counting of an MLM training step (hand-computed tiny config) and the matmul peak probe."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig

from langadapt.train.flops import (
    encoder_forward_flops,
    head_forward_flops,
    matmul_flops_per_s,
    mlm_forward_flops,
    mlm_train_flops,
)

# d = 4, 2 layers, ff = 8, V = 10
TINY = {"hidden_size": 4, "num_hidden_layers": 2, "intermediate_size": 8, "vocab_size": 10}
# per token per layer: 2 * (4*16 + 2*4*8) = 256; attention per layer: 2*2*d * sum(L^2) = 16 * sum(L^2)
# head per masked token: 2*16 + 2*4*10 = 112


def test_hand_computed_tiny_config():
    # lengths 3 and 2: dense 256 * 5 = 1280, attention 16 * (9 + 4) = 208 -> 1488 per layer, x2 layers
    assert encoder_forward_flops(TINY, [3, 2]) == 2976
    assert head_forward_flops(TINY, 1) == 112
    assert mlm_forward_flops(TINY, [3, 2], 1) == 2976 + 112
    assert mlm_train_flops(TINY, [3, 2], 1) == 3 * (2976 + 112)


def test_config_object_and_mapping_agree():
    cfg = BertConfig(hidden_size=4, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8,
                     vocab_size=10)
    assert mlm_train_flops(cfg, [3, 2], 2) == mlm_train_flops(TINY, [3, 2], 2) == 3 * (2976 + 2 * 112)


def test_padding_and_unmasked_positions_add_nothing_to_the_head():
    base = mlm_train_flops(TINY, [3, 2], 1)
    # an all-padding row (real length 0) adds nothing at all
    assert mlm_train_flops(TINY, [3, 2, 0], 1) == base
    # more real tokens cost encoder FLOPs only: the head term stays that of the one masked token
    more = mlm_train_flops(TINY, [3, 3], 1)
    assert more - base == 3 * 2 * (256 * 1 + 16 * (9 - 4))
    assert mlm_train_flops(TINY, [3, 3], 1) - mlm_train_flops(TINY, [3, 3], 0) == 3 * 112


def test_head_rows_counts_executed_head_flops():
    # a padded 2 x 3 batch whose head runs on every position: 6 rows, 1 of them useful
    executed = mlm_train_flops(TINY, [3, 2], 1, head_rows=6)
    assert executed - mlm_train_flops(TINY, [3, 2], 1) == 3 * 5 * 112


def test_scaling_e5_small_full_vocab():
    cfg = {"hidden_size": 384, "num_hidden_layers": 12, "intermediate_size": 1536, "vocab_size": 250_037}
    d, ff, vocab = 384, 1536, 250_037
    per_token = 12 * (2 * (4 * d * d + 2 * d * ff) + 2 * 2 * 128 * d)
    per_masked = 2 * d * d + 2 * d * vocab
    assert mlm_forward_flops(cfg, [128] * 8, 150) == 8 * 128 * per_token + 150 * per_masked


def test_bad_inputs():
    with pytest.raises(ValueError, match="vocab_size"):
        mlm_train_flops({"hidden_size": 4, "num_hidden_layers": 2, "intermediate_size": 8}, [3], 1)
    with pytest.raises(ValueError, match="exceeds"):
        mlm_train_flops(TINY, [3], 4)
    with pytest.raises(ValueError):
        mlm_train_flops(TINY, [-1], 0)


def test_matmul_peak_is_positive_and_restores_threads():
    before = torch.get_num_threads()
    rate = matmul_flops_per_s(threads=1, size=64, seconds=0.05)
    assert rate > 1e6
    assert torch.get_num_threads() == before
