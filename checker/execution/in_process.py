"""One case of a target, run in this process in its registration style: an :class:`Execution`.

For a layer: the forward on copies of the inputs, a random dout per output, the backward twice (on
copies of dout); for a loss: ``value_and_grad`` twice; for a model: the model built with the
harness's own well-scaled parameters, its loss twice. What the user's code wrote into its arguments
is recorded as :class:`MutationEvidence`. A user function that raises, or returns something the
checks cannot read, raises :class:`UserError` (the runner makes it an error row).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from checker.cases import Case
from checker.compare import precision_eps
from checker.execution.calls import (
    as_gradient_array,
    build_model,
    call_forward,
    detached,
    dout_names,
    scalar_objective,
)
from checker.execution.fingerprints import changed_names, fingerprint
from checker.execution.objects import LayerSession
from checker.execution.randomness import differing, same_draws, seeded, unrepeatable
from checker.execution.record import RESCALE, Execution, MutationEvidence
from checker.execution.recurrent import Unrolled
from checker.execution.user_code import USER_ERRORS, UserError, describe_exception
from checker.registry import Target

__all__ = ["run"]


def run(target: Target, case: Case, rng: np.random.Generator) -> Execution:
    """Run ``target``'s user code on ``case`` (``rng`` draws douts and model parameters)."""
    if target.takes_dout:
        forward, backward, session = layer_calls(target, case)
        return _run_layer(target, case, rng, forward, backward, session)
    if target.style == "loss":
        return _run_loss(target, case)
    return _run_model(target, case, rng)


def _flatten_arrays(
    obj: Any, prefix: str = "cache", out: dict[str, np.ndarray] | None = None, depth: int = 0
) -> dict[str, np.ndarray]:
    """Every ndarray inside a (nested) cache, by a readable path: ``cache[2]``, ``cache['x']``."""
    out = {} if out is None else out
    if depth > 4:
        return out
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
    elif isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            _flatten_arrays(item, f"{prefix}[{i}]", out, depth + 1)
    elif isinstance(obj, dict):
        for key, item in obj.items():
            _flatten_arrays(item, f"{prefix}[{key!r}]", out, depth + 1)
    return out


def _outputs_as_arrays(outs: Sequence[Any], where: str, names: Sequence[str]) -> tuple[np.ndarray, ...]:
    """The outputs as float arrays; ``names``: the backward's names of their gradients (``dnext_c``)."""
    arrays = []
    for i, out in enumerate(outs):
        array, problem = as_gradient_array(out)
        if array is None:
            name = names[i] if i < len(names) else f"output {i + 1}"
            label = name[1:] if name.startswith("d") and len(name) > 1 else name
            raise UserError(f"{where} returned {label} that {problem}", where)
        arrays.append(array)
    return tuple(arrays)


def layer_calls(
    target: Target, case: Case
) -> tuple[Callable[..., Any], Callable[..., Any], LayerSession | None]:
    """The forward and backward a layer-like target is run with, in its style: its own functions, a
    layer object's methods (:mod:`.objects`, one object per case), or either unrolled over time
    (:mod:`.recurrent`); and the layer object, when there is one."""

    def new_session() -> LayerSession:
        assert target.layer is not None
        return LayerSession(
            target.layer,
            case.dims,
            list(target.inputs),
            target.params,
            target.differentiable,
            target.methods,
            target.outputs if target.unroll is None else 1,
        )

    if target.unroll is not None:
        unrolled = Unrolled(target, new_session if target.style == "object" else None)
        return unrolled.forward, unrolled.backward, None
    if target.style == "object":
        session = new_session()
        return session.forward, session.backward, session
    assert target.forward is not None and target.backward is not None
    return target.forward, target.backward, None


def _run_layer(
    target: Target,
    case: Case,
    rng: np.random.Generator,
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    session: LayerSession | None = None,
) -> Execution:
    """A layer's case, run with ``forward``/``backward`` (:func:`layer_calls`). Every forward call draws
    the same random numbers (:mod:`.randomness`)."""
    given = {*target.inputs, *case.hyper}
    forward = seeded(forward, case.seed, given)
    forward_name = getattr(forward, "__name__", "forward")
    backward_name = getattr(backward, "__name__", "backward")
    # A first call to compare with: a forward still random after the reset is no function to judge.
    repeat, _ = call_forward(
        target, {n: a.copy() for n, a in case.arrays.items()}, case.fresh_hyper(), forward
    )
    inputs = {n: a.copy() for n, a in case.arrays.items()}
    outs_raw, cache = call_forward(target, inputs, case.fresh_hyper(), forward)
    difference = differing(repeat, outs_raw)
    del repeat
    mutations = [MutationEvidence("forward", forward_name, changed_names(case.arrays, inputs))]
    del inputs  # the cache keeps what the backward needs
    # The upstream gradients as the user's backward names them: a layer object's method's, a step's.
    user_backward = (
        getattr(session.layer, target.methods[1], None) if session is not None else target.backward
    )
    names = dout_names(user_backward, len(outs_raw))
    outs = _outputs_as_arrays(outs_raw, forward_name, names)
    douts = tuple(rng.standard_normal(o.shape) for o in outs)
    try:
        cache_before = {k: fingerprint(v) for k, v in _flatten_arrays(cache).items()}
    except USER_ERRORS:
        cache_before = {}
    dout_copies = [d.copy() for d in douts]
    try:
        raw = backward(*dout_copies, cache)
    except UserError:
        raise
    except USER_ERRORS as err:
        raise UserError(f"{backward_name} raised {describe_exception(err)}", backward_name) from err
    # Kept as returned: a second call may add into the very arrays the first one returned.
    raw = detached(raw)
    before = dict(zip(names, douts, strict=True))
    after = dict(zip(names, dout_copies, strict=True))
    cache_after = _flatten_arrays(cache)
    changed = changed_names(before | cache_before, after | cache_after)
    if session is not None:
        changed += session.changed_by_backward
    mutations.append(MutationEvidence("backward", backward_name, changed))
    del after, cache_after, dout_copies  # not held through the second backward's peak
    try:
        raw_again = backward(*[d.copy() for d in douts], cache)
    except UserError as err:
        raw_again = UserError(f"on a second call: {err.message}", err.where)
    except USER_ERRORS as err:
        raw_again = UserError(
            f"{backward_name} raised on a second call: {describe_exception(err)}", backward_name
        )
    hyper = case.hyper

    def objective(values: Mapping[str, Any]) -> Any:
        return scalar_objective(target, values, copy.deepcopy(hyper), douts, function=forward)

    def rescaled(factor: float = RESCALE) -> Any:
        return detached(backward(*[d * factor for d in douts], cache))

    value = float(sum(np.sum(o * d) for o, d in zip(outs, douts, strict=True)))
    differentiable = target.differentiable
    return Execution(
        differentiable,
        {n: case.arrays[n] for n in case.arrays},
        raw,
        raw_again,
        backward_name,
        objective=None if difference else objective,
        outputs=outs,
        douts=douts,
        value=value,
        mutations=mutations,
        eps=precision_eps(*outs_raw, cache),
        dout_names=names,
        unrepeatable=unrepeatable(forward_name, difference) if difference else "",
        rescaled=rescaled,
    )


