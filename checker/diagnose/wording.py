"""Every text a diagnosis gives: one function per message, so the phrasing lives in one place.

The rules decide *what* is wrong and pass the facts (shapes, axes, factors, counts); these functions
only spell them. Names come from the user's own spec: ``db``, ``N=4``, ``(D, M) = (3, 4)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from checker.compare import Comparison
from checker.diagnose.context import (
    GradientContext,
    broadcast_axes,
    has_extra_size_one_axes,
    output_axis_symbols,
    output_shape,
    size_symbol,
)
from checker.presentation.words import mismatch_text

_MAX_LISTED = 8  # indices named in a message before it is cut short with "..."

#: The label of a gradient that is dout returned unchanged.
DOUT_ITSELF = "dout itself"


# ---------------------------------------------------------------------------------------------
# The drivers: no rule explains the mismatch, or it is explained besides a wrong shape


def unexplained(dname: str, c: Comparison) -> str:
    """numpy.testing's summary of a mismatch no rule explains."""
    return f"{dname} differs from the oracle: {mismatch_text(c)}"


def wrong_shape(ctx: GradientContext, actual: tuple[int, ...], expected: tuple[int, ...]) -> str:
    return f"{ctx.grad_name} has shape {actual} but {ctx.name} has shape {expected}"


def size_one_axes_and_values(
    ctx: GradientContext, actual: tuple[int, ...], expected: tuple[int, ...], values_message: str
) -> str:
    """Only size-1 axes differ, and the values (judged as if the shape were right) are wrong too."""
    fix = size_one_fix(actual, expected, ctx)
    return f"{wrong_shape(ctx, actual, expected)} ({fix}); besides, {values_message}"


def shape_and_values(shape_message: str) -> str:
    return f"{shape_message}; even so, the values differ from the oracle"


def wrong_shape_unexplained(ctx: GradientContext, actual: tuple[int, ...], expected: tuple[int, ...]) -> str:
    return f"{wrong_shape(ctx, actual, expected)}: the gradient must have the shape of {ctx.name}"


# ---------------------------------------------------------------------------------------------
# Shape rules: keepdims, unreduced_broadcast, transposed


def keepdims(
    actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext, *, values_known: bool
) -> str:
    found = (
        "the values are right, only size-1 axes differ" if values_known else "they differ only by size-1 axes"
    )
    head = f"{wrong_shape(ctx, actual, expected)}: {found}; "
    fix = size_one_fix(actual, expected, ctx)
    if has_extra_size_one_axes(actual, expected):
        out_shape = output_shape(ctx)
        if actual == out_shape and broadcast_axes(ctx):
            axes = broadcast_axes(ctx)
            fix += f"; if it is dout itself, sum over {axes_text(axes)} ({output_axis_names(ctx, axes)})"
    return head + fix


def size_one_fix(actual: tuple[int, ...], expected: tuple[int, ...], ctx: GradientContext) -> str:
    """What to do when only size-1 axes differ: drop the extra ones, or keep the missing ones."""
    if has_extra_size_one_axes(actual, expected):
        return f"drop keepdims=True (or reshape to {ctx.name}.shape)"
    return f"keep the size-1 axes: sum with keepdims=True (or reshape to {tuple(expected)})"


def unreduced(
    actual: tuple[int, ...],
    expected: tuple[int, ...],
    axes: tuple[int, ...],
    ctx: GradientContext,
    *,
    values_known: bool,
) -> str:
    where = axes_text(axes)
    keep = keepdims_hint(actual, expected, axes)
    head = f"{wrong_shape(ctx, actual, expected)}: "
    known = broadcast_axes(ctx) if actual == output_shape(ctx) else ()
    names = output_axis_names(ctx, axes) if known else _size_names(actual, axes, ctx.dims)
    if known and set(axes) <= set(known):
        text = f"{ctx.name} was broadcast over {where} of the output ({names}); sum the gradient over {where}{keep}"
    elif values_known:
        text = f"{ctx.grad_name} summed over {where} ({names}) is the right gradient; sum over {where}{keep}"
    else:
        text = f"{where} ({names}) was never summed; sum the gradient over {where}{keep}"
    return head + text


