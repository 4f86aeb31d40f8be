"""The wrong_mask family (relu, leaky relu, max-pool, dropout): the mismatch follows what the forward selected.

The entries are split by comparisons of the inputs with 0 and with each other (``x > 0``,
``a >= b``); a mistake is named when it lies exactly on one side of such a comparison, or when the
gradient is dout times the wrong factor on a side, or the right values sit at the wrong entries.
"""

from __future__ import annotations

import itertools

import numpy as np

from checker.compare import Tolerance, mismatch_mask
from checker.diagnose import wording
from checker.diagnose.agreement import close, negligible, same_factor
from checker.diagnose.context import Diagnosis, GradientContext

#: ``(label, complement label, mask)``: one side of a comparison of inputs, ``("x > 0", "x <= 0", x > 0)``
Partition = tuple[str, str, np.ndarray]


def wrong_mask(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
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
    t_zero = negligible(t, tol)
    # The entries that match must include nonzero ones: matching where both are zero proves nothing.
    if not (~wrong & ~t_zero).any():
        return None
    g_zero = negligible(g, tol)
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
                wording.mask_not_applied(dname, label, other, k, n),
                {"where": label, "mask": other, "fraction": k / n},
            )
        return Diagnosis("wrong_mask", wording.nonzero_where_zero(dname, k, n), {"fraction": k / n})
    moved = wrong & ~(g_zero ^ t_zero)  # wrong entries where not exactly one of the two is zero
    if not moved.any() and (wrong & ~g_zero).sum() >= 2:
        # Every wrong entry is zero on one side; if the values agree as a multiset, they were misrouted.
        values_g, values_t = np.sort(g[wrong & ~g_zero]), np.sort(t[wrong & ~t_zero])
        if values_g.shape == values_t.shape and close(values_g, values_t, tol):
            return Diagnosis(
                "wrong_mask",
                wording.misrouted(dname, values_g.size, k, n),
                {"fraction": k / n, "moved": int(values_g.size)},
            )
    if not explaining:
        return None
    label, _, mask = explaining[0]
    if g_zero[mask].all():
        return Diagnosis(
            "wrong_mask",
            wording.branch_missing(dname, label, k, n),
            {"where": label, "ratio": 0.0, "fraction": k / n},
        )
    scored = wrong & ~t_zero
    ratio = float(np.median(g[scored] / t[scored]))
    if close(g[mask], ratio * t[mask], tol):
        return Diagnosis(
            "wrong_mask",
            wording.branch_factor(dname, ratio, label, k, n),
            {"where": label, "ratio": ratio, "fraction": k / n},
        )
    return Diagnosis(
        "wrong_mask", wording.branch_wrong(dname, label, k, n), {"where": label, "fraction": k / n}
    )


