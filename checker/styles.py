"""Which registration style a ``register()`` call uses, and what the object and over-time styles declare.

- ``layer``: ``forward=`` and ``backward=`` callables;
- ``loss``: ``value_and_grad=``; ``model``: ``model=`` and ``loss=``;
- ``object``: ``layer=`` a factory of layer objects (``lambda d: Dense(d["D"], d["M"])``), ``params=``
  the parameters the harness sets on each one (named as the layer names them), and, when its methods
  are not called ``forward`` and ``backward``, their names (``forward="forward_pass"``);
- over time: a layer's step functions, or a layer object called once per step, checked unrolled over
  T steps: ``unroll=bc.over_time("T", sequence="x", state=("prev_h", "prev_c"))``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from checker.errors import RegistrationError, SpecError
from checker.signatures import require_callable
from checker.spec import InputSpec, as_input_spec

__all__ = ["OverTime", "object_methods", "object_params", "over_time", "style_of", "unrolled_inputs"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class OverTime:
    """A recurrent cell checked unrolled over ``steps`` (a dims symbol, ``T``) time steps.

    ``sequence``: the step inputs that get a time axis (``x``: ``"N,D"`` per step is ``"N,T,D"``
    unrolled, the time axis second); ``state``: the step inputs fed by the step's own outputs, in
    order (``prev_h`` by the first output ``next_h``, ``prev_c`` by the second), drawn once as the
    initial state. The other inputs are parameters shared by every step. The unrolled layer's output
    is the step's first output at every step, stacked on the time axis; ``step_inputs`` and
    ``step_outputs`` are the step's own (filled in by ``register``).
    """

    steps: str
    sequence: tuple[str, ...]
    state: tuple[str, ...] = ()
    step_inputs: tuple[str, ...] = ()
    step_outputs: int = 1


def _names(value: str | Iterable[str], argument: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name):
            raise SpecError(f"over_time({argument}={value!r}): {name!r} is not an input name")
    return names


def over_time(
    steps: str = "T", sequence: str | Iterable[str] = (), state: str | Iterable[str] = ()
) -> OverTime:
    """Check a recurrent cell unrolled over ``steps`` time steps (see :class:`OverTime`).

    ``bc.over_time("T", sequence="x", state=("prev_h", "prev_c"))`` for cs231n's ``lstm_step_forward``;
    ``bc.over_time("T", sequence="x")`` for a cell object that keeps its state on itself.
    """
    if not isinstance(steps, str) or not _NAME.match(steps):
        raise SpecError(f"over_time(steps={steps!r}): steps is the symbol of the number of steps, like 'T'")
    seq, states = _names(sequence, "sequence"), _names(state, "state")
    if not seq:
        raise SpecError(
            "over_time(sequence=...): name the input that has one value per step, e.g. sequence='x'"
        )
    both = sorted(set(seq) & set(states))
    if both:
        raise SpecError(f"over_time: {both[0]!r} is both a sequence input and a state")
    return OverTime(steps, seq, states)


def style_of(name: str, given: Mapping[str, Any]) -> str:
    """``layer``, ``loss``, ``model`` or ``object``, from the functions given; misuse raises at once."""
    if given.get("layer") is not None:
        others = [k for k in ("value_and_grad", "model", "loss") if given.get(k) is not None]
        if others:
            raise RegistrationError(
                f"register({name!r}): layer= (a layer object) cannot be combined with {others[0]}="
            )
        require_callable(given["layer"], "layer", name)
        return "object"
    layer = given["forward"] is not None or given["backward"] is not None
    loss = given["value_and_grad"] is not None
    model = given["model"] is not None or given["loss"] is not None
    if layer + loss + model != 1:
        raise RegistrationError(
            f"register({name!r}): give exactly one style: forward= and backward= (a layer), "
            "value_and_grad= (a loss returning its gradient), model= and loss= (a model), or layer= "
            "(a factory of layer objects with forward and backward methods)"
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


def object_methods(name: str, forward: object, backward: object) -> tuple[str, str]:
    """The names of a layer object's forward and backward methods (``forward`` and ``backward`` unless named)."""
    methods = []
    for argument, value, default in (("forward", forward, "forward"), ("backward", backward, "backward")):
        if value is None:
            methods.append(default)
        elif isinstance(value, str) and value.isidentifier():
            methods.append(value)
        else:
            raise RegistrationError(
                f"register({name!r}): with layer=, {argument}= names the object's method as a string "
                f"({argument}='{argument}_pass'), got {value!r}"
            )
    return methods[0], methods[1]


def object_params(name: str, params: object, inputs: Mapping[str, InputSpec]) -> dict[str, InputSpec]:
    """``params=`` of a layer object: name -> spec, each a name the layer uses (``W``, ``weights``)."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise RegistrationError(
            f"register({name!r}): params= must be a dict of the layer's parameters like {{'W': 'D,M', 'b': 'M'}}"
        )
    try:
        specs = {str(k): as_input_spec(str(k), v) for k, v in params.items()}
    except SpecError as err:
        raise RegistrationError(f"register({name!r}): {err}") from None
    clash = sorted(set(specs) & set(inputs))
    if clash:
        raise RegistrationError(f"register({name!r}): {clash[0]!r} is in both inputs= and params=")
    return specs


def unrolled_inputs(
    name: str, over: object, specs: Mapping[str, InputSpec], outputs: int, style: str
) -> tuple[dict[str, InputSpec], OverTime]:
    """The inputs of the unrolled layer (a sequence input gets the time axis second) and the checked
    :class:`OverTime` (its step's inputs and outputs filled in)."""
    if not isinstance(over, OverTime):
        raise RegistrationError(
            f"register({name!r}): unroll= takes bc.over_time('T', sequence='x', state=('prev_h',)), got {over!r}"
        )
    if style not in ("layer", "object"):
        raise RegistrationError(
            f"register({name!r}): unroll= is for a layer's step functions or a layer object"
        )
    unknown = [n for n in (*over.sequence, *over.state) if n not in specs]
    if unknown:
        raise RegistrationError(
            f"register({name!r}): over_time names {unknown[0]!r}, which is not an input ({', '.join(specs)})"
        )
    if style == "object" and outputs != 1:
        raise RegistrationError(
            f"register({name!r}): a cell object over time returns one output per step (its hidden state)"
        )
    if style == "object" and over.state:
        raise RegistrationError(
            f"register({name!r}): a layer object keeps its state on itself; over_time(state=...) is for step "
            "functions that take and return it"
        )
    if style == "layer" and not over.state:
        raise RegistrationError(
            f"register({name!r}): step functions pass their state along: name it, "
            "over_time('T', sequence='x', state=('prev_h',))"
        )
    if len(over.state) > outputs:
        raise RegistrationError(
            f"register({name!r}): {len(over.state)} states but outputs={outputs}; each state is fed by an "
            "output of the step, in order (prev_h by next_h, prev_c by next_c)"
        )
    if over.steps in {s for spec in specs.values() for s in spec.symbols}:
        raise RegistrationError(f"register({name!r}): the steps symbol {over.steps!r} is already a dimension")
    unrolled = {}
    for input_name, spec in specs.items():
        if input_name in over.sequence:
            shape = (*spec.shape[:1], over.steps, *spec.shape[1:]) if spec.shape else (over.steps,)
            spec = InputSpec(shape, spec.kind, spec.classes, spec.keep, spec.wants_grad)
        unrolled[input_name] = spec
    checked = OverTime(over.steps, over.sequence, over.state, tuple(specs), outputs)
    return unrolled, checked
