"""Central finite differences of a scalar objective ``L(values)``, with kink-safe confirmation.

Estimates are confirmed before they may fail anything: a mismatching entry or direction is
re-estimated at other steps (a smaller step steps off a kink, a larger one out of round-off), and
passes if any estimate agrees. A real bug is wrong at every step; noise and kinks are not.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from checker.compare import Tolerance

__all__ = [
    "CONFIRM_FACTORS",
    "FLOAT64_EPS",
    "STEPS",
    "DirectionalResult",
    "Objective",
    "confirm_entries",
    "directional_check",
    "elementwise_estimates",
    "elementwise_gradient",
    "evaluation_noise",
    "kinked",
    "roundoff",
    "shifted",
    "step_curve",
    "step_size",
]

Objective = Callable[[Mapping[str, np.ndarray]], float]
#: Steps of :func:`step_curve`: half-decades from 1e-12 to 1 (truncation and round-off both show).
STEPS = np.logspace(-12, 0, 25)
#: Step multipliers tried, in order, before an entry is reported wrong: smaller steps step off a kink,
#: larger ones out of round-off (a forward computing in float32, or with a large offset).
CONFIRM_FACTORS = (0.01, 10.0, 100.0, 1000.0, 0.0001)
FLOAT64_EPS = float(np.finfo(np.float64).eps)


def step_size(x: np.ndarray, eps: float = FLOAT64_EPS) -> float:
    """A central-difference step for ``x``, scaled by its magnitude: 1e-6 for a float64 forward,
    ``eps ** (1/3)`` for a less precise one (5e-3 for float32)."""
    scale = float(np.max(np.abs(x))) if x.size else 1.0
    base = 1e-6 if eps <= FLOAT64_EPS else float(eps) ** (1 / 3)
    return base * max(1.0, scale)


def roundoff(plus: float, minus: float, h: float, eps: float = FLOAT64_EPS, jitter: float = 0.0) -> float:
    """A bound on the round-off error of ``(plus - minus) / 2h`` when L is computed with precision ``eps``
    and moves by up to ``jitter`` under rounding of its inputs (see :func:`evaluation_noise`)."""
    return max(8 * eps * max(abs(plus), abs(minus)), 2 * jitter) / (2 * h)


def evaluation_noise(
    objective: Objective, values: Mapping[str, np.ndarray], name: str, eps: float, rng: np.random.Generator
) -> float:
    """How far L, as this code computes it, strays from a straight line over a step 100 times smaller
    than the finite-difference step: the noise of L. 0.0 for float64 code (not measured: there the
    bound ``8 eps |L|`` of :func:`roundoff` holds).

    Code computing in float32 can cancel internally (``x - mean(x)`` at an offset of 100 loses two
    digits) and round its inputs onto a coarse grid, and its noise is then far above ``eps |L|``.
    Five calls of ``objective`` along one random unit direction; the residual of the least-squares
    line through them, doubled.
    """
    if eps <= FLOAT64_EPS:
        return 0.0
    x = np.asarray(values[name], dtype=np.float64)
    v = rng.standard_normal(x.shape)
    v /= max(float(np.linalg.norm(v)), 1e-300)
    delta = 0.01 * step_size(x, eps)
    ks = np.arange(-2.0, 3.0)
    measured = np.array([float(objective(shifted(values, name, k * delta * v))) for k in ks])
    if not np.all(np.isfinite(measured)):
        return 0.0
    slope, intercept = np.polyfit(ks, measured, 1)
    return 2 * float(np.max(np.abs(measured - (slope * ks + intercept))))


def shifted(values: Mapping[str, np.ndarray], name: str, delta: np.ndarray) -> dict[str, np.ndarray]:
    """``values`` with ``values[name] + delta`` in place of ``values[name]`` (the others shared, not copied)."""
    moved = dict(values)
    moved[name] = values[name] + delta
    return moved


def elementwise_estimates(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    h: float,
    indices: np.ndarray | None = None,
    eps: float = FLOAT64_EPS,
    center: float | None = None,
    jitter: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """dL/d values[name] by central differences at flat ``indices`` (all when None), and each estimate's
    round-off bound. Both have ``values[name]``'s shape (NaN outside ``indices``). Two calls per entry.

    With ``center`` (L at the unshifted point) an estimate whose step straddles a kink gets an infinite
    bound, so that it can never convict: see :func:`kinked`.
    """
    x = np.asarray(values[name], dtype=np.float64)
    grad = np.full(x.size, np.nan)
    noise = np.full(x.size, np.nan)
    flat_indices = np.arange(x.size) if indices is None else np.asarray(indices)
    for i in flat_indices:
        delta = np.zeros(x.size)
        delta[i] = h
        delta = delta.reshape(x.shape)
        plus = float(objective(shifted(values, name, delta)))
        minus = float(objective(shifted(values, name, -delta)))
        grad[i] = (plus - minus) / (2 * h)
        noise[i] = roundoff(plus, minus, h, eps, jitter)
        if center is not None and kinked(plus, center, minus, h, noise[i]):
            noise[i] = np.inf
    return grad.reshape(x.shape), noise.reshape(x.shape)


def kinked(plus: float, center: float, minus: float, h: float, noise: float) -> bool:
    """The one-sided slopes ``(L(x+h) - L(x)) / h`` and ``(L(x) - L(x-h)) / h`` differ by more than a
    quarter of their size: the step crosses a kink (a relu at 0, |x|, a max), or is too large for the
    function's curvature. The central difference of such a step is the average of two slopes and says
    nothing about either (chainer's check_backward detects non-differentiable points the same way)."""
    forward, backward = (plus - center) / h, (center - minus) / h
    return abs(forward - backward) > 0.25 * max(abs(forward), abs(backward)) + 8 * noise


def elementwise_gradient(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    h: float,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """dL/d values[name] by central differences (see :func:`elementwise_estimates`)."""
    return elementwise_estimates(objective, values, name, h, indices)[0]


def _verdicts(
    actual: np.ndarray, estimate: np.ndarray, noise: np.ndarray, tol: Tolerance, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """(agrees, conclusive) per entry. An estimate is conclusive when its round-off is within the
    tolerance; it agrees when ``actual`` is within the tolerance plus that round-off."""
    with np.errstate(invalid="ignore"):
        bound = tol.atol * scale + tol.rtol * np.abs(estimate)
        conclusive = noise <= bound
        agrees = np.abs(actual - estimate) <= bound + noise
    return agrees & np.isfinite(estimate), conclusive & np.isfinite(estimate)


def confirm_entries(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    actual: np.ndarray,
    estimate: np.ndarray,
    h: float,
    tol: Tolerance,
    indices: np.ndarray | None = None,
    noise: np.ndarray | None = None,
    eps: float = FLOAT64_EPS,
    jitter: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-estimate the disagreeing entries at other steps; return (best estimate, wrong mask).

    An entry is wrong only when two conclusive estimates (round-off within the tolerance) at different
    steps agree with each other and no conclusive estimate agrees with ``actual``. An estimate that
    changes with the step is no evidence: it crossed a kink, or the step is too large for the
    function's curvature, or round-off is larger than its bound says (a float32 forward that cancels
    internally). An entry no step can settle is left to the exact oracles. ``indices`` limits the
    comparison to sampled flat entries.
    """
    best = estimate.copy()
    noise = np.zeros(actual.shape) if noise is None else np.nan_to_num(noise, nan=np.inf)
    considered = np.zeros(actual.size, dtype=bool)
    considered[np.arange(actual.size) if indices is None else np.asarray(indices)] = True
    considered = considered.reshape(actual.shape)
    finite = np.isfinite(estimate) & considered
    scale = max(1.0, float(np.max(np.abs(estimate[finite])))) if finite.any() else 1.0
    agrees, conclusive = _verdicts(actual, estimate, noise, tol, scale)
    pending = considered & ~(agrees & conclusive)
    center = float(objective(values)) if pending.any() else None
    tried = []  # every estimate of the pending entries, by step; the first step again, now kink-aware
    for factor in (1.0, *CONFIRM_FACTORS):
        if not pending.any():
            break
        flat = np.flatnonzero(pending)
        retry, retry_noise = elementwise_estimates(
            objective, values, name, h * factor, flat, eps, center, jitter
        )
        retry_noise = np.nan_to_num(retry_noise, nan=np.inf)
        agrees, conclusive = _verdicts(actual, retry, retry_noise, tol, scale)
        now_ok = pending & agrees & conclusive
        best = np.where(now_ok, retry, best)
        pending &= ~now_ok
        tried.append((retry, retry_noise, pending & conclusive))
    wrong = np.zeros(actual.shape, dtype=bool)
    for (a, a_noise, a_ok), (b, b_noise, b_ok) in itertools.combinations(tried, 2):
        with np.errstate(invalid="ignore", over="ignore"):
            bound = tol.atol * scale + tol.rtol * np.abs(a) + a_noise + b_noise
            consistent = pending & a_ok & b_ok & (np.abs(a - b) <= bound)
        best = np.where(consistent & ~wrong, a, best)
        wrong |= consistent
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
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    v: np.ndarray,
    h: float,
    eps: float = FLOAT64_EPS,
    center: float | None = None,
    jitter: float = 0.0,
) -> tuple[float, float]:
    """The central difference along ``v`` and a bound on its round-off error (infinite when the step
    crosses a kink, given ``center`` = L at the unshifted point)."""
    plus = float(objective(shifted(values, name, h * v)))
    minus = float(objective(shifted(values, name, -h * v)))
    noise = roundoff(plus, minus, h, eps, jitter)
    if center is not None and kinked(plus, center, minus, h, noise):
        noise = np.inf
    return (plus - minus) / (2 * h), noise


def directional_check(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    actual: np.ndarray,
    rng: np.random.Generator,
    tol: Tolerance,
    directions: int = 1,
    eps: float = FLOAT64_EPS,
    jitter: float = 0.0,
) -> DirectionalResult:
    """Compare ``<actual, v>`` with the finite-difference derivative along random unit ``v``.

    Cost: two objective calls per direction, whatever the size. A disagreement is re-measured at
    other steps and along a fresh direction; it fails only if it fails everywhere. The bound is
    ``tol`` with the typical size of ``<actual, v>`` (``||actual|| / sqrt(n)``) as the absolute
    scale, plus the round-off of the two objective values.
    """
    x = np.asarray(values[name], dtype=np.float64)
    g = np.asarray(actual, dtype=np.float64)
    h = step_size(x, eps)
    typical = float(np.linalg.norm(g)) / np.sqrt(max(g.size, 1))

    def verdict(predicted: float, measured: tuple[float, float]) -> tuple[bool, bool]:
        """(agrees, conclusive) as for element-wise estimates."""
        value, noise = measured
        bound = tol.atol * typical + tol.rtol * abs(value)
        return abs(predicted - value) <= bound + noise, noise <= bound

    def unit(shape: tuple[int, ...]) -> np.ndarray:
        v = rng.standard_normal(shape)
        return v / max(float(np.linalg.norm(v)), 1e-300)

    def disagrees_everywhere(v: np.ndarray, predicted: float) -> tuple[bool, float]:
        """True when two conclusive steps agree with each other and no conclusive step agrees with
        ``predicted`` (a measurement that moves with the step is no evidence); also the first measurement."""
        first = _directional_derivative(objective, values, name, v, h, eps, jitter=jitter)
        agrees, conclusive = verdict(predicted, first)
        if agrees and conclusive:
            return False, first[0]
        # Disagreement: measure again at every step, now telling a kink from a slope.
        conclusive_seen: list[tuple[float, float]] = []
        center = float(objective(values))
        for factor in (1.0, *CONFIRM_FACTORS):
            measured = _directional_derivative(objective, values, name, v, h * factor, eps, center, jitter)
            agrees, conclusive = verdict(predicted, measured)
            if agrees and conclusive:
                return False, first[0]
            if conclusive:
                conclusive_seen.append(measured)
        for (a, a_noise), (b, b_noise) in itertools.combinations(conclusive_seen, 2):
            if abs(a - b) <= tol.atol * typical + tol.rtol * abs(a) + a_noise + b_noise:
                return True, first[0]
        return False, first[0]

    for k in range(directions):
        v = unit(x.shape)
        predicted = float(np.sum(g * v))
        wrong, measured = disagrees_everywhere(v, predicted)
        if not wrong:
            continue
        # One more direction: a kink crossed along v is unlikely to be crossed along w too.
        w = unit(x.shape)
        if not disagrees_everywhere(w, float(np.sum(g * w)))[0]:
            continue
        return DirectionalResult(False, predicted, measured, abs(predicted - measured), k + 1)
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
        measured, _ = _directional_derivative(objective, values, name, v, float(h))
        errors[i] = abs(measured - predicted)
    return hs, errors
