"""Planted mistakes in the staged LSTM step, attention and two-layer network of ``reference_impls.staged``.

Each repeats the reference with one slip, at a different step each time; ``step`` names the
backward's local where the slip is (its last assignment is the planted line) and
``step_diagnosis`` what that step should be diagnosed as once the harness has located it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference_impls.bank import Mistake

__all__ = ["MISTAKES"]

Cache = Any
Grads3 = tuple[np.ndarray, np.ndarray, np.ndarray]
Grads6 = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
NetGrads = tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


# --- lstm_step_staged (cache: x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c) ---------------------


def lstm_step_staged_backward_tanh_path_missing(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: Cache
) -> Grads6:
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dtanh_c = dnext_h * o
    dnext_c = dnext_c + dtanh_c  # the derivative of tanh is left out
    do = dnext_h * tanh_c
    df = dnext_c * prev_c
    dprev_c = dnext_c * f
    di = dnext_c * g
    dg = dnext_c * i
    dai = di * i * (1 - i)
    daf = df * f * (1 - f)
    dao = do * o * (1 - o)
    dag = dg * (1 - g**2)
    da = np.concatenate([dai, daf, dao, dag], axis=1)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_staged_backward_prev_c_wrong_gate(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: Cache
) -> Grads6:
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dtanh_c = dnext_h * o
    dnext_c = dnext_c + dtanh_c * (1 - tanh_c**2)
    do = dnext_h * tanh_c
    df = dnext_c * prev_c
    dprev_c = dnext_c * i  # the input gate instead of the forget gate
    di = dnext_c * g
    dg = dnext_c * i
    dai = di * i * (1 - i)
    daf = df * f * (1 - f)
    dao = do * o * (1 - o)
    dag = dg * (1 - g**2)
    da = np.concatenate([dai, daf, dao, dag], axis=1)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_staged_backward_tanh_derivative_sign(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: Cache
) -> Grads6:
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dtanh_c = dnext_h * o
    dnext_c = dnext_c + dtanh_c * (1 - tanh_c**2)
    do = dnext_h * tanh_c
    df = dnext_c * prev_c
    dprev_c = dnext_c * f
    di = dnext_c * g
    dg = dnext_c * i
    dai = di * i * (1 - i)
    daf = df * f * (1 - f)
    dao = do * o * (1 - o)
    dag = dg * (g**2 - 1)
    da = np.concatenate([dai, daf, dao, dag], axis=1)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_staged_backward_db_not_summed(dnext_h: np.ndarray, dnext_c: np.ndarray, cache: Cache) -> Grads6:
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dtanh_c = dnext_h * o
    dnext_c = dnext_c + dtanh_c * (1 - tanh_c**2)
    do = dnext_h * tanh_c
    df = dnext_c * prev_c
    dprev_c = dnext_c * f
    di = dnext_c * g
    dg = dnext_c * i
    dai = di * i * (1 - i)
    daf = df * f * (1 - f)
    dao = do * o * (1 - o)
    dag = dg * (1 - g**2)
    da = np.concatenate([dai, daf, dao, dag], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da * 1.0
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_step_staged_backward_dWx_transposed(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: Cache
) -> Grads6:
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dtanh_c = dnext_h * o
    dnext_c = dnext_c + dtanh_c * (1 - tanh_c**2)
    do = dnext_h * tanh_c
    df = dnext_c * prev_c
    dprev_c = dnext_c * f
    di = dnext_c * g
    dg = dnext_c * i
    dai = di * i * (1 - i)
    daf = df * f * (1 - f)
    dao = do * o * (1 - o)
    dag = dg * (1 - g**2)
    da = np.concatenate([dai, daf, dao, dag], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = da.T @ x
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


# --- attention_staged (cache: q, kT, v, weights, D) ---------------------------------------------


def attention_staged_backward_softmax_sum_missing(dout: np.ndarray, cache: Cache) -> Grads3:
    q, kT, v, weights, D = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    dscores = weights * dweights  # the softmax's Jacobian treated as diagonal
    ds = dscores / np.sqrt(D)
    dq = ds @ kT.transpose(0, 2, 1)
    dkT = q.transpose(0, 2, 1) @ ds
    dk = dkT.transpose(0, 2, 1)
    return dq, dk, dv


def attention_staged_backward_softmax_sign(dout: np.ndarray, cache: Cache) -> Grads3:
    q, kT, v, weights, D = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    dscores = weights * ((weights * dweights).sum(axis=-1, keepdims=True) - dweights)
    ds = dscores / np.sqrt(D)
    dq = ds @ kT.transpose(0, 2, 1)
    dkT = q.transpose(0, 2, 1) @ ds
    dk = dkT.transpose(0, 2, 1)
    return dq, dk, dv


def attention_staged_backward_scale_missing(dout: np.ndarray, cache: Cache) -> Grads3:
    q, kT, v, weights, _D = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    dscores = weights * (dweights - (weights * dweights).sum(axis=-1, keepdims=True))
    ds = dscores * 1.0  # scores = s / sqrt(D): the 1 / sqrt(D) is forgotten
    dq = ds @ kT.transpose(0, 2, 1)
    dkT = q.transpose(0, 2, 1) @ ds
    dk = dkT.transpose(0, 2, 1)
    return dq, dk, dv


def attention_staged_backward_dk_not_transposed(dout: np.ndarray, cache: Cache) -> Grads3:
    q, kT, v, weights, D = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    dscores = weights * (dweights - (weights * dweights).sum(axis=-1, keepdims=True))
    ds = dscores / np.sqrt(D)
    dq = ds @ kT.transpose(0, 2, 1)
    dkT = q.transpose(0, 2, 1) @ ds
    dk = dkT * 1.0  # the gradient of kT, returned as the gradient of k
    return dq, dk, dv


# --- two_layer_net_staged: the loss and its gradients in one function -----------------------------


def _net_forward(
    X: np.ndarray, y: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray, reg: float
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The forward half every mistake below gets right: loss, h1, a1, log_probs."""
    h1 = X @ W1 + b1
    a1 = np.maximum(h1, 0.0)
    scores = a1 @ W2 + b2
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    data_loss = -log_probs[np.arange(X.shape[0]), y].mean()
    reg_loss = 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return data_loss + reg_loss, h1, a1, log_probs


