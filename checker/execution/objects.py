"""Layer objects run as layers: no adapter code.

A layer object (``Dense(...)`` with ``forward(X)`` and ``backward(dout)`` methods) keeps its
parameters and its gradients on itself. For each case the harness builds one from the registered
factory (``layer=lambda d: Dense(d["D"], d["M"])``), and then:

- sets the parameters before every forward, where the layer keeps them (an attribute ``W``, or an
  entry of a dict attribute ``params["W"]``); a layer that creates them on its first forward is
  run once first, and one that replaces them during the forward (a lazy initialisation) is set and
  run again;
- zeroes the gradients it already holds before each backward (frameworks add into them, ``+=``, and
  zero them in their optimizer step) and copies what it finds after;
- finds each gradient where the layer leaves it: returned (``dX``, a tuple, a dict), handed to the
  optimizer the layer calls inside backward (a factory taking ``optimizer=`` gets a
  :class:`RecordingOptimizer`, which keeps the gradient and changes nothing), in a dict attribute
  (``gradients["W"]``), or in an attribute (``dW``, ``grad_W``, ``W_grad``; ``dinputs`` for the input).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from checker.execution.fingerprints import fingerprint
from checker.execution.record import Refused
from checker.execution.user_code import USER_ERRORS, UserError, describe_exception

__all__ = ["GRADIENT_NAMES", "INPUT_GRADIENT_NAMES", "LayerSession", "RecordingOptimizer", "build_layer"]

#: Where a layer may leave the gradient of ``W``: attributes and dict keys.
GRADIENT_NAMES = ("d{}", "grad_{}", "{}_grad", "d_{}", "grad{}")
#: Where a layer with one input may leave that input's gradient, whatever the input is called.
INPUT_GRADIENT_NAMES = ("dinputs", "dinput", "grad_input", "input_grad", "dX", "dx")
#: Where a forward that returns nothing leaves its output.
OUTPUT_NAMES = ("output", "out", "outputs")


class RecordingOptimizer:
    """The optimizer a layer is given when it updates its own parameters inside backward.

    Any method the layer calls on it (``update``, ``step``, ``apply``...) records the gradients among
    its arguments and changes nothing: called with a parameter (``self.W = opt.update(self.W, dW)``)
    it returns that parameter unchanged; otherwise (``self.W -= opt.step(dW)``) a step of zeros.
    Copies share one record (a framework copies the optimizer once per parameter).
    """

    def __init__(self, shared: dict[str, Any] | None = None) -> None:
        #: ``gradients``: (parameter name, gradient) pairs in call order; ``attribute``: the session's
        #: reading of one call's arguments (which parameter each gradient is of), made at call time
        self.shared = shared if shared is not None else {"gradients": [], "attribute": None}

    @property
    def gradients(self) -> list[tuple[str, Any]]:
        return self.shared["gradients"]

    def __copy__(self) -> RecordingOptimizer:
        return RecordingOptimizer(self.shared)

    def __deepcopy__(self, memo: dict[int, Any]) -> RecordingOptimizer:
        return RecordingOptimizer(self.shared)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._record(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "shared":
            raise AttributeError(name)
        return self._record

    def _record(self, *args: Any, **kwargs: Any) -> Any:
        values = [*args, *kwargs.values()]
        attribute = self.shared["attribute"]
        found, parameter = attribute(values) if attribute is not None else ({}, None)
        self.gradients.extend(found.items())
        if parameter is not None:
            return parameter
        arrays = [v for v in values if isinstance(v, np.ndarray)]
        return np.zeros_like(arrays[-1]) if arrays else None


def build_layer(factory: Callable[..., Any], dims: Mapping[str, Any], optimizer: RecordingOptimizer) -> Any:
    """``factory(dims)``, with ``optimizer=`` when the factory takes one."""
    try:
        takes = "optimizer" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    try:
        return factory(dict(dims), optimizer=optimizer) if takes else factory(dict(dims))
    except USER_ERRORS as err:
        raise UserError(f"layer(dims) raised {describe_exception(err)}", "layer") from err


def _key_names(name: str) -> tuple[str, ...]:
    return (name, *(pattern.format(name) for pattern in GRADIENT_NAMES))


class LayerSession:
    """One layer object for one case: its forward and backward as the runner calls a layer's.

    ``inputs``: the registered inputs and parameters in order; ``params``: which of them the harness
    sets on the object; ``differentiable``: whose gradients are looked for.
    """

    def __init__(
        self,
        factory: Callable[..., Any],
        dims: Mapping[str, Any],
        inputs: Sequence[str],
        params: Sequence[str],
        differentiable: Sequence[str],
        methods: tuple[str, str] = ("forward", "backward"),
        outputs: int = 1,
    ) -> None:
        self.optimizer = RecordingOptimizer()
        self.optimizer.shared["attribute"] = self._attributed
        self.layer = build_layer(factory, dims, self.optimizer)
        self.inputs, self.params = list(inputs), list(params)
        self.differentiable = list(differentiable)
        self.methods, self.outputs = methods, outputs
        self.kind = type(self.layer).__name__
        self._values: dict[str, Any] = {}
        self._settled = False
        #: parameters the last backward changed (an optimizer step the harness was not given)
        self.changed_by_backward: tuple[str, ...] = ()
        self.forward = self._named(self._forward, methods[0])
        self.backward = self._named(self._backward, methods[1])

    def _named(self, fn: Callable[..., Any], method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        call.__name__ = call.__qualname__ = f"{self.kind}.{method}"
        return call

    # --- parameters -----------------------------------------------------------------------------

    def _holder(self, name: str) -> tuple[str, Any] | None:
        """Where the layer keeps parameter ``name``: ``("attribute", None)`` or ``("entry", the dict)``;
        of two dicts with a ``W`` entry, the one not named like gradients (``grads``, ``dparams``)."""
        own = getattr(self.layer, "__dict__", {})
        if name in own or isinstance(getattr(type(self.layer), name, None), property):
            return "attribute", None
        dicts = [(k, v) for k, v in own.items() if isinstance(v, dict) and name in v]
        dicts.sort(key=lambda kv: "grad" in kv[0].lower() or kv[0].startswith("d"))
        return ("entry", dicts[0][1]) if dicts else None

    def _get(self, name: str) -> Any:
        holder = self._holder(name)
        if holder is None:
            return None
        return getattr(self.layer, name) if holder[0] == "attribute" else holder[1][name]

    def _set(self, values: Mapping[str, Any]) -> list[str]:
        """Set each parameter where the layer keeps it; the names it keeps nowhere (yet)."""
        missing = []
        for name, value in values.items():
            holder = self._holder(name)
            if holder is None:
                missing.append(name)
            elif holder[0] == "attribute":
                setattr(self.layer, name, value)
            else:
                holder[1][name] = value
        return missing

    # --- forward --------------------------------------------------------------------------------

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        where = f"{self.kind}.{method}"
        fn = getattr(self.layer, method, None)
        if not callable(fn):
            raise UserError(
                f"{self.kind} has no method {method!r}; name its methods with forward='...' and backward='...'",
                where,
            )
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            raise UserError(f"{where} raised {describe_exception(err)}", where) from err

    def _forward(self, *values: Any, **hyper: Any) -> tuple[Any, ...]:
        named = dict(zip(self.inputs, values, strict=True))
        params = {p: named[p] for p in self.params}
        args = [named[n] for n in self.inputs if n not in params]
        self._values = params
        if self._settled:  # the parameters are made and stay where the harness sets them
            self._set(params)
            return (*self._outputs(self._call(self.methods[0], *args, **hyper)), self)
        # A forward run only to make the parameters must not move the random draws of the real one.
        draws = (np.random.get_state(), random.getstate())
        missing = self._set(params)
        if missing:
            # Parameters created on the first forward: run it once, then set them. A forward that
            # cannot run without them expects them set from outside: they become attributes.
            try:
                self._call(self.methods[0], *args, **hyper)
            except UserError:
                for name in missing:
                    setattr(self.layer, name, params[name])
            if self._set(params):
                raise UserError(self._not_found(missing), f"{self.kind}.{self.methods[0]}")
            np.random.set_state(draws[0])
            random.setstate(draws[1])
        result = self._call(self.methods[0], *args, **hyper)
        if self._replaced(params):  # a lazy initialisation ran in this call: set them again and rerun
            self._set(params)
            np.random.set_state(draws[0])
            random.setstate(draws[1])
            result = self._call(self.methods[0], *args, **hyper)
            replaced = self._replaced(params)
            if replaced:
                raise UserError(
                    f"{self.kind}.{self.methods[0]} replaces {', '.join(replaced)} on every call (it "
                    "re-initialises its parameters): the harness cannot set them; create them once",
                    f"{self.kind}.{self.methods[0]}",
                )
        self._settled = True
        return (*self._outputs(result), self)

    def _replaced(self, params: Mapping[str, Any]) -> list[str]:
        """The parameters the forward replaced by other values (a cast of the same values is no replacement)."""
        replaced = []
        for name, value in params.items():
            now = self._get(name)
            if now is value:
                continue
            if isinstance(now, np.ndarray) and isinstance(value, np.ndarray) and now.shape == value.shape:
                scale = float(np.max(np.abs(value))) if value.size else 0.0
                if np.allclose(now, value, rtol=1e-6, atol=1e-6 * max(scale, 1e-30)):
                    continue
            replaced.append(name)
        return replaced

    def _not_found(self, missing: Sequence[str]) -> str:
        attributes = sorted(k for k in getattr(self.layer, "__dict__", {}) if not k.startswith("__"))
        return (
            f"{self.kind} keeps no parameter called {', '.join(map(repr, missing))}, neither as an attribute "
            f"nor in a dict attribute, even after its forward (its attributes: {', '.join(attributes) or 'none'}); "
            "name params= as the layer names them"
        )

    def _outputs(self, result: Any) -> tuple[Any, ...]:
        where = f"{self.kind}.{self.methods[0]}"
        if result is None:
            found = next((getattr(self.layer, n) for n in OUTPUT_NAMES if hasattr(self.layer, n)), None)
            if found is None:
                raise UserError(
                    f"{where} returned None and left no output ({', '.join(OUTPUT_NAMES)})", where
                )
            result = found
        if self.outputs == 1:
            if isinstance(result, tuple):
                raise UserError(f"{where} returned a tuple of {len(result)}; expected its output", where)
            return (result,)
        if not isinstance(result, tuple) or len(result) != self.outputs:
            got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
            raise UserError(f"{where} returned {got}; expected {self.outputs} outputs", where)
        return result

    # --- backward -------------------------------------------------------------------------------

    def zero_gradients(self) -> None:
        """Zero every gradient the layer holds already (it may add into them)."""
        for name in self.differentiable:
            for holder, key in self._gradient_places(name):
                value = holder[key] if isinstance(holder, dict) else getattr(holder, key)
                if isinstance(value, np.ndarray) and value.flags.writeable:
                    value[...] = 0
                elif isinstance(value, np.ndarray):
                    self._put(holder, key, np.zeros_like(value))

    @staticmethod
    def _put(holder: Any, key: str, value: Any) -> None:
        if isinstance(holder, dict):
            holder[key] = value
        else:
            setattr(holder, key, value)

    def _gradient_places(self, name: str) -> list[tuple[Any, str]]:
        """``(holder, key)`` of every place a gradient of ``name`` may be, in the order they are looked at:
        dict attributes (not the one holding the parameter itself), then attributes."""
        own = getattr(self.layer, "__dict__", {})
        places: list[tuple[Any, str]] = []
        holders = [h[1] for p in self.params if (h := self._holder(p)) is not None and h[0] == "entry"]
        for attribute in list(own.values()):
            if isinstance(attribute, dict) and not any(attribute is h for h in holders):
                places.extend((attribute, k) for k in _key_names(name) if k in attribute)
        keys = [pattern.format(name) for pattern in GRADIENT_NAMES]
        inputs = [n for n in self.differentiable if n not in self.params]
        if name in inputs and len(inputs) == 1:
            keys.extend(INPUT_GRADIENT_NAMES)
        places.extend((self.layer, k) for k in dict.fromkeys(keys) if k in own)
        return places

    def _backward(self, *douts_and_cache: Any) -> dict[str, Any]:
        *douts, _ = douts_and_cache
        self._set(
            {p: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for p, v in self._values.items()}
        )
        before = {p: fingerprint(v) for p in self.params if isinstance(v := self._get(p), np.ndarray)}
        self.zero_gradients()
        del self.optimizer.gradients[:]
        raw = self._call(self.methods[1], *douts)
        self.changed_by_backward = tuple(
            f"layer.{p}"
            for p, f in before.items()
            if not isinstance(v := self._get(p), np.ndarray) or fingerprint(v) != f
        )
        return self.gradients(raw)

    def backward_over_time(self, douts: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """A cell's backward called once per step (``douts``: each call's upstream gradients, the last
        step first), with the gradients zeroed once before the first: each call's gradients, found
        after it (parameter gradients add up over the steps, on the layer or in the optimizer's record)."""
        self._set(
            {p: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for p, v in self._values.items()}
        )
        self.zero_gradients()
        del self.optimizer.gradients[:]
        found = []
        for t, step_douts in enumerate(douts):
            try:
                raw = self._call(self.methods[1], *step_douts)
            except UserError as err:
                raise UserError(
                    f"at the {_ordinal(t + 1)} backward call (step {len(douts) - 1 - t}): {err.message}",
                    err.where,
                ) from err
            found.append(self.gradients(raw))
        return found

    def gradients(self, raw: Any) -> dict[str, Any]:
        """Every differentiable name's gradient (copied), or a :class:`Refused` saying where it was looked for."""
        returned = self._returned(raw)
        recorded = self._recorded()
        found: dict[str, Any] = {}
        for name in self.differentiable:
            value = returned.get(name, recorded.get(name))
            if value is None:
                held = (self._read(holder, key) for holder, key in self._gradient_places(name))
                value = next((v for v in held if v is not None), None)
            if value is None:
                found[name] = Refused(self._missing(name, raw))
            else:
                found[name] = np.array(value, copy=True) if isinstance(value, np.ndarray) else value
        return found

    @staticmethod
    def _read(holder: Any, key: str) -> Any:
        return holder.get(key) if isinstance(holder, dict) else getattr(holder, key, None)

    def _returned(self, raw: Any) -> dict[str, Any]:
        inputs = [n for n in self.differentiable if n not in self.params]
        if raw is None:
            return {}
        if isinstance(raw, Mapping):
            return self._by_key(raw)
        if isinstance(raw, np.ndarray):
            return {inputs[0]: raw} if len(inputs) == 1 else {}
        if isinstance(raw, (tuple, list)):
            found: dict[str, Any] = {}
            arrays = [v for v in raw if not isinstance(v, Mapping)]
            for value in raw:
                if isinstance(value, Mapping):
                    found |= self._by_key(value)
            for names in (inputs, self.differentiable):
                if len(arrays) == len(names):
                    return dict(zip(names, arrays, strict=True)) | found
            return found
        return {}

    def _by_key(self, mapping: Mapping[Any, Any]) -> dict[str, Any]:
        found = {}
        for name in self.differentiable:
            key = next((k for k in _key_names(name) if k in mapping), None)
            if key is not None:
                found[name] = mapping[key]
        return found

    def _recorded(self) -> dict[str, Any]:
        """The gradient of each parameter handed to the optimizer (summed when handed over in parts)."""
        totals: dict[str, Any] = {}
        for name, gradient in self.optimizer.gradients:
            totals[name] = gradient if name not in totals else totals[name] + gradient
        return totals

    def _attributed(self, values: Sequence[Any]) -> tuple[dict[str, Any], Any]:
        """Which parameter each gradient handed to the optimizer in one call is of (read at call time, while
        the parameters are still the ones the harness set), and the parameter among the arguments."""
        current = {p: self._get(p) for p in self.params}
        found: dict[str, Any] = {}
        for value in values:
            if isinstance(value, Mapping) and not any(
                v is c for v in value.values() for c in current.values()
            ):
                found |= {k: v for k, v in self._by_key(value).items() if k in current}
        arrays = [v for v in values if isinstance(v, np.ndarray)]
        params = [p for a in arrays for p, c in current.items() if a is c]
        grads = [a for a in arrays if not any(a is c for c in current.values())]
        named = [v for v in values if isinstance(v, str) and v in current]
        if len(grads) == 1:
            owner = named or params or [p for p, c in current.items() if np.shape(c) == grads[0].shape]
            if len(set(owner)) == 1:
                found[owner[0]] = np.array(grads[0], copy=True)
        return found, (current[params[0]] if params else None)

    def _missing(self, name: str, raw: Any) -> str:
        kind = "None" if raw is None else type(raw).__name__
        places = ", ".join(pattern.format(name) for pattern in GRADIENT_NAMES[:3])
        attributes = sorted(k for k in getattr(self.layer, "__dict__", {}) if not k.startswith("__"))
        return (
            f"was not found after {self.kind}.{self.methods[1]}: it returned {kind}, handed no gradient of {name} "
            f"to an optimizer, and left no {places} on the layer nor a {name!r} entry in a dict attribute "
            f"(its attributes: {', '.join(attributes) or 'none'})"
        )


def _ordinal(n: int) -> str:
    return f"{n}{'tsnrhtdd'[(n // 10 % 10 != 1) * (n % 10 < 4) * n % 10 :: 4]}"
