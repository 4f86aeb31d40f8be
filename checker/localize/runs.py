"""Run the user's code in its registration style for localisation: plain and under torch._numpy.

Layer: the forward runs plain, the backward traced; loss: ``value_and_grad`` runs traced (its
second half is the backward); model: the model is built as the runner builds it (numpy's global
generator seeded), given the case's parameter values, and its ``loss`` runs traced.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from checker.execution.calls import build_model, call_forward, scalar_objective
from checker.execution.user_code import UserError
from checker.localize.intermediates import ForwardTrace, forward_intermediates
from checker.localize.steps import BackwardRun, run_backward
from checker.registry import Target

__all__ = ["FLOAT64_EPS", "Plain", "objective_of", "plain_run", "traced_run", "user_files"]

FLOAT64_EPS = float(np.finfo(np.float64).eps)


@dataclass
class Plain:
    """The plain-numpy run: its steps, L, the returned gradients, the outputs and their precision."""

    run: BackwardRun
    value: float
    raw_grads: Any
    outputs: tuple[np.ndarray, ...]
    eps: float
    differentiable: list[str]


def _precision(*values: Any) -> float:
    eps = FLOAT64_EPS
    for value in values:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and np.dtype(dtype).kind == "f":
            eps = max(eps, float(np.finfo(dtype).eps))
    return eps


def user_files(target: Target) -> set[str]:
    from checker.oracles.torch_numpy import user_modules

    files = {str(getattr(m, "__file__", "")) for m in user_modules()}
    for function in target.user_functions.values():
        code = getattr(function, "__code__", None)  # code without a module file: exec, a notebook cell
        if code is not None:
            files.add(code.co_filename)
    return {f for f in files if f}


def _model(target: Target, dims: Mapping[str, int], seed: int, params: Mapping[str, np.ndarray]) -> Any:
    """The user's model, built as the runner builds it (numpy's global generator seeded), with ``params``."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        model = build_model(target, dims)
    finally:
        np.random.set_state(state)
    for name, value in params.items():
        model.params[name] = np.array(value, copy=True)
    return model


def plain_run(
    target: Target,
    inputs: Mapping[str, np.ndarray],
    hyper: Mapping[str, Any],
    douts: Sequence[np.ndarray],
    params: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    seed: int,
    files: set[str],
    budget: int,
) -> Plain:
    values = {n: np.array(a, copy=True) for n, a in inputs.items()}
    if target.style == "layer":
        outs_raw, cache = call_forward(target, values, copy.deepcopy(dict(hyper)))
        outs = tuple(np.asarray(o) for o in outs_raw)
        value = float(sum(np.sum(o * d) for o, d in zip(outs, douts, strict=True)))
        assert target.backward is not None
        backward = target.backward
        run = run_backward(lambda: backward(*[np.array(d, copy=True) for d in douts], cache), files, budget)
        return Plain(run, value, run.returned, outs, _precision(*outs_raw), target.differentiable)
    if target.style == "loss":
        assert target.value_and_grad is not None
        function = target.value_and_grad
        kwargs = copy.deepcopy(dict(hyper))
        run = run_backward(lambda: function(*(values[n] for n in target.inputs), **kwargs), files, budget)
        differentiable = target.differentiable
    else:
        assert target.loss is not None
        model = _model(target, dims, seed, params)
        loss = target.loss
        run = run_backward(lambda: loss(model, *(values[n] for n in target.inputs)), files, budget)
        differentiable = list(params)
    if not isinstance(run.returned, tuple) or len(run.returned) != 2:
        raise UserError("the loss did not return a tuple (loss, grads)", "loss")
    loss_value = np.asarray(run.returned[0])
    return Plain(
        run, float(loss_value.reshape(-1)[0]), run.returned[1], (), _precision(loss_value), differentiable
    )


def objective_of(
    target: Target,
    hyper: Mapping[str, Any],
    douts: Sequence[np.ndarray],
    params: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    seed: int,
) -> Callable[[Mapping[str, Any]], Any]:
    """values (inputs, and a model's params) -> the checked scalar L; numpy or torch._numpy arrays."""
    if target.style == "model":
        model = _model(target, dims, seed, params)

        def objective(values: Mapping[str, Any]) -> Any:
            return scalar_objective(target, values, {}, (), model=model)

        return objective

    def objective(values: Mapping[str, Any]) -> Any:
        return scalar_objective(target, values, copy.deepcopy(dict(hyper)), douts)

    return objective


def traced_run(
    target: Target,
    values: Mapping[str, np.ndarray],
    objective: Callable[[Mapping[str, Any]], Any],
    plain: Plain,
    files: set[str],
    budget: int,
) -> ForwardTrace:
    namespaces = [f.__globals__ for f in target.user_functions.values() if hasattr(f, "__globals__")]
    rtol = 1e-9 if plain.eps <= FLOAT64_EPS else float(np.sqrt(plain.eps))
    return forward_intermediates(
        objective,
        values,
        plain.differentiable,
        plain.value,
        files,
        stop_at_gradient_code=target.style != "layer",
        namespaces=namespaces,
        rtol=rtol,
        budget=budget,
    )