def two_layer_net_loss_W1_reg_missing(
    X: np.ndarray,
    y: np.ndarray,
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    reg: float = 0.1,
) -> NetGrads:
    loss, h1, a1, log_probs = _net_forward(X, y, W1, b1, W2, b2, reg)
    N = X.shape[0]
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1.0
    dscores /= N
    dW2 = a1.T @ dscores + reg * W2
    db2 = dscores.sum(axis=0)
    da1 = dscores @ W2.T
    dh1 = da1 * (h1 > 0)
    dW1 = X.T @ dh1  # the loss has 0.5 * reg * |W1|^2, the gradient forgets it
    db1 = dh1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


def two_layer_net_loss_W2_reg_doubled(
    X: np.ndarray,
    y: np.ndarray,
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    reg: float = 0.1,
) -> NetGrads:
    loss, h1, a1, log_probs = _net_forward(X, y, W1, b1, W2, b2, reg)
    N = X.shape[0]
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1.0
    dscores /= N
    dW2 = a1.T @ dscores + 2 * reg * W2  # d(0.5 reg w^2)/dw taken as 2 reg w
    db2 = dscores.sum(axis=0)
    da1 = dscores @ W2.T
    dh1 = da1 * (h1 > 0)
    dW1 = X.T @ dh1 + reg * W1
    db1 = dh1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


def two_layer_net_loss_relu_mask_on_output(
    X: np.ndarray,
    y: np.ndarray,
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    reg: float = 0.1,
) -> NetGrads:
    loss, _h1, a1, log_probs = _net_forward(X, y, W1, b1, W2, b2, reg)
    N = X.shape[0]
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1.0
    dscores /= N
    dW2 = a1.T @ dscores + reg * W2
    db2 = dscores.sum(axis=0)
    da1 = dscores @ W2.T
    dh1 = da1 * (a1 >= 0)  # a1 = relu(h1) is never negative: this mask keeps everything
    dW1 = X.T @ dh1 + reg * W1
    db1 = dh1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


def two_layer_net_loss_scores_not_averaged(
    X: np.ndarray,
    y: np.ndarray,
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    reg: float = 0.1,
) -> NetGrads:
    loss, h1, a1, log_probs = _net_forward(X, y, W1, b1, W2, b2, reg)
    N = X.shape[0]
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1.0  # the data loss is a mean over N, dscores is never divided by N
    dW2 = a1.T @ dscores + reg * W2
    db2 = dscores.sum(axis=0)
    da1 = dscores @ W2.T
    dh1 = da1 * (h1 > 0)
    dW1 = X.T @ dh1 + reg * W1
    db1 = dh1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


