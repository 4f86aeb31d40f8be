"""Planted mistakes for ``reference_impls.losses``, written the way people really get them wrong.

Each buggy function is the reference with one slip. ``diagnosis`` is the code the harness should
give, or "" when only detection is expected.
"""

from __future__ import annotations

import numpy as np

from reference_impls.bank import Mistake

__all__ = ["MISTAKES"]


def softmax_loss_missing_1_over_n(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss is averaged over the batch, the gradient is not."""
    n = x.shape[0]
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = -np.sum(log_probs[np.arange(n), y]) / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1.0
    return loss, dx


def softmax_loss_forgets_one_hot(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """dx is softmax(x) / N: the one-hot labels are never subtracted."""
    n = x.shape[0]
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = -np.sum(log_probs[np.arange(n), y]) / n
    dx = np.exp(log_probs) / n
    return loss, dx


def softmax_loss_subtracts_one_by_column(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """``dx[:, y] -= 1`` subtracts 1 from whole columns instead of one entry per row."""
    n = x.shape[0]
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = -np.sum(log_probs[np.arange(n), y]) / n
    dx = np.exp(log_probs)
    dx[:, y] -= 1.0
    dx /= n
    return loss, dx


def softmax_loss_shifts_in_place(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """``x -= max`` for stability overwrites the caller's scores (the loss and gradient are right)."""
    n = x.shape[0]
    x -= np.max(x, axis=1, keepdims=True)
    log_probs = x - np.log(np.sum(np.exp(x), axis=1, keepdims=True))
    loss = -np.sum(log_probs[np.arange(n), y]) / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1.0
    dx /= n
    return loss, dx


def svm_loss_missing_1_over_n(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss is averaged over the batch, the gradient is not."""
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0.0, x - x[rows, y][:, None] + 1.0)
    margins[rows, y] = 0.0
    loss = np.sum(margins) / n
    dx = (margins > 0).astype(x.dtype)
    dx[rows, y] = -np.sum(dx, axis=1)
    return loss, dx


def svm_loss_counts_correct_class(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The active-margin mask is taken before the correct class's own margin (always 1) is zeroed,
    so the correct class counts itself: dx[i, y_i] is one too negative. The loss is right."""
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0.0, x - x[rows, y][:, None] + 1.0)
    active = (margins > 0).astype(x.dtype)
    margins[rows, y] = 0.0
    loss = np.sum(margins) / n
    active[rows, y] = -np.sum(active, axis=1)
    dx = active / n
    return loss, dx


def mse_loss_missing_factor_2(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """d(diff**2) taken as diff: the factor 2 is dropped."""
    diff = pred - target
    return np.mean(diff**2), diff / diff.size


def mse_loss_sign_flipped(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """The difference is written target - pred in the gradient."""
    diff = pred - target
    return np.mean(diff**2), 2.0 * (target - pred) / diff.size


def mae_loss_missing_1_over_n(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss is a mean, the gradient is the sign alone (a sum's gradient)."""
    diff = pred - target
    return np.mean(np.abs(diff)), np.sign(diff)


def mae_loss_positive_mask(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """A relu-style mask ``diff > 0`` stands in for the sign: entries with pred < target get 0, not -1/size."""
    diff = pred - target
    return np.mean(np.abs(diff)), (diff > 0).astype(diff.dtype) / diff.size


def bce_with_logits_loss_sign_flipped(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """The gradient is written targets - sigmoid(logits)."""
    loss = np.mean(np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits))))
    e = np.exp(-np.abs(logits))
    probs = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return loss, (targets - probs) / logits.size


def bce_with_logits_loss_missing_1_over_n(
    logits: np.ndarray, targets: np.ndarray
) -> tuple[float, np.ndarray]:
    """The loss is a mean over all elements, the gradient is not divided by their count."""
    loss = np.mean(np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits))))
    e = np.exp(-np.abs(logits))
    probs = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return loss, probs - targets


def bce_with_logits_loss_extra_sigmoid_derivative(
    logits: np.ndarray, targets: np.ndarray
) -> tuple[float, np.ndarray]:
    """dL/dp = (p - t) / (p (1 - p)) and dp/dx = p (1 - p) were chained, but the division was lost:
    the gradient is (p - t) * p * (1 - p)."""
    loss = np.mean(np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits))))
    e = np.exp(-np.abs(logits))
    probs = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return loss, (probs - targets) * probs * (1.0 - probs) / logits.size


