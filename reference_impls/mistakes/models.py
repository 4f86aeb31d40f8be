"""Planted mistakes for ``reference_impls.models``, written the way people really get them wrong.

Each is a subclass of the reference ``TwoLayerNet`` whose ``loss`` repeats the reference with one
slip. ``diagnosis`` is the code the harness should give, or "" when only detection is expected.
"""

from __future__ import annotations

import numpy as np

from reference_impls.bank import Mistake
from reference_impls.models import TwoLayerNet

__all__ = ["MISTAKES"]


def _forward(
    net: TwoLayerNet, X: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The forward pass every mistake below gets right: loss, pre-activation, hidden, dscores * N."""
    W1, b1, W2, b2 = (net.params[key] for key in ("W1", "b1", "W2", "b2"))
    pre = X @ W1 + b1
    hidden = np.maximum(pre, 0.0)
    scores = hidden @ W2 + b2
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    rows = np.arange(X.shape[0])
    loss = -np.mean(log_probs[rows, y]) + 0.5 * net.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1.0
    return loss, pre, hidden, dscores


class TwoLayerNetMissingRegGradient(TwoLayerNet):
    """The loss includes 0.5 * reg * |W|^2, the gradients leave out reg * W."""

    def loss(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss, pre, hidden, dscores = _forward(self, X, y)
        dscores /= X.shape[0]
        dpre = (dscores @ self.params["W2"].T) * (pre > 0)
        grads = {
            "W1": X.T @ dpre,
            "b1": np.sum(dpre, axis=0),
            "W2": hidden.T @ dscores,
            "b2": np.sum(dscores, axis=0),
        }
        return loss, grads


class TwoLayerNetB2NotSummed(TwoLayerNet):
    """db2 is dscores itself, (N, C), not summed over the batch."""

    def loss(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss, pre, hidden, dscores = _forward(self, X, y)
        dscores /= X.shape[0]
        W1, W2 = self.params["W1"], self.params["W2"]
        dpre = (dscores @ W2.T) * (pre > 0)
        grads = {
            "W1": X.T @ dpre + self.reg * W1,
            "b1": np.sum(dpre, axis=0),
            "W2": hidden.T @ dscores + self.reg * W2,
            "b2": dscores,
        }
        return loss, grads


class TwoLayerNetMissing1OverN(TwoLayerNet):
    """The data loss is a mean, but dscores is never divided by N."""

    def loss(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss, pre, hidden, dscores = _forward(self, X, y)
        W1, W2 = self.params["W1"], self.params["W2"]
        dpre = (dscores @ W2.T) * (pre > 0)
        grads = {
            "W1": X.T @ dpre + self.reg * W1,
            "b1": np.sum(dpre, axis=0),
            "W2": hidden.T @ dscores + self.reg * W2,
            "b2": np.sum(dscores, axis=0),
        }
        return loss, grads


class TwoLayerNetReluMaskFromOutput(TwoLayerNet):
    """Control: the relu mask is read from the relu's output (hidden > 0) instead of its input.

    The two masks agree everywhere, so the gradients are right and nothing may be flagged.
    """

    def loss(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss, _pre, hidden, dscores = _forward(self, X, y)
        dscores /= X.shape[0]
        W1, W2 = self.params["W1"], self.params["W2"]
        dpre = (dscores @ W2.T) * (hidden > 0)
        grads = {
            "W1": X.T @ dpre + self.reg * W1,
            "b1": np.sum(dpre, axis=0),
            "W2": hidden.T @ dscores + self.reg * W2,
            "b2": np.sum(dscores, axis=0),
        }
        return loss, grads


MISTAKES = [
    Mistake(
        exercise="two_layer_net",
        name="missing_reg_gradient",
        description="The loss has 0.5 * reg * (|W1|^2 + |W2|^2) but grads W1 and W2 lack reg * W; b1, b2 are right.",
        replaces={"TwoLayerNet": TwoLayerNetMissingRegGradient},
        diagnosis="regularization",
    ),
    Mistake(
        exercise="two_layer_net",
        name="b2_not_summed",
        description="grads['b2'] = dscores, shape (N, C): b2 was broadcast over the batch; sum over axis 0.",
        replaces={"TwoLayerNet": TwoLayerNetB2NotSummed},
        diagnosis="unreduced_broadcast",
    ),
    Mistake(
        exercise="two_layer_net",
        name="missing_1_over_N",
        description=(
            "dscores is not divided by N: db1 and db2 are exactly N times too large; dW1 and dW2 are "
            "N * data gradient + reg * W, so they are not an exact multiple when reg > 0. Right when N == 1."
        ),
        replaces={"TwoLayerNet": TwoLayerNetMissing1OverN},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="two_layer_net",
        name="relu_mask_from_output",
        description="Control: the relu mask is taken as hidden > 0 rather than pre > 0; identical, must pass.",
        replaces={"TwoLayerNet": TwoLayerNetReluMaskFromOutput},
        diagnosis="",
        control=True,
    ),
]
