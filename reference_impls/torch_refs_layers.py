"""Torch references for the layers of ``layers.py`` and ``conv.py``: the oracles of ``forward_torch``.

Each takes the same inputs as the numpy forward, as float64 tensors, and the same hyper-parameters,
and returns the output tensor. They are written with torch's own operators so that autograd, not
our algebra, gives the reference gradient.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "affine",
    "affine_colmajor",
    "batchnorm",
    "conv",
    "dropout",
    "layernorm",
    "leaky_relu",
    "max_pool",
    "relu",
    "sigmoid",
    "tanh",
]


def affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x (N, D), w (D, M), b (M,) -> (N, M)."""
    return F.linear(x, w.T, b)


def affine_colmajor(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Column-major batch: x (D, N), w (D, M), b (M, 1) -> (M, N)."""
    return w.T @ x + b


def relu(x: torch.Tensor) -> torch.Tensor:
    """Any shape -> same shape."""
    return torch.relu(x)


def leaky_relu(x: torch.Tensor, alpha: float = 0.01) -> torch.Tensor:
    """Any shape -> same shape; slope ``alpha`` on the negative side."""
    return F.leaky_relu(x, negative_slope=alpha)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Any shape -> same shape."""
    return torch.sigmoid(x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """Any shape -> same shape."""
    return torch.tanh(x)


def dropout(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inverted dropout with a given mask (values 0 or 1/keep), same shape as x."""
    return x * mask


def batchnorm(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, bn_param: dict[str, Any]
) -> torch.Tensor:
    """Train-mode batch normalisation: x (N, D), gamma (D,), beta (D,) -> (N, D)."""
    if bn_param.get("mode", "train") != "train":
        raise ValueError(f"bn_param['mode']={bn_param['mode']!r}: the torch reference covers train mode only")
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=bn_param.get("eps", 1e-5))


def layernorm(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, ln_param: dict[str, Any]
) -> torch.Tensor:
    """Layer normalisation over the features: x (N, D), gamma (D,), beta (D,) -> (N, D)."""
    return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=ln_param.get("eps", 1e-5))


def max_pool(x: torch.Tensor, pool_param: dict[str, int]) -> torch.Tensor:
    """x (N, C, H, W) -> (N, C, H', W')."""
    kernel = (pool_param["pool_height"], pool_param["pool_width"])
    return F.max_pool2d(x, kernel_size=kernel, stride=pool_param["stride"])


def conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict[str, int]) -> torch.Tensor:
    """x (N, C, H, W), w (F, C, HH, WW), b (F,) -> (N, F, H', W'); cross-correlation, as cs231n."""
    return F.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])
