"""Backward passes written as a computational graph: one named step per node of the forward.

cs231n teaches batch normalisation this way. The forward is cut into small nodes (``mu``, ``xmu``,
``sq``, ``var``, ...) and the backward walks them in reverse, one gradient per node, named after it
(``dmu``, ``dxmu``, ``dsq``, ``dvar``, ...). Longer than a fused formula, but each line is one
local derivative, and when the result is wrong the harness can say which line: it matches
``d<name>`` in the backward to ``<name>`` in the forward and checks each step against its exact
gradient. Partial sums along one path (``dxmu1``, ``dxmu2``) have no node of their own.

The bottom of the file registers each exercise with the harness.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import checker as bc
from reference_impls import torch_refs_staged
from reference_impls.bank import Exercise

__all__ = [
    "EXERCISES",
    "attention_staged_backward",
    "attention_staged_forward",
    "batchnorm_staged_backward",
    "batchnorm_staged_forward",
    "layernorm_staged_backward",
    "layernorm_staged_forward",
    "lstm_step_staged_backward",
    "lstm_step_staged_forward",
    "two_layer_net_loss",
]

Cache = Any


# --- batch normalisation, node by node ----------------------------------------------------------


def batchnorm_staged_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, Cache]:
    """Train-mode batch normalisation. x: (N, D); gamma, beta: (D,). Returns out (N, D) and a cache."""
    N = x.shape[0]
    mu = x.sum(axis=0) / N  # (D,) mean of each column
    xmu = x - mu  # (N, D)
    sq = xmu**2
    var = sq.sum(axis=0) / N  # (D,) biased variance
    sqrtvar = np.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    gammax = gamma * xhat
    out = gammax + beta
    return out, (xhat, gamma, xmu, ivar, sqrtvar, var, eps)


def batchnorm_staged_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, D). Returns dx (N, D), dgamma (D,), dbeta (D,), one node of the graph at a time."""
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)  # beta was broadcast over the N rows
    dgammax = dout
    dgamma = (dgammax * xhat).sum(axis=0)
    dxhat = dgammax * gamma
    divar = (dxhat * xmu).sum(axis=0)  # ivar was broadcast over the rows
    dxmu1 = dxhat * ivar  # first path into xmu: through xhat
    dsqrtvar = -1.0 / sqrtvar**2 * divar  # d(1/s)/ds = -1/s^2
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar  # d sqrt(v)/dv = 1 / (2 sqrt(v))
    dsq = np.ones_like(xmu) / N * dvar  # var is the mean of sq over the rows
    dxmu2 = 2 * xmu * dsq  # second path into xmu: through sq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N  # x reaches the loss directly and through mu, the mean of its rows
    return dx, dgamma, dbeta


# --- layer normalisation, node by node ----------------------------------------------------------


def layernorm_staged_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, Cache]:
    """Layer normalisation. x: (N, D); gamma, beta: (D,). Returns out (N, D) and a cache."""
    D = x.shape[1]
    mu = x.sum(axis=1, keepdims=True) / D  # (N, 1) mean of each row
    xmu = x - mu
    sq = xmu**2
    var = sq.sum(axis=1, keepdims=True) / D  # (N, 1)
    std = np.sqrt(var + eps)
    istd = 1.0 / std
    xhat = xmu * istd
    scaled = gamma * xhat
    out = scaled + beta
    return out, (xhat, gamma, xmu, istd, std)


def layernorm_staged_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, D). Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    xhat, gamma, xmu, istd, std = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)  # the parameters are shared by the rows...
    dscaled = dout
    dgamma = (dscaled * xhat).sum(axis=0)
    dxhat = dscaled * gamma
    distd = (dxhat * xmu).sum(axis=1, keepdims=True)  # ...the statistics belong to one row
    dxmu1 = dxhat * istd
    dstd = -distd / std**2
    dvar = dstd / (2 * std)
    dsq = np.ones_like(xmu) / D * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=1, keepdims=True)
    dx = dxmu + dmu / D
    return dx, dgamma, dbeta