def two_layer_net_loss_b2_not_summed(
    X: np.ndarray,
    y: np.ndarray,
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    reg: float = 0.1,
) -> NetGrads:
    loss, h1, a1, log_probs = _net_forward(X, y, W1, b1, W2, b2, reg)
    N = X.shape[0]
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1.0
    dscores /= N
    dW2 = a1.T @ dscores + reg * W2
    db2 = dscores * 1.0
    da1 = dscores @ W2.T
    dh1 = da1 * (h1 > 0)
    dW1 = X.T @ dh1 + reg * W1
    db1 = dh1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


def _planted(
    exercise: str, name: str, description: str, fn: Any, step: str, step_diagnosis: str, diagnosis: str = ""
) -> Mistake:
    function = {
        "lstm_step_staged": "lstm_step_staged_backward",
        "attention_staged": "attention_staged_backward",
        "two_layer_net_staged": "two_layer_net_loss",
    }[exercise]
    return Mistake(
        exercise, name, description, {function: fn}, diagnosis, step=step, step_diagnosis=step_diagnosis
    )


MISTAKES = [
    _planted(
        "lstm_step_staged",
        "tanh_path_missing",
        "dnext_c gathers the path through next_h without tanh's derivative",
        lstm_step_staged_backward_tanh_path_missing,
        "dnext_c",
        "",
    ),
    _planted(
        "lstm_step_staged",
        "prev_c_wrong_gate",
        "dprev_c multiplied by the input gate instead of the forget gate",
        lstm_step_staged_backward_prev_c_wrong_gate,
        "dprev_c",
        "",
    ),
    _planted(
        "lstm_step_staged",
        "tanh_derivative_sign",
        "tanh' written as t^2 - 1",
        lstm_step_staged_backward_tanh_derivative_sign,
        "dag",
        "sign_flipped",
    ),
    _planted(
        "lstm_step_staged",
        "db_not_summed",
        "db keeps the batch axis",
        lstm_step_staged_backward_db_not_summed,
        "db",
        "unreduced_broadcast",
        "unreduced_broadcast",
    ),
    _planted(
        "lstm_step_staged",
        "dWx_transposed",
        "dWx = da.T @ x",
        lstm_step_staged_backward_dWx_transposed,
        "dWx",
        "transposed",
        "transposed",
    ),
    _planted(
        "attention_staged",
        "softmax_sum_missing",
        "the softmax's Jacobian taken as diagonal",
        attention_staged_backward_softmax_sum_missing,
        "dscores",
        "",
    ),
    _planted(
        "attention_staged",
        "softmax_sign",
        "the softmax's Jacobian-vector product with its sign reversed",
        attention_staged_backward_softmax_sign,
        "dscores",
        "sign_flipped",
        "sign_flipped",
    ),
    _planted(
        "attention_staged",
        "scale_missing",
        "the 1/sqrt(D) of the scores forgotten",
        attention_staged_backward_scale_missing,
        "ds",
        "scaled",
        "scaled",
    ),
    _planted(
        "attention_staged",
        "dk_not_transposed",
        "the gradient of k^T returned as the gradient of k",
        attention_staged_backward_dk_not_transposed,
        "dk",
        "transposed",
        "transposed",
    ),
    _planted(
        "two_layer_net_staged",
        "W1_reg_missing",
        "dW1 leaves out reg * W1",
        two_layer_net_loss_W1_reg_missing,
        "dW1",
        "regularization",
        "regularization",
    ),
    _planted(
        "two_layer_net_staged",
        "W2_reg_doubled",
        "dW2 adds 2 * reg * W2",
        two_layer_net_loss_W2_reg_doubled,
        "dW2",
        "regularization",
        "regularization",
    ),
    _planted(
        "two_layer_net_staged",
        "relu_mask_on_output",
        "the relu mask taken from its output with >=, which keeps every entry",
        two_layer_net_loss_relu_mask_on_output,
        "dh1",
        "wrong_mask",
    ),
    _planted(
        "two_layer_net_staged",
        "scores_not_averaged",
        "dscores never divided by N",
        two_layer_net_loss_scores_not_averaged,
        "dscores",
        "scaled",
        "scaled",
    ),
    _planted(
        "two_layer_net_staged",
        "b2_not_summed",
        "db2 keeps the batch axis",
        two_layer_net_loss_b2_not_summed,
        "db2",
        "unreduced_broadcast",
        "unreduced_broadcast",
    ),
]
