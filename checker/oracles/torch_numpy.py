"""Exact autograd of the user's *own* numpy forward, run under ``torch._numpy``.

``torch._numpy`` is the numpy-compatible layer ``torch.compile`` uses to trace numpy code. While
the forward runs, every user module's ``np`` (any global bound to the numpy module) is rebound to
it, and the inputs are torch-backed arrays that require grad; autograd then gives the exact
vector-Jacobian product. It is a private torch module: every use is guarded, the traced forward's
value must equal the numpy one before its gradients are trusted, and anything unsupported is a
``skip`` with the reason (finite differences still judge).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import sysconfig
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from checker.compare import FLOAT64_EPS, precision_floor
from checker.execution.user_code import USER_ERRORS, UserError, describe_exception
from checker.oracles.broadcast_lint import Broadcast, BroadcastWatch

__all__ = [
    "AutogradResult",
    "autograd_gradients",
    "available",
    "numpy_random_stream",
    "numpy_rebound",
    "traced_inputs",
    "user_modules",
    "warm_up",
]

_LOCK = threading.Lock()
_LIBRARY_ROOTS = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


@dataclass(frozen=True)
class AutogradResult:
    """Gradients by name, or the reason the oracle could not run (``skipped``)."""

    gradients: dict[str, np.ndarray]
    value: float = float("nan")
    skipped: str = ""
    #: machine epsilon of the least precise float tensor the traced forward computed (its intermediates)
    eps: float = FLOAT64_EPS
    #: the gradients of the same forward run as if written in float64 (only when it computes below)
    shadow: dict[str, np.ndarray] = field(default_factory=dict)
    #: elementwise operations of the forward that paired every entry of two operands (the lint)
    broadcasts: tuple[Broadcast, ...] = ()


def _precision_mode(promote: bool, watch: BroadcastWatch | None = None) -> Any:
    """A torch function mode that keeps the machine epsilon of the least precise float tensor any torch
    call returns while it is active: the precision the forward really computes in, intermediates included.

    With ``promote`` it also turns every such tensor into float64 as it is made: the forward then runs
    as if written in float64 (its float64 *shadow*), whatever dtypes it casts to. ``watch`` sees every
    call (the broadcast lint).
    """
    import torch
    from torch.overrides import TorchFunctionMode

    def lower(value: Any, mode: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float64:
            mode.eps = max(mode.eps, float(torch.finfo(value.dtype).eps))
            return value.to(torch.float64) if promote else value
        if isinstance(value, tuple) and promote:
            return type(value)(lower(v, mode) for v in value) if type(value) is tuple else value
        return value

    class LowestPrecision(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.eps = FLOAT64_EPS

        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            result = func(*args, **(kwargs or {}))
            if watch is not None:
                watch.observe(func, args, kwargs, result)
            return lower(result, self)

    return LowestPrecision()


def _torch_numpy() -> ModuleType:
    """``torch._numpy``, with its default dtypes set without importing ``torch._dynamo`` (0.7 s).

    torch._numpy reads its defaults (float64, complex128, int64) from ``torch._dynamo.config`` on first
    use; when that config is not loaded yet (nobody can have changed it) the same defaults are set
    directly. Guarded: a torch without the attribute reads its config as usual.
    """
    import torch
    import torch._numpy as tnp
    from torch._numpy import _dtypes_impl

    if "torch._dynamo.config" not in sys.modules and getattr(_dtypes_impl, "_default_dtypes", 0) is None:
        with contextlib.suppress(Exception):
            _dtypes_impl._default_dtypes = _dtypes_impl.DefaultDTypes(
                float_dtype=torch.float64, complex_dtype=torch.complex128, int_dtype=torch.int64
            )
    return tnp


@functools.cache
def warm_up() -> None:
    """Pay torch._numpy's one-time lazy imports (about a second) outside any time limit on user code."""
    try:
        import torch

        tnp = _torch_numpy()
        leaf = torch.ones(2, dtype=torch.float64, requires_grad=True)
        # A numpy operand (a layer's dout) imports torch's symbolic machinery on first use: seconds.
        total = tnp.sum(tnp.exp(tnp.asarray(leaf)) * np.full(2, 2.0))
        torch.autograd.grad(total.tensor, [leaf])
    except Exception:
        pass


