"""Losses with hand-written gradients, in the cs231n style ``loss(x, y) -> (loss, dx)``.

Every loss here returns the scalar loss and the gradient of that loss with respect to its one
differentiable input (``x``, ``pred`` or ``logits``). Labels and targets are data, not parameters:
they get no gradient. All losses are averaged, so a batch twice as large gives the same loss scale.
"""

from __future__ import annotations

import numpy as np

import checker as bc
from reference_impls import torch_refs_losses
from reference_impls.bank import Exercise

__all__ = ["EXERCISES", "bce_with_logits_loss", "mae_loss", "mse_loss", "softmax_loss", "svm_loss"]


def softmax_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax (cross-entropy) loss, averaged over the batch.

    Computes ``L = -(1/N) * sum_i log(softmax(x_i)[y_i])``.

    Inputs:
    - x: (N, C) class scores (logits); row i holds the scores of sample i.
    - y: (N,) integer labels, ``0 <= y[i] < C``.

    Returns a tuple of:
    - loss: float, the mean cross-entropy.
    - dx: (N, C) gradient of the loss with respect to x.

    Stay numerically stable: large scores must not overflow ``np.exp``.
    Do not modify x in place.
    """
    n = x.shape[0]
    # Softmax is unchanged by a per-row shift; shifting by the row max keeps exp() from overflowing.
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -np.sum(log_probs[rows, y]) / n
    dx = np.exp(log_probs)
    dx[rows, y] -= 1.0
    dx /= n
    return loss, dx


def svm_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Multiclass SVM (hinge) loss with margin 1, averaged over the batch.

    Computes ``L = (1/N) * sum_i sum_{j != y_i} max(0, x[i, j] - x[i, y_i] + 1)``.

    Inputs:
    - x: (N, C) class scores.
    - y: (N,) integer labels, ``0 <= y[i] < C``.

    Returns a tuple of:
    - loss: float, the mean hinge loss.
    - dx: (N, C) gradient of the loss with respect to x.

    The correct class never counts against itself.
    """
    n = x.shape[0]
    rows = np.arange(n)
    correct = x[rows, y][:, None]
    margins = np.maximum(0.0, x - correct + 1.0)
    margins[rows, y] = 0.0
    loss = np.sum(margins) / n
    # Each violated margin pushes its own score up and the correct score down by one.
    positive = (margins > 0).astype(x.dtype)
    positive[rows, y] = -np.sum(positive, axis=1)
    dx = positive / n
    return loss, dx


