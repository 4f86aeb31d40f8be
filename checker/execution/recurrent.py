"""A recurrent cell run over time: the cell's own step functions (or a cell object called once per step)
unrolled over T steps, as one layer whose input and output have a time axis.

Step functions (cs231n's ``lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> (next_h, next_c,
cache)``): the forward runs the step T times, feeding each state the step's own output (``prev_h``
by ``next_h``, ``prev_c`` by ``next_c``); the output is ``next_h`` at every step. The backward runs
the step's backward from the last step to the first, giving each step the gradient of its outputs:
``dnext_h`` is the output's gradient at that step plus the ``dprev_h`` the step after it returned,
``dnext_c`` that step's ``dprev_c``. Input gradients are stacked over time, parameter gradients
summed, and the states' gradients at the first step are the initial states'.

A cell object (``layer=``, ``unroll=over_time("T", sequence="x")``) keeps its state on itself: a
fresh one per sequence gets ``forward(x_t)`` for every step, then ``backward(dh_t)`` from the last
step to the first; it must carry the gradient through its state itself.

Either way, every gradient is judged against finite differences and autograd of the unrolled
forward: a dropped path through the state is wrong from the step where it is dropped on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checker.execution.calls import as_gradient_array, normalize_gradients
from checker.execution.objects import LayerSession
from checker.execution.user_code import USER_ERRORS, UserError, describe_exception
from checker.registry import Target

__all__ = ["Unrolled", "time_axis"]


def time_axis(target: Target, name: str) -> int:
    """The axis of the unrolled input ``name`` that counts the steps (1 for ``"N,T,D"``)."""
    assert target.unroll is not None
    return target.inputs[name].shape.index(target.unroll.steps)


def _at(value: Any, axis: int, t: int) -> Any:
    return value[(slice(None),) * axis + (t,)]


def _stack(values: Sequence[Any], axis: int) -> Any:
    """``np.stack`` in the arrays' own numpy: torch._numpy's while autograd traces the forward."""
    if isinstance(values[0], np.ndarray) or np.isscalar(values[0]):
        return np.stack(values, axis=axis)
    import torch._numpy as tnp

    return tnp.stack(values, axis=axis)


@dataclass
class _Sequence:
    """What the unrolled forward keeps for its backward: each step's cache and output shapes, the values."""

    values: tuple[Any, ...]
    hyper: dict[str, Any]
    caches: list[Any] = field(default_factory=list)
    out_shapes: list[tuple[tuple[int, ...], ...]] = field(default_factory=list)
    session: LayerSession | None = None
    used: bool = False


