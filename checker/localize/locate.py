"""``localize()``: run the user's code twice, traced, and find the first wrong step of its backward.

1. plain numpy, traced (:mod:`~checker.localize.steps`): the forward (untraced for a layer) and the
   backward's steps, L, and the returned gradients;
2. under torch._numpy, traced (:mod:`~checker.localize.intermediates`): the exact gradient of every
   named intermediate of the forward;
3. :mod:`~checker.localize.match`: steps matched to forward names and judged in the backward's order.

Only for a function that failed a gradient check: a passing function never pays for this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from checker.compare import Tolerance, for_precision, mismatch_mask
from checker.diagnose import GradientContext
from checker.execution.calls import normalize_gradients
from checker.execution.user_code import USER_ERRORS, UserError, UserTimeout, describe_exception
from checker.localize.intermediates import Binding, ForwardTrace
from checker.localize.localization import Localization, first_wrong_among
from checker.localize.match import StepVerdict, diagnose_verdicts, judge_steps
from checker.localize.runs import FLOAT64_EPS, Plain, objective_of, plain_run, traced_run, user_files
from checker.localize.tracer import DEFAULT_BUDGET, TraceBudgetExceeded, TracerFailed
from checker.registry import Target

__all__ = ["context_builder", "localize", "wrong_step_by_gradient"]


def _disagreeing_leaf(
    objective: Callable[[Mapping[str, Any]], Any],
    values: Mapping[str, np.ndarray],
    forward: ForwardTrace,
    tol: Tolerance,
    eps: float,
    seed: int,
) -> str:
    """The first input whose traced gradient finite differences contradict ("" when none does).

    A forward can leave torch._numpy part of the way (``float(x.max())``, ``math.exp``) and still give
    the right L: its traced gradients would then miss a path, and no step could be judged by them.
    """
    from checker.oracles import finite_diff

    rng = np.random.default_rng(seed)
    exact = {b.input: b.gradient for bs in forward.bindings.values() for b in bs if b.input}
    for name, gradient in exact.items():
        check = finite_diff.directional_check(objective, values, name, gradient, rng, tol, eps=eps)
        if not check.passed:
            return name
    return ""


def _wrong_gradients(
    plain: Plain, forward: ForwardTrace, tol: Tolerance, where: str
) -> tuple[dict[str, Any], list[str]]:
    """The returned gradients by name, and the names of those that differ from their exact gradient."""
    grads, _ = normalize_gradients(plain.raw_grads, plain.differentiable, where)
    exact = {b.input: b.gradient for bs in forward.bindings.values() for b in bs if b.input}
    wrong = []
    for name in plain.differentiable:
        if name not in exact:
            continue
        try:
            mine = np.asarray(grads.get(name), dtype=np.float64)
        except (TypeError, ValueError):
            wrong.append(name)
            continue
        if mine.shape != exact[name].shape or mismatch_mask(mine, exact[name], tol).any():
            wrong.append(name)
    return grads, wrong


def wrong_step_by_gradient(
    verdicts: Sequence[StepVerdict], failing: Iterable[str], own_step: Callable[[str], int | None]
) -> list[tuple[str, int]]:
    """For each failing gradient, the index of the first wrong step among those it was computed from
    (``own_step(gradient)``: the step that is that gradient, if any; then what it depends on by name in
    its frame, and anything earlier in helper frames), for those where there is one."""
    found = []
    for gradient in failing:
        own = own_step(gradient)
        among = None
        if own is not None:
            helpers = [i for i in range(own) if verdicts[i].frame != verdicts[own].frame]
            among = [own, *verdicts[own].depends_on, *helpers]
        index = first_wrong_among(verdicts, among)
        if index is not None:
            found.append((gradient, index))
    return found


def context_builder(
    target: Target,
    inputs: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    douts: Sequence[np.ndarray],
    dims: Mapping[str, int],
    plain: Plain,
    forward: ForwardTrace,
) -> Callable[[str, Binding, frozenset[str]], GradientContext]:
    """For each judged step, the context the diagnosis rules need (the forward value it is the gradient
    of, the inputs and parameters, the case's dims): the engine's and the grader's localisation alike."""
    given = {n: np.asarray(a) for n, a in inputs.items() if np.asarray(a).dtype.kind == "f"}
    given |= {n: np.asarray(a) for n, a in params.items()}
    known: dict[str, np.ndarray] = {name: bs[-1].value for name, bs in forward.bindings.items()}

    def context_for(forward_name: str, binding: Binding, reads: frozenset[str]) -> GradientContext:
        spec = target.inputs.get(binding.input) if binding.input else None
        layer_input = bool(binding.input) and target.style == "layer"
        shape = binding.value.shape
        # Forward values of the step's shape feed the mask rules, which compare every pair of them:
        # only those its own statement reads; values of other shapes (mu for x) cost nothing there.
        values = {n: v for n, v in known.items() if v.shape != shape or n in reads}
        return GradientContext(
            name=forward_name,
            param_shape=tuple(shape),
            symbols=spec.shape if spec is not None else (),
            dims=dict(dims),
            output_shapes=tuple(o.shape for o in plain.outputs) if layer_input else (),
            inputs=values | given | {forward_name: binding.value},
            douts=tuple(np.asarray(d) for d in douts) if layer_input else (),
        )

    return context_for


def _step_of_gradient(localization_steps: Sequence[Any], name: str, returned: Any) -> int | None:
    for i in range(len(localization_steps) - 1, -1, -1):
        if returned is not None and localization_steps[i].object_id == id(returned):
            return i
    for i in range(len(localization_steps) - 1, -1, -1):
        step = localization_steps[i]
        if step.is_input and step.forward_name == name:
            return i
    return None


def _names(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def localize(
    target: Target,
    inputs: Mapping[str, np.ndarray],
    hyper: Mapping[str, Any] | None = None,
    douts: Sequence[np.ndarray] = (),
    *,
    params: Mapping[str, np.ndarray] | None = None,
    dims: Mapping[str, int] | None = None,
    seed: int = 0,
    tol: Tolerance | None = None,
    failing: Sequence[str] | None = None,
    budget: int = DEFAULT_BUDGET,
) -> Localization:
    """Find the first wrong step of ``target``'s backward on one case; never raises for the user's code.

    ``inputs``: the case's arrays (a model's data); ``hyper``: its keyword arguments (copied per call);
    ``douts``: a layer's upstream gradients; ``params``: a model's parameter values (the point the
    gradients are taken at) and ``seed`` the seed its factory runs under (the runner's ``case.seed``);
    ``dims``: the case's sizes (a model's factory needs them; messages name axes with them).
    ``tol``: the exact tolerance (default: the registration's), widened to the forward's precision.
    ``failing``: the gradients that failed their checks (default: those that differ from the exact ones).
    """
    started = time.perf_counter()

    def done(**fields: Any) -> Localization:
        return Localization(target.name, seconds=time.perf_counter() - started, **fields)

    try:
        return _localize(
            target, inputs, dict(hyper or {}), douts, dict(params or {}), dict(dims or {}), seed, tol, failing,
            budget, done,
        )  # fmt: skip
    except UserTimeout as err:  # the caller's time limit on user code ran out while localising
        return done(limit="backward_failed", reason=f"the user's code {err} while it was traced")


def _localize(
    target: Target,
    inputs: Mapping[str, np.ndarray],
    hyper: dict[str, Any],
    douts: Sequence[np.ndarray],
    params: dict[str, np.ndarray],
    dims: dict[str, int],
    seed: int,
    tol: Tolerance | None,
    failing: Sequence[str] | None,
    budget: int,
    done: Callable[..., Localization],
) -> Localization:

    if target.style == "model" and not params:
        return done(
            limit="backward_failed", reason="a model needs params= (the values its gradients are taken at)"
        )
    files = user_files(target)
    try:
        plain = plain_run(target, inputs, hyper, douts, params, dims, seed, files, budget)
    except (UserError, TraceBudgetExceeded, TracerFailed, *USER_ERRORS) as err:
        text = err.message if isinstance(err, UserError) else describe_exception(err)
        return done(limit="backward_failed", reason=f"the backward could not be traced: {text}")
    values = dict(inputs) | dict(params)  # the user's code gets copies: the case's arrays stay as they are

    def copies() -> dict[str, np.ndarray]:
        return {k: np.array(v, copy=True) for k, v in values.items()}

    traced_objective = objective_of(target, hyper, douts, params, dims, seed)
    forward = traced_run(target, copies(), traced_objective, plain, files, budget)
    if forward.reason:
        return done(limit="not_traceable", reason=forward.reason)
    try:
        # A float32 forward's traced gradients carry float32 round-off (batchnorm's dx cancels to ~1e-4
        # of its terms) and its finite differences take big steps across kinks: only float64 is checked.
        leaf = ""
        if plain.eps <= FLOAT64_EPS:
            numpy_objective = objective_of(target, hyper, douts, params, dims, seed)
            leaf = _disagreeing_leaf(numpy_objective, copies(), forward, target.tol.fd, plain.eps, seed)
    except (UserError, *USER_ERRORS) as err:
        text = err.message if isinstance(err, UserError) else describe_exception(err)
        return done(limit="backward_failed", reason=f"the forward raised while it was checked: {text}")
    if leaf:
        return done(
            limit="not_traceable",
            reason=f"under torch._numpy the gradient of {leaf} disagrees with finite differences: part of the "
            "forward leaves torch._numpy (float(), .item(), math.*), so its intermediates cannot be judged",
        )
    tol = for_precision(tol or target.tol.exact, plain.eps)
    where = target.style if target.style != "layer" else getattr(target.backward, "__name__", "backward")
    grads, wrong = _wrong_gradients(plain, forward, tol, where)
    failing = [g for g in (failing if failing is not None else wrong) if g in plain.differentiable]
    if not failing:
        return done(
            limit="gradients_right", reason="every gradient equals its exact gradient: nothing to locate"
        )
    steps = plain.run.steps
    forward_names = set(forward.bindings)
    if not [s for s in steps if not s.given and (s.key not in forward_names or s.container)]:
        return done(
            limit="no_named_steps",
            reason="the backward has no named intermediate arrays (one expression): name its steps "
            "(dxhat = ..., dvar = ...) to have the first wrong one located",
        )
    gradient_dicts = [id(plain.raw_grads)] if isinstance(plain.raw_grads, dict) else []
    context_for = context_builder(target, inputs, params, douts, dims, plain, forward)
    returned = [np.asarray(g) for g in grads.values() if isinstance(g, np.ndarray)]
    failing_ids = [id(grads[g]) for g in wrong if g in grads]
    judged = judge_steps(
        steps, forward.bindings, tol, gradient_dicts, returned, plain.run.returns, failing_ids
    )
    verdicts = judged.verdicts
    if not verdicts:
        return done(
            limit="no_match",
            reason=f"no local of the backward ({_names(judged.unmatched)}) is named after a forward value "
            "(d<name>, d_<name>, grad_<name>, <name>_grad or g<name>)",
            unmatched=judged.unmatched,
        )
    first = first_wrong_among(verdicts)
    wrong = [v for v in verdicts if not v.right]
    if first is None and wrong:
        return done(
            steps=verdicts,
            limit="unconfirmed",
            reason=f"{_names(list(dict.fromkeys(f'{v.name} ({v.location})' for v in wrong)))} differ from their exact gradients, but "
            "the function does not return them and nothing wrong is computed from them: partial values "
            "completed out of sight (return dx / n), so no step is blamed",
            unmatched=judged.unmatched,
        )
    if first is None:
        return done(
            steps=verdicts,
            limit="all_steps_right",
            reason=f"every step named after a forward value is right ({_names(list(dict.fromkeys(v.name for v in verdicts)))}); "
            + (
                f"the mistake is in a step with no forward name ({_names(judged.unmatched)}) or in the returned expression"
                if judged.unmatched
                else "the mistake is in the returned expression"
            ),
            unmatched=judged.unmatched,
        )
    by_gradient = wrong_step_by_gradient(
        verdicts, failing, lambda gradient: _step_of_gradient(verdicts, gradient, grads.get(gradient))
    )
    shown = sorted({first, *(index for _, index in by_gradient)})
    judged = diagnose_verdicts(judged, shown, tol, context_for)
    verdicts = judged.verdicts
    arrays = tuple(
        (i, np.asarray(value), binding.gradient)
        for i in shown
        for value, binding, _ in [judged.evidence[i]]
        if binding is not None
    )
    return done(
        steps=verdicts,
        first_wrong=verdicts[first],
        gradients=tuple(by_gradient),
        unmatched=judged.unmatched,
        arrays=arrays,
    )
