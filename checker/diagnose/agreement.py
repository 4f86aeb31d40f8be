"""When two arrays, or two fitted factors, agree within a tolerance; the rules' only yardstick."""

from __future__ import annotations

import numpy as np

from checker.compare import Tolerance, mismatch_mask


def close(a: np.ndarray, b: np.ndarray, tol: Tolerance) -> bool:
    """Same shape and no mismatched entry under ``tol``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and not mismatch_mask(a, b, tol).any()


def negligible(a: np.ndarray, tol: Tolerance) -> np.ndarray:
    """True where ``a`` is zero within the tolerance's absolute bound."""
    return ~mismatch_mask(a, np.zeros_like(a), tol)


def same_factor(a: float, b: float, tol: Tolerance) -> bool:
    """Two fitted factors are the same number (within :func:`factor_rtol`)."""
    return abs(a - b) <= factor_rtol(tol) * max(abs(a), abs(b)) + 1e-12


def factor_rtol(tol: Tolerance) -> float:
    """The relative slack of a fitted factor: looser than the entries', never below 1e-6."""
    return max(1e-6, 10 * tol.rtol)