# --- an LSTM step, gate by gate -----------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic sigmoid that never overflows: exp is only taken of -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def lstm_step_staged_forward(
    x: np.ndarray, prev_h: np.ndarray, prev_c: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Cache]:
    """One LSTM step. x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,); gates i, f, o, g.

    Returns next_h (N, H), next_c (N, H) and a cache.
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b  # (N, 4H)
    ai, af, ao, ag = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    i = _sigmoid(ai)
    f = _sigmoid(af)
    o = _sigmoid(ao)
    g = np.tanh(ag)
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_staged_backward(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """dnext_h, dnext_c: (N, H). Returns dx, dprev_h, dprev_c, dWx, dWh, db."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dtanh_c = dnext_h * o
    dnext_c = dnext_c + dtanh_c * (1 - tanh_c**2)  # next_c reaches the loss directly and through next_h
    do = dnext_h * tanh_c
    df = dnext_c * prev_c
    dprev_c = dnext_c * f
    di = dnext_c * g
    dg = dnext_c * i
    dai = di * i * (1 - i)  # sigmoid' = s (1 - s)
    daf = df * f * (1 - f)
    dao = do * o * (1 - o)
    dag = dg * (1 - g**2)  # tanh' = 1 - t^2
    da = np.concatenate([dai, daf, dao, dag], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)  # b was broadcast over the N rows
    return dx, dprev_h, dprev_c, dWx, dWh, db


# --- scaled dot-product attention, step by step -------------------------------------------------


def attention_staged_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, Cache]:
    """q (N, Tq, D), k (N, Tk, D), v (N, Tk, Dv). Returns out = softmax(q k^T / sqrt(D)) v (N, Tq, Dv)."""
    D = q.shape[-1]
    kT = k.transpose(0, 2, 1)  # (N, D, Tk)
    s = q @ kT  # (N, Tq, Tk)
    scores = s / np.sqrt(D)
    shifted = scores - scores.max(axis=-1, keepdims=True)  # softmax is shift-invariant: exp cannot overflow
    e = np.exp(shifted)
    weights = e / e.sum(axis=-1, keepdims=True)
    out = weights @ v
    return out, (q, kT, v, weights, D)


