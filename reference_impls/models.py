"""A small model with hand-written backprop, in the cs231n style: ``model.loss(X, y) -> (loss, grads)``.

The model keeps its learnable parameters in ``self.params`` (name -> array) and returns one
gradient per parameter, keyed the same way. It is self-contained: its layers are written inline.
"""

from __future__ import annotations

import numpy as np

import checker as bc
from reference_impls import torch_refs_models
from reference_impls.bank import Exercise

__all__ = ["EXERCISES", "TwoLayerNet"]


class TwoLayerNet:
    """A two-layer fully connected network: affine - relu - affine - softmax.

    With input dimension D, hidden dimension H and C classes, ``self.params`` holds
    - "W1": (D, H) first-layer weights, "b1": (H,) first-layer biases,
    - "W2": (H, C) second-layer weights, "b2": (C,) second-layer biases.
    Weights start as ``weight_scale`` times a standard normal draw, biases at zero.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        num_classes: int,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        seed: int = 0,
    ) -> None:
        """Inputs: input_dim D, hidden_dim H, num_classes C, weight_scale (std of the initial
        weights), reg (L2 regularisation strength), seed (for the initial weights)."""
        rng = np.random.default_rng(seed)
        self.reg = reg
        self.params = {
            "W1": weight_scale * rng.standard_normal((input_dim, hidden_dim)),
            "b1": np.zeros(hidden_dim),
            "W2": weight_scale * rng.standard_normal((hidden_dim, num_classes)),
            "b2": np.zeros(num_classes),
        }

    def loss(
        self, X: np.ndarray, y: np.ndarray | None = None
    ) -> np.ndarray | tuple[float, dict[str, np.ndarray]]:
        """Compute the scores, or the loss and its gradients.

        Inputs:
        - X: (N, D) a minibatch of inputs.
        - y: (N,) integer labels in [0, C), or None.

        Returns:
        - when y is None, scores: (N, C), ``relu(X @ W1 + b1) @ W2 + b2``.
        - otherwise a tuple (loss, grads): loss is the mean softmax cross-entropy of the scores plus
          ``0.5 * reg * (sum(W1**2) + sum(W2**2))`` (the biases are not regularised), and grads maps
          each key of self.params to the gradient of the loss with respect to it, of the same shape.
        """
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        pre = X @ W1 + b1
        hidden = np.maximum(pre, 0.0)
        scores = hidden @ W2 + b2
        if y is None:
            return scores

        n = X.shape[0]
        rows = np.arange(n)
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        data_loss = -np.sum(log_probs[rows, y]) / n
        reg_loss = 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

        dscores = np.exp(log_probs)
        dscores[rows, y] -= 1.0
        dscores /= n
        dhidden = dscores @ W2.T
        dpre = dhidden * (pre > 0)
        grads = {
            "W1": X.T @ dpre + self.reg * W1,
            "b1": np.sum(dpre, axis=0),
            "W2": hidden.T @ dscores + self.reg * W2,
            "b2": np.sum(dscores, axis=0),
        }
        return data_loss + reg_loss, grads


EXERCISES = [
    Exercise(
        name="two_layer_net",
        title="Two-layer network",
        teaches="Backprop through a whole model: chaining layers, batch reductions and L2 regularisation.",
        points=20,
        statement=(
            "Implement TwoLayerNet.loss(X, y) -> (loss, grads): X (N, D), y (N,) labels in [0, C); "
            "affine (W1 (D, H), b1 (H,)) - relu - affine (W2 (H, C), b2 (C,)) - softmax, mean "
            "cross-entropy plus 0.5 * reg * (sum(W1**2) + sum(W2**2)); grads keyed like self.params."
        ),
        functions=("TwoLayerNet",),
        module="reference_impls.models",
        style="model",
        init=lambda d: {"input_dim": d["D"], "hidden_dim": d["H"], "num_classes": d["C"], "reg": 0.1},
    ),
]


bc.register(
    "two_layer_net",
    model=lambda d: TwoLayerNet(d["D"], d["H"], d["C"], reg=0.1),
    loss=lambda m, X, y: m.loss(X, y),
    data={"X": "N,D", "y": bc.labels("N", classes="C")},
    dims={"H": range(3, 9)},
    torch_forward=torch_refs_models.two_layer_net,
)
