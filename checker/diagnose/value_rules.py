"""Rules on a gradient's values: nonfinite, zero, mean_instead_of_sum, another reduction of dout,
sign_flipped / scaled, partial.

Each rule explains *all* of the mismatch between ``G`` and ``T`` (same shape) or returns None.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from checker.compare import Tolerance, mismatch_mask
from checker.diagnose import wording
from checker.diagnose.agreement import close, factor_rtol, negligible
from checker.diagnose.context import Diagnosis, GradientContext, broadcast_axes, output_shape


def nonfinite(g: np.ndarray, t: np.ndarray, ctx: GradientContext) -> Diagnosis | None:
    """NaN or inf in ``g`` where ``t`` is finite (any shapes: then every non-finite entry counts)."""
    bad = ~np.isfinite(g)
    if g.shape == t.shape:
        bad &= np.isfinite(t)
    if not bad.any():
        return None
    nan, inf = int(np.isnan(g).sum()), int(np.isinf(g).sum())
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return Diagnosis(
        "nonfinite",
        wording.nonfinite(ctx.grad_name, nan, inf, g.size, first),
        {"nan": nan, "inf": inf, "first": first},
    )


def zero(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    if not negligible(g, tol).all() or negligible(t, tol).all():
        return None
    largest = float(np.max(np.abs(t)))
    return Diagnosis("zero", wording.zero(ctx.grad_name, largest), {"max_abs_expected": largest})


def mean_instead_of_sum(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """``g`` is ``t`` divided by the size of some of the broadcast axes: averaged instead of summed."""
    axes_all = broadcast_axes(ctx)
    out_shape = output_shape(ctx)
    if not axes_all or out_shape is None:
        return None
    subsets = [axes_all] + [s for r in range(1, len(axes_all)) for s in itertools.combinations(axes_all, r)]
    for axes in subsets:
        n = math.prod(out_shape[a] for a in axes)
        if n > 1 and close(g, t / n, tol):
            symbol = wording.product_symbol(ctx, axes)
            return Diagnosis(
                "mean_instead_of_sum",
                wording.mean_instead_of_sum(ctx, axes, n),
                {"axes": axes, "scale": 1.0 / n, "scale_name": f"1/{symbol}"},
            )
    return None


def mean_over_batch(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """Model style: a bias's gradient averaged over the batch instead of summed (the layer style finds
    the same mistake through the broadcast axes of the output)."""
    if ctx.batch is None:
        return None
    symbol, n = ctx.batch
    shape = tuple(ctx.param_shape)
    bias_like = len(shape) == 1 or (len(shape) == 2 and 1 in shape)
    if n < 2 or not bias_like or negligible(t, tol).all() or not close(g, t / n, tol):
        return None
    return Diagnosis(
        "mean_instead_of_sum",
        wording.mean_over_batch(ctx.grad_name, symbol, n),
        {"scale": 1.0 / n, "scale_name": f"1/{symbol}"},
    )


def other_dout_reduction(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """``g`` is a reduction of dout other than the sum over the broadcast axes (which gives ``t``).

    Only for a parameter that is a plain additive bias (``t`` is dout summed over the broadcast axes),
    so the right reduction is known; catches the shapes that agree by accident (``N == M``).
    """
    axes = broadcast_axes(ctx)
    if not axes or not ctx.douts:
        return None
    dout = np.asarray(ctx.douts[0], dtype=np.float64)
    if dout.shape != output_shape(ctx):
        return None
    right = dout.sum(axis=axes)
    if right.size != t.size or not close(right.reshape(t.shape), t, tol):
        return None
    for label, candidate in _dout_reductions(dout):
        if candidate.shape == g.shape and close(g, candidate, tol):
            return Diagnosis(
                "unreduced_broadcast",
                wording.other_dout_reduction(ctx, label, axes, dout.shape, t.shape),
                {"axes": axes, "found": label},
            )
    return None


def scaled(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """``g = c * t`` for one constant ``c``: -1 is ``sign_flipped``, else ``scaled`` (named for the dims when it fits)."""
    tt = float(np.vdot(t, t))
    if tt == 0.0 or not math.isfinite(tt):
        return None
    c = float(np.vdot(g, t)) / tt
    if abs(c - 1.0) < max(1e-3, 10 * tol.rtol) or not close(g, c * t, tol):
        return None
    dname = ctx.grad_name
    if abs(c + 1.0) <= factor_rtol(tol):
        return Diagnosis("sign_flipped", wording.sign_flipped(dname), {"scale": -1.0, "scale_name": "-1"})
    names, inverse, used = _scale_names(abs(c), ctx.dims, tol)
    values = wording.dim_values(used)
    if not names and int((~negligible(t, tol)).sum()) < 2:
        return None  # one number is always a multiple of another: only a named factor is evidence
    message, scale_name = wording.scaled_message(dname, c, names, inverse, values)
    return Diagnosis(
        "scaled",
        message,
        {
            "scale": c,
            "scale_name": scale_name,
            "names": tuple(names),
            "inverse": inverse,
            "values": values,
            "dims": dict(ctx.dims),
        },
    )


def partial(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """Wrong at some entries and right (at several nonzero ones) elsewhere; says which rows and columns."""
    wrong = mismatch_mask(g, t, tol)
    k, n = int(wrong.sum()), wrong.size
    # Entries that match only because both are zero prove nothing, nor does a stray entry where two
    # formulas happen to agree (1 - x² against 1 - tanh²(x) near 0): require several nonzero matches.
    nonzero = ~negligible(t, tol)
    matched = int((~wrong & nonzero).sum())
    if k == 0 or k == n or matched < max(2, math.ceil(0.1 * int(nonzero.sum()))):
        return None
    hits = np.nonzero(wrong)
    details: dict = {"fraction": k / n, "mismatched": k, "total": n}
    wrong_by_axis = [sorted({int(i) for i in hits[axis]}) for axis in range(t.ndim)]
    for axis, where in enumerate(wrong_by_axis):
        details.setdefault("indices", {})[axis] = where[:50]
    if t.ndim >= 1:
        details["rows"] = details["indices"][0]
    if t.ndim >= 2:
        details["columns"] = details["indices"][1]
    return Diagnosis("partial", wording.partial(ctx, t.shape, wrong_by_axis, k, n), details)


def _dout_reductions(dout: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """What people return instead of the right sum: dout itself, other sums, means, one slice."""
    yield wording.DOUT_ITSELF, dout
    subsets = [s for r in range(1, dout.ndim + 1) for s in itertools.combinations(range(dout.ndim), r)]
    for verb, reduce in (("summed", np.sum), ("averaged", np.mean)):
        for axes in subsets:
            yield wording.dout_reduction(verb, axes, dout.ndim, keepdims=False), reduce(dout, axis=axes)
            yield (
                wording.dout_reduction(verb, axes, dout.ndim, keepdims=True),
                reduce(dout, axis=axes, keepdims=True),
            )
    for axis in range(dout.ndim):
        for index in (0, -1):
            yield wording.dout_slice(axis, index), np.take(dout, index, axis=axis)


def _scale_names(c: float, dims: dict[str, int], tol: Tolerance) -> tuple[list[str], bool, dict[str, int]]:
    """Names for a factor ``c > 0``: dims, products of dims or 2 it equals (``inverse`` when it is one over them).

    Returns ``(["N"], True, {"N": 4})`` for ``c = 0.25`` with ``N=4`` (the last item: the dims the
    names use); ``([], False, {})`` when none fits. The simplest names win; equal values give every
    name (``N=2`` and ``2``).
    """
    named = {k: int(v) for k, v in dims.items() if isinstance(v, (int, np.integer)) and v > 1}
    levels: list[list[tuple[str, int, dict[str, int]]]] = [
        [(k, v, {k: v}) for k, v in named.items()] + [("2", 2, {})]
    ]
    for r in range(2, min(len(named), 4) + 1):
        levels.append(
            [
                ("*".join(ks), math.prod(named[k] for k in ks), {k: named[k] for k in ks})
                for ks in itertools.combinations(named, r)
            ]
        )
    rtol = factor_rtol(tol)
    for inverse in (False, True):
        for level in levels:
            hits = [(n, u) for n, v, u in level if abs(c - (1.0 / v if inverse else v)) <= rtol * c]
            if hits:
                used = {k: v for _, u in hits for k, v in u.items()}
                return [n for n, _ in hits], inverse, used
    return [], False, {}