def transposed(
    actual: tuple[int, ...],
    expected: tuple[int, ...],
    perm: tuple[int, ...],
    ctx: GradientContext,
    *,
    values_known: bool,
) -> str:
    spec = _spec_text(ctx, expected)
    dname = ctx.grad_name
    verb = "is" if values_known else "looks"
    if len(expected) == 2:
        got = f"got {actual}"
        if actual == expected:
            syms = [str(s) for s in ctx.symbols] if len(ctx.symbols) == 2 else []
            equal = f"{syms[0]} == {syms[1]} = {expected[0]}" if syms else f"both sides are {expected[0]}"
            got = f"got its transpose (the shapes agree only because {equal})"
        return (
            f"{dname} {verb} transposed: expected shape {spec}, {got}; compute it in the order of {ctx.name}'s axes "
            f"(e.g. swap the operands of the matrix product and their transposes) or return {dname}.T"
        )
    got = f"got {actual}"
    if actual == expected:
        got = (
            "got the same shape with the axes permuted (the shapes agree only because those sizes are equal)"
        )
    has = "has" if values_known else "seems to have"
    return (
        f"{dname} {has} its axes in the wrong order: expected shape {spec}, {got}; "
        f"np.transpose({dname}, {perm}) has the right layout"
    )


# ---------------------------------------------------------------------------------------------
# Value rules: nonfinite, zero, mean_instead_of_sum, another reduction of dout, scaled, partial


def nonfinite(dname: str, nan: int, inf: int, size: int, first: tuple[int, ...]) -> str:
    return (
        f"{dname} has {nan} NaN and {inf} inf entries out of {size} (the first at index {first}) "
        "where the oracle's gradient is finite: look for a division by zero, a log of 0 or an overflowing exp"
    )


def zero(dname: str, largest: float) -> str:
    return (
        f"{dname} is zero everywhere, but the oracle's gradient is not (its largest entry is "
        f"{largest:.3g} in size): check that every term reaches {dname} (a mask that blocks every "
        "entry, a missing term, or an array that is never filled in all give zeros)"
    )


def mean_instead_of_sum(ctx: GradientContext, axes: tuple[int, ...], n: int) -> str:
    where = axes_text(axes)
    names = output_axis_names(ctx, axes)
    dname = ctx.grad_name
    return (
        f"{dname} = mean over {where} ({names}); the gradient of a broadcast parameter is the "
        f"SUM over {where}: sum instead of averaging ({dname} is {n} times too small)"
    )


def mean_over_batch(dname: str, symbol: str, n: int) -> str:
    return (
        f"{dname} = mean over the batch ({symbol}={n}) of each example's contribution; the gradient "
        f"of a bias shared by every example is the SUM over the batch: sum instead of averaging "
        f"({dname} is {n} times too small)"
    )


def dout_reduction(verb: str, axes: tuple[int, ...], ndim: int, *, keepdims: bool) -> str:
    """``"dout summed over axis 0 with keepdims=True"``: a reduction returned instead of the right sum."""
    where = "all axes" if len(axes) == ndim and ndim > 1 else axes_text(axes)
    return f"dout {verb} over {where}" + (" with keepdims=True" if keepdims else "")


def dout_slice(axis: int, index: int) -> str:
    """``"dout[:, 0]"``: one slice of dout returned instead of the right sum."""
    return f"dout[{':, ' * axis}{index}]"


def other_dout_reduction(
    ctx: GradientContext,
    found: str,
    axes: tuple[int, ...],
    dout_shape: tuple[int, ...],
    expected: tuple[int, ...],
) -> str:
    where = axes_text(axes)
    keep = keepdims_hint(dout_shape, expected, axes)
    return (
        f"{ctx.grad_name} equals {found}, but {ctx.name} was broadcast over {where} "
        f"({output_axis_names(ctx, axes)}): sum dout over {where}{keep}"
    )


