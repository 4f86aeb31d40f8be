"""The Taylor test: a gradient check without a tolerance (pyadjoint's ``taylor_test``).

Along a direction ``v``, the remainder ``r(h) = |L(x + h v) - L(x) - h <g, v>|`` shrinks like
``h**2`` when ``g`` is the gradient of ``L`` at ``x``, and only like ``h`` when it is not: the
first-order term ``h <g - grad L, v>`` is left over. Halving ``h`` divides the remainder by about 4
or by about 2, so the observed convergence order ``log2(r(h) / r(h / 2))`` is about 2 or about 1,
whatever the scale of ``L`` or of the gradient. No rtol or atol is needed to tell them apart; the only
threshold is the round-off level below which remainders are not measured.

The test sees an error only at steps where its first-order term outgrows the second-order term
``h**2 v^T H v / 2``: a relative error of about ``h`` or more. With the default steps (``1e-3`` down
to ``3e-5`` times the input's scale) that is a relative error of about 3e-5 along ``v``. When the
two terms have opposite signs the signed remainder changes sign between them; a right gradient's
remainder keeps its sign as ``h`` shrinks, so a sign change is also a failure.

When ``L`` is linear along ``v`` (an affine layer's ``sum(out * dout)`` in any one input) a right
gradient leaves nothing but round-off at every step: that is the verdict ``exact`` (a pass). A
wrong one still leaves ``h |<g - grad L, v>|``, order 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from checker.oracles.finite_diff import Objective, shifted

__all__ = ["ROUNDOFF_MARGIN", "TaylorResult", "taylor_test"]

#: A remainder is measured only when it exceeds this many times its round-off bound.
ROUNDOFF_MARGIN = 10.0
#: Orders at or above this separate "shrinks like h**2" (pass) from "like h" (fail).
ORDER_THRESHOLD = 1.5


@dataclass(frozen=True)
class TaylorResult:
    """The remainders of one Taylor test and what their convergence says.

    ``steps``, ``remainders``, ``roundoff``: one entry per step ``h0 / 2**k`` (``k = 0..halvings``).
    ``orders``: ``log2(r[k-1] / r[k])`` for ``k = 1..halvings``; NaN where either remainder is
    within ``ROUNDOFF_MARGIN`` of round-off. ``order``: the order at the smallest measured steps
    (NaN when none was measured). ``verdict``: ``second order`` (pass), ``exact`` (pass: every
    remainder is round-off), or ``first order`` (fail: the gradient is wrong along ``v``).
    """

    passed: bool
    verdict: str
    order: float
    orders: tuple[float, ...]
    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    roundoff: tuple[float, ...]
    objective_calls: int


def taylor_test(
    objective: Objective,
    values: Mapping[str, np.ndarray],
    name: str,
    gradient: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    direction: np.ndarray | None = None,
    h0: float | None = None,
    halvings: int = 5,
) -> TaylorResult:
    """Taylor-test ``gradient`` (shaped like ``values[name]``) as dL/d values[name].

    ``direction``: shaped like the input (default: standard normal entries drawn from ``rng``).
    ``h0``: the largest step (default ``1e-3 * max(1, rms(x))``, so each entry moves by about 0.1%).
    Cost: ``halvings + 2`` calls of ``objective``. Raises ``ValueError`` when the gradient's shape
    is not the input's: shapes are the shape check's job and must be checked first.
    """
    x = np.asarray(values[name], dtype=np.float64)
    g = np.asarray(gradient, dtype=np.float64)
    if g.shape != x.shape:
        raise ValueError(f"gradient has shape {g.shape} but {name} has shape {x.shape}")
    if halvings < 1:
        raise ValueError(f"halvings={halvings} must be at least 1 (two steps give one order)")
    if direction is None:
        if rng is None:
            raise ValueError("give rng (to draw a direction) or direction")
        v = rng.standard_normal(x.shape)
    else:
        v = np.asarray(direction, dtype=np.float64)
        if v.shape != x.shape:
            raise ValueError(f"direction has shape {v.shape} but {name} has shape {x.shape}")
    if h0 is None:
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 1.0
        h0 = 1e-3 * max(1.0, rms)
    slope = float(np.sum(g * v))
    base = float(objective(values))
    # L is a sum of many terms: its round-off grows with their count (x.size stands in for it).
    terms = math.sqrt(max(x.size, 1))
    eps = float(np.finfo(np.float64).eps)
    steps, signed, roundoff = [], [], []
    for k in range(halvings + 1):
        h = h0 / 2**k
        moved = float(objective(shifted(values, name, h * v)))
        steps.append(h)
        signed.append(moved - base - h * slope)
        roundoff.append(16 * eps * terms * (abs(moved) + abs(base) + abs(h * slope)))
    remainders = [abs(r) for r in signed]
    measured = [r > ROUNDOFF_MARGIN * f for r, f in zip(remainders, roundoff, strict=True)]
    orders = [
        math.log2(remainders[k - 1] / remainders[k]) if measured[k - 1] and measured[k] else float("nan")
        for k in range(1, halvings + 1)
    ]
    finite = [o for o in orders if not math.isnan(o)]
    signs = {math.copysign(1.0, r) for r, m in zip(signed, measured, strict=True) if m}
    if not finite:
        verdict, order = "exact", float("nan")
    else:
        order = finite[-1]
        first = order < ORDER_THRESHOLD or len(signs) > 1
        verdict = "first order" if first else "second order"
    return TaylorResult(
        passed=verdict != "first order",
        verdict=verdict,
        order=order,
        orders=tuple(orders),
        steps=tuple(steps),
        remainders=tuple(remainders),
        roundoff=tuple(roundoff),
        objective_calls=halvings + 2,
    )
