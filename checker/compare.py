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
    "FLOAT64_EPS",
    "Comparison",
    "Tolerance",
    "compare_arrays",
    "for_precision",
    "mismatch_mask",
    "precision_eps",
    "precision_name",
    "relative_error",
    "with_noise",
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


FLOAT64_EPS = float(np.finfo(np.float64).eps)


def precision_floor(eps: float) -> float:
    """The smallest relative and absolute error bound for code computing with machine epsilon ``eps``.

    ``10 * eps ** (2/3)``: 2.4e-4 for float32, 9.8e-2 for float16. It bounds both an exact gradient
    computed in that precision (round-off grows with the length of each sum) and central finite
    differences of such a forward (no more accurate than about ``eps ** (2/3)`` of the function's
    scale). float64 code gets no floor: its own tolerances apply unchanged.
    """
    return 0.0 if eps <= FLOAT64_EPS else 10 * float(eps) ** (2 / 3)


def for_precision(tol: Tolerance, eps: float) -> Tolerance:
    """``tol`` loosened to the accuracy of code computing with machine epsilon ``eps``.

    Every comparison of the harness (torch reference, autograd of the user's forward, finite
    differences, the forward's value) goes through here, so that a correct float32 or float16 layer
    is judged at the accuracy it can reach. float64 is left as it is.
    """
    floor = precision_floor(eps)
    if floor == 0.0:
        return tol
    return Tolerance(rtol=max(tol.rtol, floor), atol=max(tol.atol, floor))


#: How many times the exact oracles' own disagreement a reduced-precision gradient may be off by.
NOISE_FACTOR = 8.0


def with_noise(tol: Tolerance, expected: np.ndarray, noise: float) -> Tolerance:
    """``tol`` widened by an absolute ``noise``: the attainable accuracy measured at this very input.

    Code computing in float32 can be ill-conditioned at some inputs (a batch norm of two samples,
    a softmax of large scores): there two exact gradients of the same function, one in float32 and
    one in float64, disagree by more than any fixed bound. That disagreement is what float32 can
    resolve here. The user's backward is a third float32 computation of that gradient, in another
    order of operations, so its own error may be a few times larger: a gradient within
    ``NOISE_FACTOR`` times that disagreement cannot be called wrong. Where the code is well
    conditioned the disagreement is ~1e-7 and this changes nothing.
    """
    if not (noise > 0 and np.isfinite(noise)):
        return tol
    finite = np.isfinite(expected)
    scale = max(1.0, float(np.max(np.abs(expected[finite])))) if finite.any() else 1.0
    return Tolerance(rtol=tol.rtol, atol=tol.atol + NOISE_FACTOR * float(noise) / scale)


def precision_eps(*values: object, depth: int = 4) -> float:
    """The machine epsilon of the least precise float found in ``values`` (float64's when none is less).

    Looks inside tuples, lists and dicts (a layer's cache) up to ``depth`` levels; arrays, numpy
    scalars and anything with a float ``dtype`` (torch tensors) count.
    """
    eps = FLOAT64_EPS
    stack = [(v, 0) for v in values]
    seen = 0
    while stack and seen < 10_000:
        value, level = stack.pop()
        seen += 1
        dtype = getattr(value, "dtype", None)
        if dtype is not None:
            try:
                kind = np.dtype(dtype)
            except TypeError:
                kind = None  # a torch dtype: ask torch's own finfo
                finfo = _torch_finfo(dtype)
                if finfo is not None:
                    eps = max(eps, finfo)
            if kind is not None and kind.kind == "f":
                eps = max(eps, float(np.finfo(kind).eps))
            continue
        if level >= depth:
            continue
        if isinstance(value, (tuple, list)):
            stack.extend((v, level + 1) for v in value)
        elif isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
    return eps


def _torch_finfo(dtype: object) -> float | None:
    is_float = getattr(dtype, "is_floating_point", False)
    if not is_float:
        return None
    import torch

    return float(torch.finfo(dtype).eps)


def precision_name(eps: float) -> str:
    """``"float32"`` for float32's epsilon, and so on; ``"float64"`` for float64 and anything finer."""
    for name, value in (("float16", 2.0**-10), ("bfloat16", 2.0**-7), ("float32", 2.0**-23)):
        if eps == value:
            return name
    return "float64" if eps <= FLOAT64_EPS else f"eps {eps:.1g}"


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
    with np.errstate(invalid="ignore", over="ignore"):
        ratios = np.abs(actual - expected) / denom
    if np.isnan(ratios).all():
        return float("nan")  # np.nanmax would warn about an all-NaN slice
    return float(np.nanmax(ratios))


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
