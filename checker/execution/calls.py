"""Calling user code in each registration style, and making sense of what it returns.

Everything the user's functions return passes through here, so a tuple of the wrong length, a
list, ``None`` or a dict with unknown keys becomes a :class:`ReturnProblem` with a message, never an
exception inside the harness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from checker.execution.record import Refused
from checker.execution.user_code import USER_ERRORS, UserError, describe_exception
from checker.presentation.words import gradient_name
from checker.registry import Target

__all__ = [
    "INTEGER_HINT",
    "ReturnProblem",
    "as_gradient_array",
    "build_model",
    "call_forward",
    "normalize_gradients",
    "scalar_objective",
]


INTEGER_HINT = " (a gradient built with np.zeros_like of integer labels or indices stays integer)"


def as_gradient_array(value: Any) -> tuple[np.ndarray | None, str]:
    """A plain float64 ndarray made from a returned gradient, or ``(None, why not)``.

    Subclasses (which could override comparisons) are rebuilt as base ndarrays from their bytes.
    A Python or numpy float scalar is accepted as a 0-d array. A value a sandboxed worker could not
    send (:class:`Refused`) says why.
    """
    if isinstance(value, Refused):
        return None, value.why
    if isinstance(value, np.matrix):
        return (
            None,
            "is a numpy.matrix (its * multiplies matrices), expected a plain ndarray: return np.asarray(...)",
        )
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            return None, f"has dtype {value.dtype}, expected a float array"
        if value.dtype.kind != "f":
            kind = "boolean" if value.dtype.kind == "b" else "integer"
            return None, f"has {kind} dtype {value.dtype}, expected a float array"
        return np.array(np.ndarray.view(value, np.ndarray), dtype=np.float64, copy=True), ""
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        return np.array(float(value), dtype=np.float64), ""
    kind = "None" if value is None else type(value).__name__
    return None, f"is a {kind}, expected a numpy array"


@dataclass(frozen=True)
class ReturnProblem:
    """A gradient that is missing, extra or not an array: reported by the ``shape`` check."""

    target: str
    message: str


def _split_outputs(result: Any, target: Target, where: str) -> tuple[tuple[Any, ...], Any]:
    expected = target.outputs + 1
    if not isinstance(result, tuple) or len(result) != expected:
        shape = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        outs = "out" if target.outputs == 1 else ", ".join(f"out{i + 1}" for i in range(target.outputs))
        raise UserError(f"{where} returned {shape}; expected a tuple ({outs}, cache)", where)
    return result[:-1], result[-1]


def call_forward(
    target: Target, values: Mapping[str, Any], hyper: Mapping[str, Any]
) -> tuple[tuple[Any, ...], Any]:
    """Run a layer's forward on ``values`` (in spec order); returns ``(outputs, cache)``."""
    assert target.forward is not None
    where = f"{getattr(target.forward, '__name__', 'forward')}"
    try:
        result = target.forward(*(values[n] for n in target.inputs), **hyper)
    except USER_ERRORS as err:
        raise UserError(f"{where} raised {describe_exception(err)}", where) from err
    return _split_outputs(result, target, where)


def build_model(target: Target, dims: Mapping[str, int]) -> Any:
    """Build the user's model for ``dims`` and check that it has a ``.params`` dict of arrays."""
    assert target.model is not None
    try:
        model = target.model(dict(dims))
    except KeyError as err:
        hint = ""
        if err.args and isinstance(err.args[0], str) and err.args[0] not in dims:
            hint = (
                f"; a symbol used only by the model must be declared: dims={{{err.args[0]!r}: range(2, 7)}}"
            )
        raise UserError(f"model(dims) raised {describe_exception(err)}{hint}", "model") from err
    except USER_ERRORS as err:
        raise UserError(f"model(dims) raised {describe_exception(err)}", "model") from err
    params = getattr(model, "params", None)
    if not isinstance(params, Mapping) or not params:
        raise UserError(
            f"model(dims) returned {type(model).__name__} without a non-empty .params dict; "
            "the model style needs obj.params = {name: array}",
            "model",
        )
    bad = [k for k, v in params.items() if not isinstance(v, np.ndarray) or v.dtype.kind != "f"]
    if bad:
        raise UserError(f"model.params[{bad[0]!r}] is not a float numpy array", "model")
    return model


