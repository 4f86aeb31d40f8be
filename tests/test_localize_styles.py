"""Localisation in every registration style: a model whose loss holds forward and backward, a model
whose loss calls layer helpers (the trace follows into them), layer objects that keep values on
``self``, and a forward that rebinds a name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import checker as bc
from checker.localize import localization_rows
from reference_impls.mistakes import MISTAKES
from tests.test_localize import bank_target, localize_case, planted_line

HERE = Path(__file__).name


def test_a_model_whose_gradients_live_in_a_dict_is_localized_to_the_dict_entry():
    mistake = next(m for m in MISTAKES if m.exercise == "two_layer_net" and m.name == "missing_reg_gradient")
    target = bc.variant(bank_target("two_layer_net"), mistake.replaces)
    found = localize_case(target)
    cls = next(iter(mistake.replaces.values()))
    key_line = planted_line(cls.loss, '"W1"')
    assert (found.first_wrong.name, found.first_wrong.line) == ("grads['W1']", key_line)
    assert found.first_wrong.source == '"W1": X.T @ dpre'
    rows = {r.target: r for r in localization_rows(found)}
    assert set(rows) == {"W1", "W2"}
    assert rows["W1"].diagnosis == rows["W2"].diagnosis == "regularization"
    assert "by exactly -0.1 × W2" in rows["W2"].message


# --- a model whose loss calls layer helpers ---------------------------------------------------


def affine_relu_forward(x, w, b):
    a = x @ w + b
    out = np.maximum(a, 0.0)
    return out, (x, w, a)


def affine_relu_backward(dout, cache):
    x, w, a = cache
    da = dout * (a < 0)  # the helper's slip: the opposite mask
    dx = da @ w.T
    dw = x.T @ da
    db = da.sum(axis=0)
    return dx, dw, db


def affine_forward(x, w, b):
    out = x @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def softmax_loss(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = scores.shape[0]
    loss = -np.log(probs[np.arange(n), y]).mean()
    dscores = probs.copy()
    dscores[np.arange(n), y] -= 1.0
    return loss, dscores / n  # dscores is n times the gradient until here: a partial value


class HelperNet:
    """affine - relu - affine - softmax, written with layer helpers as cs231n's FullyConnectedNet is."""

    def __init__(self, D: int, H: int, C: int) -> None:
        rng = np.random.default_rng(0)
        self.params = {
            "W1": rng.normal(size=(D, H)),
            "b1": np.zeros(H),
            "W2": rng.normal(size=(H, C)),
            "b2": np.zeros(C),
        }

    def loss(self, X, y):
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        hidden, cache1 = affine_relu_forward(X, W1, b1)
        scores, cache2 = affine_forward(hidden, W2, b2)
        loss, dscores = softmax_loss(scores, y)
        dhidden, dW2, db2 = affine_backward(dscores, cache2)
        _, dW1, db1 = affine_relu_backward(dhidden, cache1)
        return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def test_a_model_built_from_layer_helpers_is_localized_inside_the_helper():
    target = bc.register(
        "helper_net",
        model=lambda d: HelperNet(d["D"], d["H"], d["C"]),
        loss=lambda m, X, y: m.loss(X, y),
        data={"X": "N,D", "y": bc.labels("N", classes="C")},
        dims={"N": range(3, 6), "H": range(3, 7)},
    )
    for seed in range(3):
        found = localize_case(target, seed)
        wrong = found.first_wrong
        assert (wrong.name, wrong.line, Path(wrong.file).name) == (
            "da",
            planted_line(affine_relu_backward, "da"),
            HERE,
        ), found.reason
        # softmax_loss's dscores is n times its gradient before `return loss, dscores / n`: not blamed.
        assert any(s.name == "dscores" and not s.right and not s.confirmed for s in found.steps)
        assert {r.target for r in localization_rows(found)} == {"W1", "b1"}


# --- layer objects that keep their values on self ---------------------------------------------


class Tanh:
    def forward(self, x):
        self.h = np.tanh(x)
        return self.h

    def backward(self, dout):
        self.dh = dout * (1 - self.h)  # the slip: tanh' = 1 - h**2
        return self.dh


class Linear:
    def __init__(self, W):
        self.W = W

    def forward(self, x):
        self.x = x
        return x @ self.W

    def backward(self, dout):
        self.grad_W = self.x.T @ dout
        return dout @ self.W.T


