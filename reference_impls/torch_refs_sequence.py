"""Torch references for ``reference_impls.sequence``: float64 tensors in, output tensor(s) out.

Word indices arrive as int64 tensors. Weight layouts follow the numpy layers (``x @ Wx``, gates
i, f, o, g), not torch's ``nn.RNNCell``/``nn.LSTMCell`` (which store ``W.T`` and order i, f, g, o).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["attention", "embedding", "lstm_step", "rnn_step"]


def embedding(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """x: (N, T) int64 indices, W: (V, D). Returns (N, T, D)."""
    return F.embedding(x, W)


def rnn_step(
    x: torch.Tensor, prev_h: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """x: (N, D), prev_h: (N, H), Wx: (D, H), Wh: (H, H), b: (H,). Returns next_h (N, H)."""
    return torch.tanh(x @ Wx + prev_h @ Wh + b)


def lstm_step(
    x: torch.Tensor,
    prev_h: torch.Tensor,
    prev_c: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, D), prev_h, prev_c: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,). Returns (next_h, next_c)."""
    i, f, o, g = (x @ Wx + prev_h @ Wh + b).chunk(4, dim=1)
    next_c = torch.sigmoid(f) * prev_c + torch.sigmoid(i) * torch.tanh(g)
    next_h = torch.sigmoid(o) * torch.tanh(next_c)
    return next_h, next_c


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q: (N, Tq, D), k: (N, Tk, D), v: (N, Tk, Dv). Returns (N, Tq, Dv); scale 1/sqrt(D)."""
    return F.scaled_dot_product_attention(q, k, v)
