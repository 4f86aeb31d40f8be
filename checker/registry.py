"""``register()``: the three registration styles normalised into one :class:`Target`.

Styles:
- ``layer``: ``forward(*inputs, **hyper) -> (out, cache)``, ``backward(dout, cache) -> grads``;
- ``loss``: ``value_and_grad(*inputs, **hyper) -> (loss, grads)``;
- ``model``: ``model(dims) -> obj`` with ``obj.params``; ``loss(obj, *data) -> (loss, grads)``.
Misuse raises :class:`RegistrationError` at once; nothing here runs user code except ``model``
(never at registration time).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checker.compare import EXACT, FINITE_DIFFERENCE, Tolerance
from checker.errors import BackpropCheckError, RegistrationError, SpecError, TargetNotFound
from checker.execution.user_code import describe_exception
from checker.signatures import check_arities, describe_value, require_callable
from checker.spec import InputSpec, as_input_spec, normalize_dims

__all__ = [
    "REGISTRY",
    "OracleTolerances",
    "Target",
    "collect",
    "get_target",
    "import_target_module",
    "register",
    "variant",
]


@dataclass(frozen=True)
class OracleTolerances:
    """One :class:`~checker.compare.Tolerance` per kind of oracle: ``exact`` (torch autograd of a
    reference, autograd of the user's forward) and ``fd`` (finite differences)."""

    exact: Tolerance = EXACT
    fd: Tolerance = FINITE_DIFFERENCE

    @classmethod
    def coerce(cls, value: object, base: OracleTolerances | None = None) -> OracleTolerances:
        """Accept an OracleTolerances, a Tolerance (both bounds), or a dict of rtol/atol/fd_rtol/fd_atol."""
        base = base or cls()
        if value is None:
            return base
        if isinstance(value, OracleTolerances):
            return value
        if isinstance(value, Tolerance):
            return cls(exact=value, fd=value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"rtol", "atol", "fd_rtol", "fd_atol"}
            if unknown:
                raise RegistrationError(
                    f"tol has unknown keys {sorted(unknown)}; use rtol, atol (exact oracles), fd_rtol, fd_atol"
                )
            try:
                exact = Tolerance(value.get("rtol", base.exact.rtol), value.get("atol", base.exact.atol))
                fd = Tolerance(value.get("fd_rtol", base.fd.rtol), value.get("fd_atol", base.fd.atol))
            except ValueError as err:
                raise RegistrationError(f"tol: {err}") from None
            return cls(exact=exact, fd=fd)
        raise RegistrationError(f"tol={value!r} must be a dict like {{'rtol': 1e-6, 'fd_rtol': 1e-4}}")


@dataclass(frozen=True)
class Target:
    """One registered function, whatever its style. ``inputs`` are the layer/loss inputs or the model's data."""

    name: str
    style: str
    inputs: dict[str, InputSpec]
    dims: dict[str, tuple[int, ...]]
    module: str = ""
    forward: Callable[..., Any] | None = None
    backward: Callable[..., Any] | None = None
    value_and_grad: Callable[..., Any] | None = None
    model: Callable[..., Any] | None = None
    loss: Callable[..., Any] | None = None
    hyper: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None
    constraint: Callable[[Mapping[str, int]], bool] | None = None
    outputs: int = 1
    torch_forward: Callable[..., Any] | None = None
    tol: OracleTolerances = field(default_factory=OracleTolerances)

    @property
    def differentiable(self) -> list[str]:
        """Names of the inputs whose gradients the user returns (model style: decided per case)."""
        return [n for n, s in self.inputs.items() if s.differentiable]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.dims)

    def hyper_for(self, dims: Mapping[str, int]) -> dict[str, Any]:
        """The keyword arguments for one case (``hyper`` may be a callable of the dims)."""
        if self.hyper is None:
            return {}
        if not callable(self.hyper):
            return dict(self.hyper)
        try:
            value = self.hyper(dict(dims))
        except Exception as err:
            raise RegistrationError(
                f"{self.name}: hyper(dims) raised {type(err).__name__}: {err} for dims {dict(dims)}"
            ) from None
        if not isinstance(value, Mapping):
            raise RegistrationError(
                f"{self.name}: hyper(dims) returned {type(value).__name__}; it must return a dict of keyword arguments"
            )
        return dict(value)

    def allows(self, dims: Mapping[str, int]) -> bool:
        """Whether ``dims`` is within the ``dims=`` limits and satisfies ``constraint=``.

        A constraint that raises is a registration mistake, reported as such.
        """
        if any(dims.get(s) not in allowed for s, allowed in self.dims.items()):
            return False
        if self.constraint is None:
            return True
        try:
            return bool(self.constraint(dict(dims)))
        except Exception as err:
            raise RegistrationError(
                f"{self.name}: constraint(dims) raised {type(err).__name__}: {err} for dims {dict(dims)}"
            ) from None

    @property
    def user_functions(self) -> dict[str, Callable[..., Any]]:
        """The callables supplied by the user, by their field name."""
        names = ("forward", "backward", "value_and_grad", "model", "loss")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