def sign_flipped(dname: str) -> str:
    return (
        f"{dname} has the wrong sign: it equals -1 × the oracle's gradient; negate it "
        "(check the sign of each term, e.g. a derivative of -log p, or a subtraction written the wrong way round)"
    )


def dim_values(used: dict[str, int]) -> str:
    """`` (N=4, D=3)``: the sizes of the dims a factor was named for; ``""`` for none."""
    return " (" + ", ".join(f"{k}={v}" for k, v in used.items()) + ")" if used else ""


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


def partial(
    ctx: GradientContext, shape: tuple[int, ...], wrong_by_axis: Sequence[list[int]], k: int, n: int
) -> str:
    """Wrong at ``k`` of ``n`` entries; ``wrong_by_axis`` the indices along each axis that hold them."""
    places = [
        f"{_axis_word(len(shape), axis, ctx)} {_cut(where)} of {size}"
        for axis, (where, size) in enumerate(zip(wrong_by_axis, shape, strict=True))
        if len(where) < size
    ]
    where_text = (
        "; wrong entries lie in " + ", ".join(places) if places else ", spread over every row and column"
    )
    return (
        f"{ctx.grad_name} is wrong at {k} / {n} entries ({100 * k / n:.3g}%) and right elsewhere{where_text}"
    )


# ---------------------------------------------------------------------------------------------
# Mask rules: the gradient follows the wrong side of a comparison of inputs