class Unrolled:
    """One case's unrolled forward and backward (:attr:`forward`, :attr:`backward`) of ``target``'s cell.

    ``new_session``: a fresh cell object per sequence (object style), None for step functions.
    """

    def __init__(self, target: Target, new_session: Callable[[], LayerSession] | None = None) -> None:
        assert target.unroll is not None
        self.target, self.over, self.new_session = target, target.unroll, new_session
        kind = target.methods if new_session is not None else None
        step_names = (
            (f"{kind[0]}", f"{kind[1]}")
            if kind
            else (
                getattr(target.forward, "__name__", "forward"),
                getattr(target.backward, "__name__", "backward"),
            )
        )
        self.forward_name, self.backward_name = step_names
        self.forward = self._named(self._forward, f"{self.forward_name} over {self.over.steps} steps")
        self.backward = self._named(self._backward, f"{self.backward_name} over {self.over.steps} steps")

    @staticmethod
    def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        return call

    # --- forward --------------------------------------------------------------------------------

    def _forward(self, *values: Any, **hyper: Any) -> tuple[Any, _Sequence]:
        named = dict(zip(self.target.inputs, values, strict=True))
        first = self.over.sequence[0]
        steps = int(np.shape(named[first])[time_axis(self.target, first)])
        record = _Sequence(values, dict(hyper))
        if self.new_session is not None:
            record.session = self.new_session()
        states = [named[s] for s in self.over.state]
        outputs = []
        for t in range(steps):
            args = [
                _at(named[n], time_axis(self.target, n), t)
                if n in self.over.sequence
                else states[self.over.state.index(n)]
                if n in self.over.state
                else named[n]
                for n in self.over.step_inputs
            ]
            outs, cache = self._step_forward(record, t, args, hyper)
            outputs.append(outs[0])
            record.caches.append(cache)
            record.out_shapes.append(tuple(tuple(np.shape(o)) for o in outs))
            states = list(outs[: len(self.over.state)])
        if not outputs:
            raise UserError(
                f"{self.forward_name}: no steps to run (the sequence has length 0)", self.forward_name
            )
        return _stack(outputs, min(1, len(np.shape(outputs[0])))), record

    def _step_forward(
        self, record: _Sequence, t: int, args: list[Any], hyper: dict[str, Any]
    ) -> tuple[tuple[Any, ...], Any]:
        if record.session is not None:
            result = self._at_step(t, record.session.forward, *args, **hyper)
            return tuple(result[:-1]), None
        assert self.target.forward is not None
        result = self._at_step(t, self.target.forward, *args, **hyper)
        expected = self.over.step_outputs + 1
        if not isinstance(result, tuple) or len(result) != expected:
            got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
            raise UserError(
                f"{self.forward_name} at step {t} returned {got}; expected {expected - 1} outputs and a cache",
                self.forward_name,
            )
        return tuple(result[:-1]), result[-1]

    def _at_step(self, t: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            raise UserError(f"at step {t}: {err.message}", err.where) from err
        except USER_ERRORS as err:
            name = getattr(fn, "__name__", "the step")
            raise UserError(f"{name} at step {t} raised {describe_exception(err)}", name) from err

    # --- backward -------------------------------------------------------------------------------

    def _backward(self, dout: Any, record: _Sequence) -> dict[str, Any]:
        if record.session is not None:
            return self._object_backward(dout, record)
        assert self.target.backward is not None
        over, target = self.over, self.target
        names = [n for n in over.step_inputs if target.inputs[n].differentiable]
        steps = len(record.caches)
        sequences: dict[str, list[Any]] = {n: [None] * steps for n in names if n in over.sequence}
        totals: dict[str, Any] = {}
        flowing: list[Any] = [None] * len(over.state)  # the gradient reaching each state from later steps
        for t in reversed(range(steps)):
            douts = []
            for i, shape in enumerate(record.out_shapes[t]):
                d = np.array(_at(dout, min(1, dout.ndim - 1), t), dtype=np.float64) if i == 0 else None
                if i < len(flowing) and flowing[i] is not None:
                    d = flowing[i] if d is None else d + flowing[i]
                douts.append(np.zeros(shape) if d is None else d)
            raw = self._at_step(t, target.backward, *douts, record.caches[t])
            grads = self._step_gradients(raw, names, t)
            for name, value in grads.items():
                if name in sequences:
                    sequences[name][t] = value
                elif name in over.state:
                    state = record.values[list(target.inputs).index(name)]
                    if value.shape != np.shape(state):
                        raise UserError(
                            f"{self.backward_name} at step {t} returned d{name} of shape {value.shape} for {name} "
                            f"of shape {np.shape(state)}: it cannot be passed back to step {t - 1}",
                            self.backward_name,
                        )
                    flowing[over.state.index(name)] = value
                elif name not in totals:
                    totals[name] = value
                elif totals[name].shape != value.shape:
                    raise UserError(
                        f"{self.backward_name} returned d{name} of shape {value.shape} at step {t} and "
                        f"{totals[name].shape} at a later step: it cannot be summed over the steps",
                        self.backward_name,
                    )
                else:
                    totals[name] = totals[name] + value
        found: dict[str, Any] = dict(totals)
        for name, slices in sequences.items():
            found[name] = np.stack(slices, axis=time_axis(target, name))
        for i, name in enumerate(over.state):
            if name in names:
                found[name] = flowing[i]
        return found

    def _step_gradients(self, raw: Any, names: list[str], t: int) -> dict[str, np.ndarray]:
        """The step's gradients as arrays of their step input's shape; anything else names the step."""
        where = self.backward_name
        grads, problems = normalize_gradients(raw, names, where)
        if problems:
            raise UserError(f"at step {t}: {problems[0].message}", where)
        found = {}
        for name in names:
            array, why = as_gradient_array(grads[name])
            if array is None:
                raise UserError(f"{where} at step {t}: d{name} {why}", where)
            found[name] = array
        return found

    def _object_backward(self, dout: Any, record: _Sequence) -> dict[str, Any]:
        if record.used:  # a second backward: the cell's state is spent; run the sequence again
            _, record = self._forward(*record.values, **record.hyper)
        record.used = True
        session = record.session
        assert session is not None
        steps = len(record.out_shapes)
        per_step = [
            (np.array(_at(dout, min(1, dout.ndim - 1), t), dtype=np.float64),) for t in reversed(range(steps))
        ]
        returned = session.backward_over_time(per_step)
        found = returned[-1]
        for name in self.over.sequence:
            if name in found:
                slices = [step[name] for step in reversed(returned)]
                bad = next((s for s in slices if not isinstance(s, np.ndarray)), None)
                found[name] = bad if bad is not None else np.stack(slices, axis=time_axis(self.target, name))
        return found
