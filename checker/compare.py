"""Tolerances and error metrics, defined once for the whole harness.

Every comparison of a user's array with an oracle's goes through this module, so that the
pass/fail rule, the reported errors and the cs231n-style relative error mean the same thing
everywhere (checks, diagnoses, grading, reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "EXACT",
    "FINITE_DIFFERENCE",
    "Comparison",
    "Tolerance",
    "compare_arrays",
    "for_precision",
    "mismatch_mask",
    "relative_error",
]


@dataclass(frozen=True)
class Tolerance:
    """An element passes when ``|actual - expected| <= atol * scale + rtol * |expected|``.

    ``scale`` is ``max(1, max|expected|)``: an absolute bound that grows with the size of the
    gradient, so entries that are tiny next to the rest of the tensor (where a relative error of
    two near-zero numbers means nothing) never raise a false alarm.
    """

    rtol: float
    atol: float

    def __post_init__(self) -> None:
        for field_name in ("rtol", "atol"):
            value = getattr(self, field_name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{field_name}={value!r} must be a finite number >= 0")


#: Exact oracles (torch autograd of a reference, autograd of the user's own forward).
EXACT = Tolerance(rtol=1e-6, atol=1e-9)
#: Central finite differences in float64 (a confirmation step runs before a failure is reported).
FINITE_DIFFERENCE = Tolerance(rtol=1e-4, atol=1e-6)


def for_precision(tol: Tolerance, eps: float) -> Tolerance:
    """``tol`` loosened for finite differences of a forward computed with machine epsilon ``eps``.

    Central differences can be no more accurate than about ``eps ** (2/3)`` of the function's scale
    (2.4e-5 in float32); both bounds are raised to ten times that. float64 is left as it is.
    """
    floor = 10 * float(eps) ** (2 / 3)
    if floor <= 10 * float(np.finfo(np.float64).eps) ** (2 / 3):
        return tol
    return Tolerance(rtol=max(tol.rtol, floor), atol=max(tol.atol, floor))


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing two arrays of the same shape."""

    passed: bool
    max_abs_err: float
    max_rel_err: float
    mismatched: int
    total: int

    @property
    def mismatch_summary(self) -> str:
        """``3 / 12 (25%)``, numpy.testing's vocabulary."""
        share = 100.0 * self.mismatched / self.total if self.total else 0.0
        return f"{self.mismatched} / {self.total} ({share:.3g}%)"


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """cs231n's ``max(|a - e| / max(1e-8, |a| + |e|))``, without its broadcasting.

    Shapes must already be equal; callers check shapes first.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    if actual.size == 0:
        return 0.0
    denom = np.maximum(1e-8, np.abs(actual) + np.abs(expected))
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(actual - expected) / denom))


def mismatch_mask(actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Boolean array, True where ``actual`` is outside the tolerance around ``expected``.

    Non-finite entries in either array count as mismatches unless both are the same infinity.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(expected)
    scale = max(1.0, float(np.max(np.abs(expected[finite])))) if finite.any() else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        bound = tol.atol * scale + tol.rtol * np.abs(expected)
        ok = np.abs(actual - expected) <= bound
    ok |= (actual == expected) & np.isinf(expected)
    return ~ok


def compare_arrays(actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> Comparison:
    """Compare two arrays of equal shape: pass/fail, max errors and the mismatch count."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    mask = mismatch_mask(actual, expected, tol)
    if actual.size:
        with np.errstate(invalid="ignore"):
            max_abs = float(np.max(np.abs(actual - expected)))  # NaN propagates on purpose
    else:
        max_abs = 0.0
    return Comparison(
        passed=not bool(mask.any()),
        max_abs_err=max_abs,
        max_rel_err=relative_error(actual, expected),
        mismatched=int(mask.sum()),
        total=int(mask.size),
    )
