"""Central finite differences of a scalar objective ``L(values)``, with kink-safe confirmation.

Estimates are confirmed before they may fail anything: a mismatching entry or direction is
re-estimated at other steps (a smaller step steps off a kink, a larger one out of round-off), and
passes if any estimate agrees. A real bug is wrong at every step; noise and kinks are not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from checker.compare import Tolerance, mismatch_mask

__all__ = [
    "CONFIRM_FACTORS",
    "DirectionalResult",
    "Objective",
    "confirm_entries",
    "directional_check",
    "elementwise_gradient",
    "step_curve",
    "step_size",
]

Objective = Callable[[Mapping[str, np.ndarray]], float]
#: Steps of :func:`step_curve`: half-decades from 1e-12 to 1 (truncation and round-off both show).
STEPS = np.logspace(-12, 0, 25)
#: Step multipliers tried, in order, before an entry is reported wrong.
CONFIRM_FACTORS = (0.01, 10.0, 0.0001)


def step_size(x: np.ndarray) -> float:
    """A central-difference step for ``x``: 1e-6 scaled by the input's magnitude (float64)."""
    scale = float(np.max(np.abs(x))) if x.size else 1.0
    return 1e-6 * max(1.0, scale)


def _shifted(values: Mapping[str, np.ndarray], name: str, delta: np.ndarray) -> dict[str, np.ndarray]:
    moved = dict(values)
    moved[name] = values[name] + delta
    return moved


