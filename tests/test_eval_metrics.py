"""Metrics against hand-computed values (ties, absent classes)."""

import numpy as np
import pytest

from langadapt.evaluation.metrics import accuracy, macro_f1, topk_accuracy


def test_topk_perfect_and_wrong():
    sim = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.1], [0.5, 0.4, 0.3]])
    # query 2: gold (0.3) ranks 3rd
    assert topk_accuracy(sim, [0, 1, 2], [1, 2, 3]) == {
        1: pytest.approx(2 / 3),
        2: pytest.approx(2 / 3),
        3: 1.0,
    }


def test_topk_ties_expected_random_tiebreak():
    # query 0: gold tied with one other at the top -> top1 hit with prob 1/2
    # query 1: all three equal -> top1 1/3, top2 2/3
    sim = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5]])
    out = topk_accuracy(sim, [0, 2], [1, 2, 3])
    assert out[1] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert out[2] == pytest.approx((1 + 2 / 3) / 2)
    assert out[3] == pytest.approx(1.0)


def test_topk_collapsed_encoder_is_chance():
    sim = np.ones((10, 10))
    assert topk_accuracy(sim, np.arange(10), [1, 5]) == {1: pytest.approx(0.1), 5: pytest.approx(0.5)}


def test_topk_bad_input():
    with pytest.raises(ValueError):
        topk_accuracy(np.ones((2, 2)), [0, 2], [1])
    with pytest.raises(ValueError):
        topk_accuracy(np.ones((2, 2)), [0, 1], [0])


def test_accuracy():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75


def test_macro_f1_hand_computed():
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0]
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fp0 fn1 -> 0
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_macro_f1_absent_classes():
    y_true = [0, 0, 1]
    y_pred = [0, 0, 3]  # class 3 only predicted: F1 0; class 1 only true: F1 0
    assert macro_f1(y_true, y_pred) == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    # explicit labels: class 5 absent from both counts as 0 (sklearn zero_division=0)
    assert macro_f1(y_true, y_pred, labels=[0, 1, 3, 5]) == pytest.approx(1.0 / 4)
    assert macro_f1([1, 1], [1, 1]) == 1.0
