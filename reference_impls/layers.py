"""Layers of a fully connected network, each backward pass right below its forward pass.

Every forward returns ``(out, cache)``; its backward takes the upstream gradient ``dout`` (the
gradient of the loss with respect to ``out``, same shape as ``out``) and that ``cache``, and returns
the gradient of the loss with respect to each differentiable input, with that input's shape.
Names and signatures follow Stanford's cs231n assignments.

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


# --- affine: out = x @ w + b ------------------------------------------------------------------


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Fully connected layer, one example per row.

    x: (N, D) inputs; w: (D, M) weights; b: (M,) biases.
    Returns out: (N, M) with ``out = x @ w + b``, and a cache for ``affine_backward``.
    """
    out = x @ w + b
    return out, (x, w)


def affine_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, M) upstream gradient; cache from ``affine_forward``.

    Returns dx: (N, D), dw: (D, M), db: (M,).
    """
    x, w = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0)  # b was broadcast over the N rows
    return dx, dw, db


# --- affine, column-major batches: out = w.T @ x + b ------------------------------------------


def affine_colmajor_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Fully connected layer, one example per column (the layout of many textbooks).

    x: (D, N) inputs; w: (D, M) weights; b: (M, 1) biases.
    Returns out: (M, N) with ``out = w.T @ x + b``, and a cache for ``affine_colmajor_backward``.
    """
    out = w.T @ x + b
    return out, (x, w)


def affine_colmajor_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (M, N) upstream gradient; cache from ``affine_colmajor_forward``.

    Returns dx: (D, N), dw: (D, M), db: (M, 1), each shaped like its input.
    """
    x, w = cache
    dx = w @ dout
    dw = x @ dout.T
    db = dout.sum(axis=1, keepdims=True)  # b (M, 1) was broadcast over the N columns
    return dx, dw, db


# --- relu: out = max(0, x) --------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Rectified linear unit, element-wise.

    x: inputs of any shape. Returns out (same shape) with ``out = max(0, x)``, and a cache.
    """
    out = np.maximum(0, x)
    return out, x


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: upstream gradient, shaped like x; cache from ``relu_forward``.

    Returns dx, shaped like x.
    """
    x = cache
    return dout * (x > 0)


# --- leaky relu: out = x if x > 0 else alpha * x ----------------------------------------------


def leaky_relu_forward(x: np.ndarray, alpha: float = 0.01) -> tuple[np.ndarray, Cache]:
    """Leaky rectified linear unit, element-wise.

    x: inputs of any shape; alpha: slope for negative inputs.
    Returns out (same shape) with ``out = x`` where ``x > 0`` and ``alpha * x`` elsewhere, and a cache.
    """
    out = np.where(x > 0, x, alpha * x)
    return out, (x, alpha)


def leaky_relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: upstream gradient, shaped like x; cache from ``leaky_relu_forward``.

    Returns dx, shaped like x.
    """
    x, alpha = cache
    slope = np.where(x > 0, 1.0, alpha)
    return dout * slope


# --- sigmoid: out = 1 / (1 + exp(-x)) ---------------------------------------------------------


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Logistic sigmoid, element-wise.

    x: inputs of any shape. Returns out (same shape) with ``out = 1 / (1 + exp(-x))``, and a cache.
    """
    # Two branches so that exp never overflows, whatever the sign of x.
    z = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
    return out, out


def sigmoid_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: upstream gradient, shaped like x; cache from ``sigmoid_forward``.

    Returns dx, shaped like x.
    """
    s = cache
    return dout * s * (1 - s)


# --- tanh: out = tanh(x) ----------------------------------------------------------------------


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Hyperbolic tangent, element-wise.

    x: inputs of any shape. Returns out (same shape) with ``out = tanh(x)``, and a cache.
    """
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: upstream gradient, shaped like x; cache from ``tanh_forward``.

    Returns dx, shaped like x.
    """
    t = cache
    return dout * (1 - t**2)


# --- inverted dropout: out = x * mask ---------------------------------------------------------


