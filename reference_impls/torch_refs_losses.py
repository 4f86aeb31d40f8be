"""Torch references for ``reference_impls.losses``: float64 tensors in, the scalar loss out.

Where torch has the loss built in, the reference calls it, so the oracle does not share our code.
Labels arrive as int64 tensors; targets are plain tensors that need no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bce_with_logits_loss", "mae_loss", "mse_loss", "softmax_loss", "svm_loss"]


def softmax_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy. x: (N, C) scores, y: (N,) int64 labels. Returns a scalar."""
    return F.cross_entropy(x, y, reduction="mean")


def svm_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Multiclass hinge loss, margin 1, summed over classes and averaged over the batch.

    x: (N, C) scores, y: (N,) int64 labels. Returns a scalar. (``F.multi_margin_loss`` also divides
    by C, so it is not the cs231n loss.)
    """
    correct = x.gather(1, y[:, None])
    margins = torch.clamp(x - correct + 1.0, min=0.0)
    not_label = torch.ones_like(x, dtype=torch.bool).scatter(1, y[:, None], False)
    return (margins * not_label).sum() / x.shape[0]


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements. pred, target: (N, D). Returns a scalar."""
    return F.mse_loss(pred, target, reduction="mean")


def mae_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements. pred, target: (N, D). Returns a scalar."""
    return F.l1_loss(pred, target, reduction="mean")


def bce_with_logits_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(logits). logits, targets: (N, D). Returns a scalar."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="mean")
