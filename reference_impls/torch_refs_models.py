"""Torch references for ``reference_impls.models``: a dict of float64 parameter tensors and the data in,
the scalar loss out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["two_layer_net"]


def two_layer_net(
    params: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor, reg: float = 0.1
) -> torch.Tensor:
    """affine - relu - affine - softmax cross-entropy, plus ``0.5 * reg * (|W1|^2 + |W2|^2)``.

    params: "W1" (D, H), "b1" (H,), "W2" (H, C), "b2" (C,); X: (N, D); y: (N,) int64 labels.
    ``reg`` defaults to 0.1, the strength the registered ``two_layer_net`` target uses.
    """
    hidden = F.relu(X @ params["W1"] + params["b1"])
    scores = hidden @ params["W2"] + params["b2"]
    reg_loss = 0.5 * reg * (params["W1"].square().sum() + params["W2"].square().sum())
    return F.cross_entropy(scores, y) + reg_loss
