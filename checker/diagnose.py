"""Name the mistake in a gradient that failed its check.

``diagnose_gradient(actual, expected, context)`` compares the user's gradient ``G`` with the oracle's
``T`` and tries one small rule per code, cheap and specific first. A rule either explains *all* of the
mismatch and returns a :class:`Diagnosis`, or returns ``None``; when no rule explains it the code is
``""`` and the message is numpy.testing's summary. A rule never guesses.

Rule order, ``G`` with the wrong shape: nonfinite, keepdims, unreduced_broadcast (sum over axes),
transposed, the value rules on ``G`` reshaped (when only size-1 axes differ), unreduced_broadcast
(another reduction of dout), then the shapes alone (:func:`diagnose_shape`).
Rule order, ``G`` with the right shape: nonfinite, zero, transposed, mean_instead_of_sum,
unreduced_broadcast (another reduction of dout), sign_flipped / scaled, wrong_mask, partial.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from checker.compare import EXACT, Tolerance, compare_arrays, mismatch_mask

__all__ = [
    "CODES",
    "NO_DIAGNOSIS",
    "Diagnosis",
    "GradientContext",
    "broadcast_axes",
    "diagnose_gradient",
    "diagnose_shape",
    "scaled_message",
]

#: Every diagnosis code of the harness; the last five are given by other checks, not by this module.
CODES = (
    "unreduced_broadcast",
    "mean_instead_of_sum",
    "keepdims",
    "transposed",
    "scaled",
    "sign_flipped",
    "zero",
    "wrong_mask",
    "partial",
    "nonfinite",
    "forward_mismatch",
    "mutates_input",
    "stateful",
    "shape_dependent",
)

_MAX_LISTED = 8  # indices named in a message before it is cut short with "..."


@dataclass(frozen=True)
class Diagnosis:
    """What is wrong with a gradient. ``code`` is ``""`` when no rule explains the mismatch."""

    code: str
    message: str
    details: dict = field(default_factory=dict)


NO_DIAGNOSIS = Diagnosis("", "", {})


@dataclass(frozen=True)
class GradientContext:
    """What the rules may know about one gradient besides the two arrays.

    ``param_shape``: the parameter's shape (the expected gradient's shape); ``symbols`` its spec
    (``("D", "M")``, ints allowed); ``dims`` the case's symbol values; ``output_shapes`` the forward
    outputs' shapes (``()`` for a scalar loss); ``output_symbols`` the first output's spec when known;
    ``inputs`` every input array by name (mask rules); ``douts`` the upstream gradients of a layer;
    ``batch`` the batch symbol and size of a model's data (a bias averaged over it is named for that).
    """

    name: str
    param_shape: tuple[int, ...]
    symbols: tuple = ()
    dims: dict[str, int] = field(default_factory=dict)
    output_shapes: tuple[tuple[int, ...], ...] = ()
    output_symbols: tuple = ()
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    douts: tuple[np.ndarray, ...] = ()
    #: model style: the batch symbol and its size (``("N", 4)``), the data's leading or trailing axis
    batch: tuple[str, int] | None = None

    @property
    def grad_name(self) -> str:
        """``"db"`` for ``b``: the name users give the gradient."""
        return "d" + self.name


# ---------------------------------------------------------------------------------------------
# Public entry points


def diagnose_gradient(
    actual: np.ndarray, expected: np.ndarray, context: GradientContext, tol: Tolerance = EXACT
) -> Diagnosis:
    """Explain why ``actual`` (any shape) differs from ``expected`` (the parameter's shape).

    A gradient that matches within ``tol`` gets ``NO_DIAGNOSIS``; a mismatch no rule explains gets
    code ``""`` and numpy.testing's summary as its message.
    """
    g = np.asarray(actual, dtype=np.float64)
    t = np.asarray(expected, dtype=np.float64)
    found = _nonfinite(g, t, context)
    if found is not None:
        return found
    if g.shape != t.shape:
        return _diagnose_other_shape(g, t, context, tol)
    if compare_arrays(g, t, tol).passed:
        return NO_DIAGNOSIS
    return _diagnose_same_shape(g, t, context, tol)


def diagnose_shape(actual_shape: Sequence[int], context: GradientContext) -> Diagnosis:
    """Name a wrong shape from the shapes alone: size-1 axes, a permutation, or unsummed axes."""
    return _shape_only(tuple(int(s) for s in actual_shape), tuple(context.param_shape), context)


def broadcast_axes(context: GradientContext) -> tuple[int, ...]:
    """Axes of the first output over which the parameter was broadcast; ``()`` when it was not.

    Symbols decide when both specs are known (numpy's right alignment, else by name so that a conv
    bias ``(F,)`` against ``(N, F, H, W)`` gives ``(0, 2, 3)``); otherwise numpy's rule on the shapes.
    A parameter with an axis the output lacks (``w (D, M)`` against ``(N, M)``) was not broadcast.
    """
    out_shape = _output_shape(context)
    param = tuple(context.param_shape)
    if not out_shape:
        return ()
    psym, osym = tuple(context.symbols), tuple(context.output_symbols)
    if psym and len(psym) == len(param) and len(osym) == len(out_shape):
        aligned = _right_aligned(psym, osym)
        if aligned is not None:
            return aligned
        names = {s for s in psym if s != 1}
        if names and all(s in osym for s in names):
            return tuple(i for i, s in enumerate(osym) if s not in names)
        return ()
    return _right_aligned(param, out_shape) or ()


# ---------------------------------------------------------------------------------------------
# Drivers


def _diagnose_same_shape(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis:
    rules: tuple[Callable[..., Diagnosis | None], ...] = (
        _zero,
        _transposed,
        _mean_instead_of_sum,
        _mean_over_batch,
        _other_dout_reduction,
        _scaled,
        _wrong_mask,
        _partial,
    )
    for rule in rules:
        found = rule(g, t, ctx, tol)
        if found is not None:
            return found
    c = compare_arrays(g, t, tol)
    return Diagnosis(
        "",
        f"{ctx.grad_name} differs from the oracle: Mismatched elements: {c.mismatch_summary}, "
        f"Max absolute difference: {c.max_abs_err:.3g}, Max relative difference: {c.max_rel_err:.3g}",
        {},
    )


def _diagnose_other_shape(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis:
    for rule in (_keepdims, _unreduced_broadcast, _transposed):
        found = rule(g, t, ctx, tol)
        if found is not None:
            return found
    shape_text = f"{ctx.grad_name} has shape {g.shape} but {ctx.name} has shape {t.shape}"
    if g.size == t.size and _squeezed(g.shape) == _squeezed(t.shape):
        # Only size-1 axes differ: the values can be judged as if the shape were right.
        inner = _diagnose_same_shape(g.reshape(t.shape), t, ctx, tol)
        if inner.code:
            return Diagnosis(
                inner.code,
                f"{shape_text} ({_size_one_fix(g.shape, t.shape, ctx)}); besides, {inner.message}",
                {**inner.details, "shape_code": "keepdims"},
            )
    found = _other_dout_reduction(g, t, ctx, tol)
    if found is not None:
        return found
    by_shape = _shape_only(g.shape, t.shape, ctx)
    if by_shape.code:
        return Diagnosis(
            by_shape.code,
            f"{by_shape.message}; even so, the values differ from the oracle",
            {**by_shape.details, "values_match": False},
        )
    return Diagnosis("", f"{shape_text}: the gradient must have the shape of {ctx.name}", {})


# ---------------------------------------------------------------------------------------------
# Rules for a gradient of the wrong shape


def _keepdims(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    if g.size != t.size or _squeezed(g.shape) != _squeezed(t.shape):
        return None
    if not _close(g.reshape(t.shape), t, tol):
        return None
    return _keepdims_diagnosis(g.shape, t.shape, ctx, values_known=True)


def _unreduced_broadcast(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """Summing ``g`` over some of its axes gives ``t``: a broadcast (or batch) axis was never summed."""
    for axes in _candidate_sum_axes(g.shape, t.shape, ctx, by_shape_only=False):
        reduced = g.sum(axis=axes)
        if reduced.size == t.size and _close(reduced.reshape(t.shape), t, tol):
            return _unreduced_diagnosis(g.shape, t.shape, axes, ctx, values_known=True)
    return None


def _transposed(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """A permutation of ``g``'s axes gives ``t``; also when the shapes agree because two sizes are equal."""
    for perm in _permutations(g.ndim):
        if tuple(g.shape[i] for i in perm) == t.shape and _close(g.transpose(perm), t, tol):
            return _transposed_diagnosis(g.shape, t.shape, perm, ctx)
    return None


# ---------------------------------------------------------------------------------------------
# Rules for a gradient of the right shape


def _nonfinite(g: np.ndarray, t: np.ndarray, ctx: GradientContext) -> Diagnosis | None:
    bad = ~np.isfinite(g)
    if g.shape == t.shape:
        bad &= np.isfinite(t)
    if not bad.any():
        return None
    nan, inf = int(np.isnan(g).sum()), int(np.isinf(g).sum())
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return Diagnosis(
        "nonfinite",
        f"{ctx.grad_name} has {nan} NaN and {inf} inf entries out of {g.size} (the first at index {first}) "
        "where the oracle's gradient is finite: look for a division by zero, a log of 0 or an overflowing exp",
        {"nan": nan, "inf": inf, "first": first},
    )


def _zero(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    if not _negligible(g, tol).all() or _negligible(t, tol).all():
        return None
    largest = float(np.max(np.abs(t)))
    return Diagnosis(
        "zero",
        f"{ctx.grad_name} is zero everywhere, but the oracle's gradient is not (its largest entry is "
        f"{largest:.3g} in size): check that every term reaches {ctx.grad_name} (a mask that blocks every "
        "entry, a missing term, or an array that is never filled in all give zeros)",
        {"max_abs_expected": largest},
    )


def _mean_instead_of_sum(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    axes_all = broadcast_axes(ctx)
    out_shape = _output_shape(ctx)
    if not axes_all or out_shape is None:
        return None
    subsets = [axes_all] + [s for r in range(1, len(axes_all)) for s in itertools.combinations(axes_all, r)]
    for axes in subsets:
        n = math.prod(out_shape[a] for a in axes)
        if n > 1 and _close(g, t / n, tol):
            where = _axes_text(axes)
            names = _output_axis_names(ctx, axes)
            symbol = _product_symbol(ctx, axes)
            return Diagnosis(
                "mean_instead_of_sum",
                f"{ctx.grad_name} = mean over {where} ({names}); the gradient of a broadcast parameter is the "
                f"SUM over {where}: sum instead of averaging ({ctx.grad_name} is {n} times too small)",
                {"axes": axes, "scale": 1.0 / n, "scale_name": f"1/{symbol}"},
            )
    return None


def _other_dout_reduction(
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
    if dout.shape != _output_shape(ctx):
        return None
    right = dout.sum(axis=axes)
    if right.size != t.size or not _close(right.reshape(t.shape), t, tol):
        return None
    for label, candidate in _dout_reductions(dout):
        if candidate.shape == g.shape and _close(g, candidate, tol):
            where = _axes_text(axes)
            keep = _keepdims_hint(dout.shape, t.shape, axes)
            return Diagnosis(
                "unreduced_broadcast",
                f"{ctx.grad_name} equals {label}, but {ctx.name} was broadcast over {where} "
                f"({_output_axis_names(ctx, axes)}): sum dout over {where}{keep}",
                {"axes": axes, "found": label},
            )
    return None


def _scaled(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    tt = float(np.vdot(t, t))
    if tt == 0.0 or not math.isfinite(tt):
        return None
    c = float(np.vdot(g, t)) / tt
    if abs(c - 1.0) < max(1e-3, 10 * tol.rtol) or not _close(g, c * t, tol):
        return None
    dname = ctx.grad_name
    if abs(c + 1.0) <= _factor_rtol(tol):
        return Diagnosis(
            "sign_flipped",
            f"{dname} has the wrong sign: it equals -1 × the oracle's gradient; negate it "
            "(check the sign of each term, e.g. a derivative of -log p, or a subtraction written the wrong way round)",
            {"scale": -1.0, "scale_name": "-1"},
        )
    names, inverse, values = _scale_name(abs(c), ctx.dims, tol)
    if not names and int((~_negligible(t, tol)).sum()) < 2:
        return None  # one number is always a multiple of another: only a named factor is evidence
    message, scale_name = scaled_message(dname, c, names, inverse, values)
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


def scaled_message(dname: str, c: float, names: Sequence[str], inverse: bool, values: str) -> tuple[str, str]:
    """The ``scaled`` message and its factor's name, for the candidate ``names`` of the factor ``c``
    (``values`` spells their sizes, `` (N=4)``). Rebuilt by the runner when other cases of the same
    function rule some candidates out."""
    sign_text = "the wrong sign and " if c < 0 else ""
    plain = " or ".join(names)
    over = " or ".join(f"1/{n}" for n in names)
    if not names:
        message = (
            f"{dname} = {c:.4g} × the oracle's gradient everywhere: {sign_text}a constant factor is wrong; "
            "look for a missing or extra scale (a mean, a temperature, a regularisation weight)"
        )
    elif inverse:
        message = (
            f"{dname} = {c:.4g} × the oracle's gradient: {sign_text}an extra factor {over}{values}; "
            f"remove the division by {plain}"
        )
    else:
        message = (
            f"{dname} = {c:.4g} × the oracle's gradient: {sign_text}missing {over}{values}; divide by {plain}"
        )
    scale_name = ("-" if c < 0 else "") + (over if inverse else plain) if names else ""
    return message, scale_name


def _mean_over_batch(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """Model style: a bias's gradient averaged over the batch instead of summed (the layer style finds
    the same mistake through the broadcast axes of the output)."""
    if ctx.batch is None:
        return None
    symbol, n = ctx.batch
    shape = tuple(ctx.param_shape)
    bias_like = len(shape) == 1 or (len(shape) == 2 and 1 in shape)
    if n < 2 or not bias_like or _negligible(t, tol).all() or not _close(g, t / n, tol):
        return None
    return Diagnosis(
        "mean_instead_of_sum",
        f"{ctx.grad_name} = mean over the batch ({symbol}={n}) of each example's contribution; the gradient "
        f"of a bias shared by every example is the SUM over the batch: sum instead of averaging "
        f"({ctx.grad_name} is {n} times too small)",
        {"scale": 1.0 / n, "scale_name": f"1/{symbol}"},
    )


def _factor_not_applied(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """``dx = dout`` where the forward multiplied by an input (a dropout mask): the factor is missing."""
    if not ctx.douts or ctx.douts[0].shape != g.shape or not _close(g, ctx.douts[0], tol):
        return None
    for other, value in ctx.inputs.items():
        if other == ctx.name or np.shape(value) != g.shape:
            continue
        factor = np.asarray(value, dtype=np.float64)
        if not np.allclose(factor, 1.0) and _close(t, ctx.douts[0] * factor, tol):
            return Diagnosis(
                "wrong_mask",
                f"{ctx.grad_name} equals dout, but the forward multiplied {ctx.name} by {other}: "
                f"the gradient must be multiplied by {other} too ({ctx.grad_name} = dout * {other})",
                {"mask": other},
            )
    return None


def _extra_input_factor(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """``dx = dout * x * (x > 0)``: the mask is right but the gradient also carries the input as a factor."""
    masked = _negligible(t, tol)
    if not masked.any() or masked.all():
        return None
    for other, value in ctx.inputs.items():
        factor = np.asarray(value, dtype=np.float64)
        if factor.shape != g.shape or np.allclose(factor, 1.0):
            continue
        if _close(g, t * factor, tol):
            return Diagnosis(
                "wrong_mask",
                f"{ctx.grad_name} is the right mask times {other}: where the mask is on, the gradient passes "
                f"dout through unchanged, it is not multiplied by {other}",
                {"factor": other},
            )
    return None


def _wrong_mask(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """The relu / leaky relu / max-pool / dropout family: the mismatch follows what the forward selected.

    In turn: dout times the wrong factor on either side of a comparison of inputs (layers); nonzero
    only where the gradient is zero (a mask left out, a whole pooling window); the right values at
    the wrong entries (misrouted); wrong exactly on one side of a comparison (a branch's factor).
    """
    found = _factor_not_applied(g, t, ctx, tol) or _extra_input_factor(g, t, ctx, tol)
    if found is not None:
        return found
    partitions = _partitions(ctx, t.shape)
    found = _mask_factor_rule(g, t, ctx, tol, partitions)
    if found is not None:
        return found
    wrong = mismatch_mask(g, t, tol)
    t_zero = _negligible(t, tol)
    # The entries that match must include nonzero ones: matching where both are zero proves nothing.
    if not (~wrong & ~t_zero).any():
        return None
    g_zero = _negligible(g, tol)
    sets = [(label, other, mask) for label, other, mask in partitions] + [
        (other, label, ~mask) for label, other, mask in partitions
    ]
    explaining = [
        (label, other, mask)
        for label, other, mask in sets
        if not (wrong & ~mask).any() and g_zero[mask & ~wrong].all()
    ]
    k, n = int(wrong.sum()), wrong.size
    if k < 2:
        return None  # one wrong entry lies on some comparison's side by chance: leave it to `partial`
    dname = ctx.grad_name
    if not (wrong & ~t_zero).any():  # every wrong entry should have been zero
        if explaining:
            label, other, _ = explaining[0]
            return Diagnosis(
                "wrong_mask",
                f"{dname} is nonzero where {label} ({k} / {n} entries), where the gradient is zero; it is right "
                f"elsewhere: apply the mask ({other})",
                {"where": label, "mask": other, "fraction": k / n},
            )
        return Diagnosis(
            "wrong_mask",
            f"{dname} is nonzero at {k} / {n} entries where the oracle's gradient is zero, and right elsewhere: "
            "the gradient must reach only the entries the forward selected (e.g. the max of each pooling "
            "window, or where the mask is on)",
            {"fraction": k / n},
        )
    moved = wrong & ~(g_zero ^ t_zero)  # wrong entries where not exactly one of the two is zero
    if not moved.any() and (wrong & ~g_zero).sum() >= 2:
        # Every wrong entry is zero on one side; if the values agree as a multiset, they were misrouted.
        values_g, values_t = np.sort(g[wrong & ~g_zero]), np.sort(t[wrong & ~t_zero])
        if values_g.shape == values_t.shape and _close(values_g, values_t, tol):
            return Diagnosis(
                "wrong_mask",
                f"{dname} has the right values at the wrong entries: {values_g.size} values sit where the gradient "
                f"is zero and their own entries get 0 ({k} / {n} entries wrong, the rest is right): route each value "
                "to the entry the forward selected (e.g. the max of each pooling window)",
                {"fraction": k / n, "moved": int(values_g.size)},
            )
    if not explaining:
        return None
    label, _, mask = explaining[0]
    if g_zero[mask].all():
        return Diagnosis(
            "wrong_mask",
            f"{dname} is zero where {label} ({k} / {n} entries), but the gradient is not; it is right elsewhere: "
            f"the branch for {label} is missing",
            {"where": label, "ratio": 0.0, "fraction": k / n},
        )
    scored = wrong & ~t_zero
    ratio = float(np.median(g[scored] / t[scored]))
    if _close(g[mask], ratio * t[mask], tol):
        return Diagnosis(
            "wrong_mask",
            f"{dname} = {ratio:.4g} × the oracle's gradient where {label} ({k} / {n} entries) and right elsewhere: "
            f"the factor (e.g. a leaky relu's negative slope) for {label} is wrong",
            {"where": label, "ratio": ratio, "fraction": k / n},
        )
    return Diagnosis(
        "wrong_mask",
        f"{dname} is wrong exactly where {label} ({k} / {n} entries) and right elsewhere: check the branch for {label}",
        {"where": label, "fraction": k / n},
    )


def _partial(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    wrong = mismatch_mask(g, t, tol)
    k, n = int(wrong.sum()), wrong.size
    # Entries that match only because both are zero prove nothing, nor does a stray entry where two
    # formulas happen to agree (1 - x² against 1 - tanh²(x) near 0): require several nonzero matches.
    nonzero = ~_negligible(t, tol)
    matched = int((~wrong & nonzero).sum())
    if k == 0 or k == n or matched < max(2, math.ceil(0.1 * int(nonzero.sum()))):
        return None
    hits = np.nonzero(wrong)
    details: dict = {"fraction": k / n, "mismatched": k, "total": n}
    places = []
    for axis, size in enumerate(t.shape):
        where = sorted({int(i) for i in hits[axis]})
        details.setdefault("indices", {})[axis] = where[:50]
        if len(where) < size:
            places.append(f"{_axis_word(t.ndim, axis, ctx)} {_cut(where)} of {size}")
    if t.ndim >= 1:
        details["rows"] = details["indices"][0]
    if t.ndim >= 2:
        details["columns"] = details["indices"][1]
    where_text = (
        "; wrong entries lie in " + ", ".join(places) if places else ", spread over every row and column"
    )
    return Diagnosis(
        "partial",
        f"{ctx.grad_name} is wrong at {k} / {n} entries ({100 * k / n:.3g}%) and right elsewhere{where_text}",
        details,
    )


# ---------------------------------------------------------------------------------------------
# wrong_mask: dout times a factor that is constant on each side of a comparison


def _mask_factor_rule(
    g: np.ndarray,
    t: np.ndarray,
    ctx: GradientContext,
    tol: Tolerance,
    partitions: list[tuple[str, str, np.ndarray]],
) -> Diagnosis | None:
    """Layer style: the oracle is ``dout * where(x > 0, a, b)``; say what the user multiplied dout by."""
    if not ctx.douts or np.shape(ctx.douts[0]) != t.shape or not partitions:
        return None
    dout = np.asarray(ctx.douts[0], dtype=np.float64)
    dname = ctx.grad_name
    for label, other, mask in partitions:
        expected = _two_factor_fit(t, dout, mask, tol)
        if expected is None or _same_factor(*expected, tol):
            continue
        a_t, b_t = expected
        is_mask = (a_t, b_t) == (1.0, 0.0)
        factor = _input_factor(t, dout, ctx, tol)  # dropout: the gradient is dout * mask
        if factor:
            wanted = f"dout * {factor}"
        elif is_mask:
            wanted = f"dout * ({label})"
        else:
            wanted = f"dout × ({a_t:.4g} where {label}, {b_t:.4g} where {other})"
        details = {"mask": label, "expected_factors": expected}
        multiplied = _input_factor(g, dout, ctx, tol)
        if multiplied:
            message = (
                f"{dname} multiplies dout by {multiplied} instead of by the mask ({label}): use {wanted}"
                if is_mask
                else f"{dname} = dout * {multiplied}, but the gradient is {wanted}"
            )
            return Diagnosis("wrong_mask", message, {**details, "multiplied_by": multiplied})
        actual = _two_factor_fit(g, dout, mask, tol)
        if actual is not None:
            return Diagnosis(
                "wrong_mask",
                _factor_message(dname, label, other, expected, actual, wanted, tol),
                {**details, "actual_factors": actual},
            )
        for label_g, other_g, mask_g in partitions:
            fit = _two_factor_fit(g, dout, mask_g, tol)
            if fit is not None and not _same_factor(*fit, tol):
                return Diagnosis(
                    "wrong_mask",
                    f"{dname} = dout × ({fit[0]:.4g} where {label_g}, {fit[1]:.4g} where {other_g}), but the "
                    f"gradient is {wanted}",
                    {**details, "actual_mask": label_g, "actual_factors": fit},
                )
        return None
    return None


def _input_factor(a: np.ndarray, dout: np.ndarray, ctx: GradientContext, tol: Tolerance) -> str:
    """The name of an input ``x`` with ``a ≈ dout * x``, else ``""``."""
    for name, value in ctx.inputs.items():
        value = np.asarray(value)
        if (
            value.shape == a.shape
            and np.issubdtype(value.dtype, np.floating)
            and _close(a, dout * value, tol)
        ):
            return name
    return ""


def _two_factor_fit(
    a: np.ndarray, dout: np.ndarray, mask: np.ndarray, tol: Tolerance
) -> tuple[float, float] | None:
    """``(alpha, beta)`` with ``a ≈ dout * where(mask, alpha, beta)``, else None."""
    live = ~_negligible(dout, tol)
    on, off = mask & live, ~mask & live
    if on.sum() < 2 or off.sum() < 2:
        return None  # a factor fitted to one entry fits anything
    alpha = _snap(float(np.median(a[on] / dout[on])))
    beta = _snap(float(np.median(a[off] / dout[off])))
    return (alpha, beta) if _close(a, dout * np.where(mask, alpha, beta), tol) else None


def _factor_message(
    dname: str,
    label: str,
    other: str,
    expected: tuple[float, float],
    actual: tuple[float, float],
    wanted: str,
    tol: Tolerance,
) -> str:
    (a_t, b_t), (a_g, b_g) = expected, actual
    same_a, same_b = _same_factor(a_t, a_g, tol), _same_factor(b_t, b_g, tol)
    for same, side, factor_t, factor_g in ((same_a, other, b_t, b_g), (same_b, label, a_t, a_g)):
        if not same:
            continue
        mask_side = label if side == other else other
        if factor_t == 0.0:
            return (
                f"{dname} is nonzero where {side}: it passes {factor_g:.4g} × dout there, where the gradient is zero; "
                f"multiply dout by the mask ({mask_side})"
            )
        return (
            f"{dname} uses the factor {factor_g:.4g} where {side}, but the gradient has {factor_t:.4g} there "
            f"(e.g. a leaky relu's negative slope): fix the factor for {side}"
        )
    if (a_g, b_g) == (1.0, 1.0):
        return f"{dname} passes dout through unchanged, but the gradient is {wanted}"
    if _same_factor(a_g, b_t, tol) and _same_factor(b_g, a_t, tol):
        return f"{dname} uses the opposite mask: the gradient flows where {label}, not where {other}; use ({label})"
    return (
        f"{dname} = dout × ({a_g:.4g} where {label}, {b_g:.4g} where {other}), but the gradient is {wanted}"
    )


def _partitions(ctx: GradientContext, shape: tuple[int, ...]) -> list[tuple[str, str, np.ndarray]]:
    """``(label, complement label, mask)`` for comparisons of same-shape float inputs with 0 and each other."""
    arrays = []
    for name, value in ctx.inputs.items():
        value = np.asarray(value)
        if value.shape == shape and np.issubdtype(value.dtype, np.floating) and np.isfinite(value).all():
            arrays.append((name, value))
    found: list[tuple[str, str, np.ndarray]] = []
    seen: set[bytes] = set()

    def add(label: str, other: str, mask: np.ndarray) -> None:
        if mask.all() or not mask.any() or mask.tobytes() in seen or (~mask).tobytes() in seen:
            return
        seen.add(mask.tobytes())
        found.append((label, other, mask))

    for name, value in arrays:
        add(f"{name} > 0", f"{name} <= 0", value > 0)
        add(f"{name} >= 0", f"{name} < 0", value >= 0)
    for (name_a, a), (name_b, b) in itertools.combinations(arrays, 2):
        add(f"{name_a} > {name_b}", f"{name_a} <= {name_b}", a > b)
        add(f"{name_a} >= {name_b}", f"{name_a} < {name_b}", a >= b)
    return found


# ---------------------------------------------------------------------------------------------
# Shapes


def _shape_only(actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext) -> Diagnosis:
    if actual == expected:
        return NO_DIAGNOSIS
    if math.prod(actual) == math.prod(expected) and _squeezed(actual) == _squeezed(expected):
        return _keepdims_diagnosis(actual, expected, ctx, values_known=False)
    if len(actual) >= 2 and sorted(actual) == sorted(expected):
        perms = [p for p in _permutations(len(actual)) if tuple(actual[i] for i in p) == expected]
        if perms:
            return _transposed_diagnosis(actual, expected, perms[0], ctx, values_known=False)
    candidates = list(_candidate_sum_axes(actual, expected, ctx, by_shape_only=True))
    if candidates:
        return _unreduced_diagnosis(actual, expected, candidates[0], ctx, values_known=False)
    return NO_DIAGNOSIS


def _candidate_sum_axes(
    actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext, *, by_shape_only: bool
) -> Iterator[tuple[int, ...]]:
    """Axes of ``actual`` whose sum leaves ``expected`` (up to size-1 axes); the broadcast axes first.

    With ``by_shape_only`` an ambiguous answer (``(M, M)`` against ``(M,)``) yields nothing unless the
    broadcast axes settle it.
    """
    target = _squeezed(expected)
    out_shape = _output_shape(ctx)
    known = broadcast_axes(ctx) if actual == out_shape else ()
    if known and _squeezed(tuple(s for i, s in enumerate(actual) if i not in known)) == target:
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
        if _squeezed(tuple(s for i, s in enumerate(actual) if i not in axes)) == target and axes != known
    ]
    if by_shape_only and len(fitting) != 1:
        return
    yield from fitting


def _keepdims_diagnosis(
    actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext, *, values_known: bool
) -> Diagnosis:
    head = f"{ctx.grad_name} has shape {actual} but {ctx.name} has shape {expected}: "
    head += (
        "the values are right, only size-1 axes differ; "
        if values_known
        else "they differ only by size-1 axes; "
    )
    fix = _size_one_fix(actual, expected, ctx)
    if _has_extra_size_one_axes(actual, expected):
        out_shape = _output_shape(ctx)
        if actual == out_shape and broadcast_axes(ctx):
            axes = broadcast_axes(ctx)
            fix += f"; if it is dout itself, sum over {_axes_text(axes)} ({_output_axis_names(ctx, axes)})"
    return Diagnosis("keepdims", head + fix, {"actual_shape": actual, "expected_shape": expected})


def _has_extra_size_one_axes(actual: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return len(actual) > len(expected) or (
        len(actual) == len(expected) and actual.count(1) > expected.count(1)
    )


def _size_one_fix(actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext) -> str:
    """What to do when only size-1 axes differ: drop the extra ones, or keep the missing ones."""
    if _has_extra_size_one_axes(actual, expected):
        return f"drop keepdims=True (or reshape to {ctx.name}.shape)"
    return f"keep the size-1 axes: sum with keepdims=True (or reshape to {tuple(expected)})"


def _unreduced_diagnosis(
    actual: tuple[int, ...],
    expected: tuple[int, ...],
    axes: tuple[int, ...],
    ctx: GradientContext,
    *,
    values_known: bool,
) -> Diagnosis:
    where = _axes_text(axes)
    keep = _keepdims_hint(actual, expected, axes)
    head = f"{ctx.grad_name} has shape {actual} but {ctx.name} has shape {expected}: "
    known = broadcast_axes(ctx) if actual == _output_shape(ctx) else ()
    names = _output_axis_names(ctx, axes) if known else _size_names(actual, axes, ctx.dims)
    if known and set(axes) <= set(known):
        text = f"{ctx.name} was broadcast over {where} of the output ({names}); sum the gradient over {where}{keep}"
    elif values_known:
        text = f"{ctx.grad_name} summed over {where} ({names}) is the right gradient; sum over {where}{keep}"
    else:
        text = f"{where} ({names}) was never summed; sum the gradient over {where}{keep}"
    return Diagnosis("unreduced_broadcast", head + text, {"axes": axes})


def _transposed_diagnosis(
    actual: tuple[int, ...],
    expected: tuple[int, ...],
    perm: tuple[int, ...],
    ctx: GradientContext,
    *,
    values_known: bool = True,
) -> Diagnosis:
    spec = _spec_text(ctx, expected)
    dname = ctx.grad_name
    verb = "is" if values_known else "looks"
    if len(expected) == 2:
        got = f"got {actual}"
        if actual == expected:
            syms = [str(s) for s in ctx.symbols] if len(ctx.symbols) == 2 else []
            equal = f"{syms[0]} == {syms[1]} = {expected[0]}" if syms else f"both sides are {expected[0]}"
            got = f"got its transpose (the shapes agree only because {equal})"
        return Diagnosis(
            "transposed",
            f"{dname} {verb} transposed: expected shape {spec}, {got}; compute it in the order of {ctx.name}'s axes "
            f"(e.g. swap the operands of the matrix product and their transposes) or return {dname}.T",
            {"axes": perm},
        )
    got = f"got {actual}"
    if actual == expected:
        got = (
            "got the same shape with the axes permuted (the shapes agree only because those sizes are equal)"
        )
    has = "has" if values_known else "seems to have"
    return Diagnosis(
        "transposed",
        f"{dname} {has} its axes in the wrong order: expected shape {spec}, {got}; "
        f"np.transpose({dname}, {perm}) has the right layout",
        {"axes": perm},
    )


# ---------------------------------------------------------------------------------------------
# Small pure pieces


def _close(a: np.ndarray, b: np.ndarray, tol: Tolerance) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and not mismatch_mask(a, b, tol).any()


def _negligible(a: np.ndarray, tol: Tolerance) -> np.ndarray:
    """True where ``a`` is zero within the tolerance's absolute bound."""
    return ~mismatch_mask(a, np.zeros_like(a), tol)


def _same_factor(a: float, b: float, tol: Tolerance) -> bool:
    return abs(a - b) <= _factor_rtol(tol) * max(abs(a), abs(b)) + 1e-12


def _factor_rtol(tol: Tolerance) -> float:
    return max(1e-6, 10 * tol.rtol)


def _snap(value: float) -> float:
    """Round a fitted factor to a short decimal when it is one (1, 0, 0.01), so messages read well."""
    for digits in range(7):
        rounded = round(value, digits)
        if abs(rounded - value) <= 1e-9 * max(1.0, abs(value)):
            return rounded + 0.0
    return value


def _squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in shape if s != 1)


def _right_aligned(param: Sequence, out: Sequence) -> tuple[int, ...] | None:
    """numpy broadcasting of ``param`` against ``out`` (sizes or symbols): the axes it was repeated over."""
    if len(param) > len(out):
        return None
    lead = len(out) - len(param)
    axes = list(range(lead))
    for i, p in enumerate(param):
        o = out[lead + i]
        if p == o:
            continue
        if p != 1:
            return None
        axes.append(lead + i)
    return tuple(axes)


def _output_shape(ctx: GradientContext) -> tuple[int, ...] | None:
    if ctx.output_shapes:
        return tuple(int(s) for s in ctx.output_shapes[0])
    if ctx.douts:
        return tuple(np.shape(ctx.douts[0]))
    return None


def _dout_reductions(dout: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """What people return instead of the right sum: dout itself, other sums, means, one slice."""
    yield "dout itself", dout
    subsets = [s for r in range(1, dout.ndim + 1) for s in itertools.combinations(range(dout.ndim), r)]
    for verb, reduce in (("summed", np.sum), ("averaged", np.mean)):
        for axes in subsets:
            where = "all axes" if len(axes) == dout.ndim and dout.ndim > 1 else _axes_text(axes)
            yield f"dout {verb} over {where}", reduce(dout, axis=axes)
            yield f"dout {verb} over {where} with keepdims=True", reduce(dout, axis=axes, keepdims=True)
    for axis in range(dout.ndim):
        for index in (0, -1):
            yield f"dout[{':, ' * axis}{index}]", np.take(dout, index, axis=axis)


def _permutations(ndim: int) -> list[tuple[int, ...]]:
    """Axis orders to try: all of them up to 4 axes, else swaps of the last two and the full reversal."""
    identity = tuple(range(ndim))
    if ndim < 2:
        return []
    if ndim <= 4:
        return [p for p in itertools.permutations(identity) if p != identity]
    swap = (*identity[:-2], ndim - 1, ndim - 2)
    return [swap, identity[::-1]]


def _axes_text(axes: Sequence[int]) -> str:
    return f"axis {axes[0]}" if len(axes) == 1 else f"axes {tuple(axes)}"


def _keepdims_hint(actual: tuple[int, ...], expected: tuple[int, ...], axes: tuple[int, ...]) -> str:
    without = tuple(s for i, s in enumerate(actual) if i not in axes)
    if without == tuple(expected):
        return ""
    with_kept = tuple(1 if i in axes else s for i, s in enumerate(actual))
    if with_kept == tuple(expected):
        return " with keepdims=True"
    return f" and reshape to {tuple(expected)}"


def _output_axis_symbols(ctx: GradientContext, axes: Sequence[int]) -> list[tuple[str | None, int]]:
    """``(symbol, size)`` of output axes: the spec's symbol when known, else the only dim of that size."""
    out_shape = _output_shape(ctx) or ()
    osym = tuple(ctx.output_symbols)
    found = []
    for a in axes:
        size = int(out_shape[a])
        if len(osym) == len(out_shape) and isinstance(osym[a], str):
            found.append((osym[a], size))
        else:
            found.append((_size_symbol(size, ctx.dims), size))
    return found


def _output_axis_names(ctx: GradientContext, axes: Sequence[int]) -> str:
    """``"N=4"`` (or ``"size 4"``) for each axis of the output."""
    return ", ".join(f"{s}={n}" if s else f"size {n}" for s, n in _output_axis_symbols(ctx, axes))


def _product_symbol(ctx: GradientContext, axes: Sequence[int]) -> str:
    return "*".join(s or str(n) for s, n in _output_axis_symbols(ctx, axes))


def _size_names(shape: tuple[int, ...], axes: Sequence[int], dims: dict[str, int]) -> str:
    names = []
    for a in axes:
        symbol = _size_symbol(shape[a], dims)
        names.append(f"{symbol}={shape[a]}" if symbol else f"size {shape[a]}")
    return ", ".join(names)


def _size_symbol(size: int, dims: dict[str, int]) -> str | None:
    matching = [k for k, v in dims.items() if v == size]
    return matching[0] if len(matching) == 1 else None


def _spec_text(ctx: GradientContext, shape: tuple[int, ...]) -> str:
    if len(ctx.symbols) == len(shape) and any(isinstance(s, str) for s in ctx.symbols):
        inner = ", ".join(str(s) for s in ctx.symbols)
        return f"({inner}{',' if len(shape) == 1 else ''}) = {shape}"
    return str(shape)


def _axis_word(ndim: int, axis: int, ctx: GradientContext) -> str:
    symbol = ""
    if len(ctx.symbols) == ndim and isinstance(ctx.symbols[axis], str):
        symbol = f", {ctx.symbols[axis]}"
    if ndim == 1:
        return f"entries (axis 0{symbol})"
    if ndim == 2 and axis < 2:
        return f"{('rows', 'columns')[axis]} (axis {axis}{symbol})"
    return f"indices (axis {axis}{symbol})"


def _cut(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:_MAX_LISTED])
    return f"[{shown}{', ...' if len(indices) > _MAX_LISTED else ''}]"


def _scale_name(c: float, dims: dict[str, int], tol: Tolerance) -> tuple[list[str], bool, str]:
    """Names for a factor ``c > 0``: dims, products of dims or 2 it equals (``inverse`` when it is one over them).

    Returns ``(["N"], True, " (N=4)")`` for ``c = 0.25`` with ``N=4``; ``([], False, "")`` when none fits.
    The simplest names win; equal values give every name (``N=2`` and ``2``).
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
    rtol = _factor_rtol(tol)
    for inverse in (False, True):
        for level in levels:
            hits = [(n, u) for n, v, u in level if abs(c - (1.0 / v if inverse else v)) <= rtol * c]
            if hits:
                used = {k: v for _, u in hits for k, v in u.items()}
                values = " (" + ", ".join(f"{k}={v}" for k, v in used.items()) + ")" if used else ""
                return [n for n, _ in hits], inverse, values
    return [], False, ""