def attention_staged_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, Tq, Dv). Returns dq (N, Tq, D), dk (N, Tk, D), dv (N, Tk, Dv)."""
    q, kT, v, weights, D = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    # The softmax's Jacobian-vector product, row by row: w * (g - <w, g>).
    dscores = weights * (dweights - (weights * dweights).sum(axis=-1, keepdims=True))
    ds = dscores / np.sqrt(D)
    dq = ds @ kT.transpose(0, 2, 1)
    dkT = q.transpose(0, 2, 1) @ ds  # (N, D, Tk)
    dk = dkT.transpose(0, 2, 1)
    return dq, dk, dv


# --- a two-layer network written as one function ------------------------------------------------


def two_layer_net_loss(
    X: np.ndarray,
    y: np.ndarray,
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    reg: float = 0.1,
) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """affine - relu - affine - softmax: the loss and its gradients in one function.

    X: (N, D) inputs; y: (N,) labels in [0, C); W1 (D, H), b1 (H,), W2 (H, C), b2 (C,).
    Returns the mean cross-entropy plus ``0.5 * reg * (sum(W1**2) + sum(W2**2))``, and
    (dW1, db1, dW2, db2).
    """
    N = X.shape[0]
    h1 = X @ W1 + b1
    a1 = np.maximum(h1, 0.0)
    scores = a1 @ W2 + b2
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(N)
    data_loss = -log_probs[rows, y].mean()
    reg_loss = 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    loss = data_loss + reg_loss

    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1.0
    dscores /= N
    dW2 = a1.T @ dscores + reg * W2  # the gradient of 0.5 * reg * |W2|^2 is reg * W2
    db2 = dscores.sum(axis=0)
    da1 = dscores @ W2.T
    dh1 = da1 * (h1 > 0)
    dW1 = X.T @ dh1 + reg * W1
    db1 = dh1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


# --- registration -------------------------------------------------------------------------------

bc.register(
    "batchnorm_staged",
    forward=batchnorm_staged_forward,
    backward=batchnorm_staged_backward,
    inputs={"x": "N,D", "gamma": "D", "beta": "D"},
    dims={"N": range(2, 7)},  # one example has variance 0
    torch_forward=torch_refs_staged.batchnorm,
)
bc.register(
    "layernorm_staged",
    forward=layernorm_staged_forward,
    backward=layernorm_staged_backward,
    inputs={"x": "N,D", "gamma": "D", "beta": "D"},
    dims={"D": range(2, 7)},  # one feature has variance 0
    torch_forward=torch_refs_staged.layernorm,
)
bc.register(
    "lstm_step_staged",
    forward=lstm_step_staged_forward,
    backward=lstm_step_staged_backward,
    inputs={"x": "N,D", "prev_h": "N,H", "prev_c": "N,H", "Wx": "D,4H", "Wh": "H,4H", "b": "4H"},
    outputs=2,
    torch_forward=torch_refs_staged.lstm_step,
)
bc.register(
    "attention_staged",
    forward=attention_staged_forward,
    backward=attention_staged_backward,
    inputs={"q": "N,Tq,D", "k": "N,Tk,D", "v": "N,Tk,Dv"},
    torch_forward=torch_refs_staged.attention,
)
bc.register(
    "two_layer_net_staged",
    value_and_grad=two_layer_net_loss,
    inputs={
        "X": bc.const("N,D"),
        "y": bc.labels("N", classes="C"),
        "W1": "D,H",
        "b1": "H",
        "W2": "H,C",
        "b2": "C",
    },
    hyper={"reg": 0.1},
    torch_forward=torch_refs_staged.two_layer_net_loss,
)


def _staged(name: str, title: str, teaches: str, points: int, statement: str, **fields: Any) -> Exercise:
    functions = fields.pop("functions", (f"{name}_forward", f"{name}_backward"))
    return Exercise(name, title, teaches, points, statement, functions, "reference_impls.staged", **fields)


EXERCISES = [
    _staged(
        "batchnorm_staged",
        "Batch normalisation as a computational graph",
        "Walking a graph backwards one node at a time; two paths into xmu, and a third through the mean.",
        15,
        "x (N, D), gamma (D,), beta (D,), eps a keyword (1e-5): out = gamma * (x - mu) / sqrt(var + eps) + beta "
        "with the batch mean and biased variance of each column. Write the backward node by node "
        "(dbeta, dgamma, dxhat, divar, dsqrtvar, dvar, dsq, dxmu, dmu, dx). Return dx, dgamma, dbeta.",
    ),
    _staged(
        "layernorm_staged",
        "Layer normalisation as a computational graph",
        "The same graph over the other axis: per-row statistics, parameters still summed over the batch.",
        12,
        "x (N, D), gamma (D,), beta (D,), eps a keyword (1e-5): normalise each row with its own mean and "
        "biased variance, then out = gamma * xhat + beta. Write the backward node by node. "
        "Return dx, dgamma, dbeta.",
    ),
    _staged(
        "lstm_step_staged",
        "LSTM step, gate by gate",
        "One local derivative per gate, and a cell state whose gradient gathers two paths before it is used.",
        20,
        "x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,); a = x Wx + prev_h Wh + b, "
        "gates i, f, o = sigmoid, g = tanh of its four blocks; next_c = f prev_c + i g, "
        "next_h = o tanh(next_c). Return dx, dprev_h, dprev_c, dWx, dWh, db.",
    ),
    _staged(
        "attention_staged",
        "Attention, step by step",
        "The softmax's Jacobian-vector product between two batched matrix products, one named step each.",
        20,
        "q (N, Tq, D), k (N, Tk, D), v (N, Tk, Dv): out = softmax(q k^T / sqrt(D)) v, softmax over the keys. "
        "Return dq, dk, dv.",
    ),
    _staged(
        "two_layer_net_staged",
        "Two-layer network in one function",
        "Forward and backward in one function: every gradient next to the value it belongs to, "
        "regularisation included.",
        20,
        "two_layer_net_loss(X, y, W1, b1, W2, b2, reg=0.1) -> (loss, (dW1, db1, dW2, db2)): X (N, D), y (N,) "
        "labels in [0, C); affine (W1 (D, H), b1 (H,)) - relu - affine (W2 (H, C), b2 (C,)) - softmax, mean "
        "cross-entropy plus 0.5 * reg * (sum(W1**2) + sum(W2**2)).",
        functions=("two_layer_net_loss",),
        style="loss",
    ),
]
