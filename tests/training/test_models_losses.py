"""Each loss on hand-computed examples."""
import math

import pytest
import torch

from planner_models.losses import cross_entropy, neg_margin, resolve_loss, squared_error, zero_one


def test_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [1.0, 2.0, 3.0]][:2])
    y = torch.tensor([0, 1])
    # row 0: p = (1/2, 1/2) -> -log 1/2 ; row 1: p = (3/4, 1/4), y = 1 -> -log 1/4
    assert cross_entropy(logits, y).tolist() == pytest.approx([math.log(2.0), math.log(4.0)], rel=1e-6)
    three = torch.tensor([[1.0, 2.0, 3.0]])
    z = math.exp(1) + math.exp(2) + math.exp(3)
    assert cross_entropy(three, torch.tensor([2])).item() == pytest.approx(-math.log(math.exp(3) / z), rel=1e-6)


def test_neg_margin_by_hand():
    # p = (3/4, 1/4): correct class 0 -> 1/4 - 3/4 = -1/2 ; correct class 1 -> 3/4 - 1/4 = +1/2
    logits = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]])
    assert neg_margin(logits, torch.tensor([0, 1])).tolist() == pytest.approx([-0.5, 0.5], abs=1e-6)
    # three classes p = (0.5, 0.3, 0.2): y = 2 -> max other 0.5 - 0.2 = 0.3 ; y = 0 -> 0.3 - 0.5 = -0.2
    logits3 = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    assert neg_margin(logits3, torch.tensor([2, 0])).tolist() == pytest.approx([0.3, -0.2], abs=1e-6)
    # batched over models: shape (M, n, C) -> (M, n)
    assert neg_margin(logits3.unsqueeze(0).expand(4, 2, 3), torch.tensor([2, 0]).expand(4, 2)).shape == (4, 2)


def test_zero_one_and_squared_error_by_hand():
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    assert zero_one(logits, torch.tensor([0, 0, 1])).tolist() == [0.0, 1.0, 1.0]  # tie -> first class
    pred = torch.tensor([[1.0], [-2.0], [0.5]])
    assert squared_error(pred, torch.tensor([3.0, -2.0, 0.0])).tolist() == pytest.approx([4.0, 0.0, 0.25])


def test_resolve_loss():
    assert resolve_loss("auto", 2) == "margin"
    assert resolve_loss("auto", 0) == "mse"
    assert resolve_loss("ce", 5) == "ce"
    with pytest.raises(ValueError, match="regression"):
        resolve_loss("mse", 2)
    with pytest.raises(ValueError, match="classification"):
        resolve_loss("margin", 0)
    with pytest.raises(ValueError, match="unknown loss"):
        resolve_loss("hinge", 2)
