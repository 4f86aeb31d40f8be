"""Targets x cases x checks -> records. Calls user code, catches what it raises, never raises itself.

For one case: run the user's forward and backward (or loss, or model) on copies of the inputs,
compute the oracles, and hand the arrays to :mod:`checker.checks`. The pytest plugin, the CLI and
the notebook API all go through :func:`check_case` (via :mod:`checker.fuzz`).
"""

from __future__ import annotations

import copy
import itertools
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from checker.calls import (
    USER_ERRORS,
    UserError,
    UserTimeout,
    build_model,
    call_forward,
    describe_exception,
    normalize_gradients,
    scalar_objective,
    time_limit,
)
from checker.cases import Case
from checker.checks import (
    as_gradient_array,
    check_deterministic,
    check_finite,
    check_gradient,
    check_shape,
    check_unchanged,
    fingerprint,
    shape_text,
)
from checker.compare import (
    FLOAT64_EPS,
    Tolerance,
    compare_arrays,
    for_precision,
    precision_eps,
    precision_name,
    with_noise,
)
from checker.diagnose import GradientContext
from checker.oracles import finite_diff
from checker.registry import Target, Tolerances
from checker.results import CheckResult

__all__ = ["MODES", "ORACLES", "CheckOptions", "check_case"]

MODES = ("auto", "full", "directional", "sampled")
ORACLES = ("fd", "torch", "autograd")
#: ``auto`` uses element-wise finite differences up to this many elements, directions above it.
FULL_LIMIT = 64
#: Element-wise finite differences are computed to *explain* a failure up to this size.
EXPLAIN_LIMIT = 4096
#: Above this many differentiable elements, ``auto`` lets one oracle decide each gradient: the torch
#: reference, else autograd of the user's own forward, else finite differences. The others run only
#: for what it did not pass (or when the forward differs from the reference), to confirm and explain.
DECIDE_LIMIT = 4096


@dataclass(frozen=True)
class CheckOptions:
    """How to check one case. ``tol`` overrides the registration's tolerances when given."""

    mode: str = "auto"
    oracles: tuple[str, ...] = ORACLES
    tol: Tolerances | None = None
    directions: int = 2
    samples: int = 16
    timeout: float | None = 60.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} must be one of {', '.join(MODES)}")
        unknown = set(self.oracles) - set(ORACLES)
        if unknown:
            raise ValueError(f"oracles {sorted(unknown)} unknown; choose from {', '.join(ORACLES)}")


@dataclass
class _Execution:
    """What one run of the user's code produced, before any judging."""

    differentiable: list[str]
    param_values: dict[str, np.ndarray]  # the point at which gradients are taken (inputs or model params)
    objective: Callable[[Mapping[str, Any]], Any]
    raw_grads: Any
    raw_grads_again: Any
    where: str
    outputs: tuple[np.ndarray, ...] = ()
    douts: tuple[np.ndarray, ...] = ()
    value: float = float("nan")
    rows: list[CheckResult] = field(default_factory=list)
    model_params: dict[str, np.ndarray] | None = None
    #: machine epsilon of the least precise float the user's code computed with (outputs, cache,
    #: gradients, the traced forward's intermediates): every comparison is made at that accuracy
    eps: float = FLOAT64_EPS
    #: gradients of the user's forward run as its float64 shadow (reduced-precision code only)
    shadow: dict[str, np.ndarray] = field(default_factory=dict)


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