def _factor_not_applied(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """``dx = dout`` where the forward multiplied by an input (a dropout mask): the factor is missing."""
    if not ctx.douts or ctx.douts[0].shape != g.shape or not close(g, ctx.douts[0], tol):
        return None
    for other, value in ctx.inputs.items():
        if other == ctx.name or np.shape(value) != g.shape:
            continue
        factor = np.asarray(value, dtype=np.float64)
        if not np.allclose(factor, 1.0) and close(t, ctx.douts[0] * factor, tol):
            return Diagnosis("wrong_mask", wording.factor_not_applied(ctx, other), {"mask": other})
    return None


def _extra_input_factor(
    g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance
) -> Diagnosis | None:
    """``dx = dout * x * (x > 0)``: the mask is right but the gradient also carries the input as a factor."""
    masked = negligible(t, tol)
    if not masked.any() or masked.all():
        return None
    for other, value in ctx.inputs.items():
        factor = np.asarray(value, dtype=np.float64)
        if factor.shape != g.shape or np.allclose(factor, 1.0):
            continue
        if close(g, t * factor, tol):
            return Diagnosis(
                "wrong_mask", wording.extra_input_factor(ctx.grad_name, other), {"factor": other}
            )
    return None


# ---------------------------------------------------------------------------------------------
# dout times a factor that is constant on each side of a comparison


def _mask_factor_rule(
    g: np.ndarray,
    t: np.ndarray,
    ctx: GradientContext,
    tol: Tolerance,
    partitions: list[Partition],
) -> Diagnosis | None:
    """Layer style: the oracle is ``dout * where(x > 0, a, b)``; say what the user multiplied dout by."""
    if not ctx.douts or np.shape(ctx.douts[0]) != t.shape or not partitions:
        return None
    dout = np.asarray(ctx.douts[0], dtype=np.float64)
    dname = ctx.grad_name
    for label, other, mask in partitions:
        expected = _two_factor_fit(t, dout, mask, tol)
        if expected is None or same_factor(*expected, tol):
            continue
        is_mask = expected == (1.0, 0.0)
        wanted = wording.masked_gradient(_input_factor(t, dout, ctx, tol), label, other, expected)
        details = {"mask": label, "expected_factors": expected}
        multiplied = _input_factor(g, dout, ctx, tol)
        if multiplied:
            message = wording.multiplied_by_input(dname, multiplied, label, wanted, is_mask=is_mask)
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
            if fit is not None and not same_factor(*fit, tol):
                return Diagnosis(
                    "wrong_mask",
                    wording.two_factors(dname, fit, label_g, other_g, wanted),
                    {**details, "actual_mask": label_g, "actual_factors": fit},
                )
        return None
    return None


def _input_factor(a: np.ndarray, dout: np.ndarray, ctx: GradientContext, tol: Tolerance) -> str:
    """The name of an input ``x`` with ``a ≈ dout * x``, else ``""``."""
    for name, value in ctx.inputs.items():
        value = np.asarray(value)
        if value.shape == a.shape and np.issubdtype(value.dtype, np.floating) and close(a, dout * value, tol):
            return name
    return ""


def _two_factor_fit(
    a: np.ndarray, dout: np.ndarray, mask: np.ndarray, tol: Tolerance
) -> tuple[float, float] | None:
    """``(alpha, beta)`` with ``a ≈ dout * where(mask, alpha, beta)``, else None."""
    live = ~negligible(dout, tol)
    on, off = mask & live, ~mask & live
    if on.sum() < 2 or off.sum() < 2:
        return None  # a factor fitted to one entry fits anything
    alpha = _snap(float(np.median(a[on] / dout[on])))
    beta = _snap(float(np.median(a[off] / dout[off])))
    return (alpha, beta) if close(a, dout * np.where(mask, alpha, beta), tol) else None


def _factor_message(
    dname: str,
    label: str,
    other: str,
    expected: tuple[float, float],
    actual: tuple[float, float],
    wanted: str,
    tol: Tolerance,
) -> str:
    """Which of the user's two factors is wrong, or whether the mask is the opposite one."""
    (a_t, b_t), (a_g, b_g) = expected, actual
    same_a, same_b = same_factor(a_t, a_g, tol), same_factor(b_t, b_g, tol)
    for same, side, factor_t, factor_g in ((same_a, other, b_t, b_g), (same_b, label, a_t, a_g)):
        if same:
            mask_side = label if side == other else other
            return wording.wrong_factor_on_side(dname, side, mask_side, factor_t, factor_g)
    if (a_g, b_g) == (1.0, 1.0):
        return wording.passes_dout_unchanged(dname, wanted)
    if same_factor(a_g, b_t, tol) and same_factor(b_g, a_t, tol):
        return wording.opposite_mask(dname, label, other)
    return wording.two_factors(dname, actual, label, other, wanted)


def _snap(value: float) -> float:
    """Round a fitted factor to a short decimal when it is one (1, 0, 0.01), so messages read well."""
    for digits in range(7):
        rounded = round(value, digits)
        if abs(rounded - value) <= 1e-9 * max(1.0, abs(value)):
            return rounded + 0.0
    return value


def _partitions(ctx: GradientContext, shape: tuple[int, ...]) -> list[Partition]:
    """``(label, complement label, mask)`` for comparisons of same-shape float inputs with 0 and each other."""
    arrays = []
    for name, value in ctx.inputs.items():
        value = np.asarray(value)
        if value.shape == shape and np.issubdtype(value.dtype, np.floating) and np.isfinite(value).all():
            arrays.append((name, value))
    found: list[Partition] = []
    seen: set[bytes] = set()

    def add(labels: tuple[str, str], mask: np.ndarray) -> None:
        if mask.all() or not mask.any() or mask.tobytes() in seen or (~mask).tobytes() in seen:
            return
        seen.add(mask.tobytes())
        found.append((*labels, mask))

    for name, value in arrays:
        strict, loose = wording.comparisons(name, "0")
        add(strict, value > 0)
        add(loose, value >= 0)
    for (name_a, a), (name_b, b) in itertools.combinations(arrays, 2):
        strict, loose = wording.comparisons(name_a, name_b)
        add(strict, a > b)
        add(loose, a >= b)
    return found