def dropout_forward(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Inverted dropout, train mode, with the random mask drawn by the caller.

    x: inputs of any shape; mask: same shape, each entry 0 (dropped) or 1/keep (kept, already
    scaled so that the expected output equals x). Returns out (same shape) with ``out = x * mask``,
    and a cache. The mask is not differentiated.
    """
    out = x * mask
    return out, mask


def dropout_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: upstream gradient, shaped like x; cache from ``dropout_forward``.

    Returns dx, shaped like x.
    """
    mask = cache
    return dout * mask


# --- batch normalisation (train mode) ---------------------------------------------------------


def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict[str, Any]
) -> tuple[np.ndarray, Cache]:
    """Batch normalisation: normalise each feature over the batch, then scale and shift.

    x: (N, D) inputs; gamma: (D,) scales; beta: (D,) shifts.
    bn_param: dict with ``mode`` ("train" or "test"), ``eps`` (added to the variance), and optional
    ``momentum`` (default 0.9), ``running_mean`` (D,), ``running_var`` (D,).
    In train mode, each column is normalised with the mean and the (biased) variance of the batch,
    ``x_hat = (x - mean) / sqrt(var + eps)``, and ``out = gamma * x_hat + beta``; the running
    averages in ``bn_param`` are updated. In test mode the running averages replace the batch's.
    Returns out: (N, D), and a cache for ``batchnorm_backward`` (train mode).
    """
    mode = bn_param.get("mode", "train")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    D = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))

    if mode == "train":
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        inv_std = 1 / np.sqrt(var + eps)
        x_hat = (x - mu) * inv_std
        out = gamma * x_hat + beta
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
        return out, (x_hat, inv_std, gamma)
    if mode == "test":
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        return gamma * x_hat + beta, None
    raise ValueError(f"bn_param['mode']={mode!r}: use 'train' or 'test'")


def batchnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, D) upstream gradient; cache from a train-mode ``batchnorm_forward``.

    Returns dx: (N, D), dgamma: (D,), dbeta: (D,).
    """
    x_hat, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    # x reaches x_hat three ways: directly, through the batch mean and through the batch variance.
    # Their sum, simplified (the variance's own dependence on the mean drops out: x - mean sums to 0):
    dx = inv_std * (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))
    return dx, dgamma, dbeta


# --- layer normalisation ----------------------------------------------------------------------


def layernorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, ln_param: dict[str, Any]
) -> tuple[np.ndarray, Cache]:
    """Layer normalisation: normalise each example over its features, then scale and shift.

    x: (N, D) inputs; gamma: (D,) scales; beta: (D,) shifts; ln_param: dict with ``eps``.
    Each row is normalised with its own mean and (biased) variance,
    ``x_hat = (x - mean) / sqrt(var + eps)``, and ``out = gamma * x_hat + beta``; the same in train
    and test mode. Returns out: (N, D), and a cache for ``layernorm_backward``.
    """
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    out = gamma * x_hat + beta
    return out, (x_hat, inv_std, gamma)


def layernorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, D) upstream gradient; cache from ``layernorm_forward``.

    Returns dx: (N, D), dgamma: (D,), dbeta: (D,).
    """
    x_hat, inv_std, gamma = cache
    # gamma and beta are shared by the rows, so their gradients sum over the batch...
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    # ...while the statistics belong to one row: batchnorm's dx with the axes swapped.
    dx_hat = dout * gamma
    mean_dx_hat = dx_hat.mean(axis=1, keepdims=True)
    mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=1, keepdims=True)
    dx = inv_std * (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat)
    return dx, dgamma, dbeta


# --- registration: what the harness checks ----------------------------------------------------