def comparisons(left: str, right: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """``(("x > 0", "x <= 0"), ("x >= 0", "x < 0"))``: the labels of a partition and its complement."""
    return (f"{left} > {right}", f"{left} <= {right}"), (f"{left} >= {right}", f"{left} < {right}")


def factor_not_applied(ctx: GradientContext, factor: str) -> str:
    dname = ctx.grad_name
    return (
        f"{dname} equals dout, but the forward multiplied {ctx.name} by {factor}: "
        f"the gradient must be multiplied by {factor} too ({dname} = dout * {factor})"
    )


def extra_input_factor(dname: str, factor: str) -> str:
    return (
        f"{dname} is the right mask times {factor}: where the mask is on, the gradient passes "
        f"dout through unchanged, it is not multiplied by {factor}"
    )


def mask_not_applied(dname: str, label: str, mask: str, k: int, n: int) -> str:
    return (
        f"{dname} is nonzero where {label} ({k} / {n} entries), where the gradient is zero; it is right "
        f"elsewhere: apply the mask ({mask})"
    )


def nonzero_where_zero(dname: str, k: int, n: int) -> str:
    return (
        f"{dname} is nonzero at {k} / {n} entries where the oracle's gradient is zero, and right elsewhere: "
        "the gradient must reach only the entries the forward selected (e.g. the max of each pooling "
        "window, or where the mask is on)"
    )


def misrouted(dname: str, moved: int, k: int, n: int) -> str:
    return (
        f"{dname} has the right values at the wrong entries: {moved} values sit where the gradient "
        f"is zero and their own entries get 0 ({k} / {n} entries wrong, the rest is right): route each value "
        "to the entry the forward selected (e.g. the max of each pooling window)"
    )


def branch_missing(dname: str, label: str, k: int, n: int) -> str:
    return (
        f"{dname} is zero where {label} ({k} / {n} entries), but the gradient is not; it is right elsewhere: "
        f"the branch for {label} is missing"
    )


def branch_factor(dname: str, ratio: float, label: str, k: int, n: int) -> str:
    return (
        f"{dname} = {ratio:.4g} × the oracle's gradient where {label} ({k} / {n} entries) and right elsewhere: "
        f"the factor (e.g. a leaky relu's negative slope) for {label} is wrong"
    )


def branch_wrong(dname: str, label: str, k: int, n: int) -> str:
    return f"{dname} is wrong exactly where {label} ({k} / {n} entries) and right elsewhere: check the branch for {label}"


def masked_gradient(input_factor: str, label: str, other: str, factors: tuple[float, float]) -> str:
    """The right gradient of a layer whose oracle is ``dout * where(label, a, b)``, as the user would write it."""
    if input_factor:  # dropout: the gradient is dout * mask
        return f"dout * {input_factor}"
    if factors == (1.0, 0.0):
        return f"dout * ({label})"
    return _two_factors(factors, label, other)


def multiplied_by_input(dname: str, multiplied: str, label: str, wanted: str, *, is_mask: bool) -> str:
    if is_mask:
        return f"{dname} multiplies dout by {multiplied} instead of by the mask ({label}): use {wanted}"
    return f"{dname} = dout * {multiplied}, but the gradient is {wanted}"


def two_factors(dname: str, factors: tuple[float, float], label: str, other: str, wanted: str) -> str:
    return f"{dname} = {_two_factors(factors, label, other)}, but the gradient is {wanted}"


def wrong_factor_on_side(dname: str, side: str, mask_side: str, factor_t: float, factor_g: float) -> str:
    """Right on one side of the comparison, a wrong factor on ``side`` (where the gradient has ``factor_t``)."""
    if factor_t == 0.0:
        return (
            f"{dname} is nonzero where {side}: it passes {factor_g:.4g} × dout there, where the gradient is zero; "
            f"multiply dout by the mask ({mask_side})"
        )
    return (
        f"{dname} uses the factor {factor_g:.4g} where {side}, but the gradient has {factor_t:.4g} there "
        f"(e.g. a leaky relu's negative slope): fix the factor for {side}"
    )


def passes_dout_unchanged(dname: str, wanted: str) -> str:
    return f"{dname} passes dout through unchanged, but the gradient is {wanted}"


def opposite_mask(dname: str, label: str, other: str) -> str:
    return (
        f"{dname} uses the opposite mask: the gradient flows where {label}, not where {other}; use ({label})"
    )


# ---------------------------------------------------------------------------------------------
# Names of axes, sizes and shapes


def axes_text(axes: Sequence[int]) -> str:
    return f"axis {axes[0]}" if len(axes) == 1 else f"axes {tuple(axes)}"


def keepdims_hint(actual: tuple[int, ...], expected: tuple[int, ...], axes: tuple[int, ...]) -> str:
    """How the sum over ``axes`` of ``actual`` reaches ``expected``: as is, with keepdims, or reshaped."""
    without = tuple(s for i, s in enumerate(actual) if i not in axes)
    if without == tuple(expected):
        return ""
    with_kept = tuple(1 if i in axes else s for i, s in enumerate(actual))
    if with_kept == tuple(expected):
        return " with keepdims=True"
    return f" and reshape to {tuple(expected)}"


def output_axis_names(ctx: GradientContext, axes: Sequence[int]) -> str:
    """``"N=4"`` (or ``"size 4"``) for each axis of the output."""
    return ", ".join(f"{s}={n}" if s else f"size {n}" for s, n in output_axis_symbols(ctx, axes))


def product_symbol(ctx: GradientContext, axes: Sequence[int]) -> str:
    """``"N*H"``: the product of the output's sizes over ``axes``, by symbol where known."""
    return "*".join(s or str(n) for s, n in output_axis_symbols(ctx, axes))


def _two_factors(factors: tuple[float, float], label: str, other: str) -> str:
    return f"dout × ({factors[0]:.4g} where {label}, {factors[1]:.4g} where {other})"


def _size_names(shape: tuple[int, ...], axes: Sequence[int], dims: dict[str, int]) -> str:
    names = []
    for a in axes:
        symbol = size_symbol(shape[a], dims)
        names.append(f"{symbol}={shape[a]}" if symbol else f"size {shape[a]}")
    return ", ".join(names)


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