#: (module, name) -> Target, in registration order.
REGISTRY: dict[tuple[str, str], Target] = {}


def _style_of(name: str, given: dict[str, object]) -> str:
    layer = given["forward"] is not None or given["backward"] is not None
    loss = given["value_and_grad"] is not None
    model = given["model"] is not None or given["loss"] is not None
    if layer + loss + model != 1:
        raise RegistrationError(
            f"register({name!r}): give exactly one style: forward= and backward= (a layer), "
            "value_and_grad= (a loss returning its gradient), or model= and loss= (a model)"
        )
    if layer:
        for arg in ("forward", "backward"):
            if given[arg] is None:
                raise RegistrationError(f"register({name!r}): a layer needs both forward= and backward=")
            require_callable(given[arg], arg, name)
        return "layer"
    if loss:
        require_callable(given["value_and_grad"], "value_and_grad", name)
        return "loss"
    for arg in ("model", "loss"):
        if given[arg] is None:
            raise RegistrationError(
                f"register({name!r}): a model needs model= (dims -> object with .params) and "
                "loss= (model, *data -> (loss, grads))"
            )
        require_callable(given[arg], arg, name)
    return "model"


def register(
    name: str,
    *,
    forward: Callable[..., Any] | None = None,
    backward: Callable[..., Any] | None = None,
    value_and_grad: Callable[..., Any] | None = None,
    model: Callable[..., Any] | None = None,
    loss: Callable[..., Any] | None = None,
    inputs: Mapping[str, str | InputSpec] | None = None,
    data: Mapping[str, str | InputSpec] | None = None,
    dims: Mapping[str, object] | None = None,
    hyper: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
    constraint: Callable[[Mapping[str, int]], bool] | None = None,
    outputs: int = 1,
    torch_forward: Callable[..., Any] | None = None,
    tol: object = None,
    module: str | None = None,
) -> Target:
    """Register a hand-written forward/backward (or loss, or model) for checking; returns its Target.

    See the README for the three styles. Raises :class:`RegistrationError` on misuse.
    """
    if not isinstance(name, str) or not name.strip():
        raise RegistrationError(f"register(name={name!r}): the name must be a non-empty string")
    given = {"forward": forward, "backward": backward, "value_and_grad": value_and_grad}
    given |= {"model": model, "loss": loss}
    style = _style_of(name, given)
    if style == "model":
        if inputs is not None:
            raise RegistrationError(f"register({name!r}): a model takes data=, not inputs=")
        specs_in = data if data is not None else {}
    else:
        if data is not None:
            raise RegistrationError(f"register({name!r}): data= is for models; a {style} takes inputs=")
        if not inputs:
            raise RegistrationError(
                f"register({name!r}): inputs= is required, e.g. inputs={{'x': 'N,D', 'w': 'D,M', 'b': 'M'}}"
            )
        specs_in = inputs
    if not isinstance(specs_in, Mapping):
        raise RegistrationError(
            f"register({name!r}): {'data' if style == 'model' else 'inputs'}= must be a dict of name -> spec "
            f"like {{'x': 'N,D'}}, got {describe_value(specs_in)}"
        )
    try:
        specs = {str(k): as_input_spec(str(k), v) for k, v in specs_in.items()}
    except SpecError as err:
        raise RegistrationError(f"register({name!r}): {err}") from None
    if style != "model" and not any(s.differentiable for s in specs.values()):
        raise RegistrationError(
            f"register({name!r}): no differentiable input; plain 'N,D' strings are differentiable, "
            "labels/const/mask are not"
        )
    symbols = list(dict.fromkeys(sym for spec in specs.values() for sym in spec.symbols))
    try:
        allowed = normalize_dims(dims, symbols)
    except SpecError as err:
        raise RegistrationError(f"register({name!r}): {err}") from None
    if hyper is not None and not (callable(hyper) or isinstance(hyper, Mapping)):
        raise RegistrationError(
            f"register({name!r}): hyper= must be a dict of keyword arguments or a callable(dims)"
        )
    for arg, value in (("constraint", constraint), ("torch_forward", torch_forward)):
        if value is not None:
            require_callable(value, arg, name)
    if (
        not isinstance(outputs, int)
        or isinstance(outputs, bool)
        or outputs < 1
        or (style != "layer" and outputs != 1)
    ):
        raise RegistrationError(f"register({name!r}): outputs={outputs!r} must be an int >= 1 (layers only)")
    check_arities(
        name,
        style,
        given,
        specs,
        hyper=hyper,
        outputs=outputs,
        torch_forward=torch_forward,
        constraint=constraint,
    )
    if module is None:
        module = sys._getframe(1).f_globals.get("__name__", "")
    target = Target(
        name=name,
        style=style,
        inputs=specs,
        dims=allowed,
        module=module,
        hyper=hyper,
        constraint=constraint,
        outputs=outputs,
        torch_forward=torch_forward,
        tol=OracleTolerances.coerce(tol),
        **{k: v for k, v in given.items() if v is not None},
    )
    REGISTRY[(module, name)] = target
    return target