bc.register(
    "affine",
    forward=affine_forward,
    backward=affine_backward,
    inputs={"x": "N,D", "w": "D,M", "b": "M"},
    torch_forward=torch_refs_layers.affine,
)
bc.register(
    "affine_colmajor",
    forward=affine_colmajor_forward,
    backward=affine_colmajor_backward,
    inputs={"x": "D,N", "w": "D,M", "b": "M,1"},
    torch_forward=torch_refs_layers.affine_colmajor,
)
bc.register(
    "relu",
    forward=relu_forward,
    backward=relu_backward,
    inputs={"x": "N,D"},
    torch_forward=torch_refs_layers.relu,
)
bc.register(
    "leaky_relu",
    forward=leaky_relu_forward,
    backward=leaky_relu_backward,
    inputs={"x": "N,D"},
    hyper={"alpha": 0.01},
    torch_forward=torch_refs_layers.leaky_relu,
)
bc.register(
    "sigmoid",
    forward=sigmoid_forward,
    backward=sigmoid_backward,
    inputs={"x": "N,D"},
    torch_forward=torch_refs_layers.sigmoid,
)
bc.register(
    "tanh",
    forward=tanh_forward,
    backward=tanh_backward,
    inputs={"x": "N,D"},
    torch_forward=torch_refs_layers.tanh,
)
bc.register(
    "dropout",
    forward=dropout_forward,
    backward=dropout_backward,
    inputs={"x": "N,D", "mask": bc.mask("N,D", keep=0.5)},
    torch_forward=torch_refs_layers.dropout,
)
bc.register(
    "batchnorm",
    forward=batchnorm_forward,
    backward=batchnorm_backward,
    inputs={"x": "N,D", "gamma": "D", "beta": "D"},
    # A fresh dict per case: the forward stores running averages of shape (D,) in it.
    hyper=lambda dims: {"bn_param": {"mode": "train", "eps": 1e-5}},
    dims={"N": range(2, 7)},  # one example has variance 0: every x_hat is 0
    torch_forward=torch_refs_layers.batchnorm,
)
bc.register(
    "layernorm",
    forward=layernorm_forward,
    backward=layernorm_backward,
    inputs={"x": "N,D", "gamma": "D", "beta": "D"},
    hyper={"ln_param": {"eps": 1e-5}},
    dims={"D": range(2, 7)},  # one feature has variance 0: every x_hat is 0
    torch_forward=torch_refs_layers.layernorm,
)


def _layer_exercise(name: str, title: str, teaches: str, points: int, statement: str) -> Exercise:
    return Exercise(
        name=name,
        title=title,
        teaches=teaches,
        points=points,
        statement=statement,
        functions=(f"{name}_forward", f"{name}_backward"),
        module="reference_impls.layers",
        style="layer",
    )


EXERCISES = [
    _layer_exercise(
        "affine",
        "Affine layer",
        "Matrix-product gradients, and summing a broadcast bias over the batch.",
        5,
        "out = x @ w + b with x (N, D), w (D, M), b (M,). Return dx (N, D), dw (D, M), db (M,).",
    ),
    _layer_exercise(
        "affine_colmajor",
        "Affine layer, column-major batches",
        "The same layer with examples as columns: gradients keep their parameter's shape, (M, 1) included.",
        8,
        "out = w.T @ x + b with x (D, N), w (D, M), b (M, 1); out is (M, N). "
        "Return dx (D, N), dw (D, M), db (M, 1).",
    ),
    _layer_exercise(
        "relu",
        "ReLU",
        "Routing the gradient through a mask.",
        5,
        "out = max(0, x), element-wise, x of any shape. Return dx, shaped like x.",
    ),
    _layer_exercise(
        "leaky_relu",
        "Leaky ReLU",
        "A piecewise-linear gradient with a non-zero slope on both sides.",
        5,
        "out = x where x > 0, alpha * x elsewhere (alpha a keyword argument, default 0.01). "
        "Return dx, shaped like x.",
    ),
    _layer_exercise(
        "sigmoid",
        "Sigmoid",
        "Expressing a derivative through the forward pass's output.",
        5,
        "out = 1 / (1 + exp(-x)), element-wise, x of any shape. Return dx, shaped like x.",
    ),
    _layer_exercise(
        "tanh",
        "Tanh",
        "Expressing a derivative through the forward pass's output.",
        5,
        "out = tanh(x), element-wise, x of any shape. Return dx, shaped like x.",
    ),
    _layer_exercise(
        "dropout",
        "Inverted dropout",
        "The gradient of a random but fixed mask that already carries the 1/keep scale.",
        5,
        "out = x * mask, where mask (shaped like x) holds 0 or 1/keep and is given. Return dx, shaped like x.",
    ),
    _layer_exercise(
        "batchnorm",
        "Batch normalisation (train mode)",
        "Backpropagating through batch statistics: every example's gradient depends on the whole batch.",
        15,
        "x (N, D), gamma (D,), beta (D,): normalise each column with its batch mean and biased variance "
        "(plus bn_param['eps']), then out = gamma * x_hat + beta; update bn_param's running averages. "
        "Return dx (N, D), dgamma (D,), dbeta (D,).",
    ),
    _layer_exercise(
        "layernorm",
        "Layer normalisation",
        "Normalising over the other axis: per-example statistics, parameters still shared by the batch.",
        12,
        "x (N, D), gamma (D,), beta (D,): normalise each row with its own mean and biased variance "
        "(plus ln_param['eps']), then out = gamma * x_hat + beta. Return dx (N, D), dgamma (D,), dbeta (D,).",
    ),
]