def elementwise_gradient(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    h: float,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """dL/d values[name] by central differences, at flat ``indices`` (all when None).

    Returns an array of ``values[name]``'s shape (entries outside ``indices`` are NaN). Cost: two
    calls of ``objective`` per entry.
    """
    x = np.asarray(values[name], dtype=np.float64)
    grad = np.full(x.size, np.nan)
    flat_indices = np.arange(x.size) if indices is None else np.asarray(indices)
    for i in flat_indices:
        delta = np.zeros(x.size)
        delta[i] = h
        delta = delta.reshape(x.shape)
        grad[i] = (
            float(objective(_shifted(values, name, delta))) - float(objective(_shifted(values, name, -delta)))
        ) / (2 * h)
    return grad.reshape(x.shape)


def confirm_entries(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    actual: np.ndarray,
    estimate: np.ndarray,
    h: float,
    tol: Tolerance,
    indices: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-estimate the mismatching entries at other steps; return (best estimate, still-mismatching mask).

    ``indices`` limits the comparison to sampled flat entries (others are ignored).
    """
    best = estimate.copy()
    considered = np.zeros(actual.size, dtype=bool)
    considered[np.arange(actual.size) if indices is None else np.asarray(indices)] = True
    considered = considered.reshape(actual.shape)
    filled = np.where(considered, best, actual)
    wrong = mismatch_mask(actual, filled, tol) & considered
    for factor in CONFIRM_FACTORS:
        if not wrong.any():
            break
        flat_wrong = np.flatnonzero(wrong)
        retry = elementwise_gradient(objective, values, name, h * factor, flat_wrong)
        candidate = np.where(wrong, retry, filled)
        now_ok = ~mismatch_mask(actual, candidate, tol) & wrong
        best = np.where(now_ok, retry, best)
        filled = np.where(now_ok, retry, filled)
        wrong &= ~now_ok
    return best, wrong


@dataclass(frozen=True)
class DirectionalResult:
    """``<g, v>`` from the user's gradient against ``(L(x+hv) - L(x-hv)) / 2h``, for one or more directions."""

    passed: bool
    predicted: float
    measured: float
    abs_err: float
    directions: int


def _directional_derivative(
    objective: Objective, values: Mapping[str, np.ndarray], name: str, v: np.ndarray, h: float
) -> tuple[float, float]:
    """The central difference along ``v`` and a bound on its round-off error."""
    plus = float(objective(_shifted(values, name, h * v)))
    minus = float(objective(_shifted(values, name, -h * v)))
    roundoff = 8 * np.finfo(np.float64).eps * max(abs(plus), abs(minus)) / (2 * h)
    return (plus - minus) / (2 * h), roundoff


def directional_check(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    actual: np.ndarray,
    rng: np.random.Generator,
    tol: Tolerance,
    directions: int = 1,
) -> DirectionalResult:
    """Compare ``<actual, v>`` with the finite-difference derivative along random unit ``v``.

    Cost: two objective calls per direction, whatever the size. A disagreement is re-measured at
    other steps and along a fresh direction; it fails only if it fails everywhere. The bound is
    ``tol`` with the typical size of ``<actual, v>`` (``||actual|| / sqrt(n)``) as the absolute
    scale, plus the round-off of the two objective values.
    """
    x = np.asarray(values[name], dtype=np.float64)
    g = np.asarray(actual, dtype=np.float64)
    h = step_size(x)
    typical = float(np.linalg.norm(g)) / np.sqrt(max(g.size, 1))

    def agrees(predicted: float, measured: tuple[float, float]) -> bool:
        value, roundoff = measured
        return abs(predicted - value) <= tol.atol * typical + tol.rtol * abs(value) + roundoff

    def unit(shape: tuple[int, ...]) -> np.ndarray:
        v = rng.standard_normal(shape)
        return v / max(float(np.linalg.norm(v)), 1e-300)

    for k in range(directions):
        v = unit(x.shape)
        predicted = float(np.sum(g * v))
        measured = _directional_derivative(objective, values, name, v, h)
        if agrees(predicted, measured):
            continue
        if any(
            agrees(predicted, _directional_derivative(objective, values, name, v, h * f))
            for f in CONFIRM_FACTORS
        ):
            continue
        # One more direction: a kink crossed along v is unlikely to be crossed along w too.
        w = unit(x.shape)
        if agrees(
            float(np.sum(g * w)), _directional_derivative(objective, values, name, w, h * CONFIRM_FACTORS[0])
        ):
            continue
        return DirectionalResult(False, predicted, measured[0], abs(predicted - measured[0]), k + 1)
    return DirectionalResult(True, float("nan"), float("nan"), 0.0, directions)


def step_curve(
    objective: Callable[[Mapping[str, np.ndarray]], float],
    values: Mapping[str, np.ndarray],
    name: str,
    gradient: np.ndarray,
    direction: np.ndarray | None = None,
    steps: Sequence[float] | np.ndarray = STEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """``|(L(x + h v) - L(x - h v)) / 2h - <gradient, v>|`` for each step ``h``; x is ``values[name]``.

    ``gradient``: the user's gradient, x's shape; ``direction``: a unit ``v`` of x's shape (a seeded
    random one when None). Returns ``(steps, errors)``, both ``(len(steps),)``. A right gradient
    draws a V on log-log axes (truncation error ~ h^2 on the right, round-off ~ 1/h on the left,
    reaching ~1e-10); a wrong one flattens into a plateau at the size of its error. Cost: two calls
    of ``objective`` per step.
    """
    x = np.asarray(values[name], dtype=np.float64)
    g = np.asarray(gradient, dtype=np.float64)
    if direction is None:
        direction = np.random.default_rng(0).standard_normal(x.shape)
    v = np.asarray(direction, dtype=np.float64)
    v = v / max(float(np.linalg.norm(v)), 1e-300)
    predicted = float(np.sum(g * v))
    hs = np.asarray(steps, dtype=np.float64)
    errors = np.empty_like(hs)
    for i, h in enumerate(hs):
        plus, minus = dict(values), dict(values)
        plus[name], minus[name] = x + h * v, x - h * v
        measured = (float(objective(plus)) - float(objective(minus))) / (2 * h)
        errors[i] = abs(measured - predicted)
    return hs, errors