def variant(target: Target, replaces: Mapping[str, Callable[..., Any]]) -> Target:
    """A copy of ``target`` with some user functions swapped, by field name or by function name.

    ``variant(t, {"affine_backward": buggy})`` swaps whichever field holds a function called
    ``affine_backward``; used for planted mistakes and for grading.
    """
    changes: dict[str, Callable[..., Any]] = {}
    for key, fn in replaces.items():
        if key in ("forward", "backward", "value_and_grad", "model", "loss"):
            changes[key] = fn
            continue
        fields = [f for f, g in target.user_functions.items() if getattr(g, "__name__", None) == key]
        if not fields and target.style == "model" and isinstance(fn, type):
            cls = fn
            fields, fn = ["model"], _rebuild_model(target.model, cls)
        if not fields:
            raise RegistrationError(f"{target.name}: no function named {key!r} to replace")
        changes[fields[0]] = fn
    return dataclasses.replace(target, **changes)


def _rebuild_model(factory: Callable[..., Any] | None, cls: type) -> Callable[..., Any]:
    """A model factory whose objects are built as before, then given the class ``cls`` (a subclass)."""

    def build(dims: Mapping[str, int]) -> Any:
        instance = factory(dims) if factory else cls()
        instance.__class__ = cls
        return instance

    return build


def import_target_module(spec: str, rootdir: Path | None = None) -> Any:
    """Import a dotted module name or a ``.py`` path (relative to ``rootdir`` or the cwd).

    Any failure (missing file, SyntaxError, an exception at import) is a :class:`TargetNotFound`
    whose message carries the reason.
    """
    # A check leaves no trace in the user's folder: no __pycache__ beside their file (the run is
    # asked for reports only); their module is small and compiles in milliseconds.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        return _import(spec, rootdir)
    except TargetNotFound:
        raise
    except ModuleNotFoundError as err:
        raise TargetNotFound(
            f"cannot import {spec!r}: no module named {err.name!r} (is it on the path? run from its folder)"
        ) from None
    except SyntaxError as err:
        raise TargetNotFound(
            f"cannot import {spec!r}: SyntaxError in {err.filename} line {err.lineno}: {err.msg}"
        ) from None
    except BackpropCheckError as err:  # a misuse inside the module (a bad register call)
        raise TargetNotFound(f"cannot import {spec!r}: {_user_line(err)}{err}") from None
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            raise
        raise TargetNotFound(
            f"cannot import {spec!r}: importing it raised {describe_exception(err)}"
        ) from None
    finally:
        sys.dont_write_bytecode = writes_bytecode


def _user_line(err: BaseException) -> str:
    """``mylayers.py line 12: `` for the last frame of ``err`` outside this package, or ``""``."""
    here = Path(__file__).resolve().parent
    found = ""
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        path = Path(frame.f_code.co_filename)
        if path.is_file() and here not in path.resolve().parents and "importlib" not in path.parts:
            found = f"{path.name} line {lineno}: "
    return found


def _import(spec: str, rootdir: Path | None) -> Any:
    base = rootdir or Path.cwd()
    candidate = Path(spec)
    if spec.endswith(".py") or candidate.suffix == ".py":
        path = candidate if candidate.is_absolute() else base / candidate
        if not path.is_file():
            raise TargetNotFound(f"no such file: {path}")
        mod_name = "_backprop_check_" + "_".join(path.resolve().with_suffix("").parts[-3:])
        mod_name = "".join(c if c.isalnum() or c == "_" else "_" for c in mod_name)
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise TargetNotFound(f"cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, str(path.parent))
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
        finally:
            sys.path.remove(str(path.parent))
        return module
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    return importlib.import_module(spec)


def collect(module: Any) -> list[Target]:
    """The targets registered by ``module`` and, for a package, its submodules."""
    name = module.__name__
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, prefix=name + "."):
            importlib.import_module(info.name)
    return [t for (mod, _), t in REGISTRY.items() if mod == name or mod.startswith(name + ".")]


def get_target(name: str | Target, module: str | None = None) -> Target:
    """Look a registered target up by name (the most recent registration wins), or by module and name."""
    if isinstance(name, Target):
        return name
    if module is not None:
        if (module, name) not in REGISTRY:
            importlib.import_module(module)
        if (module, name) in REGISTRY:
            return REGISTRY[(module, name)]
        raise TargetNotFound(f"{module} registers no function called {name!r}")
    found = [t for (_, n), t in REGISTRY.items() if n == name]
    if not found:
        known = ", ".join(sorted({n for _, n in REGISTRY})) or "none yet"
        raise TargetNotFound(f"no function registered as {name!r} (registered: {known})")
    return found[-1]
