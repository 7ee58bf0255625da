"""Per-row prediction losses: negative classification margin, cross-entropy, 0-1 error, squared error.

Every function takes model outputs of shape ``(..., C)`` (logits for classification, ``C = 1`` for
regression) and labels of shape ``(...)`` and returns one loss per row, shape ``(...)``, so the same
code serves one model (``(n, C)``) and many stacked models (``(M, n, C)``).

The negative margin is the loss the surrogate paper (Li, Nguyen, Zhang, TMLR 2023, Section 4) found
best for fitting surrogates: with class probabilities ``p = softmax(logits)`` and correct class ``y``,

    neg_margin = max_{c != y} p_c - p_y        (in [-1, 1]; below 0 means a correct prediction)
"""
from __future__ import annotations

import torch

CLASSIFICATION_LOSSES = ("margin", "ce", "zero_one")
REGRESSION_LOSSES = ("mse",)
LOSS_NAMES = CLASSIFICATION_LOSSES + REGRESSION_LOSSES + ("auto",)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``logsumexp(logits) - logits[y]`` per row (natural log)."""
    picked = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return torch.logsumexp(logits, dim=-1) - picked


def neg_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Largest other-class probability minus the correct-class probability, per row."""
    prob = torch.softmax(logits, dim=-1)
    correct = prob.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    others = prob.scatter(-1, y.unsqueeze(-1), float("-inf"))
    return others.amax(dim=-1) - correct


def zero_one(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1.0 where the arg-max class (first one on ties) is wrong, else 0.0."""
    return (logits.argmax(dim=-1) != y).to(logits.dtype)


def squared_error(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(pred - y)^2`` per row; ``pred`` has a trailing dimension of size 1."""
    return (pred.squeeze(-1) - y) ** 2


PER_ROW = {"margin": neg_margin, "ce": cross_entropy, "zero_one": zero_one, "mse": squared_error}


def resolve_loss(name: str, n_classes: int) -> str:
    """The loss to use for data with ``n_classes`` classes (0 = regression); ``auto`` picks the default.

    Raises ``ValueError`` for an unknown name or one that does not fit the kind of labels.
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSS_NAMES)}")
    if name == "auto":
        return "margin" if n_classes else "mse"
    if n_classes and name not in CLASSIFICATION_LOSSES:
        raise ValueError(f"loss {name!r} is for regression; the labels have {n_classes} classes")
    if not n_classes and name not in REGRESSION_LOSSES:
        raise ValueError(f"loss {name!r} is for classification; the labels are numeric (regression)")
    return name
