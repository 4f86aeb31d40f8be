"""What a diagnosis rule may know: the codes, the records, a gradient's context, the shapes of its axes.

The bottom of the package: it imports nothing from the rules, the wording or the drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from checker.compare import Tolerance
from checker.presentation.words import gradient_name

#: Every diagnosis code of the harness; the last five are given by other checks, not by this package.
CODES = (
    "unreduced_broadcast",
    "mean_instead_of_sum",
    "keepdims",
    "transposed",
    "scaled",
    "sign_flipped",
    "zero",
    "wrong_mask",
    "regularization",
    "missing_path",
    "partial",
    "nonfinite",
    "forward_mismatch",
    "mutates_input",
    "stateful",
    "shape_dependent",
)


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
        return gradient_name(self.name)


#: A rule: ``(G, T, context, tolerance)`` -> a Diagnosis that explains *all* of the mismatch, or None.
Rule = Callable[[np.ndarray, np.ndarray, GradientContext, Tolerance], Diagnosis | None]


def broadcast_axes(context: GradientContext) -> tuple[int, ...]:
    """Axes of the first output over which the parameter was broadcast; ``()`` when it was not.

    Symbols decide when both specs are known (numpy's right alignment, else by name so that a conv
    bias ``(F,)`` against ``(N, F, H, W)`` gives ``(0, 2, 3)``); otherwise numpy's rule on the shapes.
    A parameter with an axis the output lacks (``w (D, M)`` against ``(N, M)``) was not broadcast.
    """
    out_shape = output_shape(context)
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


def output_shape(ctx: GradientContext) -> tuple[int, ...] | None:
    """The first forward output's shape (else dout's); None when neither is known."""
    if ctx.output_shapes:
        return tuple(int(s) for s in ctx.output_shapes[0])
    if ctx.douts:
        return tuple(np.shape(ctx.douts[0]))
    return None


def squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` without its size-1 axes."""
    return tuple(int(s) for s in shape if s != 1)


def has_extra_size_one_axes(actual: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """``actual`` has size-1 axes ``expected`` lacks (rather than lacking some it has)."""
    return len(actual) > len(expected) or (
        len(actual) == len(expected) and actual.count(1) > expected.count(1)
    )


def output_axis_symbols(ctx: GradientContext, axes: Sequence[int]) -> list[tuple[str | None, int]]:
    """``(symbol, size)`` of output axes: the spec's symbol when known, else the only dim of that size."""
    out_shape = output_shape(ctx) or ()
    osym = tuple(ctx.output_symbols)
    found = []
    for a in axes:
        size = int(out_shape[a])
        if len(osym) == len(out_shape) and isinstance(osym[a], str):
            found.append((osym[a], size))
        else:
            found.append((size_symbol(size, ctx.dims), size))
    return found


def size_symbol(size: int, dims: dict[str, int]) -> str | None:
    """The symbol whose value is ``size`` when exactly one has it."""
    matching = [k for k, v in dims.items() if v == size]
    return matching[0] if len(matching) == 1 else None


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
