"""The drivers: which rules run, and in what order, for a gradient of the right shape and of the wrong one.

The order is data: the tuples below. The first rule that explains the whole mismatch names it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from checker.compare import EXACT, Tolerance, compare_arrays
from checker.diagnose import composite_rules, mask_rules, shape_rules, value_rules, wording
from checker.diagnose.context import NO_DIAGNOSIS, Diagnosis, GradientContext, Rule, squeezed

#: ``G`` of the right shape, one mistake each, cheap and specific first. ``transposed`` is here too:
#: square parameters (``D == M``) hide a transpose behind the right shape.
SAME_SHAPE_RULES: tuple[Rule, ...] = (
    value_rules.zero,
    shape_rules.transposed,
    value_rules.mean_instead_of_sum,
    value_rules.mean_over_batch,
    value_rules.other_dout_reduction,
    value_rules.scaled,
    mask_rules.wrong_mask,
)

#: ``G`` of the right shape, a mistake made of two parts (the right gradient plus or minus a term:
#: a regularisation term left out or added twice, one of several paths into the parameter missing).
#: Tried after every one-mistake rule, so a single cause is always preferred, and before
#: ``PARTIAL_RULES``, which would otherwise claim a composite mistake that leaves some entries right.
COMPOSITE_RULES: tuple[Rule, ...] = (composite_rules.regularization, composite_rules.missing_path)

#: ``G`` of the right shape, the least specific explanation: wrong at some entries, right elsewhere.
PARTIAL_RULES: tuple[Rule, ...] = (value_rules.partial,)

#: ``G`` of the wrong shape whose values are right once the shape is fixed.
WRONG_SHAPE_RULES: tuple[Rule, ...] = (
    shape_rules.keepdims,
    shape_rules.unreduced_broadcast,
    shape_rules.transposed,
)

#: ``G`` of the wrong shape, after its values were judged as if only size-1 axes differed.
WRONG_SHAPE_VALUE_RULES: tuple[Rule, ...] = (value_rules.other_dout_reduction,)


def diagnose_gradient(
    actual: np.ndarray, expected: np.ndarray, context: GradientContext, tol: Tolerance = EXACT
) -> Diagnosis:
    """Explain why ``actual`` (any shape) differs from ``expected`` (the parameter's shape).

    A gradient that matches within ``tol`` gets ``NO_DIAGNOSIS``; a mismatch no rule explains gets
    code ``""`` and numpy.testing's summary as its message.
    """
    g = np.asarray(actual, dtype=np.float64)
    t = np.asarray(expected, dtype=np.float64)
    found = value_rules.nonfinite(g, t, context)
    if found is not None:
        return found
    if g.shape != t.shape:
        return _diagnose_other_shape(g, t, context, tol)
    if compare_arrays(g, t, tol).passed:
        return NO_DIAGNOSIS
    return _diagnose_same_shape(g, t, context, tol)


def diagnose_shape(actual_shape: Sequence[int], context: GradientContext) -> Diagnosis:
    """Name a wrong shape from the shapes alone: size-1 axes, a permutation, or unsummed axes."""
    return shape_rules.shape_only(tuple(int(s) for s in actual_shape), tuple(context.param_shape), context)


def _first(
    rules: Sequence[Rule], g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    for rule in rules:
        found = rule(g, t, ctx, tol)
        if found is not None:
            return found
    return None


def _diagnose_same_shape(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis:
    found = _first(SAME_SHAPE_RULES + COMPOSITE_RULES + PARTIAL_RULES, g, t, ctx, tol)
    if found is not None:
        return found
    return Diagnosis("", wording.unexplained(ctx.grad_name, compare_arrays(g, t, tol)), {})


def _diagnose_other_shape(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis:
    found = _first(WRONG_SHAPE_RULES, g, t, ctx, tol)
    if found is not None:
        return found
    if g.size == t.size and squeezed(g.shape) == squeezed(t.shape):
        # Only size-1 axes differ: the values can be judged as if the shape were right.
        inner = _diagnose_same_shape(g.reshape(t.shape), t, ctx, tol)
        if inner.code:
            return Diagnosis(
                inner.code,
                wording.size_one_axes_and_values(ctx, g.shape, t.shape, inner.message),
                {**inner.details, "shape_code": "keepdims"},
            )
    found = _first(WRONG_SHAPE_VALUE_RULES, g, t, ctx, tol)
    if found is not None:
        return found
    by_shape = shape_rules.shape_only(g.shape, t.shape, ctx)
    if by_shape.code:
        return Diagnosis(
            by_shape.code,
            wording.shape_and_values(by_shape.message),
            {**by_shape.details, "values_match": False},
        )
    return Diagnosis("", wording.wrong_shape_unexplained(ctx, g.shape, t.shape), {})
