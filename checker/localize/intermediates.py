"""The exact gradient of every named intermediate of the user's forward.

The forward runs under ``torch._numpy`` (as for the ``grad_autograd`` oracle: the user modules'
``np`` is rebound, the differentiable inputs are leaf tensors) while :mod:`~checker.localize.tracer`
watches the user's own frames. Each array a local name (or an attribute of ``self``) is bound to is
a *binding*; a hook on its tensor, registered when it is bound, receives ``dL/d(value)`` during the
backward pass of ``L`` (``sum(out * dout)`` for a layer, the loss otherwise).

Names bound more than once. Each binding keeps the gradient of *its own* value: a rebinding
(``h = np.maximum(h, 0)``) and an in-place change seen after a statement (``h[h < 0] = 0``: the
tensor's version moved) make a new binding of the same name, and a hook registered before an
in-place change still receives the gradient of the value before it. The binding that counts is
the last one, the value the rest of the forward used; :mod:`~checker.localize.match` also accepts
an earlier one, since a backward cannot say which ``h`` its ``dh`` means.

Loss and model style: the forward and the gradient code share one function. The intermediates are
the bindings made *before the gradient code*, which starts at the first statement that binds a new
local named like the gradient of a name already bound (``dscores`` once ``scores`` exists); later
statements (which may even change forward arrays in place) are not watched.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from checker.execution.user_code import USER_ERRORS, UserError, describe_exception
from checker.localize.names import gradient_of
from checker.localize.source import statement_at
from checker.localize.tracer import DEFAULT_BUDGET, FrameInfo, TraceBudgetExceeded, TracerFailed, trace_call

__all__ = ["Binding", "ForwardTrace", "forward_intermediates"]


@dataclass(frozen=True)
class Binding:
    """One value a forward name was bound to, and the exact gradient of L with respect to it.

    ``value`` and ``gradient`` are float64 copies; ``gradient`` is zero when L does not depend on
    the value. ``input`` names the differentiable input (or model parameter) a leaf binding is.
    """

    name: str
    value: np.ndarray
    gradient: np.ndarray
    function: str
    line: int
    order: int
    input: str = ""


@dataclass(frozen=True)
class ForwardTrace:
    """Every binding by name, in the order they were made, and the traced L; ``reason`` when it failed."""

    bindings: Mapping[str, tuple[Binding, ...]] = field(default_factory=dict)
    value: float = float("nan")
    reason: str = ""


@dataclass
class _Pending:
    name: str
    value: np.ndarray
    function: str
    line: int
    input: str
    gradient: Any = None


def _as_float64(tensor: Any) -> np.ndarray:
    return np.array(tensor.detach().cpu().double().numpy(), dtype=np.float64)


def forward_intermediates(
    objective: Callable[[Mapping[str, Any]], Any],
    values: Mapping[str, np.ndarray],
    differentiable: Sequence[str],
    expected_value: float,
    files: Collection[str],
    *,
    stop_at_gradient_code: bool = False,
    namespaces: Sequence[dict[str, Any]] = (),
    rtol: float = 1e-9,
    budget: int = DEFAULT_BUDGET,
) -> ForwardTrace:
    """Run ``objective`` (traced values -> the scalar L, the user's forward inside) under torch._numpy.

    ``values``: every input (and model parameter) by name; ``differentiable``: those that become
    leaves. ``expected_value``: L computed by plain numpy, which the traced L must equal within
    ``rtol``. ``files``: the user's files whose frames are watched. Never raises for the user's code:
    a forward that cannot be traced gives a ``reason``.
    """
    try:
        import torch
        import torch._numpy as tnp

        from checker.oracles.torch_numpy import numpy_rebound, traced_inputs, user_modules
    except Exception as err:  # pragma: no cover - depends on the torch build
        return ForwardTrace(reason=f"torch._numpy is unavailable ({describe_exception(err)})")

    leaves, traced = traced_inputs(values, differentiable)
    input_of = {id(leaf): name for name, leaf in leaves.items()}
    pending = [_Pending(name, _as_float64(leaf), "", 0, name) for name, leaf in leaves.items()]
    for entry in pending:
        _register(leaves[entry.name], entry)
    seen: dict[tuple[Any, ...], tuple[int, int]] = {}
    alive: list[Any] = []  # keeps every bound object alive, so that no id is reused during the run
    started = [False]
    scalars: list[Any] = []  # 0-d arrays of the frame where the gradient code began: the loss is one

    def bind(key: tuple[Any, ...], name: str, value: Any, info: FrameInfo, line: int) -> None:
        tensor = value.tensor
        if not tensor.requires_grad or not tensor.dtype.is_floating_point:
            return
        ident = (id(value), tensor._version)
        if seen.get(key) == ident:
            return
        seen[key] = ident
        alive.append(value)
        entry = _Pending(name, _as_float64(tensor), info.function, line, input_of.get(id(tensor), ""))
        pending.append(entry)
        _register(tensor, entry)

    def watch(info: FrameInfo, line: int, frame_locals: dict[str, Any], event: str) -> None:
        if started[0]:
            return
        known = info.extra.setdefault("names", set())
        new = set(frame_locals) - known
        known |= new
        if stop_at_gradient_code and event != "call":
            bound = {p.name for p in pending}
            if any(gradient_of(name, bound) is not None for name in new):
                started[0] = True  # the gradient code began with the statement that just ran
                scalars.extend(v for v in frame_locals.values() if isinstance(v, tnp.ndarray) and v.ndim == 0)
                return
        where = statement_at(info.filename, line).first if event != "call" else line
        for name, value in frame_locals.items():
            if isinstance(value, tnp.ndarray):
                bind((info.key, name), name, value, info, where)
        owner = frame_locals.get("self")
        attributes = getattr(owner, "__dict__", None) if owner is not None else None
        if isinstance(attributes, dict):
            for name, value in list(attributes.items()):
                if isinstance(value, tnp.ndarray):
                    bind(("self", id(owner), name), name, value, info, where)

    def pack(tensor: Any) -> Any:
        # Saved tensors are copies: an in-place change after the forward used a value (a gradient
        # written into ``probs`` in a loss function) must not break the backward pass.
        return tensor.detach().clone()

    left: list[str] = []  # where the forward turned a traced value into a Python number
    try:
        with (
            numpy_rebound(tnp, user_modules(), namespaces),
            warnings.catch_warnings(),
            torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
            _conversions_noted(left, files, lambda: not started[0]),
        ):
            warnings.simplefilter("ignore")
            total = trace_call(lambda: objective(traced), files, watch, budget)
    except TraceBudgetExceeded as err:
        return ForwardTrace(reason=f"the forward is too long to trace ({err})")
    except TracerFailed as err:
        return ForwardTrace(reason=f"the harness could not trace the forward ({err})")
    except (UserError, *USER_ERRORS) as err:
        # The gradient code of a loss may use what torch._numpy lacks (np.add.at): the forward before
        # it ran, and the loss is the one scalar there whose value is numpy's.
        total = _the_loss(scalars, expected_value, rtol) if started[0] else None
        if total is None:
            text = err.message if isinstance(err, UserError) else describe_exception(err)
            return ForwardTrace(reason=f"the forward does not run under torch._numpy ({text})")
    if left:
        return ForwardTrace(
            reason=f"the forward turns a traced array into a Python number ({left[0]}): under torch._numpy "
            "that path has no gradient, so its intermediates cannot be judged"
        )
    tensor = getattr(total, "tensor", total)
    if not isinstance(tensor, torch.Tensor) or not tensor.requires_grad or tensor.numel() != 1:
        return ForwardTrace(
            reason="the forward's result was not traced by torch._numpy (it left torch._numpy, "
            "e.g. through a Python float)"
        )
    value = float(tensor.detach().reshape(()))
    if not np.isclose(value, expected_value, rtol=rtol, atol=rtol * max(1.0, abs(expected_value))):
        return ForwardTrace(
            value=value,
            reason=f"under torch._numpy the forward gives L={value:.12g}, numpy gives {expected_value:.12g}",
        )
    try:
        grads = torch.autograd.grad(tensor.reshape(()), list(leaves.values()), allow_unused=True)
    except USER_ERRORS as err:
        return ForwardTrace(value=value, reason=f"autograd failed ({describe_exception(err)})")
    for entry, grad in zip(pending, grads, strict=False):  # the leaves come first, in order
        entry.gradient = grad
    bindings: dict[str, list[Binding]] = {}
    for order, entry in enumerate(pending):
        gradient = np.zeros_like(entry.value) if entry.gradient is None else _as_float64(entry.gradient)
        if gradient.shape != entry.value.shape:
            continue
        bindings.setdefault(entry.name, []).append(
            Binding(entry.name, entry.value, gradient, entry.function, entry.line, order, entry.input)
        )
    return ForwardTrace({k: tuple(v) for k, v in bindings.items()}, value)


def _the_loss(scalars: Sequence[Any], expected: float, rtol: float) -> Any:
    """The one traced scalar (several names may hold it) equal to the loss numpy computed, else None."""
    matching = {
        id(s.tensor): s
        for s in scalars
        if s.tensor.requires_grad
        and np.isclose(float(s.tensor.detach()), expected, rtol=rtol, atol=rtol * max(1.0, abs(expected)))
    }
    return next(iter(matching.values())) if len(matching) == 1 else None


def _register(tensor: Any, entry: _Pending) -> None:
    """Keep the gradient of ``tensor``'s current value (a hook registered now survives in-place changes)."""

    def hook(grad: Any) -> None:
        entry.gradient = grad.detach().clone()

    tensor.register_hook(hook)


@contextmanager
def _conversions_noted(
    left: list[str], files: Collection[str], watching: Callable[[], bool]
) -> Iterator[None]:
    """Note in ``left`` each ``float()``, ``int()``, ``.item()``, ``.tolist()`` (``math.exp`` calls
    ``float``) of a tensor that requires grad, made by the forward: the value leaves the graph."""
    import torch

    names = ("__float__", "__int__", "item", "tolist")
    originals = {name: getattr(torch.Tensor, name) for name in names}
    own = {name for name in names if name in vars(torch.Tensor)}  # the others are inherited

    def noting(name: str) -> Callable[..., Any]:
        original = originals[name]

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.requires_grad and watching() and not left:
                left.append(f"{name.strip('_')}() at {_user_line(files)}")
            return original(self, *args, **kwargs)

        return method

    for name in names:
        setattr(torch.Tensor, name, noting(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            if name in own:
                setattr(torch.Tensor, name, original)
            else:
                delattr(torch.Tensor, name)


def _user_line(files: Collection[str]) -> str:
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename not in files:
        frame = frame.f_back
    return (
        f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}" if frame is not None else "an unknown line"
    )
