"""Rules for a gradient of the wrong shape: keepdims, unreduced_broadcast, transposed, and the shapes alone.

A rule with the arrays (``keepdims``, ``unreduced_broadcast``, ``transposed``) names the mistake only
when fixing the shape gives the oracle's values; :func:`shape_only` names it from the shapes, for
a gradient whose values cannot be compared (or do not match either way).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from checker.compare import Tolerance
from checker.diagnose import wording
from checker.diagnose.agreement import close
from checker.diagnose.context import (
    NO_DIAGNOSIS,
    Diagnosis,
    GradientContext,
    broadcast_axes,
    output_shape,
    squeezed,
)


def keepdims(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """``g`` reshaped is ``t``: only size-1 axes differ."""
    if g.size != t.size or squeezed(g.shape) != squeezed(t.shape):
        return None
    if not close(g.reshape(t.shape), t, tol):
        return None
    return _keepdims_diagnosis(g.shape, t.shape, ctx, values_known=True)


def unreduced_broadcast(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """Summing ``g`` over some of its axes gives ``t``: a broadcast (or batch) axis was never summed."""
    for axes in _candidate_sum_axes(g.shape, t.shape, ctx, by_shape_only=False):
        reduced = g.sum(axis=axes)
        if reduced.size == t.size and close(reduced.reshape(t.shape), t, tol):
            return _unreduced_diagnosis(g.shape, t.shape, axes, ctx, values_known=True)
    return None


def transposed(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """A permutation of ``g``'s axes gives ``t``; also when the shapes agree because two sizes are equal."""
    for perm in _permutations(g.ndim):
        if tuple(g.shape[i] for i in perm) == t.shape and close(g.transpose(perm), t, tol):
            return _transposed_diagnosis(g.shape, t.shape, perm, ctx, values_known=True)
    return None


def shape_only(actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext) -> Diagnosis:
    """Name a wrong shape from the shapes alone: size-1 axes, a permutation, or unsummed axes."""
    if actual == expected:
        return NO_DIAGNOSIS
    if math.prod(actual) == math.prod(expected) and squeezed(actual) == squeezed(expected):
        return _keepdims_diagnosis(actual, expected, ctx, values_known=False)
    if len(actual) >= 2 and sorted(actual) == sorted(expected):
        perms = [p for p in _permutations(len(actual)) if tuple(actual[i] for i in p) == expected]
        if perms:
            return _transposed_diagnosis(actual, expected, perms[0], ctx, values_known=False)
    candidates = list(_candidate_sum_axes(actual, expected, ctx, by_shape_only=True))
    if candidates:
        return _unreduced_diagnosis(actual, expected, candidates[0], ctx, values_known=False)
    return NO_DIAGNOSIS


def _keepdims_diagnosis(
    actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext, *, values_known: bool
) -> Diagnosis:
    return Diagnosis(
        "keepdims",
        wording.keepdims(actual, expected, ctx, values_known=values_known),
        {"actual_shape": actual, "expected_shape": expected},
    )


def _unreduced_diagnosis(
    actual: tuple[int, ...],
    expected: tuple[int, ...],
    axes: tuple[int, ...],
    ctx: GradientContext,
    *,
    values_known: bool,
) -> Diagnosis:
    message = wording.unreduced(actual, expected, axes, ctx, values_known=values_known)
    return Diagnosis("unreduced_broadcast", message, {"axes": axes})


def _transposed_diagnosis(
    actual: tuple[int, ...],
    expected: tuple[int, ...],
    perm: tuple[int, ...],
    ctx: GradientContext,
    *,
    values_known: bool,
) -> Diagnosis:
    message = wording.transposed(actual, expected, perm, ctx, values_known=values_known)
    return Diagnosis("transposed", message, {"axes": perm})


def _candidate_sum_axes(
    actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext, *, by_shape_only: bool
) -> Iterator[tuple[int, ...]]:
    """Axes of ``actual`` whose sum leaves ``expected`` (up to size-1 axes); the broadcast axes first.

    With ``by_shape_only`` an ambiguous answer (``(M, M)`` against ``(M,)``) yields nothing unless the
    broadcast axes settle it.
    """
    target = squeezed(expected)
    out_shape = output_shape(ctx)
    known = broadcast_axes(ctx) if actual == out_shape else ()
    if known and squeezed(tuple(s for i, s in enumerate(actual) if i not in known)) == target:
        yield known
        if by_shape_only:
            return
    big = [i for i, s in enumerate(actual) if s > 1]
    if len(big) > 8:
        return
    fitting = [
        axes
        for r in range(1, len(big) + 1)
        for axes in itertools.combinations(big, r)
        if squeezed(tuple(s for i, s in enumerate(actual) if i not in axes)) == target and axes != known
    ]
    if by_shape_only and len(fitting) != 1:
        return
    yield from fitting


def _permutations(ndim: int) -> list[tuple[int, ...]]:
    """Axis orders to try: all of them up to 4 axes, else swaps of the last two and the full reversal."""
    identity = tuple(range(ndim))
    if ndim < 2:
        return []
    if ndim <= 4:
        return [p for p in itertools.permutations(identity) if p != identity]
    swap = (*identity[:-2], ndim - 1, ndim - 2)
    return [swap, identity[::-1]]
