"""Planted mistakes in the staged normalisation layers of ``reference_impls.staged``.

Each buggy backward repeats the reference node by node with one slip, at a different node each
time; ``step`` names the node where the slip is (its last assignment is the planted line) and
``step_diagnosis`` what that step should be diagnosed as once the harness has located it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference_impls.bank import Mistake

__all__ = ["MISTAKES"]

Cache = Any
Grads3 = tuple[np.ndarray, np.ndarray, np.ndarray]


# --- batchnorm_staged (cache: xhat, gamma, xmu, ivar, sqrtvar, var, eps) -------------------------


def batchnorm_staged_backward_sqrtvar_sign(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgammax = dout
    dgamma = (dgammax * xhat).sum(axis=0)
    dxhat = dgammax * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = 1.0 / sqrtvar**2 * divar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(xmu) / N * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


def batchnorm_staged_backward_var_half_missing(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgammax = dout
    dgamma = (dgammax * xhat).sum(axis=0)
    dxhat = dgammax * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / sqrtvar**2 * divar
    dvar = 1.0 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(xmu) / N * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


def batchnorm_staged_backward_sq_not_averaged(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgammax = dout
    dgamma = (dgammax * xhat).sum(axis=0)
    dxhat = dgammax * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / sqrtvar**2 * divar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(xmu) * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


def batchnorm_staged_backward_mu_path_missing(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgammax = dout
    dgamma = (dgammax * xhat).sum(axis=0)
    dxhat = dgammax * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / sqrtvar**2 * divar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(xmu) / N * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dx = dxmu  # x also reaches the loss through mu: that path is left out
    return dx, dgamma, dbeta


def batchnorm_staged_backward_gamma_not_summed(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgammax = dout
    dgamma = dgammax * xhat
    dxhat = dgammax * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / sqrtvar**2 * divar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(xmu) / N * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


def batchnorm_staged_backward_ivar_not_summed(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgammax = dout
    dgamma = (dgammax * xhat).sum(axis=0)
    dxhat = dgammax * gamma
    divar = dxhat * xmu
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / sqrtvar**2 * divar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(xmu) / N * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


def batchnorm_staged_backward_mean_form(dout: np.ndarray, cache: Cache) -> Grads3:
    """A control: the path through mu written as a mean (dmu / N is minus the mean of dxmu)."""
    xhat, gamma, xmu, ivar, _sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dvar = -0.5 * divar / (var + eps) ** 1.5
    dxmu = dxhat * ivar + 2 * xmu * dvar / N
    dx = dxmu - dxmu.mean(axis=0)
    return dx, dgamma, dbeta


# --- layernorm_staged (cache: xhat, gamma, xmu, istd, std) --------------------------------------


def layernorm_staged_backward_dxhat_times_xhat(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, _gamma, xmu, istd, std = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dscaled = dout
    dgamma = (dscaled * xhat).sum(axis=0)
    dxhat = dscaled * xhat  # dgamma's factor: the gradient of gamma * xhat in xhat is gamma
    distd = (dxhat * xmu).sum(axis=1, keepdims=True)
    dxmu1 = dxhat * istd
    dstd = -distd / std**2
    dvar = dstd / (2 * std)
    dsq = np.ones_like(xmu) / D * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=1, keepdims=True)
    dx = dxmu + dmu / D
    return dx, dgamma, dbeta


def layernorm_staged_backward_std_sign(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, istd, std = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dscaled = dout
    dgamma = (dscaled * xhat).sum(axis=0)
    dxhat = dscaled * gamma
    distd = (dxhat * xmu).sum(axis=1, keepdims=True)
    dxmu1 = dxhat * istd
    dstd = distd / std**2
    dvar = dstd / (2 * std)
    dsq = np.ones_like(xmu) / D * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=1, keepdims=True)
    dx = dxmu + dmu / D
    return dx, dgamma, dbeta


def layernorm_staged_backward_mu_path_missing(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, istd, std = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dscaled = dout
    dgamma = (dscaled * xhat).sum(axis=0)
    dxhat = dscaled * gamma
    distd = (dxhat * xmu).sum(axis=1, keepdims=True)
    dxmu1 = dxhat * istd
    dstd = -distd / std**2
    dvar = dstd / (2 * std)
    dsq = np.ones_like(xmu) / D * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dx = dxmu  # the path through mu, the mean of each row, is left out
    return dx, dgamma, dbeta


def layernorm_staged_backward_mu_summed_over_batch(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, istd, std = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dscaled = dout
    dgamma = (dscaled * xhat).sum(axis=0)
    dxhat = dscaled * gamma
    distd = (dxhat * xmu).sum(axis=1, keepdims=True)
    dxmu1 = dxhat * istd
    dstd = -distd / std**2
    dvar = dstd / (2 * std)
    dsq = np.ones_like(xmu) / D * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=0, keepdims=True)  # batchnorm's axis: mu is a per-row statistic here
    dx = dxmu + dmu / D
    return dx, dgamma, dbeta


def layernorm_staged_backward_beta_per_row(dout: np.ndarray, cache: Cache) -> Grads3:
    xhat, gamma, xmu, istd, std = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=1)
    dscaled = dout
    dgamma = (dscaled * xhat).sum(axis=0)
    dxhat = dscaled * gamma
    distd = (dxhat * xmu).sum(axis=1, keepdims=True)
    dxmu1 = dxhat * istd
    dstd = -distd / std**2
    dvar = dstd / (2 * std)
    dsq = np.ones_like(xmu) / D * dvar
    dxmu2 = 2 * xmu * dsq
    dxmu = dxmu1 + dxmu2
    dmu = -dxmu.sum(axis=1, keepdims=True)
    dx = dxmu + dmu / D
    return dx, dgamma, dbeta


def _bn(name: str, description: str, fn: Any, step: str, step_diagnosis: str, diagnosis: str = "") -> Mistake:
    return Mistake(
        "batchnorm_staged",
        name,
        description,
        {"batchnorm_staged_backward": fn},
        diagnosis,
        step=step,
        step_diagnosis=step_diagnosis,
    )


def _ln(name: str, description: str, fn: Any, step: str, step_diagnosis: str, diagnosis: str = "") -> Mistake:
    return Mistake(
        "layernorm_staged",
        name,
        description,
        {"layernorm_staged_backward": fn},
        diagnosis,
        step=step,
        step_diagnosis=step_diagnosis,
    )


MISTAKES = [
    _bn(
        "sqrtvar_sign",
        "d(1/s)/ds written as +1/s^2",
        batchnorm_staged_backward_sqrtvar_sign,
        "dsqrtvar",
        "sign_flipped",
    ),
    _bn(
        "var_half_missing",
        "d sqrt(v)/dv written as 1/sqrt(v)",
        batchnorm_staged_backward_var_half_missing,
        "dvar",
        "scaled",
    ),
    _bn(
        "sq_not_averaged",
        "var is a mean of sq, but dsq forgets 1/N",
        batchnorm_staged_backward_sq_not_averaged,
        "dsq",
        "scaled",
    ),
    _bn(
        "mu_path_missing",
        "dx leaves out the path through mu",
        batchnorm_staged_backward_mu_path_missing,
        "dx",
        "missing_path",
        "missing_path",
    ),
    _bn(
        "gamma_not_summed",
        "dgamma keeps the batch axis",
        batchnorm_staged_backward_gamma_not_summed,
        "dgamma",
        "unreduced_broadcast",
        "unreduced_broadcast",
    ),
    _bn(
        "ivar_not_summed",
        "divar keeps the batch axis (ivar was broadcast over it)",
        batchnorm_staged_backward_ivar_not_summed,
        "divar",
        "unreduced_broadcast",
    ),
    Mistake(
        "batchnorm_staged",
        "mean_form",
        "the path through mu written as a mean (harmless)",
        {"batchnorm_staged_backward": batchnorm_staged_backward_mean_form},
        control=True,
    ),
    _ln(
        "dxhat_times_xhat",
        "dxhat multiplies dout by xhat instead of gamma",
        layernorm_staged_backward_dxhat_times_xhat,
        "dxhat",
        "",
    ),
    _ln(
        "std_sign", "d(1/s)/ds written as +1/s^2", layernorm_staged_backward_std_sign, "dstd", "sign_flipped"
    ),
    _ln(
        "mu_path_missing",
        "dx leaves out the path through mu",
        layernorm_staged_backward_mu_path_missing,
        "dx",
        "missing_path",
        "missing_path",
    ),
    _ln(
        "mu_summed_over_batch",
        "dmu summed over the batch axis, as in batchnorm",
        layernorm_staged_backward_mu_summed_over_batch,
        "dmu",
        "",
    ),
    _ln(
        "beta_per_row",
        "dbeta summed over the wrong axis",
        layernorm_staged_backward_beta_per_row,
        "dbeta",
        "unreduced_broadcast",
        "unreduced_broadcast",
    ),
]
