"""Layers written as objects, the way numpy-from-scratch frameworks write them, registered with no adapter.

Each class keeps its parameters and gradients on itself, in one of the styles frameworks use:

- :class:`LazyDense` creates its parameters on its first forward (it only then knows the input's
  width) and leaves its gradients in attributes (``dW``, ``db``);
- :class:`AccumulatingDense` keeps parameters and gradients in dicts and adds into the gradients
  (``+=``), which its framework zeroes after each optimizer step;
- :class:`SelfUpdatingDense` applies its optimizer inside ``backward_pass`` and returns only the
  input's gradient;
- :class:`Dense` returns nothing from ``backward`` and leaves every gradient on itself
  (``dweights``, ``dbiases``, ``dinputs``);
- :class:`Dropout` draws its mask inside its forward, from numpy's global generator;
- :class:`RNNCell` is called once per time step and carries its hidden state, and the gradient
  through it, on itself.

The harness sets the parameters, zeroes and finds the gradients, lends a recording optimizer and
unrolls the cell (:mod:`checker.execution.objects`, :mod:`checker.execution.recurrent`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

import checker as bc

__all__ = ["AccumulatingDense", "Dense", "Dropout", "LazyDense", "RNNCell", "SelfUpdatingDense"]


class LazyDense:
    """``out = X @ W + b`` with ``W: (D, units)``, ``b: (units,)`` made on the first forward."""

    def __init__(self, units: int, seed: int = 0) -> None:
        self.units = units
        self.rng = np.random.default_rng(seed)
        self.built = False

    def build(self, width: int) -> None:
        self.W = self.rng.standard_normal((width, self.units)) * np.sqrt(2.0 / width)
        self.b = np.zeros(self.units)
        self.built = True

    def forward(self, X: np.ndarray) -> np.ndarray:
        if not self.built:
            self.build(X.shape[1])
        self.X = X
        return X @ self.W + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.dW = self.X.T @ dout
        self.db = dout.sum(axis=0)  # b was broadcast over the N rows
        return dout @ self.W.T


class AccumulatingDense:
    """``out = X @ W + b`` with ``b: (1, units)``; gradients add up in ``self.gradients`` until zeroed."""

    def __init__(self, units: int) -> None:
        self.units = units
        self.parameters: dict[str, Any] = {"W": None, "b": None}
        self.gradients: dict[str, Any] = {}
        self.is_initialized = False

    def _init_params(self, width: int) -> None:
        self.parameters = {"W": np.random.randn(width, self.units) * 0.1, "b": np.zeros((1, self.units))}
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}
        self.is_initialized = True

    def forward(self, X: np.ndarray) -> np.ndarray:
        if not self.is_initialized:
            self._init_params(X.shape[1])
        self.X = X
        return X @ self.parameters["W"] + self.parameters["b"]

    def backward(self, dLdy: np.ndarray) -> np.ndarray:
        self.gradients["W"] += self.X.T @ dLdy
        self.gradients["b"] += dLdy.sum(axis=0, keepdims=True)
        return dLdy @ self.parameters["W"].T

    def zero_gradients(self) -> None:
        self.gradients = {k: np.zeros_like(v) for k, v in self.gradients.items()}


class SGD:
    """The framework's optimizer: ``update(w, grad) -> w - lr * grad``."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr

    def update(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return w - self.lr * grad


class SelfUpdatingDense:
    """``out = X @ W + w0``; ``backward_pass`` updates ``W`` and ``w0`` with its own optimizers."""

    def __init__(self, n_in: int, n_units: int, optimizer: Any = None) -> None:
        limit = 1 / np.sqrt(n_in)
        self.W = np.random.uniform(-limit, limit, (n_in, n_units))
        self.w0 = np.zeros((1, n_units))
        optimizer = optimizer if optimizer is not None else SGD()
        self.W_opt, self.w0_opt = copy.copy(optimizer), copy.copy(optimizer)

    def forward_pass(self, X: np.ndarray, training: bool = True) -> np.ndarray:
        self.layer_input = X
        return X @ self.W + self.w0

    def backward_pass(self, accum_grad: np.ndarray) -> np.ndarray:
        W = self.W  # the input's gradient uses the weights of the forward, not the updated ones
        grad_w = self.layer_input.T @ accum_grad
        grad_w0 = np.sum(accum_grad, axis=0, keepdims=True)
        self.W = self.W_opt.update(self.W, grad_w)
        self.w0 = self.w0_opt.update(self.w0, grad_w0)
        return accum_grad @ W.T


class Dense:
    """``output = inputs @ weights + biases``; ``backward`` returns nothing and leaves its gradients."""

    def __init__(self, n_inputs: int, n_neurons: int) -> None:
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases
        return self.output

    def backward(self, dvalues: np.ndarray) -> None:
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.weights.T


class Dropout:
    """Inverted dropout in training mode: a fresh mask from ``np.random`` at every forward."""

    def __init__(self, rate: float) -> None:
        self.keep = 1.0 - rate

    def forward(self, X: np.ndarray, training: bool = True) -> np.ndarray:
        if not training:
            return X
        self.mask = (np.random.rand(*X.shape) < self.keep) / self.keep
        return X * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


class RNNCell:
    """A tanh RNN cell called once per step: ``h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b)``.

    It keeps every step's values and, going backward one step per call, the gradient reaching the
    previous hidden state (``self.dh_prev``); parameter gradients add up over the steps in ``grads``.
    """

    def __init__(self, n_in: int, hidden: int) -> None:
        self.hidden = hidden
        self.Wx = np.random.randn(n_in, hidden) * 0.1
        self.Wh = np.random.randn(hidden, hidden) * 0.1
        self.b = np.zeros(hidden)
        self.h: np.ndarray | None = None
        self.steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        h_prev = np.zeros((x.shape[0], self.hidden)) if self.h is None else self.h
        self.h = np.tanh(x @ self.Wx + h_prev @ self.Wh + self.b)
        self.steps.append((x, h_prev, self.h))
        self.going_back = False
        return self.h

    def backward(self, dh: np.ndarray) -> np.ndarray:
        if not self.going_back:  # the first call after the forward is for the last step
            self.dh_prev = np.zeros_like(dh)
            self.grads = {k: np.zeros_like(getattr(self, k)) for k in ("Wx", "Wh", "b")}
            self.going_back = True
        x, h_prev, h = self.steps.pop()
        da = (dh + self.dh_prev) * (
            1.0 - h**2
        )  # the step's own output, and the path through h to later steps
        self.grads["Wx"] += x.T @ da
        self.grads["Wh"] += h_prev.T @ da
        self.grads["b"] += da.sum(axis=0)
        self.dh_prev = da @ self.Wh.T
        return da @ self.Wx.T


bc.register(
    "dense_lazy", layer=lambda d: LazyDense(d["M"]), inputs={"X": "N,D"}, params={"W": "D,M", "b": "M"}
)
bc.register(
    "dense_accumulating",
    layer=lambda d: AccumulatingDense(d["M"]),
    inputs={"X": "N,D"},
    params={"W": "D,M", "b": "1,M"},
)
bc.register(
    "dense_self_updating",
    layer=lambda d, optimizer: SelfUpdatingDense(d["D"], d["M"], optimizer),
    forward="forward_pass",
    backward="backward_pass",
    inputs={"X": "N,D"},
    params={"W": "D,M", "w0": "1,M"},
)
bc.register(
    "dense_returning_none",
    layer=lambda d: Dense(d["D"], d["M"]),
    inputs={"inputs": "N,D"},
    params={"weights": "D,M", "biases": "1,M"},
)
bc.register("dropout_object", layer=lambda d: Dropout(0.3), inputs={"X": "N,D"}, hyper={"training": True})
bc.register(
    "rnn_cell_over_time",
    layer=lambda d: RNNCell(d["D"], d["H"]),
    inputs={"x": "N,D"},
    params={"Wx": "D,H", "Wh": "H,H", "b": "H"},
    dims={"T": range(1, 5)},
    unroll=bc.over_time("T", sequence="x"),
)
