"""One case of a target, run in this process in its registration style: an :class:`Execution`.

For a layer: the forward on copies of the inputs, a random dout per output, the backward twice (on
copies of dout); for a loss: ``value_and_grad`` twice; for a model: the model built with the
harness's own well-scaled parameters, its loss twice. What the user's code wrote into its arguments
is recorded as :class:`MutationEvidence`. A user function that raises, or returns something the
checks cannot read, raises :class:`UserError` (the runner makes it an error row).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from checker.cases import Case
from checker.compare import precision_eps
from checker.execution.calls import as_gradient_array, build_model, call_forward, scalar_objective
from checker.execution.fingerprints import changed_names, fingerprint
from checker.execution.record import Execution, MutationEvidence
from checker.execution.user_code import USER_ERRORS, UserError, describe_exception
from checker.registry import Target

__all__ = ["run"]


def run(target: Target, case: Case, rng: np.random.Generator) -> Execution:
    """Run ``target``'s user code on ``case`` (``rng`` draws douts and model parameters)."""
    if target.style == "layer":
        return _run_layer(target, case, rng)
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


def _outputs_as_arrays(outs: Sequence[Any], where: str) -> tuple[np.ndarray, ...]:
    arrays = []
    for i, out in enumerate(outs):
        array, problem = as_gradient_array(out)
        if array is None:
            label = "out" if len(outs) == 1 else f"output {i + 1}"
            raise UserError(f"{where} returned {label} that {problem}", where)
        arrays.append(array)
    return tuple(arrays)


def _run_layer(target: Target, case: Case, rng: np.random.Generator) -> Execution:
    inputs = {n: a.copy() for n, a in case.arrays.items()}
    forward_name = getattr(target.forward, "__name__", "forward")
    backward_name = getattr(target.backward, "__name__", "backward")
    outs_raw, cache = call_forward(target, inputs, case.fresh_hyper())
    mutations = [MutationEvidence("forward", forward_name, changed_names(case.arrays, inputs))]
    del inputs  # the cache keeps what the backward needs
    outs = _outputs_as_arrays(outs_raw, forward_name)
    douts = tuple(rng.standard_normal(o.shape) for o in outs)
    try:
        cache_before = {k: fingerprint(v) for k, v in _flatten_arrays(cache).items()}
    except USER_ERRORS:
        cache_before = {}
    dout_copies = [d.copy() for d in douts]
    assert target.backward is not None
    try:
        raw = target.backward(*dout_copies, cache)
    except USER_ERRORS as err:
        raise UserError(f"{backward_name} raised {describe_exception(err)}", backward_name) from err
    names = {"dout" if len(douts) == 1 else f"dout{i + 1}": d for i, d in enumerate(douts)}
    after = {"dout" if len(douts) == 1 else f"dout{i + 1}": d for i, d in enumerate(dout_copies)}
    cache_after = _flatten_arrays(cache)
    mutations.append(
        MutationEvidence("backward", backward_name, changed_names(names | cache_before, after | cache_after))
    )
    del after, cache_after, dout_copies  # not held through the second backward's peak
    try:
        raw_again = target.backward(*[d.copy() for d in douts], cache)
    except USER_ERRORS as err:
        raw_again = UserError(
            f"{backward_name} raised on a second call: {describe_exception(err)}", backward_name
        )
    hyper = case.hyper

    def objective(values: Mapping[str, Any]) -> Any:
        return scalar_objective(target, values, copy.deepcopy(hyper), douts)

    value = float(sum(np.sum(o * d) for o, d in zip(outs, douts, strict=True)))
    differentiable = target.differentiable
    return Execution(
        differentiable,
        {n: case.arrays[n] for n in case.arrays},
        raw,
        raw_again,
        backward_name,
        objective=objective,
        outputs=outs,
        douts=douts,
        value=value,
        mutations=mutations,
        eps=precision_eps(*outs_raw, cache),
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
    inputs = {n: a.copy() for n, a in case.arrays.items()}

    def call(values: Mapping[str, Any]) -> Any:
        try:
            return target.value_and_grad(*(values[n] for n in target.inputs), **case.fresh_hyper())
        except USER_ERRORS as err:
            raise UserError(f"{where} raised {describe_exception(err)}", where) from err

    first = call(inputs)
    value, raw = _loss_value(first, where)
    mutations = [MutationEvidence(where, where, changed_names(case.arrays, inputs))]
    try:
        _, raw_again = _loss_value(call({n: a.copy() for n, a in case.arrays.items()}), where)
    except UserError as err:
        raw_again = err

    def objective(values: Mapping[str, Any]) -> Any:
        return scalar_objective(target, values, case.fresh_hyper(), ())

    return Execution(
        target.differentiable,
        dict(case.arrays),
        raw,
        raw_again,
        where,
        objective=objective,
        value=value,
        mutations=mutations,
        eps=precision_eps(first),
    )


def _run_model(target: Target, case: Case, rng: np.random.Generator) -> Execution:
    state = np.random.get_state()
    np.random.seed(case.seed % (2**32))
    try:
        model = build_model(target, case.dims)
    finally:
        np.random.set_state(state)
    # Our own well-scaled draws: cs231n's 1e-4 initial weights make every gradient tiny.
    params = {k: rng.standard_normal(np.shape(v)) * 0.5 for k, v in model.params.items()}
    for k, v in params.items():
        model.params[k] = v.copy()
    data = {n: a.copy() for n, a in case.arrays.items()}
    assert target.loss is not None

    def call() -> Any:
        try:
            return target.loss(model, *(data[n] for n in target.inputs))
        except USER_ERRORS as err:
            raise UserError(f"loss(model, ...) raised {describe_exception(err)}", "loss") from err

    first = call()
    value, raw = _loss_value(first, "loss")
    mutations = [
        MutationEvidence("loss", "loss", changed_names(case.arrays | params, data | dict(model.params)))
    ]
    for k, v in params.items():
        model.params[k] = v.copy()
    try:
        _, raw_again = _loss_value(call(), "loss")
    except UserError as err:
        raw_again = err

    def objective(values: Mapping[str, Any]) -> Any:
        merged = dict(case.arrays) | {k: values.get(k, v) for k, v in params.items()}
        merged |= {k: values[k] for k in case.arrays if k in values}
        return scalar_objective(target, merged, {}, (), model=model)

    return Execution(
        list(params),
        params,
        raw,
        raw_again,
        "loss",
        objective=objective,
        value=value,
        mutations=mutations,
        model_params=params,
        eps=precision_eps(first),
    )