def tanh_linear_forward(x, W):
    tanh, linear = Tanh(), Linear(W)
    out = linear.forward(tanh.forward(x))
    return out, (tanh, linear)


def tanh_linear_backward(dout, cache):
    tanh, linear = cache
    dx = tanh.backward(linear.backward(dout))
    return dx, linear.grad_W


def test_values_kept_on_self_are_matched_by_attribute_name():
    target = bc.register(
        "tanh_linear",
        forward=tanh_linear_forward,
        backward=tanh_linear_backward,
        inputs={"x": "N,D", "W": "D,M"},
    )
    found = localize_case(target)
    assert (found.first_wrong.name, found.first_wrong.line) == (
        "self.dh",
        planted_line(Tanh.backward, "self.dh"),
    )
    assert any(s.name == "self.grad_W" and s.right for s in found.steps)
    assert [r.target for r in localization_rows(found)] == ["x"]


# --- a forward that rebinds a name ------------------------------------------------------------


def rebinding_forward(x, w, v):
    h = x @ w
    h = np.maximum(h, 0.0)  # the rest of the forward uses this h
    out = h @ v
    return out, (x, w, v, h)


def rebinding_backward(dout, cache):
    x, w, v, h = cache
    dh = dout @ v.T  # the gradient of the second h...
    dh = dh * (h > 0)  # ...made the gradient of the first: both are right for their binding
    dw = x.T @ dh
    dv = h.T @ dout
    dx = dh @ w.T
    return dx, dw, dv


def rebinding_backward_slip(dout, cache):
    x, w, v, h = cache
    dh = dout @ v.T
    dh = dh * (h > 0)
    dw = x.T @ dh
    dv = dout.T @ h  # the slip: the operands of h.T @ dout swapped
    dx = dh @ w.T
    return dx, dw, dv


def test_a_rebound_forward_name_accepts_the_gradient_of_either_binding():
    inputs = {"x": "N,D", "w": "D,H", "v": "H,M"}
    target = bc.register("rebinding", forward=rebinding_forward, backward=rebinding_backward, inputs=inputs)
    for seed in range(10):
        found = localize_case(target, seed, failing=target.differentiable)
        assert found.limit == "all_steps_right" and any(s.name == "dh" for s in found.steps)
    slip = bc.register(
        "rebinding_slip", forward=rebinding_forward, backward=rebinding_backward_slip, inputs=inputs
    )
    found = localize_case(slip)
    assert found.first_wrong.name == "dv" and found.first_wrong.diagnosis == "transposed"


def test_an_argument_reused_for_another_gradient_is_not_blamed():
    def relu_forward(x):
        out = np.maximum(x, 0.0)
        return out, x

    def relu_backward(dout, x):
        dout = dout.copy()
        dout[x <= 0] = 0.0  # dout now holds the gradient of x, not of out
        return dout

    def relu_backward_slip(dout, x):
        dout = dout.copy()
        dout[x < 0] = 1.0  # the slip: 1 instead of 0
        return dout

    target = bc.register(
        "relu_reusing_dout", forward=relu_forward, backward=relu_backward, inputs={"x": "N,D"}
    )
    for seed in range(5):
        assert localize_case(target, seed, failing=["x"]).limit == "all_steps_right"
    slip = bc.variant(target, {"backward": relu_backward_slip})
    found = localize_case(slip)
    assert (found.first_wrong.name, found.first_wrong.line) == (
        "dout",
        planted_line(relu_backward_slip, "dout"),
    )


def embedding_loss(x, W):
    """A loss whose gradient code needs np.add.at, which torch._numpy lacks: its forward still traces."""
    emb = W[x]
    loss = 0.5 * np.sum(emb**2)
    demb = emb * 1.0
    dW = np.zeros_like(W)
    np.add.at(dW, x, demb * 2.0)  # the slip: the 0.5 of the loss cancels the 2 of the square
    return loss, dW


def test_a_loss_whose_gradient_code_cannot_run_under_torch_numpy_is_still_localized():
    target = bc.register(
        "embedding_loss",
        value_and_grad=embedding_loss,
        inputs={"x": bc.labels("N", classes="V"), "W": "V,D"},
        constraint=lambda d: d["N"] > d["V"],
    )
    found = localize_case(target)
    assert found.first_wrong is not None, found.reason
    assert (found.first_wrong.name, found.first_wrong.diagnosis) == ("dW", "scaled")
    assert found.first_wrong.source == "np.add.at(dW, x, demb * 2.0)"  # the statement that last changed dW
