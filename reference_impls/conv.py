"""Convolutional layers, naive (one loop over output positions), each backward right below its forward.

Images are ``(N, C, H, W)``: N examples, C channels, height H, width W. As in cs231n (and torch),
"convolution" is a cross-correlation: the kernel is not flipped in the forward pass.

The bottom of the file registers each layer with the harness and describes it as an exercise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import checker as bc
from reference_impls import torch_refs_layers
from reference_impls.bank import Exercise

#: Whatever a backward pass needs from its forward pass; the layout is the forward's choice.
Cache = Any


# --- max pooling ------------------------------------------------------------------------------


def max_pool_forward_naive(x: np.ndarray, pool_param: dict[str, int]) -> tuple[np.ndarray, Cache]:
    """Max pooling: the largest value of each window, channel by channel.

    x: (N, C, H, W) inputs.
    pool_param: dict with ``pool_height``, ``pool_width`` (window size) and ``stride``; the window
    must tile the input: ``(H - pool_height) % stride == 0`` and ``(W - pool_width) % stride == 0``.
    Returns out: (N, C, H', W') with ``H' = 1 + (H - pool_height) // stride`` and
    ``W' = 1 + (W - pool_width) // stride``, and a cache for ``max_pool_backward_naive``.
    """
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    H_out = 1 + (H - ph) // stride
    W_out = 1 + (W - pw) // stride
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride : i * stride + ph, j * stride : j * stride + pw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: (N, C, H', W') upstream gradient; cache from ``max_pool_forward_naive``.

    Returns dx: (N, C, H, W).
    """
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, _, _ = x.shape
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(H_out):
        for j in range(W_out):
            rows = slice(i * stride, i * stride + ph)
            cols = slice(j * stride, j * stride + pw)
            window = x[:, :, rows, cols].reshape(N, C, ph * pw)
            # Only the winner of each window moved the output: it alone receives the gradient.
            winner = window.argmax(axis=2)[:, :, None]
            grad = np.zeros_like(window)
            np.put_along_axis(grad, winner, dout[:, :, i, j, None], axis=2)
            dx[:, :, rows, cols] += grad.reshape(N, C, ph, pw)
    return dx


# --- convolution ------------------------------------------------------------------------------


def conv_forward_naive(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict[str, int]
) -> tuple[np.ndarray, Cache]:
    """Convolutional layer (cross-correlation, as in cs231n and torch).

    x: (N, C, H, W) inputs; w: (F, C, HH, WW) filters; b: (F,) biases.
    conv_param: dict with ``stride`` S and ``pad`` P (zeros added on every side of H and W); the
    filters must tile the padded input: ``(H + 2P - HH) % S == 0`` and ``(W + 2P - WW) % S == 0``.
    ``out[n, f, i, j] = sum over c, k, l of x_pad[n, c, i*S + k, j*S + l] * w[f, c, k, l] + b[f]``.
    Returns out: (N, F, H', W') with ``H' = 1 + (H + 2P - HH) // S`` and
    ``W' = 1 + (W + 2P - WW) // S``, and a cache for ``conv_backward_naive``.
    """
    S, P = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * P - HH) // S
    W_out = 1 + (W + 2 * P - WW) // S
    x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    out = np.empty((N, F, H_out, W_out), dtype=np.result_type(x, w, b))
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * S : i * S + HH, j * S : j * S + WW]  # (N, C, HH, WW)
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, conv_param)


def conv_backward_naive(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, F, H', W') upstream gradient; cache from ``conv_forward_naive``.

    Returns dx: (N, C, H, W), dw: (F, C, HH, WW), db: (F,).
    """
    x, w, conv_param = cache
    S, P = conv_param["stride"], conv_param["pad"]
    _, _, H, W = x.shape
    _, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for i in range(H_out):
        for j in range(W_out):
            rows = slice(i * S, i * S + HH)
            cols = slice(j * S, j * S + WW)
            g = dout[:, :, i, j]  # (N, F): how much each output at (i, j) matters
            # out[:, :, i, j] is window . w, so each factor's gradient is g times the other one.
            dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=([0], [0]))
            dx_pad[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))
    db = dout.sum(axis=(0, 2, 3))  # b[f] was added at every example and every output position
    dx = dx_pad[:, :, P : P + H, P : P + W]  # the padding is not an input
    return dx, dw, db


# --- registration: what the harness checks ----------------------------------------------------

bc.register(
    "max_pool",
    forward=max_pool_forward_naive,
    backward=max_pool_backward_naive,
    inputs={"x": "N,C,H,W"},
    dims={"H": range(2, 9), "W": range(2, 9)},
    hyper={"pool_param": {"pool_height": 2, "pool_width": 2, "stride": 2}},
    constraint=lambda d: d["H"] % 2 == 0 and d["W"] % 2 == 0,
    torch_forward=torch_refs_layers.max_pool,
)
bc.register(
    "conv",
    forward=conv_forward_naive,
    backward=conv_backward_naive,
    inputs={"x": "N,C,H,W", "w": "F,C,HH,WW", "b": "F"},
    dims={"S": (1, 2), "P": (0, 1), "H": range(3, 8), "W": range(3, 8), "HH": range(1, 4), "WW": range(1, 4)},
    hyper=lambda d: {"conv_param": {"stride": d["S"], "pad": d["P"]}},
    constraint=lambda d: (
        (d["H"] + 2 * d["P"] - d["HH"]) % d["S"] == 0 and (d["W"] + 2 * d["P"] - d["WW"]) % d["S"] == 0
    ),
    torch_forward=torch_refs_layers.conv,
)


EXERCISES = [
    Exercise(
        name="max_pool",
        title="Max pooling (naive)",
        teaches="Routing the gradient to the one input that won each window.",
        points=12,
        statement="x (N, C, H, W), 2x2 windows with stride 2 (pool_param), H and W even; "
        "out (N, C, H/2, W/2) holds each window's maximum. Return dx (N, C, H, W).",
        functions=("max_pool_forward_naive", "max_pool_backward_naive"),
        module="reference_impls.conv",
        style="layer",
    ),
    Exercise(
        name="conv",
        title="Convolution (naive)",
        teaches="Weight sharing: gradients accumulate over every position a filter visits, through padding and stride.",
        points=20,
        statement="x (N, C, H, W), w (F, C, HH, WW), b (F,), conv_param {'stride': S, 'pad': P}: "
        "zero-pad x by P, slide each filter with stride S (cross-correlation) and add its bias; "
        "out is (N, F, 1 + (H + 2P - HH) // S, 1 + (W + 2P - WW) // S). "
        "Return dx (N, C, H, W), dw (F, C, HH, WW), db (F,).",
        functions=("conv_forward_naive", "conv_backward_naive"),
        module="reference_impls.conv",
        style="layer",
    ),
]
