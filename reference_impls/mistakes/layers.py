"""Planted mistakes for the exercises of ``reference_impls.layers`` and ``reference_impls.conv``.

Each buggy function is written the way people really get the layer wrong, and replaces the
reference function of the same role; it reads the cache that the *reference* forward builds
(``layers.py``/``conv.py``), unless the mistake also replaces the forward. ``diagnosis`` is the
code the harness should give, or ``""`` when the mistake only has to be detected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from reference_impls.bank import Mistake

__all__ = ["MISTAKES"]

Cache = Any
Grads3 = tuple[np.ndarray, np.ndarray, np.ndarray]


# --- affine (cache: x, w) ---------------------------------------------------------------------


def affine_backward_bias_not_summed(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return dout @ w.T, x.T @ dout, dout


def affine_backward_dw_transposed(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)


def affine_backward_db_mean(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def affine_backward_db_keepdims(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0, keepdims=True)


def affine_backward_db_aliases_dout(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout[0]  # a view of dout's first row, not a copy
    for row in dout[1:]:
        db += row
    return dx, dw, db


_dw_buffers: dict[tuple[int, ...], np.ndarray] = {}


def affine_backward_accumulates_dw(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    # A gradient buffer per parameter, like torch's .grad, added to and never zeroed.
    _dw_buffers[w.shape] = _dw_buffers.get(w.shape, np.zeros_like(w)) + x.T @ dout
    return dout @ w.T, _dw_buffers[w.shape].copy(), dout.sum(axis=0)


def affine_backward_dw_double_transpose(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return dout @ w.T, (dout.T @ x).T, np.sum(dout, axis=0)


# --- affine, column-major (cache: x (D, N), w (D, M)) -----------------------------------------


def affine_colmajor_backward_db_flat(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return w @ dout, x @ dout.T, dout.sum(axis=1)


def affine_colmajor_backward_bias_not_summed(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return w @ dout, x @ dout.T, dout


def affine_colmajor_backward_dw_transposed(dout: np.ndarray, cache: Cache) -> Grads3:
    x, w = cache
    return w @ dout, dout @ x.T, dout.sum(axis=1, keepdims=True)


# --- relu (cache: x) --------------------------------------------------------------------------


def relu_backward_times_x(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x = cache
    return dout * x


def relu_backward_mask_ge_zero(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x = cache
    return dout * (x >= 0)


def relu_backward_in_place(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x = cache
    dx = dout  # not a copy
    dx[x <= 0] = 0
    return dx


# --- leaky relu (cache: x, alpha) -------------------------------------------------------------


def leaky_relu_backward_zero_slope(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x, _ = cache
    return dout * (x > 0)


def leaky_relu_backward_alpha_without_dout(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x, alpha = cache
    return np.where(x > 0, dout, alpha)


def leaky_relu_backward_mask_ge_zero(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x, alpha = cache
    return np.where(x >= 0, dout, alpha * dout)


# --- sigmoid (reference cache: out) -----------------------------------------------------------


def sigmoid_forward_caching_x(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    return 1 / (1 + np.exp(-x)), x


def sigmoid_backward_of_input(dout: np.ndarray, cache: Cache) -> np.ndarray:
    s = cache  # but the cache holds x, not sigmoid(x)
    return dout * s * (1 - s)


def sigmoid_backward_missing_one_minus(dout: np.ndarray, cache: Cache) -> np.ndarray:
    s = cache
    return dout * s


def sigmoid_backward_sign_flipped(dout: np.ndarray, cache: Cache) -> np.ndarray:
    s = cache
    return dout * s * (s - 1)


# --- tanh (reference cache: out) --------------------------------------------------------------


def tanh_forward_caching_x(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    return np.tanh(x), x


def tanh_backward_of_input(dout: np.ndarray, cache: Cache) -> np.ndarray:
    t = cache  # but the cache holds x, not tanh(x)
    return dout * (1 - t**2)


def tanh_backward_missing_square(dout: np.ndarray, cache: Cache) -> np.ndarray:
    t = cache
    return dout * (1 - t)


def tanh_backward_sign_flipped(dout: np.ndarray, cache: Cache) -> np.ndarray:
    t = cache
    return dout * (t**2 - 1)


# --- dropout (cache: mask, entries 0 or 1/keep) -----------------------------------------------


def dropout_backward_divides_by_keep_again(dout: np.ndarray, cache: Cache) -> np.ndarray:
    mask = cache
    keep = 1 / mask.max() if mask.any() else 1.0  # the keep probability the forward used
    return dout * mask / keep


def dropout_backward_boolean_mask(dout: np.ndarray, cache: Cache) -> np.ndarray:
    mask = cache
    return dout * (mask > 0)


def dropout_backward_mask_not_applied(dout: np.ndarray, cache: Cache) -> np.ndarray:
    return dout.copy()


# --- batch normalisation (cache: x_hat, inv_std, gamma) ---------------------------------------


def batchnorm_backward_missing_mean_path(dout: np.ndarray, cache: Cache) -> Grads3:
    x_hat, inv_std, gamma = cache
    N = dout.shape[0]
    x_centered = x_hat / inv_std
    dx_hat = dout * gamma
    dvar = (dx_hat * x_centered).sum(axis=0) * -0.5 * inv_std**3
    # The staged chain rule with the step through the mean forgotten: no dmu term.
    dx = dx_hat * inv_std + dvar * 2 * x_centered / N
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_dbeta_mean(dout: np.ndarray, cache: Cache) -> Grads3:
    dx, dgamma, _ = _batchnorm_backward(dout, cache)
    return dx, dgamma, dout.mean(axis=0)


def batchnorm_backward_dgamma_without_x_hat(dout: np.ndarray, cache: Cache) -> Grads3:
    dx, _, dbeta = _batchnorm_backward(dout, cache)
    return dx, dout.sum(axis=0), dbeta


def batchnorm_backward_dx_without_gamma(dout: np.ndarray, cache: Cache) -> Grads3:
    x_hat, inv_std, gamma = cache
    _, dgamma, dbeta = _batchnorm_backward(dout, cache)
    dx, _, _ = _batchnorm_backward(dout, (x_hat, inv_std, np.ones_like(gamma)))
    return dx, dgamma, dbeta


def batchnorm_forward_unbiased_variance(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict[str, Any]
) -> tuple[np.ndarray, Cache]:
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)  # torch.var's default, not batch norm's
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x_hat, inv_std, gamma)


def _batchnorm_backward(dout: np.ndarray, cache: Cache) -> Grads3:
    """The correct backward, so that each mistake above changes one thing only."""
    x_hat, inv_std, gamma = cache
    dx_hat = dout * gamma
    dx = inv_std * (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# --- layer normalisation (cache: x_hat, inv_std (N, 1), gamma) --------------------------------


def layernorm_backward_batchnorm_axes(dout: np.ndarray, cache: Cache) -> Grads3:
    x_hat, inv_std, gamma = cache
    dx_hat = dout * gamma
    # batchnorm's formula copied as is: the statistics' means run over the batch, not the features.
    dx = inv_std * (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def layernorm_backward_dgamma_not_summed(dout: np.ndarray, cache: Cache) -> Grads3:
    dx, _, dbeta = _layernorm_backward(dout, cache)
    x_hat = cache[0]
    return dx, dout * x_hat, dbeta


def layernorm_backward_params_summed_over_features(dout: np.ndarray, cache: Cache) -> Grads3:
    dx, _, _ = _layernorm_backward(dout, cache)
    x_hat = cache[0]
    return dx, (dout * x_hat).sum(axis=1), dout.sum(axis=1)


def _layernorm_backward(dout: np.ndarray, cache: Cache) -> Grads3:
    """The correct backward, so that each mistake above changes one thing only."""
    x_hat, inv_std, gamma = cache
    dx_hat = dout * gamma
    mean_dx_hat = dx_hat.mean(axis=1, keepdims=True)
    mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=1, keepdims=True)
    dx = inv_std * (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# --- max pooling (cache: x, pool_param) -------------------------------------------------------


def _pool_windows(dout: np.ndarray, pool_param: dict[str, int]) -> Iterator[tuple[int, int, slice, slice]]:
    """Yield (i, j, rows, cols) for each output position."""
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    for i in range(H_out):
        for j in range(W_out):
            yield i, j, slice(i * stride, i * stride + ph), slice(j * stride, j * stride + pw)


def max_pool_backward_whole_window(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x, pool_param = cache
    dx = np.zeros_like(x)
    for i, j, rows, cols in _pool_windows(dout, pool_param):
        dx[:, :, rows, cols] += dout[:, :, i, j, None, None]
    return dx


def max_pool_backward_first_element(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x, pool_param = cache
    dx = np.zeros_like(x)
    for i, j, rows, cols in _pool_windows(dout, pool_param):
        dx[:, :, rows.start, cols.start] += dout[:, :, i, j]
    return dx


def max_pool_backward_averaged(dout: np.ndarray, cache: Cache) -> np.ndarray:
    x, pool_param = cache
    dx = np.zeros_like(x)
    area = pool_param["pool_height"] * pool_param["pool_width"]
    for i, j, rows, cols in _pool_windows(dout, pool_param):
        dx[:, :, rows, cols] += dout[:, :, i, j, None, None] / area
    return dx


# --- convolution (cache: x, w, conv_param) ----------------------------------------------------


def _conv_backward(
    dout: np.ndarray,
    cache: Cache,
    *,
    flip_kernel: bool = False,
    crop: bool = True,
    stride_in_backward: bool = True,
) -> Grads3:
    """The correct naive backward, with switches for the mistakes below."""
    x, w, conv_param = cache
    S, P = conv_param["stride"], conv_param["pad"]
    _, _, H, W = x.shape
    _, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    kernel = w[:, :, ::-1, ::-1] if flip_kernel else w
    step = S if stride_in_backward else 1
    for i in range(H_out):
        for j in range(W_out):
            g = dout[:, :, i, j]
            dw_rows, dw_cols = slice(i * step, i * step + HH), slice(j * step, j * step + WW)
            dw += np.tensordot(g, x_pad[:, :, dw_rows, dw_cols], axes=([0], [0]))
            rows, cols = slice(i * S, i * S + HH), slice(j * S, j * S + WW)
            dx_pad[:, :, rows, cols] += np.tensordot(g, kernel, axes=([1], [0]))
    dx = dx_pad[:, :, P : P + H, P : P + W] if crop else dx_pad
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_backward_flipped_kernel(dout: np.ndarray, cache: Cache) -> Grads3:
    # "The gradient of a convolution is a convolution with the flipped kernel", applied to the
    # scatter form, where the kernel must not be flipped.
    return _conv_backward(dout, cache, flip_kernel=True)


def conv_backward_padding_not_cropped(dout: np.ndarray, cache: Cache) -> Grads3:
    return _conv_backward(dout, cache, crop=False)


def conv_backward_db_not_summed_over_batch(dout: np.ndarray, cache: Cache) -> Grads3:
    dx, dw, _ = _conv_backward(dout, cache)
    return dx, dw, dout.sum(axis=(2, 3))


def conv_backward_dw_ignores_stride(dout: np.ndarray, cache: Cache) -> Grads3:
    return _conv_backward(dout, cache, stride_in_backward=False)


MISTAKES = [
    # affine
    Mistake(
        exercise="affine",
        name="bias_not_summed",
        description="db = dout: the bias gradient keeps the batch axis, shape (N, M) for b (M,).",
        replaces={"affine_backward": affine_backward_bias_not_summed},
        diagnosis="unreduced_broadcast",
    ),
    Mistake(
        exercise="affine",
        name="dw_transposed",
        description="dw = dout.T @ x: (M, D) instead of (D, M), a value error when D == M.",
        replaces={"affine_backward": affine_backward_dw_transposed},
        diagnosis="transposed",
    ),
    Mistake(
        exercise="affine",
        name="db_mean",
        description="db = dout.mean(axis=0): the bias gradient averaged over the batch instead of summed.",
        replaces={"affine_backward": affine_backward_db_mean},
        diagnosis="mean_instead_of_sum",
    ),
    Mistake(
        exercise="affine",
        name="db_keepdims",
        description="db = dout.sum(axis=0, keepdims=True): shape (1, M) for b (M,).",
        replaces={"affine_backward": affine_backward_db_keepdims},
        diagnosis="keepdims",
    ),
    Mistake(
        exercise="affine",
        name="db_aliases_dout",
        description="db = dout[0], then db += row for the other rows: db is a view, so dout's first row "
        "is overwritten. Every gradient is right; the caller's dout is not.",
        replaces={"affine_backward": affine_backward_db_aliases_dout},
        diagnosis="mutates_input",
    ),
    Mistake(
        exercise="affine",
        name="dw_accumulates",
        description="dw is added to a module-level buffer that is never zeroed (like torch's .grad): "
        "right on the first call, wrong on every later call with the same shapes.",
        replaces={"affine_backward": affine_backward_accumulates_dw},
        diagnosis="stateful",
    ),
    Mistake(
        exercise="affine",
        name="dw_double_transpose",
        description="dw = (dout.T @ x).T: looks transposed, is exactly x.T @ dout.",
        replaces={"affine_backward": affine_backward_dw_double_transpose},
        control=True,
    ),
    # affine, column-major
    Mistake(
        exercise="affine_colmajor",
        name="db_flat",
        description="db = dout.sum(axis=1): shape (M,) for b (M, 1).",
        replaces={"affine_colmajor_backward": affine_colmajor_backward_db_flat},
        diagnosis="keepdims",
    ),
    Mistake(
        exercise="affine_colmajor",
        name="bias_not_summed",
        description="db = dout: shape (M, N) for b (M, 1), which was broadcast over the N columns.",
        replaces={"affine_colmajor_backward": affine_colmajor_backward_bias_not_summed},
        diagnosis="unreduced_broadcast",
    ),
    Mistake(
        exercise="affine_colmajor",
        name="dw_transposed",
        description="dw = dout @ x.T, the row-major habit: (M, D) instead of (D, M).",
        replaces={"affine_colmajor_backward": affine_colmajor_backward_dw_transposed},
        diagnosis="transposed",
    ),
    # relu
    Mistake(
        exercise="relu",
        name="times_x",
        description="dx = dout * x: multiplies by the input instead of by the mask x > 0.",
        replaces={"relu_backward": relu_backward_times_x},
        diagnosis="wrong_mask",
    ),
    Mistake(
        exercise="relu",
        name="in_place_on_dout",
        description="dx = dout; dx[x <= 0] = 0: right values, but the caller's dout is zeroed in place.",
        replaces={"relu_backward": relu_backward_in_place},
        diagnosis="mutates_input",
    ),
    Mistake(
        exercise="relu",
        name="mask_ge_zero",
        description="mask x >= 0 instead of x > 0: differs only at x == 0, where relu has no derivative.",
        replaces={"relu_backward": relu_backward_mask_ge_zero},
        control=True,
    ),
    # leaky relu
    Mistake(
        exercise="leaky_relu",
        name="zero_slope",
        description="relu's backward copied: slope 0 instead of alpha for x < 0.",
        replaces={"leaky_relu_backward": leaky_relu_backward_zero_slope},
        diagnosis="wrong_mask",
    ),
    Mistake(
        exercise="leaky_relu",
        name="alpha_without_dout",
        description="np.where(x > 0, dout, alpha): the local slope alpha is returned, not alpha * dout.",
        replaces={"leaky_relu_backward": leaky_relu_backward_alpha_without_dout},
    ),
    Mistake(
        exercise="leaky_relu",
        name="mask_ge_zero",
        description="slope 1 for x >= 0 instead of x > 0: differs only at the kink.",
        replaces={"leaky_relu_backward": leaky_relu_backward_mask_ge_zero},
        control=True,
    ),
    # sigmoid
    Mistake(
        exercise="sigmoid",
        name="derivative_of_input",
        description="s * (1 - s) with s = x: the forward caches its input and the backward treats it as "
        "the output.",
        replaces={
            "sigmoid_forward": sigmoid_forward_caching_x,
            "sigmoid_backward": sigmoid_backward_of_input,
        },
    ),
    Mistake(
        exercise="sigmoid",
        name="missing_one_minus",
        description="dx = dout * s: the (1 - s) factor forgotten.",
        replaces={"sigmoid_backward": sigmoid_backward_missing_one_minus},
    ),
    Mistake(
        exercise="sigmoid",
        name="sign_flipped",
        description="dx = dout * s * (s - 1): the factors written the wrong way round.",
        replaces={"sigmoid_backward": sigmoid_backward_sign_flipped},
        diagnosis="sign_flipped",
    ),
    # tanh
    Mistake(
        exercise="tanh",
        name="missing_square",
        description="dx = dout * (1 - t): the square of tanh forgotten.",
        replaces={"tanh_backward": tanh_backward_missing_square},
    ),
    Mistake(
        exercise="tanh",
        name="derivative_of_input",
        description="1 - t**2 with t = x: the forward caches its input and the backward treats it as the output.",
        replaces={"tanh_forward": tanh_forward_caching_x, "tanh_backward": tanh_backward_of_input},
    ),
    Mistake(
        exercise="tanh",
        name="sign_flipped",
        description="dx = dout * (t**2 - 1).",
        replaces={"tanh_backward": tanh_backward_sign_flipped},
        diagnosis="sign_flipped",
    ),
    # dropout
    Mistake(
        exercise="dropout",
        name="divides_by_keep_again",
        description="dx = dout * mask / keep: the mask already holds 1/keep, so the scale is applied twice.",
        replaces={"dropout_backward": dropout_backward_divides_by_keep_again},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="dropout",
        name="boolean_mask",
        description="dx = dout * (mask > 0): the kept entries lose their 1/keep scale.",
        replaces={"dropout_backward": dropout_backward_boolean_mask},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="dropout",
        name="mask_not_applied",
        description="dx = dout: dropped units still receive gradient, kept ones miss their scale.",
        replaces={"dropout_backward": dropout_backward_mask_not_applied},
        diagnosis="wrong_mask",
    ),
    # batch normalisation
    Mistake(
        exercise="batchnorm",
        name="dx_missing_mean_path",
        description="The staged chain rule without the step through the batch mean: dx lacks the "
        "-mean(dx_hat) * inv_std term. dgamma and dbeta are right.",
        replaces={"batchnorm_backward": batchnorm_backward_missing_mean_path},
        diagnosis="missing_path",
    ),
    Mistake(
        exercise="batchnorm",
        name="dbeta_mean",
        description="dbeta = dout.mean(axis=0) instead of the sum over the batch.",
        replaces={"batchnorm_backward": batchnorm_backward_dbeta_mean},
        diagnosis="mean_instead_of_sum",
    ),
    Mistake(
        exercise="batchnorm",
        name="dgamma_without_x_hat",
        description="dgamma = dout.sum(axis=0): copied from dbeta, not multiplied by x_hat.",
        replaces={"batchnorm_backward": batchnorm_backward_dgamma_without_x_hat},
    ),
    Mistake(
        exercise="batchnorm",
        name="dx_without_gamma",
        description="dx_hat = dout: the gradient reaching x_hat is not multiplied by gamma.",
        replaces={"batchnorm_backward": batchnorm_backward_dx_without_gamma},
    ),
    Mistake(
        exercise="batchnorm",
        name="unbiased_variance",
        description="The forward normalises with the unbiased variance (ddof=1, torch.var's default); "
        "the backward is the reference one.",
        replaces={"batchnorm_forward": batchnorm_forward_unbiased_variance},
        diagnosis="forward_mismatch",
    ),
    # layer normalisation
    Mistake(
        exercise="layernorm",
        name="batchnorm_axes_in_backward",
        description="batchnorm's dx copied unchanged: the sums over the statistics run over the batch "
        "(axis 0) instead of the features (axis 1).",
        replaces={"layernorm_backward": layernorm_backward_batchnorm_axes},
    ),
    Mistake(
        exercise="layernorm",
        name="dgamma_not_summed",
        description="dgamma = dout * x_hat: shape (N, D) for gamma (D,), broadcast over the batch.",
        replaces={"layernorm_backward": layernorm_backward_dgamma_not_summed},
        diagnosis="unreduced_broadcast",
    ),
    Mistake(
        exercise="layernorm",
        name="params_summed_over_features",
        description="dgamma and dbeta summed over axis 1 (the normalised axis): shape (N,) for (D,).",
        replaces={"layernorm_backward": layernorm_backward_params_summed_over_features},
    ),
    # max pooling
    Mistake(
        exercise="max_pool",
        name="whole_window",
        description="Every element of a window receives the window's gradient, not only its maximum.",
        replaces={"max_pool_backward_naive": max_pool_backward_whole_window},
        diagnosis="wrong_mask",
    ),
    Mistake(
        exercise="max_pool",
        name="first_element",
        description="The gradient goes to the top-left element of each window instead of its argmax.",
        replaces={"max_pool_backward_naive": max_pool_backward_first_element},
        diagnosis="wrong_mask",
    ),
    Mistake(
        exercise="max_pool",
        name="averaged",
        description="Average pooling's backward: each element receives the window's gradient / 4.",
        replaces={"max_pool_backward_naive": max_pool_backward_averaged},
    ),
    # convolution
    Mistake(
        exercise="conv",
        name="flipped_kernel",
        description="dx scatters dout through the kernel flipped in both spatial axes; the scatter form "
        "needs the kernel as it is (only the gather form flips it). Right when HH = WW = 1.",
        replaces={"conv_backward_naive": conv_backward_flipped_kernel},
    ),
    Mistake(
        exercise="conv",
        name="padding_not_cropped",
        description="dx is returned padded: (N, C, H + 2P, W + 2P) for x (N, C, H, W). Right when P = 0.",
        replaces={"conv_backward_naive": conv_backward_padding_not_cropped},
    ),
    Mistake(
        exercise="conv",
        name="db_not_summed_over_batch",
        description="db = dout.sum(axis=(2, 3)): summed over positions but not examples, shape (N, F) for b (F,).",
        replaces={"conv_backward_naive": conv_backward_db_not_summed_over_batch},
        diagnosis="unreduced_broadcast",
    ),
    Mistake(
        exercise="conv",
        name="dw_ignores_stride",
        description="dw reads the input window at (i, j) instead of (i * S, j * S). Right when S = 1.",
        replaces={"conv_backward_naive": conv_backward_dw_ignores_stride},
    ),
]