def available() -> bool:
    """True when this torch has ``torch._numpy``."""
    try:
        import torch._numpy  # noqa: F401
    except Exception:
        return False
    return True


_IS_USER: dict[tuple[str, str], bool] = {}


def _is_user_module(name: str, path: str) -> bool:
    key = (name, path)
    if key not in _IS_USER:
        resolved = str(Path(path).resolve())
        library = resolved.startswith(_LIBRARY_ROOTS) or "site-packages" in resolved
        _IS_USER[key] = not library and name != "checker" and not name.startswith("checker.")
    return _IS_USER[key]


_USER_MODULES: tuple[frozenset[str], list[tuple[str, ModuleType]]] = (frozenset(), [])


def user_modules() -> list[ModuleType]:
    """Loaded modules that are neither the standard library, installed packages, nor the harness.

    Remembered while the set of loaded module names is unchanged and each remembered module is still
    the one loaded under its name (walking ~2000 modules costs about a millisecond per check).
    """
    global _USER_MODULES
    names = frozenset(sys.modules)
    known, found = _USER_MODULES
    if names != known or any(sys.modules.get(name) is not module for name, module in found):
        found = []
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None) if module is not None else None
            if path and _is_user_module(name, path):
                found.append((name, module))
        _USER_MODULES = (names, found)
    return [module for _, module in found]


@contextmanager
def numpy_rebound(
    replacement: ModuleType, modules: Sequence[ModuleType], namespaces: Sequence[dict[str, Any]] = ()
) -> Iterator[None]:
    """Bind every global that is the numpy module, in ``modules`` and ``namespaces`` (the globals of
    code with no file: a notebook cell, ``exec``), to ``replacement`` for the duration."""
    swapped: list[tuple[dict[str, Any], str]] = []
    unique = {id(n): n for n in [*(m.__dict__ for m in modules), *namespaces]}
    with _LOCK:
        try:
            for namespace in unique.values():
                for key, value in list(namespace.items()):
                    if value is np:
                        namespace[key] = replacement
                        swapped.append((namespace, key))
            yield
        finally:
            for namespace, key in swapped:
                namespace[key] = np


@contextmanager
def numpy_random_stream() -> Iterator[None]:
    """``np.random.*`` under torch._numpy draws from numpy's own global generator, not torch's: a dropout
    mask traced is then the mask the plain forward drew (the harness seeds both the same way)."""
    import torch._numpy.random as tnp_random

    original = tnp_random.use_numpy_random
    tnp_random.use_numpy_random = lambda: True
    try:
        yield
    finally:
        tnp_random.use_numpy_random = original


def autograd_gradients(
    objective: Callable[[Mapping[str, Any]], Any],
    values: Mapping[str, np.ndarray],
    differentiable: Sequence[str],
    expected_value: float,
    namespaces: Sequence[dict[str, Any]] = (),
) -> AutogradResult:
    """Run ``objective`` (the user's forward, reduced to the scalar L) under torch._numpy and differentiate.

    ``expected_value`` is L computed by plain numpy: the traced value must agree with it.
    ``namespaces``: extra globals to rebind (the user functions' ``__globals__``, for notebook code).
    When the forward computes below float64, it is differentiated a second time as its float64 shadow
    (``shadow``): how far the two gradients are apart is what that precision can resolve at this input.
    """
    try:
        import torch
        import torch._numpy  # noqa: F401
    except Exception as err:  # pragma: no cover - depends on the torch build
        return AutogradResult({}, skipped=f"torch._numpy unavailable ({describe_exception(err)})")
    watch = BroadcastWatch({})
    traced = _traced_gradients(objective, values, differentiable, namespaces, promote=False, watch=watch)
    found = tuple(watch.found)
    if isinstance(traced, str):
        return AutogradResult({}, skipped=traced, broadcasts=found)
    value, gradients, eps = traced
    if not (np.isfinite(value) and np.isfinite(expected_value)):
        return AutogradResult(
            {},
            value,
            skipped=f"the forward's value is not finite (L={expected_value:.6g}): nothing to differentiate",
            broadcasts=found,
        )
    # The traced forward runs the same operations in the same dtypes, but torch may sum in another order.
    rtol = max(1e-9, precision_floor(eps))
    if abs(value - expected_value) > rtol * max(abs(value), abs(expected_value)) + 1e-12 * max(
        1.0, abs(expected_value)
    ):
        return AutogradResult(
            {},
            value,
            skipped=f"under torch._numpy the forward gives L={value:.12g}, numpy gives {expected_value:.12g}",
            eps=eps,
            broadcasts=found,
        )
    shadow: dict[str, np.ndarray] = {}
    if eps > FLOAT64_EPS:
        promoted = _traced_gradients(objective, values, differentiable, namespaces, promote=True)
        if not isinstance(promoted, str) and abs(promoted[0] - value) <= 10 * rtol * max(1.0, abs(value)):
            shadow = promoted[1]
    return AutogradResult(gradients, value, eps=eps, shadow=shadow, broadcasts=found)


