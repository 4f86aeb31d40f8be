"""Diagnoses of composite gradients: a term of a sum that is missing or counted twice.

Two rules (``rule(g, t, ctx, tol) -> Diagnosis | None``, ``g`` the user's gradient, ``t`` the right
one, both of the same shape), run by the engine after the one-mistake rules and before ``partial``:

- ``regularization``: ``g - t = c × p`` where ``p`` is the parameter itself (``ctx.inputs[ctx.name]``):
  a weight-decay term missing (``c = -reg``) or added twice (``c = +reg``);
- ``missing_path``: ``g - t`` is the same along an axis of size > 1 (every row of ``dx`` off by the
  same vector): the path through a mean (or sum) over that axis is missing.

Both explain *all* of the mismatch or return ``None``, and leave to the existing rules what those
explain (``zero``, ``scaled``, ``sign_flipped``): an error that is a multiple of ``t`` is not
evidence of a missing term. They belong after ``wrong_mask`` and before ``partial``.
"""

from __future__ import annotations

import math

import numpy as np

from checker.compare import Tolerance, mismatch_mask
from checker.diagnose.context import Diagnosis, GradientContext

__all__ = ["COMPOSITE_CODES", "missing_path", "regularization"]

COMPOSITE_CODES = ("regularization", "missing_path")


def _close(a: np.ndarray, b: np.ndarray, tol: Tolerance) -> bool:
    return a.shape == b.shape and not mismatch_mask(a, b, tol).any()


def _negligible(a: np.ndarray, tol: Tolerance) -> np.ndarray:
    return ~mismatch_mask(a, np.zeros_like(a), tol)


def _explained_by_existing_rules(g: np.ndarray, t: np.ndarray, tol: Tolerance) -> bool:
    """``g`` is zero, or a multiple of ``t`` (``scaled``, ``sign_flipped``)."""
    if _negligible(g, tol).all():
        return True
    tt = float(np.vdot(t, t))
    return tt > 0 and math.isfinite(tt) and _close(g, (float(np.vdot(g, t)) / tt) * t, tol)


def regularization(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """``g - t`` is ``c`` times the parameter itself: the gradient of ``0.5 * reg * ||p||^2`` is missing or doubled."""
    p = ctx.inputs.get(ctx.name)
    if p is None or g.shape != t.shape:
        return None
    p = np.asarray(p, dtype=np.float64)
    if p.shape != t.shape or not np.isfinite(p).all() or _close(g, t, tol):
        return None
    if int((~_negligible(p, tol)).sum()) < 2:
        return None  # a scalar (or one entry) is a multiple of anything
    e = g - t
    c = float(np.vdot(e, p)) / float(np.vdot(p, p))
    if not math.isfinite(c) or c == 0.0 or not _close(g, t + c * p, tol):
        return None
    if _explained_by_existing_rules(g, t, tol):
        return None
    name, dname = ctx.name, ctx.grad_name
    term = f"0.5·reg·‖{name}‖² gives reg·{name}"
    if c < 0:
        why = f"the gradient of the regularization term is missing ({term})"
    else:
        why = f"the gradient of the regularization term is counted twice ({term}, once)"
    return Diagnosis(
        "regularization",
        f"{dname} differs from the right gradient by exactly {c:.4g} × {name}: {why}",
        {"scale": c},
    )


def _axis_symbol(ctx: GradientContext, axis: int, size: int, ndim: int) -> str:
    symbols = tuple(ctx.symbols)
    if len(symbols) == ndim and isinstance(symbols[axis], str):
        return symbols[axis]
    matching = [k for k, v in ctx.dims.items() if v == size]
    return matching[0] if len(matching) == 1 else f"size {size}"


def _what(ndim: int, axes: tuple[int, ...]) -> str:
    if ndim == 1:
        return "entry"
    if ndim == 2 and len(axes) == 1:
        return ("row", "column")[axes[0]]
    if len(axes) == ndim:
        return "entry"
    return "slice along " + (f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}")


def _reductions_of_own_value(ctx: GradientContext, axes: tuple[int, ...]) -> list[str]:
    """Other arrays of the context that are the mean or the sum of the parameter over ``axes`` (``mu``
    for ``x``): the paths the missing term could come through."""
    own = ctx.inputs.get(ctx.name)
    if own is None:
        return []
    own = np.asarray(own, dtype=np.float64)
    if own.ndim == 0 or any(a >= own.ndim for a in axes):
        return []
    reduced = [own.mean(axis=axes), own.sum(axis=axes)]
    found = []
    for name, value in ctx.inputs.items():
        value = np.asarray(value)
        if name == ctx.name or value.dtype.kind != "f":
            continue
        for candidate in reduced:
            same_size = value.size == candidate.size and value.size > 0
            if same_size and np.allclose(value.reshape(candidate.shape), candidate, rtol=1e-9, atol=1e-12):
                found.append(name)
                break
    return found


def _spread(offset: np.ndarray, t: np.ndarray, tol: Tolerance) -> bool:
    """The repeated error reaches most slices: an error confined to one row is ``partial``, not a path."""
    scale = max(1.0, float(np.max(np.abs(t)))) if t.size else 1.0
    off = np.abs(offset) > tol.atol * scale + tol.rtol * np.abs(offset).max()
    return int(off.sum()) >= max(2, off.size // 2) or (off.size == 1 and bool(off.all()))


def missing_path(g: np.ndarray, t: np.ndarray, ctx: GradientContext, tol: Tolerance) -> Diagnosis | None:
    """``g - t`` is constant along one or more axes (of size > 1) along which ``t`` is not."""
    if g.shape != t.shape or g.ndim == 0 or _close(g, t, tol):
        return None
    e = g - t
    axes = tuple(
        axis
        for axis in range(g.ndim)
        if g.shape[axis] >= 2
        and _close(g, t + e.mean(axis=axis, keepdims=True), tol)
        and not _close(t, np.broadcast_to(t.mean(axis=axis, keepdims=True), t.shape), tol)
        and _spread(e.mean(axis=axis, keepdims=True), t, tol)
    )
    if not axes or _explained_by_existing_rules(g, t, tol):
        return None
    dname = ctx.grad_name
    where = f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"
    symbols = ", ".join(_axis_symbol(ctx, a, g.shape[a], g.ndim) for a in axes)
    examples = _reductions_of_own_value(ctx, axes)
    example = f" (for example through {' or '.join(examples[:2])})" if examples else ""
    return Diagnosis(
        "missing_path",
        f"the error in {dname} is the same in every {_what(g.ndim, axes)} (constant along {where}, {symbols}): "
        f"a path through a mean over {where} is missing{example}",
        {"axes": axes, "through": tuple(examples)},
    )