def _loss_value(result: Any, where: str) -> tuple[float, Any]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise UserError(f"{where} returned {type(result).__name__}; expected a tuple (loss, grads)", where)
    loss, grads = result
    array, problem = as_gradient_array(loss)
    if array is None or array.size != 1:
        what = problem if array is None else f"has shape {array.shape}"
        raise UserError(f"{where} returned a loss that {what}; expected a float scalar", where)
    return float(array.reshape(())), grads


def _run_loss(target: Target, case: Case) -> Execution:
    assert target.value_and_grad is not None
    where = getattr(target.value_and_grad, "__name__", "value_and_grad")
    value_and_grad = seeded(target.value_and_grad, case.seed, {*target.inputs, *case.hyper})
    inputs = {n: a.copy() for n, a in case.arrays.items()}

    def call(values: Mapping[str, Any]) -> Any:
        try:
            return value_and_grad(*(values[n] for n in target.inputs), **case.fresh_hyper())
        except USER_ERRORS as err:
            raise UserError(f"{where} raised {describe_exception(err)}", where) from err

    first = call(inputs)
    value, raw = _loss_value(first, where)
    raw = detached(raw)
    mutations = [MutationEvidence(where, where, changed_names(case.arrays, inputs))]
    value_again = value
    try:
        value_again, raw_again = _loss_value(call({n: a.copy() for n, a in case.arrays.items()}), where)
    except UserError as err:
        raw_again = err

    def objective(values: Mapping[str, Any]) -> Any:
        return scalar_objective(target, values, case.fresh_hyper(), (), function=value_and_grad)

    difference = differing((value,), (value_again,))
    return Execution(
        target.differentiable,
        dict(case.arrays),
        raw,
        raw_again,
        where,
        objective=None if difference else objective,
        value=value,
        mutations=mutations,
        eps=precision_eps(first),
        unrepeatable=unrepeatable(where, difference, "losses") if difference else "",
    )


def _run_model(target: Target, case: Case, rng: np.random.Generator) -> Execution:
    with same_draws(case.seed):
        model = build_model(target, case.dims)
    # Our own well-scaled draws: cs231n's 1e-4 initial weights make every gradient tiny.
    params = {k: rng.standard_normal(np.shape(v)) * 0.5 for k, v in model.params.items()}
    for k, v in params.items():
        model.params[k] = v.copy()
    data = {n: a.copy() for n, a in case.arrays.items()}
    assert target.loss is not None
    loss = seeded(target.loss, case.seed, {"model", *target.inputs})

    def call() -> Any:
        try:
            return loss(model, *(data[n] for n in target.inputs))
        except USER_ERRORS as err:
            raise UserError(f"loss(model, ...) raised {describe_exception(err)}", "loss") from err

    first = call()
    value, raw = _loss_value(first, "loss")
    raw = detached(raw)
    mutations = [
        MutationEvidence("loss", "loss", changed_names(case.arrays | params, data | dict(model.params)))
    ]
    for k, v in params.items():
        model.params[k] = v.copy()
    value_again = value
    try:
        value_again, raw_again = _loss_value(call(), "loss")
    except UserError as err:
        raw_again = err

    def objective(values: Mapping[str, Any]) -> Any:
        merged = dict(case.arrays) | {k: values.get(k, v) for k, v in params.items()}
        merged |= {k: values[k] for k in case.arrays if k in values}
        return scalar_objective(target, merged, {}, (), model=model, function=loss)

    difference = differing((value,), (value_again,))
    return Execution(
        list(params),
        params,
        raw,
        raw_again,
        "loss",
        objective=None if difference else objective,
        value=value,
        mutations=mutations,
        model_params=params,
        eps=precision_eps(first),
        unrepeatable=unrepeatable("loss(model, ...)", difference, "losses") if difference else "",
    )
