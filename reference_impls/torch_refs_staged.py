"""Torch references for ``reference_impls.staged``: float64 tensors in, the output (or the loss) out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["attention", "batchnorm", "layernorm", "lstm_step", "two_layer_net_loss"]


def batchnorm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Train-mode batch normalisation: x (N, D), gamma (D,), beta (D,) -> (N, D)."""
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def layernorm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Layer normalisation over the features: x (N, D), gamma (D,), beta (D,) -> (N, D)."""
    return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=eps)


def lstm_step(
    x: torch.Tensor,
    prev_h: torch.Tensor,
    prev_c: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, D), prev_h, prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,); gates i, f, o, g -> (next_h, next_c)."""
    i, f, o, g = (x @ Wx + prev_h @ Wh + b).chunk(4, dim=1)
    next_c = torch.sigmoid(f) * prev_c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(next_c), next_c


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q (N, Tq, D), k (N, Tk, D), v (N, Tk, Dv) -> (N, Tq, Dv), scale 1/sqrt(D)."""
    return F.scaled_dot_product_attention(q, k, v)


def two_layer_net_loss(
    X: torch.Tensor,
    y: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    reg: float = 0.1,
) -> torch.Tensor:
    """affine - relu - affine - softmax cross-entropy (mean over N) + 0.5 * reg * (|W1|^2 + |W2|^2)."""
    scores = F.relu(X @ W1 + b1) @ W2 + b2
    return F.cross_entropy(scores, y) + 0.5 * reg * (W1.square().sum() + W2.square().sum())