def traced_inputs(
    values: Mapping[str, np.ndarray], differentiable: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(leaves, traced)``: float64 leaf tensors that require grad for the differentiable float inputs,
    and every input as a torch._numpy array (the leaves wrapped, the others constant)."""
    import torch

    tnp = _torch_numpy()

    leaves: dict[str, Any] = {}
    traced: dict[str, Any] = {}
    for name, value in values.items():
        array = np.asarray(value)
        if name in differentiable and array.dtype.kind == "f":
            # Shares the array's memory: autograd refuses an in-place write to a leaf before it happens.
            shareable = array.dtype == np.float64 and array.flags.writeable and array.flags.c_contiguous
            shared = array if shareable else np.array(array, dtype=np.float64, order="C")
            leaf = torch.from_numpy(shared).requires_grad_(True)
            leaves[name] = leaf
            traced[name] = tnp.asarray(leaf)
        else:
            traced[name] = tnp.asarray(torch.as_tensor(array))
    return leaves, traced


def _traced_gradients(
    objective: Callable[[Mapping[str, Any]], Any],
    values: Mapping[str, np.ndarray],
    differentiable: Sequence[str],
    namespaces: Sequence[dict[str, Any]],
    *,
    promote: bool,
    watch: BroadcastWatch | None = None,
) -> tuple[float, dict[str, np.ndarray], float] | str:
    """(L, gradients, the precision seen) of ``objective`` traced under torch._numpy, or why it could not
    be; ``watch`` (the broadcast lint) learns the inputs' tensors by name and sees every call."""
    import torch
    import torch._numpy as tnp

    leaves, traced = traced_inputs(values, differentiable)
    if watch is not None:
        watch.names = {id(array.tensor): name for name, array in traced.items()}
    mode = _precision_mode(promote, watch)
    try:
        with (
            numpy_rebound(tnp, user_modules(), namespaces),
            numpy_random_stream(),
            warnings.catch_warnings(),
            mode,
        ):
            warnings.simplefilter("ignore")
            total = objective(traced)
    except UserError as err:
        return f"the forward does not run under torch._numpy ({err.message})"
    except USER_ERRORS as err:
        return f"the forward does not run under torch._numpy ({describe_exception(err)})"
    tensor = getattr(total, "tensor", total)
    if not isinstance(tensor, torch.Tensor) or not tensor.requires_grad:
        return "the forward's result was not traced (it left torch._numpy, e.g. through a Python float)"
    value = float(tensor.detach())
    if not np.isfinite(value):
        return value, {}, mode.eps
    try:
        grads = torch.autograd.grad(tensor, list(leaves.values()), allow_unused=True)
    except USER_ERRORS as err:
        return f"autograd failed ({describe_exception(err)})"
    gradients = {
        name: np.zeros(tuple(leaf.shape)) if g is None else np.asarray(g.detach().numpy(), dtype=np.float64)
        for (name, leaf), g in zip(leaves.items(), grads, strict=True)
    }
    return value, gradients, mode.eps