def scalar_objective(
    target: Target,
    values: Mapping[str, Any],
    hyper: Mapping[str, Any],
    douts: Sequence[Any],
    model: Any = None,
) -> Any:
    """The checked scalar ``L``: ``sum(out * dout)`` for a layer, the loss for a loss or model.

    ``values`` may hold numpy arrays or torch._numpy arrays; the arithmetic follows their type.
    """
    if target.style == "layer":
        outs, _ = call_forward(target, values, hyper)
        total = 0.0
        for out, dout in zip(outs, douts, strict=True):
            total = total + (out * dout).sum()
        return total
    if target.style == "loss":
        assert target.value_and_grad is not None
        where = getattr(target.value_and_grad, "__name__", "value_and_grad")
        try:
            result = target.value_and_grad(*(values[n] for n in target.inputs), **hyper)
        except USER_ERRORS as err:
            raise UserError(f"{where} raised {describe_exception(err)}", where) from err
        return _loss_of(result, where)
    assert target.loss is not None
    for name in model.params:
        if name in values:
            model.params[name] = values[name]
    try:
        result = target.loss(model, *(values[n] for n in target.inputs))
    except USER_ERRORS as err:
        raise UserError(f"loss(model, ...) raised {describe_exception(err)}", "loss") from err
    return _loss_of(result, "loss")


def _loss_of(result: Any, where: str) -> Any:
    if not isinstance(result, tuple) or len(result) != 2:
        raise UserError(f"{where} returned {type(result).__name__}; expected a tuple (loss, grads)", where)
    return result[0]


def normalize_gradients(
    raw: Any, names: Sequence[str], where: str
) -> tuple[dict[str, Any], list[ReturnProblem]]:
    """Map what a backward returned onto the differentiable input names.

    Accepts a tuple/list in input order, a dict keyed ``x`` or ``dx``, or a bare array when there
    is one name. Returns the gradients found (values unchecked) and the problems.
    """
    problems: list[ReturnProblem] = []
    if raw is None:
        want = ", ".join(gradient_name(n) for n in names)
        return {}, [ReturnProblem("", f"{where} returned None; expected ({want})")]
    if isinstance(raw, Mapping):
        found: dict[str, Any] = {}
        for key, value in raw.items():
            name = (
                key
                if key in names
                else (key[1:] if isinstance(key, str) and key[1:] in names and key.startswith("d") else None)
            )
            if name is None:
                problems.append(
                    ReturnProblem(
                        str(key), f"{where} returned an extra gradient {key!r}; inputs are {list(names)}"
                    )
                )
            else:
                found[name] = value
        for name in names:
            if name not in found:
                problems.append(
                    ReturnProblem(name, f"{where} returned no gradient for {name!r} (keys: {list(raw)})")
                )
        return found, problems
    if isinstance(raw, (tuple, list)):
        if len(names) == 1 and len(raw) != 1 and not isinstance(raw, tuple):
            return {names[0]: raw}, []
        if len(raw) != len(names):
            want = ", ".join(gradient_name(n) for n in names)
            problems.append(
                ReturnProblem("", f"{where} returned {len(raw)} gradients; expected {len(names)}: ({want})")
            )
        return dict(zip(names, raw, strict=False)), problems
    if len(names) == 1:
        return {names[0]: raw}, []
    want = ", ".join(gradient_name(n) for n in names)
    return {}, [ReturnProblem("", f"{where} returned a {type(raw).__name__}; expected a tuple ({want})")]