MISTAKES = [
    Mistake(
        exercise="softmax_loss",
        name="missing_1_over_N",
        description="The loss divides by N but dx does not: every gradient entry is N times too large.",
        replaces={"softmax_loss": softmax_loss_missing_1_over_n},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="softmax_loss",
        name="forgets_one_hot",
        description=(
            "dx = softmax(x) / N without subtracting 1 at the labels: wrong only at the N entries "
            "(i, y_i), each by exactly 1/N."
        ),
        replaces={"softmax_loss": softmax_loss_forgets_one_hot},
        diagnosis="partial",
    ),
    Mistake(
        exercise="softmax_loss",
        name="subtracts_one_by_column",
        description=(
            "dx[:, y] -= 1 instead of dx[np.arange(N), y] -= 1: every row loses 1 in every column that "
            "is some sample's label. Right when N == 1."
        ),
        replaces={"softmax_loss": softmax_loss_subtracts_one_by_column},
        diagnosis="",
    ),
    Mistake(
        exercise="softmax_loss",
        name="shifts_scores_in_place",
        description=(
            "x -= x.max(axis=1, keepdims=True) overwrites the caller's scores. Softmax ignores the "
            "shift, so loss and gradient stay right: only a mutation check sees it."
        ),
        replaces={"softmax_loss": softmax_loss_shifts_in_place},
        diagnosis="mutates_input",
    ),
    Mistake(
        exercise="svm_loss",
        name="missing_1_over_N",
        description="The loss divides by N but dx does not: every gradient entry is N times too large.",
        replaces={"svm_loss": svm_loss_missing_1_over_n},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="svm_loss",
        name="counts_correct_class",
        description=(
            "The active-margin mask is taken before margins[i, y_i] (always 1) is zeroed, so the count "
            "of violated margins includes the correct class: dx[i, y_i] is 1/N too negative, every "
            "other entry is right, and the loss is right."
        ),
        replaces={"svm_loss": svm_loss_counts_correct_class},
        diagnosis="partial",
    ),
    Mistake(
        exercise="mse",
        name="missing_factor_2",
        description="dpred = (pred - target) / size: the 2 from the square is dropped, so dpred is half size.",
        replaces={"mse_loss": mse_loss_missing_factor_2},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="mse",
        name="sign_flipped",
        description="dpred = 2 * (target - pred) / size: the difference is taken the wrong way round.",
        replaces={"mse_loss": mse_loss_sign_flipped},
        diagnosis="sign_flipped",
    ),
    Mistake(
        exercise="mae",
        name="missing_1_over_N",
        description="dpred = sign(pred - target) without dividing by N*D: N*D times too large.",
        replaces={"mae_loss": mae_loss_missing_1_over_n},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="mae",
        name="positive_mask_for_sign",
        description=(
            "dpred = (pred > target) / size, a relu-style mask in place of the sign: right where "
            "pred > target, 0 instead of -1/size elsewhere."
        ),
        replaces={"mae_loss": mae_loss_positive_mask},
        diagnosis="wrong_mask",
    ),
    Mistake(
        exercise="bce_with_logits",
        name="sign_flipped",
        description="dlogits = (targets - sigmoid(logits)) / size: the gradient points the wrong way.",
        replaces={"bce_with_logits_loss": bce_with_logits_loss_sign_flipped},
        diagnosis="sign_flipped",
    ),
    Mistake(
        exercise="bce_with_logits",
        name="missing_1_over_N",
        description="The loss is a mean but dlogits is not divided by N*D: N*D times too large.",
        replaces={"bce_with_logits_loss": bce_with_logits_loss_missing_1_over_n},
        diagnosis="scaled",
    ),
    Mistake(
        exercise="bce_with_logits",
        name="extra_sigmoid_derivative",
        description=(
            "dlogits = (p - t) * p * (1 - p) / size: the sigmoid derivative is multiplied in although "
            "it cancels against dL/dp's denominator."
        ),
        replaces={"bce_with_logits_loss": bce_with_logits_loss_extra_sigmoid_derivative},
        diagnosis="",
    ),
]
