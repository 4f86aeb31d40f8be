"""Planted mistakes for ``reference_impls.sequence``, written the way people really get them wrong.

Each buggy backward reads the cache of the reference forward and repeats the reference with one
slip. ``diagnosis`` is the code the harness should give, or "" when only detection is expected.
"""

from __future__ import annotations

import numpy as np

from reference_impls.bank import Mistake

__all__ = ["MISTAKES"]


def embedding_backward_drops_repeats(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``dW[x] += dout`` is buffered: for a word used twice only one occurrence's gradient lands."""
    x, w_shape = cache
    dW = np.zeros(w_shape, dtype=dout.dtype)
    dW[x] += dout
    return dW


def embedding_backward_transposed(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Through a one-hot matrix, with the product taken in the wrong order: (D, V) instead of (V, D)."""
    x, (V, D) = cache
    one_hot = np.eye(V, dtype=dout.dtype)[x.reshape(-1)]  # (N*T, V)
    return dout.reshape(-1, D).T @ one_hot


def rnn_step_backward_dWh_uses_next_h(
    dnext_h: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """dWh is built from next_h (the output) instead of prev_h (what Wh multiplies)."""
    x, _prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h**2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, next_h.T @ da, np.sum(da, axis=0)


def rnn_step_backward_missing_tanh_derivative(
    dnext_h: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The upstream gradient goes straight through tanh, as if tanh were the identity."""
    x, prev_h, Wx, Wh, _next_h = cache
    da = dnext_h
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, np.sum(da, axis=0)


def _lstm_weight_gradients(
    di: np.ndarray, df: np.ndarray, do: np.ndarray, dg: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The part every LSTM mistake below gets right: gate gradients -> dx, dprev_h, dWx, dWh, db."""
    x, prev_h, _, Wx, Wh, i, f, o, g, _ = cache
    da = np.concatenate(
        [di * i * (1.0 - i), df * f * (1.0 - f), do * o * (1.0 - o), dg * (1.0 - g**2)], axis=1
    )
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, np.sum(da, axis=0)


def lstm_step_backward_forget_gate_uses_next_c(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: tuple
) -> tuple[np.ndarray, ...]:
    """df = dc * next_c: the forget gate multiplies prev_c, not the new cell state."""
    _, _, prev_c, _, _, i, f, o, g, tanh_c = cache
    next_c = f * prev_c + i * g
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)
    dx, dprev_h, dWx, dWh, db = _lstm_weight_gradients(dc * g, dc * next_c, dnext_h * tanh_c, dc * i, cache)
    return dx, dprev_h, dc * f, dWx, dWh, db


def lstm_step_backward_dprev_c_missing_forget_gate(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: tuple
) -> tuple[np.ndarray, ...]:
    """dprev_c = dc: the cell state is passed back as if next_c = prev_c + i * g."""
    _, _, prev_c, _, _, i, _, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)
    dx, dprev_h, dWx, dWh, db = _lstm_weight_gradients(dc * g, dc * prev_c, dnext_h * tanh_c, dc * i, cache)
    return dx, dprev_h, dc, dWx, dWh, db


def lstm_step_backward_ignores_path_through_h(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: tuple
) -> tuple[np.ndarray, ...]:
    """dc = dnext_c only: the path next_c -> tanh -> next_h is forgotten."""
    _, _, prev_c, _, _, i, f, _, g, tanh_c = cache
    dc = dnext_c
    dx, dprev_h, dWx, dWh, db = _lstm_weight_gradients(dc * g, dc * prev_c, dnext_h * tanh_c, dc * i, cache)
    return dx, dprev_h, dc * f, dWx, dWh, db


def attention_backward_softmax_missing_term(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax backward as if it were element-wise: dscores = s * g, without the - s * sum(s * g)."""
    q, k, v, weights, scale = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    dscores = weights * dweights * scale
    return dscores @ k, dscores.transpose(0, 2, 1) @ q, dv


def attention_backward_missing_scale(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 1/sqrt(D) of the forward is left out of dq and dk (dv is right)."""
    q, k, v, weights, _scale = cache
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    dscores = weights * (dweights - np.sum(weights * dweights, axis=-1, keepdims=True))
    return dscores @ k, dscores.transpose(0, 2, 1) @ q, dv


MISTAKES = [
    Mistake(
        exercise="embedding",
        name="drops_repeated_indices",
        description=(
            "dW[x] += dout instead of np.add.at(dW, x, dout): numpy's buffered fancy indexing keeps one "
            "write per index, so rows of words used more than once get one occurrence's gradient; "
            "rows of words used once are right."
        ),
        replaces={"embedding_backward": embedding_backward_drops_repeats},
        diagnosis="partial",
    ),
    Mistake(
        exercise="embedding",
        name="transposed",
        description="dW = dout_flat.T @ one_hot: the one-hot product in the wrong order gives dW.T (D, V).",
        replaces={"embedding_backward": embedding_backward_transposed},
        diagnosis="transposed",
    ),
    Mistake(
        exercise="rnn_step",
        name="dWh_uses_next_h",
        description="dWh = next_h.T @ da instead of prev_h.T @ da: only dWh is wrong.",
        replaces={"rnn_step_backward": rnn_step_backward_dWh_uses_next_h},
        diagnosis="",
    ),
    Mistake(
        exercise="rnn_step",
        name="missing_tanh_derivative",
        description="da = dnext_h, without the (1 - next_h**2) factor: every gradient is wrong.",
        replaces={"rnn_step_backward": rnn_step_backward_missing_tanh_derivative},
        diagnosis="",
    ),
    Mistake(
        exercise="lstm_step",
        name="forget_gate_uses_next_c",
        description=(
            "df = dc * next_c instead of dc * prev_c: dx, dprev_h and the weight gradients are wrong "
            "in the forget-gate block; dprev_c is right."
        ),
        replaces={"lstm_step_backward": lstm_step_backward_forget_gate_uses_next_c},
        diagnosis="",
    ),
    Mistake(
        exercise="lstm_step",
        name="dprev_c_missing_forget_gate",
        description="dprev_c = dc instead of dc * f: only dprev_c is wrong, by an element-wise factor 1/f.",
        replaces={"lstm_step_backward": lstm_step_backward_dprev_c_missing_forget_gate},
        diagnosis="",
    ),
    Mistake(
        exercise="lstm_step",
        name="ignores_cell_path_through_h",
        description=(
            "dc = dnext_c, forgetting that next_c also reaches the loss through next_h = o * tanh(next_c)."
        ),
        replaces={"lstm_step_backward": lstm_step_backward_ignores_path_through_h},
        diagnosis="",
    ),
    Mistake(
        exercise="attention",
        name="softmax_backward_missing_term",
        description=(
            "dscores = s * g, treating softmax as element-wise: the - s * sum(s * g) term is missing, "
            "so dq and dk are wrong; dv is right."
        ),
        replaces={"attention_backward": attention_backward_softmax_missing_term},
        diagnosis="",
    ),
    Mistake(
        exercise="attention",
        name="missing_scale_in_backward",
        description=(
            "The forward divides the scores by sqrt(D), the backward does not: dq and dk are sqrt(D) "
            "times too large, dv is right. Right when D == 1."
        ),
        replaces={"attention_backward": attention_backward_missing_scale},
        diagnosis="scaled",
    ),
]
