"""A lint of the user's forward, read from its torch._numpy trace: the ``(m,)`` against ``(m, 1)`` trap.

``y_pred - y`` with ``y_pred: (5,)`` and ``y: (5, 1)`` is no error in numpy: it broadcasts into a
``(5, 5)`` matrix of every pair, and a loss over it is not the loss meant (a perfect prediction
gives a loss above 0). The gradients then disagree with the backward, which computed the loss meant,
and no backward code explains why. While autograd traces the forward, every elementwise operation
whose result is larger than each of its two largest operands (each was repeated along an axis it
lacked, or had with size 1) is recorded, unless one of those axes was made on purpose: by indexing
with ``None`` (``x[:, None]``), a reshape, ``expand_dims``, a ``keepdims`` reduction, or an
operation on an array made so. ``np.outer`` and a matrix product are not elementwise: never recorded.
"""

from __future__ import annotations

import contextlib
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ELEMENTWISE", "Broadcast", "BroadcastWatch"]

#: Elementwise torch functions of two operands (the names torch._numpy calls them by, and torch's).
ELEMENTWISE = frozenset(
    {
        "add", "subtract", "sub", "multiply", "mul", "divide", "div", "true_divide", "floor_divide",
        "power", "pow", "float_power", "maximum", "minimum", "fmax", "fmin", "hypot", "arctan2", "atan2",
        "logaddexp", "logaddexp2", "copysign", "remainder", "fmod", "heaviside", "where", "eq", "ne", "lt",
        "le", "gt", "ge", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
        "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
        "__pow__", "__rpow__",
    }
)  # fmt: skip
#: Operations whose result's size-1 or new axes are made on purpose.
_MAKES_AXES = frozenset(
    {"reshape", "view", "unsqueeze", "expand_dims", "atleast_2d", "atleast_3d", "expand", "broadcast_to"}
)
#: Operations that move axes: an axis made on purpose stays so.
_MOVES_AXES = frozenset({"transpose", "permute", "t", "movedim", "swapaxes", "swapdims", "moveaxis"})
_MARK = "_backprop_check_made_axes"
_HARNESS = str(Path(__file__).resolve().parents[1])
_LIBRARIES = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


@dataclass(frozen=True)
class Broadcast:
    """One elementwise operation of the forward that made every pair of two operands.

    ``names``: the user's input names of the operands (``""`` for an intermediate); ``function`` and
    ``line``: where in the user's code (``mse_loss``, ``mylosses.py:12``).
    """

    operation: str
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    result: tuple[int, ...]
    names: tuple[str, str] = ("", "")
    function: str = ""
    line: str = ""

    def message(self) -> str:
        """``mse_loss broadcasts y_pred (5,) with y (5, 1) into (5, 5) (mylosses.py:12): did you mean y.ravel()?``"""
        who = self.function or "the forward"
        (a, b), (na, nb) = self.shapes, self.names
        first = f"{na} {a}" if na else f"an array of shape {a}"
        second = f"{nb} {b}" if nb else f"one of shape {b}"
        where = f" ({self.line})" if self.line else ""
        return (
            f"{who} broadcasts {first} with {second} into {self.result}{where}: {self._fix()} "
            f"An elementwise {self.operation} of arrays of different shapes pairs every entry of one with "
            "every entry of the other; if that outer product is meant, make the new axis explicit (x[:, None])"
        )

    def _fix(self) -> str:
        for (shape, name), (other, _) in (
            ((self.shapes[1], self.names[1]), (self.shapes[0], self.names[0])),
            ((self.shapes[0], self.names[0]), (self.shapes[1], self.names[1])),
        ):
            if tuple(s for s in shape if s != 1) == tuple(s for s in other if s != 1) and len(shape) > len(
                other
            ):
                label = name or f"the {shape} one"
                return (
                    f"did you mean {label}.ravel()?"
                    if len(other) == 1
                    else f"did you mean {label}.reshape{other}?"
                )
        return "give both the same shape?"


class BroadcastWatch:
    """Watches the torch calls of one traced forward (from inside a TorchFunctionMode).

    ``names``: ``id`` of each input's tensor -> the user's input name.
    """

    def __init__(self, names: Mapping[int, str]) -> None:
        self.names = dict(names)
        self.found: list[Broadcast] = []

    def observe(self, func: Any, args: Sequence[Any], kwargs: Mapping[str, Any] | None, result: Any) -> None:
        import torch

        name = getattr(func, "__name__", "")
        if not isinstance(result, torch.Tensor):
            return
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if (
            (
                name in _MAKES_AXES
                or (name == "__getitem__" and _has_none(args[1:]))
                or (kwargs or {}).get("keepdim")
            )
            or (name in _MOVES_AXES and tensors and _marked(tensors[0]))
            or any(_marked(t) and tuple(t.shape) == tuple(result.shape) for t in tensors)
        ):
            _mark(result)
        if name in ELEMENTWISE:
            self._check(name, tensors, tuple(result.shape))

    def _check(self, name: str, tensors: list[Any], result: tuple[int, ...]) -> None:
        operands = sorted((t for t in tensors if t.dim() >= 1), key=lambda t: t.numel(), reverse=True)[:2]
        if len(operands) < 2:
            return
        size = 1
        for s in result:
            size *= s
        if size <= max(t.numel() for t in operands) or any(_marked(t) for t in operands):
            return
        a, b = sorted(operands, key=lambda t: _position(tensors, t))
        function, line = _user_frame()
        hit = Broadcast(
            operation=name.strip("_"),
            shapes=(tuple(a.shape), tuple(b.shape)),
            result=result,
            names=(self.names.get(id(a), ""), self.names.get(id(b), "")),
            function=function,
            line=line,
        )
        if hit not in self.found:
            self.found.append(hit)


def _position(tensors: list[Any], tensor: Any) -> int:
    return next(i for i, t in enumerate(tensors) if t is tensor)


def _has_none(index: Sequence[Any]) -> bool:
    parts = index[0] if index and isinstance(index[0], tuple) else index
    return any(p is None for p in parts)


def _mark(tensor: Any) -> None:
    with contextlib.suppress(AttributeError, RuntimeError):
        setattr(tensor, _MARK, True)


def _marked(tensor: Any) -> bool:
    return bool(getattr(tensor, _MARK, False))


def _user_frame() -> tuple[str, str]:
    """``(function, "file.py:line")`` of the innermost frame in the user's code, or empty strings."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        resolved = str(Path(path).resolve()) if path and not path.startswith("<") else path
        inside = (
            resolved.startswith(_HARNESS) or resolved.startswith(_LIBRARIES) or "site-packages" in resolved
        )
        if not inside and not resolved.startswith("<frozen"):
            return frame.f_code.co_name, f"{Path(path).name}:{frame.f_lineno}"
        frame = frame.f_back
    return "", ""
