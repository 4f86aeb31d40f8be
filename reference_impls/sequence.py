"""Sequence layers as forward/backward pairs, in the cs231n style.

``*_forward`` returns its output(s) and a ``cache``; ``*_backward`` takes the upstream gradient(s)
and that cache and returns one gradient per differentiable input, in input order. Integer inputs
(word indices) are data and get no gradient.
"""

from __future__ import annotations

import numpy as np

import checker as bc
from reference_impls import torch_refs_sequence
from reference_impls.bank import Exercise

__all__ = [
    "EXERCISES",
    "attention_backward",
    "attention_forward",
    "embedding_backward",
    "embedding_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "rnn_step_backward",
    "rnn_step_forward",
]


def embedding_forward(x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Look up word vectors: ``out[n, t] = W[x[n, t]]``.

    Inputs:
    - x: (N, T) integer word indices, ``0 <= x[n, t] < V``.
    - W: (V, D) word vectors, one row per word.

    Returns a tuple of:
    - out: (N, T, D) the vector of every word.
    - cache: values needed for the backward pass.
    """
    out = W[x]
    cache = (x, W.shape)
    return out, cache


def embedding_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward pass for the word embedding.

    Inputs:
    - dout: (N, T, D) upstream gradient.
    - cache: from embedding_forward.

    Returns:
    - dW: (V, D) gradient with respect to W. (x is an index, so it has no gradient.)

    A word may occur more than once in x.
    """
    x, w_shape = cache
    dW = np.zeros(w_shape, dtype=dout.dtype)
    # Fancy-index assignment (dW[x] += dout) keeps only one write per repeated index; add.at sums them all.
    np.add.at(dW, x, dout)
    return dW


def rnn_step_forward(
    x: np.ndarray, prev_h: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, tuple]:
    """One timestep of a vanilla (tanh) RNN: ``next_h = tanh(x @ Wx + prev_h @ Wh + b)``.

    Inputs:
    - x: (N, D) input at this timestep.
    - prev_h: (N, H) hidden state from the previous timestep.
    - Wx: (D, H) input-to-hidden weights.
    - Wh: (H, H) hidden-to-hidden weights.
    - b: (H,) bias.

    Returns a tuple of:
    - next_h: (N, H) the new hidden state.
    - cache: values needed for the backward pass.
    """
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(
    dnext_h: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass for one timestep of a vanilla RNN.

    Inputs:
    - dnext_h: (N, H) gradient of the loss with respect to next_h.
    - cache: from rnn_step_forward.

    Returns a tuple of:
    - dx: (N, D), dprev_h: (N, H), dWx: (D, H), dWh: (H, H), db: (H,).
    """
    x, prev_h, Wx, Wh, next_h = cache
    # tanh'(a) = 1 - tanh(a)^2, and next_h already is tanh(a).
    da = dnext_h * (1.0 - next_h**2)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = np.sum(da, axis=0)
    return dx, dprev_h, dWx, dWh, db


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic sigmoid that never overflows: exp is only taken of -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def lstm_step_forward(
    x: np.ndarray, prev_h: np.ndarray, prev_c: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One timestep of an LSTM.

    The activations ``a = x @ Wx + prev_h @ Wh + b`` (N, 4H) split into four blocks of H columns,
    in this order: input gate ``i = sigmoid(a[:, :H])``, forget gate ``f = sigmoid(a[:, H:2H])``,
    output gate ``o = sigmoid(a[:, 2H:3H])`` and candidate ``g = tanh(a[:, 3H:])``. Then
    ``next_c = f * prev_c + i * g`` and ``next_h = o * tanh(next_c)``.

    Inputs:
    - x: (N, D) input at this timestep.
    - prev_h: (N, H) previous hidden state.
    - prev_c: (N, H) previous cell state.
    - Wx: (D, 4H) input-to-hidden weights.
    - Wh: (H, 4H) hidden-to-hidden weights.
    - b: (4H,) bias.

    Returns a tuple of:
    - next_h: (N, H) new hidden state.
    - next_c: (N, H) new cell state.
    - cache: values needed for the backward pass.
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = _sigmoid(a[:, :H])
    f = _sigmoid(a[:, H : 2 * H])
    o = _sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)
    return next_h, next_c, cache


def lstm_step_backward(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass for one timestep of an LSTM.

    Inputs:
    - dnext_h: (N, H) gradient of the loss with respect to next_h.
    - dnext_c: (N, H) gradient of the loss with respect to next_c (from later timesteps).
    - cache: from lstm_step_forward.

    Returns a tuple of:
    - dx: (N, D), dprev_h: (N, H), dprev_c: (N, H), dWx: (D, 4H), dWh: (H, 4H), db: (4H,).
    """
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    # next_c reaches the loss twice: directly, and through next_h = o * tanh(next_c).
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)
    di = dc * g
    df = dc * prev_c
    do = dnext_h * tanh_c
    dg = dc * i
    dprev_c = dc * f
    da = np.concatenate(
        [di * i * (1.0 - i), df * f * (1.0 - f), do * o * (1.0 - o), dg * (1.0 - g**2)],
        axis=1,
    )
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = np.sum(da, axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Scaled dot-product attention: ``out = softmax(q @ k^T / sqrt(D)) @ v``, softmax over keys.

    Inputs:
    - q: (N, Tq, D) queries.
    - k: (N, Tk, D) keys.
    - v: (N, Tk, Dv) values.

    Returns a tuple of:
    - out: (N, Tq, Dv) for every query, the attention-weighted average of the values.
    - cache: values needed for the backward pass.

    Stay numerically stable: large scores must not overflow ``np.exp``.
    """
    scale = 1.0 / np.sqrt(q.shape[-1])
    scores = (q @ k.transpose(0, 2, 1)) * scale
    scores = scores - np.max(scores, axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / np.sum(weights, axis=-1, keepdims=True)
    out = weights @ v
    cache = (q, k, v, weights, scale)
    return out, cache


def attention_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass for scaled dot-product attention.

    Inputs:
    - dout: (N, Tq, Dv) upstream gradient.
    - cache: from attention_forward.

    Returns a tuple of:
    - dq: (N, Tq, D), dk: (N, Tk, D), dv: (N, Tk, Dv).
    """
    q, k, v, weights, scale = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    # Softmax Jacobian-vector product, row by row: s * (g - <s, g>).
    dscores = weights * (dweights - np.sum(weights * dweights, axis=-1, keepdims=True))
    dscores *= scale
    dq = dscores @ k
    dk = dscores.transpose(0, 2, 1) @ q
    return dq, dk, dv


EXERCISES = [
    Exercise(
        name="embedding",
        title="Word embedding",
        teaches="Backprop through a table lookup, where one row can be used many times.",
        points=10,
        statement=(
            "Implement embedding_forward(x, W) -> (out, cache) with x (N, T) integer indices in [0, V) "
            "and W (V, D), out (N, T, D) = W[x]; and embedding_backward(dout, cache) -> dW (V, D)."
        ),
        functions=("embedding_forward", "embedding_backward"),
        module="reference_impls.sequence",
        style="layer",
    ),
    Exercise(
        name="rnn_step",
        title="Vanilla RNN step",
        teaches="Backprop through tanh and two matrix products that share one pre-activation.",
        points=10,
        statement=(
            "Implement rnn_step_forward(x, prev_h, Wx, Wh, b) -> (next_h, cache) with x (N, D), "
            "prev_h (N, H), Wx (D, H), Wh (H, H), b (H,), next_h = tanh(x Wx + prev_h Wh + b) (N, H); "
            "and rnn_step_backward(dnext_h, cache) -> (dx, dprev_h, dWx, dWh, db)."
        ),
        functions=("rnn_step_forward", "rnn_step_backward"),
        module="reference_impls.sequence",
        style="layer",
    ),
    Exercise(
        name="lstm_step",
        title="LSTM step",
        teaches="Backprop through gates, and a cell state that reaches the loss along two paths.",
        points=20,
        statement=(
            "Implement lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> (next_h, next_c, cache) with "
            "x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,), gates in the order "
            "i, f, o, g; and lstm_step_backward(dnext_h, dnext_c, cache) -> "
            "(dx, dprev_h, dprev_c, dWx, dWh, db)."
        ),
        functions=("lstm_step_forward", "lstm_step_backward"),
        module="reference_impls.sequence",
        style="layer",
    ),
    Exercise(
        name="attention",
        title="Scaled dot-product attention",
        teaches="Backprop through a batched softmax and the matrix products around it.",
        points=20,
        statement=(
            "Implement attention_forward(q, k, v) -> (out, cache) with q (N, Tq, D), k (N, Tk, D), "
            "v (N, Tk, Dv), out = softmax(q k^T / sqrt(D)) v (N, Tq, Dv), softmax over the keys; and "
            "attention_backward(dout, cache) -> (dq, dk, dv)."
        ),
        functions=("attention_forward", "attention_backward"),
        module="reference_impls.sequence",
        style="layer",
    ),
]


bc.register(
    "embedding",
    forward=embedding_forward,
    backward=embedding_backward,
    inputs={"x": bc.labels("N,T", classes="V"), "W": "V,D"},
    # More lookups than words, so some word is always looked up twice.
    constraint=lambda d: d["N"] * d["T"] > d["V"],
    torch_forward=torch_refs_sequence.embedding,
)
bc.register(
    "rnn_step",
    forward=rnn_step_forward,
    backward=rnn_step_backward,
    inputs={"x": "N,D", "prev_h": "N,H", "Wx": "D,H", "Wh": "H,H", "b": "H"},
    torch_forward=torch_refs_sequence.rnn_step,
)
bc.register(
    "lstm_step",
    forward=lstm_step_forward,
    backward=lstm_step_backward,
    inputs={"x": "N,D", "prev_h": "N,H", "prev_c": "N,H", "Wx": "D,4H", "Wh": "H,4H", "b": "4H"},
    outputs=2,
    torch_forward=torch_refs_sequence.lstm_step,
)
bc.register(
    "attention",
    forward=attention_forward,
    backward=attention_backward,
    inputs={"q": "N,Tq,D", "k": "N,Tk,D", "v": "N,Tk,Dv"},
    torch_forward=torch_refs_sequence.attention,
)