def mse_loss(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error, averaged over every element.

    Computes ``L = mean((pred - target) ** 2)``.

    Inputs:
    - pred: (N, D) predictions.
    - target: (N, D) targets, fixed data (no gradient).

    Returns a tuple of:
    - loss: float.
    - dpred: (N, D) gradient of the loss with respect to pred.
    """
    diff = pred - target
    loss = np.mean(diff**2)
    dpred = 2.0 * diff / diff.size
    return loss, dpred


def mae_loss(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean absolute error, averaged over every element.

    Computes ``L = mean(|pred - target|)``.

    Inputs:
    - pred: (N, D) predictions.
    - target: (N, D) targets, fixed data (no gradient).

    Returns a tuple of:
    - loss: float.
    - dpred: (N, D) gradient of the loss with respect to pred. Where pred == target the loss has
      a kink; any subgradient is acceptable there (zero is the usual choice).
    """
    diff = pred - target
    loss = np.mean(np.abs(diff))
    dpred = np.sign(diff) / diff.size
    return loss, dpred


def bce_with_logits_loss(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Binary cross-entropy on raw scores (logits), averaged over every element.

    With ``p = sigmoid(logits)``, computes
    ``L = mean(-(targets * log(p) + (1 - targets) * log(1 - p)))``.

    Inputs:
    - logits: (N, D) raw scores, any real number.
    - targets: (N, D) target probabilities in [0, 1], fixed data (no gradient).

    Returns a tuple of:
    - loss: float.
    - dlogits: (N, D) gradient of the loss with respect to logits.

    Stay numerically stable: a logit of +-1000 must give a finite loss and gradient, so never
    take ``log(sigmoid(x))`` directly.
    """
    # log(1 + exp(x)) - t*x, rewritten as max(x, 0) - t*x + log(1 + exp(-|x|)): no overflow either side.
    loss = np.mean(np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits))))
    # Sigmoid from exp(-|x|) only, so neither branch overflows.
    e = np.exp(-np.abs(logits))
    probs = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    dlogits = (probs - targets) / logits.size
    return loss, dlogits


EXERCISES = [
    Exercise(
        name="softmax_loss",
        title="Softmax cross-entropy loss",
        teaches="Backprop through log-softmax with integer labels, averaged over a batch.",
        points=10,
        statement=(
            "Implement softmax_loss(x, y) -> (loss, dx): x (N, C) scores, y (N,) integer labels; "
            "loss is the mean cross-entropy over the batch and dx (N, C) its gradient. Stay stable "
            "for large scores."
        ),
        functions=("softmax_loss",),
        module="reference_impls.losses",
        style="loss",
    ),
    Exercise(
        name="svm_loss",
        title="Multiclass SVM (hinge) loss",
        teaches="Gradients of a piecewise-linear loss: which margins are active, and who they push.",
        points=10,
        statement=(
            "Implement svm_loss(x, y) -> (loss, dx): x (N, C) scores, y (N,) integer labels; "
            "loss = mean over i of sum over j != y_i of max(0, x[i, j] - x[i, y_i] + 1), dx (N, C)."
        ),
        functions=("svm_loss",),
        module="reference_impls.losses",
        style="loss",
    ),
    Exercise(
        name="mse",
        title="Mean squared error",
        teaches="The simplest regression loss, and what taking a mean does to a gradient.",
        points=5,
        statement=(
            "Implement mse_loss(pred, target) -> (loss, dpred): pred and target (N, D); "
            "loss = mean((pred - target)**2) over all elements, dpred (N, D). target gets no gradient."
        ),
        functions=("mse_loss",),
        module="reference_impls.losses",
        style="loss",
    ),
    Exercise(
        name="mae",
        title="Mean absolute error",
        teaches="A loss with a kink: gradients of |x| and subgradients where it is not differentiable.",
        points=5,
        statement=(
            "Implement mae_loss(pred, target) -> (loss, dpred): pred and target (N, D); "
            "loss = mean(|pred - target|) over all elements, dpred (N, D). target gets no gradient."
        ),
        functions=("mae_loss",),
        module="reference_impls.losses",
        style="loss",
    ),
    Exercise(
        name="bce_with_logits",
        title="Binary cross-entropy with logits",
        teaches="Fusing sigmoid and cross-entropy for a loss that is stable and a gradient that is simple.",
        points=10,
        statement=(
            "Implement bce_with_logits_loss(logits, targets) -> (loss, dlogits): logits (N, D) raw "
            "scores, targets (N, D) probabilities (no gradient); loss is the mean binary cross-entropy "
            "of sigmoid(logits) against targets, finite for any logits; dlogits (N, D)."
        ),
        functions=("bce_with_logits_loss",),
        module="reference_impls.losses",
        style="loss",
    ),
]


bc.register(
    "softmax_loss",
    value_and_grad=softmax_loss,
    inputs={"x": "N,C", "y": bc.labels("N", classes="C")},
    torch_forward=torch_refs_losses.softmax_loss,
)
bc.register(
    "svm_loss",
    value_and_grad=svm_loss,
    inputs={"x": "N,C", "y": bc.labels("N", classes="C")},
    torch_forward=torch_refs_losses.svm_loss,
)
bc.register(
    "mse",
    value_and_grad=mse_loss,
    inputs={"pred": "N,D", "target": bc.const("N,D")},
    torch_forward=torch_refs_losses.mse_loss,
)
bc.register(
    "mae",
    value_and_grad=mae_loss,
    inputs={"pred": "N,D", "target": bc.const("N,D")},
    torch_forward=torch_refs_losses.mae_loss,
)
bc.register(
    "bce_with_logits",
    value_and_grad=bce_with_logits_loss,
    inputs={"logits": "N,D", "targets": bc.probability("N,D", differentiable=False)},
    torch_forward=torch_refs_losses.bce_with_logits_loss,
)