def _run_layer(target: Target, case: Case, rng: np.random.Generator) -> _Execution:
    inputs = {n: a.copy() for n, a in case.arrays.items()}
    forward_name = getattr(target.forward, "__name__", "forward")
    backward_name = getattr(target.backward, "__name__", "backward")
    outs_raw, cache = call_forward(target, inputs, case.fresh_hyper())
    rows = [check_unchanged("forward", case.arrays, inputs, forward_name)]
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
    rows.append(check_unchanged("backward", names | cache_before, after | cache_after, backward_name))
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
    return _Execution(
        differentiable,
        {n: case.arrays[n] for n in case.arrays},
        objective,
        raw,
        raw_again,
        backward_name,
        outputs=outs,
        douts=douts,
        value=value,
        rows=rows,
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


def _run_loss(target: Target, case: Case) -> _Execution:
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
    rows = [check_unchanged(where, case.arrays, inputs, where)]
    try:
        _, raw_again = _loss_value(call({n: a.copy() for n, a in case.arrays.items()}), where)
    except UserError as err:
        raw_again = err

    def objective(values: Mapping[str, Any]) -> Any:
        return scalar_objective(target, values, case.fresh_hyper(), ())

    return _Execution(
        target.differentiable,
        dict(case.arrays),
        objective,
        raw,
        raw_again,
        where,
        value=value,
        rows=rows,
        eps=precision_eps(first),
    )


def _run_model(target: Target, case: Case, rng: np.random.Generator) -> _Execution:
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
    rows = [check_unchanged("loss", case.arrays | params, data | dict(model.params), "loss")]
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

    return _Execution(
        list(params),
        params,
        objective,
        raw,
        raw_again,
        "loss",
        value=value,
        rows=rows,
        model_params=params,
        eps=precision_eps(first),
    )


def _exact_oracles(
    target: Target, case: Case, run: _Execution, which: Sequence[str], tol: Tolerances
) -> tuple[dict[str, dict[str, np.ndarray]], list[CheckResult]]:
    """Gradients from torch (reference) and autograd (user's own forward), as ``which`` asks, and their rows."""
    from checker.oracles import torch_numpy, torch_reference

    found: dict[str, dict[str, np.ndarray]] = {}
    rows: list[CheckResult] = []
    if "torch" in which and target.torch_forward is not None:
        started = time.perf_counter()
        ref = torch_reference.reference_gradients(
            target,
            case.arrays,
            case.fresh_hyper(),
            run.douts,
            run.differentiable,
            params=run.model_params,
        )
        if ref.error:
            rows.append(
                CheckResult(
                    "forward_torch",
                    "forward",
                    "skip",
                    f"torch reference failed: {ref.error}",
                    oracle="torch_reference",
                )
            )
        else:
            found["torch_reference"] = ref.gradients
            user_outs = run.outputs if target.style == "layer" else (np.array(run.value),)
            exact_tol = for_precision(tol.exact, run.eps)
            rows.extend(_forward_rows(user_outs, ref.outputs, exact_tol, time.perf_counter() - started))
    if "autograd" in which:
        namespaces = [f.__globals__ for f in target.user_functions.values() if hasattr(f, "__globals__")]
        auto = torch_numpy.autograd_gradients(
            run.objective, dict(case.arrays) | run.param_values, run.differentiable, run.value, namespaces
        )
        run.eps = max(run.eps, auto.eps)
        run.shadow = auto.shadow
        if auto.skipped:
            rows.append(CheckResult("grad_autograd", "", "skip", auto.skipped, oracle="torch_numpy"))
        else:
            found["torch_numpy"] = auto.gradients
    return found, rows


def _forward_rows(
    user_outs: Sequence[np.ndarray], ref_outs: Sequence[np.ndarray], tol: Tolerance, seconds: float
) -> list[CheckResult]:
    rows = []
    for i, (mine, ref) in enumerate(zip(user_outs, ref_outs, strict=False)):
        label = "forward" if len(user_outs) == 1 else f"forward[{i}]"
        ref = np.asarray(ref, dtype=np.float64)
        if mine.shape != ref.shape:
            rows.append(
                CheckResult(
                    "forward_torch",
                    label,
                    "fail",
                    f"the forward's output has shape {mine.shape}, the torch reference's {ref.shape}",
                    diagnosis="forward_mismatch",
                    expected_shape=shape_text(ref.shape),
                    actual_shape=shape_text(mine.shape),
                    oracle="torch_reference",
                )
            )
            continue
        comparison = compare_arrays(mine, ref, tol)
        status = "pass" if comparison.passed else "fail"
        message = (
            ""
            if comparison.passed
            else (
                f"the forward differs from the torch reference: Mismatched elements: {comparison.mismatch_summary}, "
                f"Max absolute difference: {comparison.max_abs_err:.3g}; gradients are judged against the reference"
            )
        )
        rows.append(
            CheckResult(
                "forward_torch",
                label,
                status,
                message,
                diagnosis="" if comparison.passed else "forward_mismatch",
                max_abs_err=comparison.max_abs_err,
                max_rel_err=comparison.max_rel_err,
                expected_shape=shape_text(ref.shape),
                actual_shape=shape_text(mine.shape),
                oracle="torch_reference",
                seconds=seconds,
                evidence={} if comparison.passed else {"actual": mine, "expected": ref},
            )
        )
    return rows


def _fd_rows(
    name: str,
    actual: np.ndarray,
    run: _Execution,
    options: CheckOptions,
    tol: Tolerances,
    rng: np.random.Generator,
    context: GradientContext,
    exact: np.ndarray | None,
) -> CheckResult:
    """The finite-difference check of one gradient, in the chosen mode."""
    values = {k: np.asarray(v) for k, v in run.param_values.items()}
    x = values[name]
    tol = replace(tol, fd=for_precision(tol.fd, run.eps))
    mode = options.mode
    if mode == "auto":
        mode = "full" if x.size <= FULL_LIMIT else "directional"
    h = finite_diff.step_size(x, run.eps)
    jitter = finite_diff.evaluation_noise(run.objective, values, name, run.eps, rng)
    precision = "" if run.eps <= FLOAT64_EPS else f", eps={run.eps:.1g} forward"
    if mode in ("full", "sampled"):
        indices = (
            None if mode == "full" else rng.choice(x.size, size=min(options.samples, x.size), replace=False)
        )
        estimate, noise = finite_diff.elementwise_estimates(
            run.objective, values, name, h, indices, run.eps, jitter=jitter
        )
        best, wrong = finite_diff.confirm_entries(
            run.objective, values, name, actual, estimate, h, tol.fd, indices, noise, run.eps, jitter
        )
        oracle = (
            f"finite_diff(full{precision})"
            if indices is None
            else f"finite_diff(sampled {len(indices)}{precision})"
        )
        if indices is None:
            result = check_gradient(
                name,
                actual,
                best,
                check="grad_fd",
                oracle=oracle,
                tol=tol.fd,
                context=None if exact is not None else context,
            )
            return (
                result
                if wrong.any() or result.status == "pass"
                else replace(result, status="pass", message="")
            )
        considered = np.isfinite(best)
        if not wrong.any():
            comparison = compare_arrays(actual[considered], best[considered], tol.fd)
            return CheckResult(
                "grad_fd",
                name,
                "pass",
                max_abs_err=comparison.max_abs_err,
                max_rel_err=comparison.max_rel_err,
                expected_shape=shape_text(x.shape),
                actual_shape=shape_text(actual.shape),
                oracle=oracle,
            )
        comparison = compare_arrays(actual[considered], best[considered], tol.fd)
        where = [np.unravel_index(i, x.shape) for i in np.flatnonzero(wrong)[:3]]
        message = f"d{name} differs from finite differences at {int(wrong.sum())} of {int(considered.sum())} sampled entries, e.g. at {', '.join(str(tuple(int(j) for j in w)) for w in where)}"
        return _explained(
            CheckResult(
                "grad_fd",
                name,
                "fail",
                message,
                max_abs_err=comparison.max_abs_err,
                max_rel_err=comparison.max_rel_err,
                expected_shape=shape_text(x.shape),
                actual_shape=shape_text(actual.shape),
                oracle=oracle,
            ),
            name,
            actual,
            run,
            tol,
            context,
            exact,
        )
    result = finite_diff.directional_check(
        run.objective,
        values,
        name,
        actual,
        rng,
        tol.fd,
        directions=options.directions,
        eps=run.eps,
        jitter=jitter,
    )
    oracle = f"finite_diff(directional x{options.directions}{precision})"
    err = result.abs_err
    if result.passed:
        return CheckResult(
            "grad_fd",
            name,
            "pass",
            max_abs_err=err,
            expected_shape=shape_text(x.shape),
            actual_shape=shape_text(actual.shape),
            oracle=oracle,
        )
    message = f"d{name} disagrees with finite differences along a random direction: <d{name}, v> = {result.predicted:.6g} but (L(x+hv) - L(x-hv)) / 2h = {result.measured:.6g}"
    return _explained(
        CheckResult(
            "grad_fd",
            name,
            "fail",
            message,
            max_abs_err=err,
            expected_shape=shape_text(x.shape),
            actual_shape=shape_text(actual.shape),
            oracle=oracle,
        ),
        name,
        actual,
        run,
        tol,
        context,
        exact,
    )


def _taylor_second_opinion(
    row: CheckResult, name: str, actual: np.ndarray, run: _Execution, rng: np.random.Generator
) -> CheckResult:
    """A tolerance-free second opinion on a finite-difference failure (float64 forwards only).

    If the Taylor remainder shrinks like h**2 along a random direction, the gradient is right there
    and the disagreement was the finite differences' own error: the row passes, saying so. Otherwise
    the failure stands, with the observed order in its message.
    """
    from checker.oracles.taylor import taylor_test

    if run.eps > FLOAT64_EPS:
        return row
    values = {k: np.asarray(v) for k, v in run.param_values.items()}
    result = taylor_test(run.objective, values, name, actual, rng)
    evidence = row.evidence | {"taylor": (result.steps, result.remainders)}
    if result.passed:
        note = (
            f"finite differences disagreed (max abs err {row.max_abs_err:.3g}), but the Taylor test converges "
            f"at second order ({result.verdict}): treated as finite-difference error"
        )
        return replace(row, status="pass", diagnosis="", message=note, evidence={})
    order = "" if np.isnan(result.order) else f" (remainder ~ h^{result.order:.2g})"
    return replace(
        row,
        message=f"{row.message}; Taylor test: first order{order}, the gradient is wrong",
        evidence=evidence,
    )


def _explained(
    row: CheckResult,
    name: str,
    actual: np.ndarray,
    run: _Execution,
    tol: Tolerances,
    context: GradientContext,
    exact: np.ndarray | None,
) -> CheckResult:
    """Cheap decided a failure: explain it with a full expected gradient (exact, or element-wise FD when small)."""
    expected = exact
    if expected is None and actual.size <= EXPLAIN_LIMIT:
        values = {k: np.asarray(v) for k, v in run.param_values.items()}
        expected = finite_diff.elementwise_gradient(
            run.objective, values, name, finite_diff.step_size(values[name], run.eps)
        )
    if expected is None:
        return row
    detailed = check_gradient(
        name, actual, expected, check=row.check, oracle=row.oracle, tol=tol.fd, context=context
    )
    message = detailed.message if detailed.diagnosis else row.message
    return replace(row, diagnosis=detailed.diagnosis, message=message, evidence=detailed.evidence)


def _context(target: Target, case: Case, run: _Execution, name: str) -> GradientContext:
    spec = target.inputs.get(name)
    shape = np.shape(run.param_values[name])
    return GradientContext(
        name=name,
        param_shape=tuple(int(s) for s in shape),
        symbols=spec.shape if spec is not None else (),
        dims=dict(case.dims),
        output_shapes=tuple(o.shape for o in run.outputs),
        inputs={k: np.asarray(v) for k, v in case.arrays.items()}
        | {k: np.asarray(v) for k, v in run.param_values.items()},
        douts=run.douts,
        batch=_batch_symbol(target, case) if target.style == "model" else None,
    )


def _batch_symbol(target: Target, case: Case) -> tuple[str, int] | None:
    """The symbol every data input has as its leading or trailing axis (``N`` for ``X: "N,D"``,
    ``y: labels("N")``; also for column-major ``X: "D,N"``), with its size; None when not one symbol."""
    ends = [
        {s for s in (spec.shape[0], spec.shape[-1]) if isinstance(s, str)}
        for spec in target.inputs.values()
        if spec.shape
    ]
    common = set.intersection(*ends) if ends else set()
    if len(common) != 1:
        return None
    symbol = common.pop()
    return symbol, int(case.dims[symbol])


def check_case(target: Target, case: Case, options: CheckOptions | None = None) -> list[CheckResult]:
    """Every check of ``target`` on one ``case``; user errors (and hangs past ``options.timeout``) become ``error`` rows."""
    options = options or CheckOptions()
    if "autograd" in options.oracles:
        from checker.oracles.torch_numpy import warm_up

        warm_up()
    started = time.perf_counter()
    try:
        with time_limit(options.timeout), warnings.catch_warnings():
            # The harness's own warnings (a NaN the user's forward produced, met in a comparison) are
            # not the user's business; the user's code keeps its warnings.
            warnings.filterwarnings("ignore", module=r"checker(\.|$)")
            return _check_case(target, case, options)
    except UserTimeout as err:
        message = f"the user's code {err}; it may hang (the limit is CheckOptions.timeout / --timeout)"
        return _stamp([CheckResult("call", "timeout", "error", message)], target, case, started)


def _check_case(target: Target, case: Case, options: CheckOptions) -> list[CheckResult]:
    tol = options.tol or target.tol
    started = time.perf_counter()
    rng = np.random.default_rng(case.seed + 1)
    try:
        if target.style == "layer":
            run = _run_layer(target, case, rng)
        elif target.style == "loss":
            run = _run_loss(target, case)
        else:
            run = _run_model(target, case, rng)
    except UserError as err:
        rows = [CheckResult("call", err.where, "error", err.message)]
        return _stamp(rows, target, case, started)
    rows = list(run.rows)
    rows.extend(_finite_outputs(run))
    grads, problems = normalize_gradients(run.raw_grads, run.differentiable, run.where)
    run.eps = max(run.eps, precision_eps(*grads.values()))
    for problem in problems:
        rows.append(CheckResult("shape", problem.target or run.where, "fail", problem.message))
    wanted = [o for o in ("torch", "autograd") if o in options.oracles]
    size = sum(int(np.size(run.param_values[n])) for n in run.differentiable if n in run.param_values)
    lazy = options.mode == "auto" and size > DECIDE_LIMIT
    with_reference = "torch" in wanted and target.torch_forward is not None
    first = ["torch"] if lazy and with_reference else wanted
    exact, oracle_rows = _exact_rows(target, case, run, first, tol)
    rows.extend(oracle_rows)
    again = None
    if not isinstance(run.raw_grads_again, UserError):
        again, _ = normalize_gradients(run.raw_grads_again, run.differentiable, run.where)
    else:
        rows.append(CheckResult("determinism", run.where, "error", run.raw_grads_again.message))
    # Each returned gradient is copied once checked: drop the originals as we go (peak memory).
    run.raw_grads = run.raw_grads_again = None
    checked: dict[str, tuple[np.ndarray, GradientContext]] = {}
    by_name: dict[str, list[CheckResult]] = {}  # each input's rows, emitted in input order
    for name in run.differentiable:
        if name not in grads:
            continue
        own = by_name.setdefault(name, [])
        context = _context(target, case, run, name)
        best_exact = next((g[name] for g in exact.values() if name in g), None)
        shape_row, actual = check_shape(name, grads.pop(name), context.param_shape, context, best_exact)
        own.append(shape_row)
        if actual is None or shape_row.status != "pass":
            continue
        finite_row = check_finite(name, actual, f"d{name}")
        own.append(finite_row)
        if finite_row.status != "pass":
            continue
        if again is not None and name in again:
            second, _ = as_gradient_array(again.pop(name))
            if second is not None:
                own.append(check_deterministic(name, actual, second, run.where))
            del second
        checked[name] = (actual, context)
    passed_by = _compare_exact(exact, checked, tol, by_name, run.eps, run.shadow)
    forward_ok = not any(r.check == "forward_torch" and r.failed for r in rows)

    def trusted(name: str) -> bool:
        """An exact oracle of this very forward passed the gradient: autograd of the user's own forward,
        or the torch reference when the forward agrees with it."""
        oracles = passed_by.get(name, set())
        return "torch_numpy" in oracles or ("torch_reference" in oracles and forward_ok)

    rest = [o for o in wanted if o not in first]
    if rest and not all(trusted(n) for n in checked):
        more, more_rows = _exact_rows(target, case, run, rest, tol)
        rows.extend(more_rows)
        for name, oracles in _compare_exact(more, checked, tol, by_name, run.eps, run.shadow).items():
            passed_by.setdefault(name, set()).update(oracles)
        exact |= more
    if "fd" in options.oracles:
        for name, (actual, context) in checked.items():
            if lazy and trusted(name):
                continue  # an exact oracle passed it: finite differences could only agree
            best_exact = next((g[name] for g in exact.values() if name in g), None)
            fd_started = time.perf_counter()
            try:
                fd_row = _fd_rows(name, actual, run, options, tol, rng, context, best_exact)
                if fd_row.status == "fail" and trusted(name):
                    fd_row = _deferred_to_exact(fd_row, passed_by[name])
                if fd_row.status == "fail":
                    fd_row = _taylor_second_opinion(fd_row, name, actual, run, rng)
                if fd_row.status == "fail":
                    curve = finite_diff.step_curve(run.objective, dict(run.param_values), name, actual)
                    fd_row = replace(fd_row, evidence=fd_row.evidence | {"step_curve": curve})
            except UserError as err:
                fd_row = CheckResult(
                    "grad_fd", name, "error", f"while taking finite differences: {err.message}"
                )
            by_name[name].append(replace(fd_row, seconds=time.perf_counter() - fd_started))
    for own in by_name.values():
        rows.extend(own)
    return _at_precision(_stamp(rows, target, case, started), run.eps)


def _at_precision(rows: list[CheckResult], eps: float) -> list[CheckResult]:
    """Each row says the precision it was judged at; a failure computed below float64 says so in words."""
    name = precision_name(eps)
    note = f" (compared at {name} accuracy: the code computes in {name})" if eps > FLOAT64_EPS else ""
    return [
        replace(r, precision=name, message=r.message + note if r.status == "fail" and note else r.message)
        for r in rows
    ]


def _exact_rows(
    target: Target, case: Case, run: _Execution, which: Sequence[str], tol: Tolerances
) -> tuple[dict[str, dict[str, np.ndarray]], list[CheckResult]]:
    """:func:`_exact_oracles` for ``which``, with a user error as an error row."""
    if not which:
        return {}, []
    try:
        return _exact_oracles(target, case, run, which, tol)
    except UserError as err:
        return {}, [CheckResult("call", err.where, "error", err.message)]


def _compare_exact(
    exact: Mapping[str, Mapping[str, np.ndarray]],
    checked: Mapping[str, tuple[np.ndarray, GradientContext]],
    tol: Tolerances,
    by_name: dict[str, list[CheckResult]],
    eps: float = FLOAT64_EPS,
    shadow: Mapping[str, np.ndarray] | None = None,
) -> dict[str, set[str]]:
    """Compare each checked gradient with each exact oracle's, at the accuracy of code computing with
    machine epsilon ``eps`` (rows go to ``by_name``); returns, per name, the oracles that passed it."""
    passed: dict[str, set[str]] = {}
    exact_tol = for_precision(tol.exact, eps)
    for name, (actual, context) in checked.items():
        noise = _oracle_disagreement({**exact, "shadow": shadow or {}}, name) if eps > FLOAT64_EPS else 0.0
        for oracle, gradients in exact.items():
            if name in gradients:
                check = "grad_torch" if oracle == "torch_reference" else "grad_autograd"
                row = check_gradient(
                    name,
                    actual,
                    gradients[name],
                    check=check,
                    oracle=oracle,
                    tol=with_noise(exact_tol, gradients[name], noise),
                    context=context,
                )
                by_name[name].append(row)
                if row.status == "pass":
                    passed.setdefault(name, set()).add(oracle)
    return passed


def _oracle_disagreement(exact: Mapping[str, Mapping[str, np.ndarray]], name: str) -> float:
    """How far the exact oracles' gradients of ``name`` are apart (0 when fewer than two have one)."""
    found = [np.asarray(g[name], dtype=np.float64) for g in exact.values() if name in g]
    if len(found) < 2 or any(f.shape != found[0].shape for f in found):
        return 0.0
    with np.errstate(invalid="ignore"):
        spread = max(
            float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in itertools.combinations(found, 2)
        )
    return spread if np.isfinite(spread) else 0.0


def _deferred_to_exact(row: CheckResult, oracles: set[str]) -> CheckResult:
    """A finite-difference failure of a gradient that an exact oracle of the same forward passed is the
    finite differences' own error (round-off, a kink, curvature at the step): the exact oracle decides."""
    which = " and ".join(sorted(oracles))
    note = (
        f"finite differences disagreed (max abs err {row.max_abs_err:.3g}), but the exact oracle ({which}) "
        "agrees with the gradient: treated as finite-difference error"
    )
    return replace(row, status="pass", diagnosis="", message=note, evidence={})


def _finite_outputs(run: _Execution) -> list[CheckResult]:
    if run.outputs:
        label = "out" if len(run.outputs) == 1 else "outputs"
        merged = np.concatenate([o.ravel() for o in run.outputs])
        return [check_finite("forward", merged, label)]
    return [check_finite("loss", np.array([run.value]), "the loss")]


def _stamp(rows: list[CheckResult], target: Target, case: Case, started: float) -> list[CheckResult]:
    elapsed = time.perf_counter() - started
    return [
        replace(
            r,
            function=target.name,
            case=case.index,
            case_label=case.label,
            dims=case.dims_text,
            seed=case.seed,
            seconds=r.seconds or elapsed / max(1, len(rows)),
        )
        for r in rows
    ]
