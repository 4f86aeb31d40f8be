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
import itertools
import pkgutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from checker.compare import EXACT, FINITE_DIFFERENCE, Tolerance
from checker.errors import RegistrationError, SpecError, TargetNotFound
from checker.importing import import_target_module
from checker.signatures import check_arities, describe_value, require_callable
from checker.spec import InputSpec, as_input_spec, hyper_choices, normalize_dims, with_choices
from checker.styles import OverTime, object_methods, object_params, style_of, unrolled_inputs

__all__ = [
    "REGISTRY",
    "OracleTolerances",
    "Target",
    "collect",
    "get_target",
    "import_target_module",
    "pin_choices",
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
    #: hyper-parameters with values to try (``hyper={"pad": bc.choices(0, 1, 2)}``), by name: each case
    #: gets one value, carried in its dims (``N=2, pad=0``) but not a size
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: object style: the factory of layer objects (``layer(dims)``), the inputs that are the object's
    #: parameters (set on it by the harness), and the names of its forward and backward methods
    layer: Callable[..., Any] | None = None
    params: tuple[str, ...] = ()
    methods: tuple[str, str] = ("forward", "backward")
    #: a recurrent cell checked unrolled over time (``inputs`` are then the unrolled ones)
    unroll: OverTime | None = None

    @property
    def differentiable(self) -> list[str]:
        """Names of the inputs whose gradients the user returns (model style: decided per case)."""
        return [n for n, s in self.inputs.items() if s.differentiable]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.dims)

    @property
    def takes_dout(self) -> bool:
        """Checked as a layer: ``L = sum(out * dout)`` over its outputs, a backward given the douts."""
        return self.style in ("layer", "object")

    def hyper_for(self, dims: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for one case (``hyper`` may be a callable of the dims); a hyper-parameter
        with choices takes the case's value (``dims["pad"]``)."""
        if self.hyper is None:
            return {}
        if not callable(self.hyper):
            return with_choices(self.hyper, dims) if self.choices else dict(self.hyper)
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

    def allows(self, dims: Mapping[str, Any]) -> bool:
        """Whether ``dims`` is within the ``dims=`` limits and satisfies ``constraint=``.

        Hyper-parameters with choices are part of the dims the constraint sees; when ``dims`` leaves
        some out, any of their values will do. A constraint that raises is a registration mistake,
        reported as such.
        """
        if any(dims.get(s) not in allowed for s, allowed in self.dims.items()):
            return False
        if any(name in dims and dims[name] not in values for name, values in self.choices.items()):
            return False
        if self.constraint is None:
            return True
        return any(self._holds(complete) for complete in self.with_every_choice(dims))

    def with_every_choice(self, dims: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``dims`` with each combination of the values of the choices it leaves out."""
        missing = [name for name in self.choices if name not in dims]
        combos = itertools.product(*(self.choices[name] for name in missing))
        return [dict(dims) | dict(zip(missing, combo, strict=True)) for combo in combos]

    def complete(self, dims: Mapping[str, Any]) -> dict[str, Any]:
        """``dims`` with a value for every choice it leaves out: the first combination allowed."""
        every = self.with_every_choice(dims)
        return next((d for d in every if self.constraint is None or self._holds(d)), every[0])

    def _holds(self, dims: Mapping[str, Any]) -> bool:
        assert self.constraint is not None
        try:
            return bool(self.constraint(dict(dims)))
        except Exception as err:
            raise RegistrationError(
                f"{self.name}: constraint(dims) raised {type(err).__name__}: {err} for dims {dict(dims)}"
            ) from None

    @property
    def user_functions(self) -> dict[str, Callable[..., Any]]:
        """The callables supplied by the user, by their field name."""
        names = ("forward", "backward", "value_and_grad", "model", "loss", "layer")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


#: (module, name) -> Target, in registration order.
REGISTRY: dict[tuple[str, str], Target] = {}


def register(
    name: str,
    *,
    forward: Callable[..., Any] | None = None,
    backward: Callable[..., Any] | None = None,
    value_and_grad: Callable[..., Any] | None = None,
    model: Callable[..., Any] | None = None,
    loss: Callable[..., Any] | None = None,
    layer: Callable[..., Any] | None = None,
    params: Mapping[str, str | InputSpec] | None = None,
    unroll: OverTime | None = None,
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
    """Register a hand-written forward/backward (or loss, or model, or layer object) for checking;
    returns its Target.

    See the README for the styles (:mod:`checker.styles`). Raises :class:`RegistrationError` on misuse.
    """
    if not isinstance(name, str) or not name.strip():
        raise RegistrationError(f"register(name={name!r}): the name must be a non-empty string")
    given = {"forward": forward, "backward": backward, "value_and_grad": value_and_grad}
    given |= {"model": model, "loss": loss, "layer": layer}
    style = style_of(name, given)
    methods = ("forward", "backward")
    if style == "object":
        methods = object_methods(name, forward, backward)
        given |= {"forward": None, "backward": None}
    elif params is not None:
        raise RegistrationError(
            f"register({name!r}): params= is for a layer object (layer=); a {style} takes inputs="
        )
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
    parameters = object_params(name, params, specs) if style == "object" else {}
    specs |= parameters
    step_specs, over = specs, None
    if unroll is not None:
        specs, over = unrolled_inputs(name, unroll, specs, outputs, style)
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
    tried = _choices_of(name, hyper, allowed)
    for arg, value in (("constraint", constraint), ("torch_forward", torch_forward)):
        if value is not None:
            require_callable(value, arg, name)
    if (
        not isinstance(outputs, int)
        or isinstance(outputs, bool)
        or outputs < 1
        or (style not in ("layer", "object") and outputs != 1)
    ):
        raise RegistrationError(f"register({name!r}): outputs={outputs!r} must be an int >= 1 (layers only)")
    check_arities(
        name,
        style,
        given,
        step_specs if style == "layer" else specs,
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
        outputs=1 if over is not None else outputs,
        torch_forward=torch_forward,
        tol=OracleTolerances.coerce(tol),
        choices=tried,
        params=tuple(parameters),
        methods=methods,
        unroll=over,
        **{k: v for k, v in given.items() if v is not None},
    )
    REGISTRY[(module, name)] = target
    return target


def _choices_of(name: str, hyper: object, symbols: Mapping[str, object]) -> dict[str, tuple[Any, ...]]:
    """The hyper-parameters ``hyper=`` gives values to try, refused when one is called like a size."""
    if not isinstance(hyper, Mapping):
        return {}
    try:
        found = hyper_choices(hyper)
    except SpecError as err:
        raise RegistrationError(f"register({name!r}): {err}") from None
    clash = sorted(set(found) & set(symbols))
    if clash:
        raise RegistrationError(
            f"register({name!r}): hyper= gives choices for {clash[0]!r}, which is also a dimension symbol; "
            "rename the hyper-parameter or vary the symbol with dims="
        )
    return found


def pin_choices(target: Target, picked: Mapping[str, Any]) -> Target:
    """``target`` with some choices fixed to one value (``--dims pad=0``); a value not among them raises."""
    choices = dict(target.choices)
    for name, value in picked.items():
        match = [v for v in choices[name] if v == value or str(v) == str(value)]
        if not match:
            raise RegistrationError(
                f"{target.name}: {name}={value!r} is not one of its choices {list(choices[name])}"
            )
        choices[name] = (match[0],)
    return dataclasses.replace(target, choices=choices)


def variant(target: Target, replaces: Mapping[str, Callable[..., Any]]) -> Target:
    """A copy of ``target`` with some user functions swapped, by field name or by function name.

    ``variant(t, {"affine_backward": buggy})`` swaps whichever field holds a function called
    ``affine_backward``; used for planted mistakes and for grading.
    """
    changes: dict[str, Callable[..., Any]] = {}
    for key, fn in replaces.items():
        if key in ("forward", "backward", "value_and_grad", "model", "loss", "layer"):
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
