"""The one sequence of checks: an :class:`~checker.execution.record.Execution` -> records.

For one case: the user's code runs (here: :mod:`checker.execution.in_process`; when grading: in a
sandbox, its answers read back as the same record), then the checks run in one order whatever the
door: mutation, finite outputs, the returned gradients' structure, the exact oracles' answers, and
per gradient its shape, finiteness, determinism, the exact comparisons and finite differences.
Cheap decides, expensive explains (``auto`` mode): one exact oracle decides each gradient (the torch
reference, else autograd of the user's own forward) and the others run only for what it did not pass. The CLI, the pytest plugin and the notebook API call
:func:`check_case`; the grader calls :func:`judge_case` with a reference solution's answers.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from checker.cases import Case
from checker.checks import check_deterministic, check_finite, check_shape, check_unchanged
from checker.compare import FLOAT64_EPS, for_precision, precision_eps, precision_name
from checker.diagnose import GradientContext
from checker.execution import in_process
from checker.execution.calls import as_gradient_array, normalize_gradients
from checker.execution.record import Execution
from checker.execution.user_code import UserError, UserTimeout, time_limit
from checker.judging import exact as exact_oracles
from checker.judging import finite_differences as fd
from checker.judging import forward_lint, over_time
from checker.oracles import finite_diff
from checker.presentation.words import gradient_name
from checker.registry import OracleTolerances, Target
from checker.results import CheckResult

__all__ = ["MODES", "ORACLES", "Answers", "CheckOptions", "check_case", "judge_case"]

MODES = ("auto", "full", "directional", "sampled")
ORACLES = ("fd", "torch", "autograd")
_FORWARD_CHECKS = ("forward_torch", "forward_reference")
#: Rows that compare no values at a tolerance: a failure of theirs says nothing about accuracy.
_NO_ACCURACY = ("mutation", "determinism", "shape", "call", "finite", "forward", "forward_lint")


@dataclass(frozen=True)
class CheckOptions:
    """How to check one case. ``tol`` overrides the registration's tolerances when given."""

    mode: str = "auto"
    oracles: tuple[str, ...] = ORACLES
    tol: OracleTolerances | None = None
    timeout: float | None = 60.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} must be one of {', '.join(MODES)}")
        unknown = set(self.oracles) - set(ORACLES)
        if unknown:
            raise ValueError(f"oracles {sorted(unknown)} unknown; choose from {', '.join(ORACLES)}")


@dataclass(frozen=True)
class Answers:
    """A reference solution's answers for one case (grading): its outputs (a layer's, or ``(loss,)``)
    and its gradients by name."""

    outputs: tuple[np.ndarray, ...]
    gradients: Mapping[str, np.ndarray]


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
            rng = np.random.default_rng(case.seed + 1)  # douts and model parameters, then the checks' draws
            try:
                run = in_process.run(target, case, rng)
            except UserError as err:
                return _stamp([CheckResult("call", err.where, "error", err.message)], target, case, started)
            rows = judge_case(target, case, run, options, started=started, rng=rng)
    except UserTimeout as err:
        message = f"the user's code {err}; it may hang (the limit is CheckOptions.timeout / --timeout)"
        return _stamp([CheckResult("call", "timeout", "error", message)], target, case, started)
    return rows + _localized(target, case, run, rows, options)


def _localized(
    target: Target, case: Case, run: Execution, rows: list[CheckResult], options: CheckOptions
) -> list[CheckResult]:
    """Where the backward goes wrong, for the gradients whose values failed a check (nothing for a
    function whose gradients pass: it never pays for this). One ``localize`` row per located gradient,
    or, when none can be located, the reason in the failing rows' evidence (the summary tells it).
    Runs under its own time limit."""
    failing = sorted(
        {r.target for r in rows if r.check.startswith("grad_") and r.status == "fail"}
        & set(run.differentiable)
    )
    linted = any(r.check == "forward_lint" and r.status == "warn" for r in rows)
    if not failing or "autograd" not in options.oracles or linted:
        return []  # a forward the lint flags is the mistake: no step of the backward is to blame
    from checker.localize import localization_rows, localize

    started = time.perf_counter()
    with time_limit(options.timeout), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"checker(\.|$)")
        found = localize(
            target,
            case.arrays,
            case.hyper,
            run.douts,
            params=run.model_params,
            dims=case.dims,
            seed=case.seed,
            tol=(options.tol or target.tol).exact,
            failing=failing,
        )
    located = localization_rows(found)
    if not located:  # no row: the reason goes to the failing rows' evidence, for the summary
        reason = found.reason or "no step of the backward could be matched to the forward"
        for i, row in enumerate(rows):
            if row.check.startswith("grad_") and row.status == "fail":
                rows[i] = replace(row, evidence=row.evidence | {"not_located": reason})
        return []
    return _stamp(located, target, case, started, run.eps)


def judge_case(
    target: Target,
    case: Case,
    run: Execution,
    options: CheckOptions,
    reference: Answers | None = None,
    started: float | None = None,
    rng: np.random.Generator | None = None,
) -> list[CheckResult]:
    """The checks of one case, from what the user's code produced. With ``reference`` (grading), the
    reference solution's answers are the exact oracle; otherwise the oracles of ``options`` run here."""
    started = time.perf_counter() if started is None else started
    tol = options.tol or target.tol
    rng = np.random.default_rng(case.seed + 1) if rng is None else rng
    rows = [check_unchanged(evidence) for evidence in run.mutations]
    if run.unrepeatable:
        rows.append(CheckResult("forward", run.unrepeatable.split(" gives ")[0], "error", run.unrepeatable))
    if run.forward_problem:
        label = "forward" if target.takes_dout else "loss"
        rows.append(CheckResult("forward", label, "fail", run.forward_problem, diagnosis="forward_mismatch"))
    else:
        rows.extend(_finite_outputs(run))
    grads, problems = normalize_gradients(run.raw_grads, run.differentiable, run.where)
    run.eps = max(run.eps, precision_eps(*grads.values()))
    for problem in problems:
        rows.append(CheckResult("shape", problem.target or run.where, "fail", problem.message))
    wanted = [o for o in ("torch", "autograd") if o in options.oracles]
    # Cheap decides (``auto``): one exact oracle first; the others only for what it did not pass. An
    # oracle run after a pass could not convict: finite differences defer to an exact oracle of the same
    # forward, and autograd of the user's own forward adds nothing once the forward equals the reference.
    lazy = options.mode == "auto"
    first = ["torch"] if lazy and "torch" in wanted and target.torch_forward is not None else wanted
    if reference is not None:
        exact = {"reference": dict(reference.gradients)}
        if not run.forward_problem:
            user_outs = run.outputs if target.takes_dout else (np.array(run.value),)
            exact_tol = for_precision(tol.exact, run.eps)
            rows.extend(exact_oracles.forward_rows(user_outs, reference.outputs, exact_tol, 0.0, "reference"))
        first = wanted = []
    second_ran = run.second_call_failed is None  # read before the gradient rows drop the answers
    # The round-off witness (reduced precision, a backward whose second call ran): made before any
    # oracle runs the forward again, in the state the first two calls saw.
    calls = exact_oracles.witness_calls(run) if second_ran else None
    oracle_rows: list[CheckResult] = []
    at = len(rows)
    if reference is None:
        exact, oracle_rows = exact_oracles.in_process_rows(target, case, run, first, tol)
        rows.extend(oracle_rows)
    checked, by_name = _gradient_rows(target, case, run, grads, exact, reference, rows)
    own_rows = {name: list(own) for name, own in by_name.items()}
    # The round-off witness is a third call: asked only of a backward whose second call ran and agreed.
    repeatable = second_ran and not any(
        r.check == "determinism" and r.status != "pass" for rs in by_name.values() for r in rs
    )

    def round_off() -> dict[str, float]:
        """The witness's widening. Its calls are made at most once: before the oracles when the precision
        was known then, else after the trace that found it (a layer whose state the trace changed then
        answers differently on the plain call, and gets no witness)."""
        nonlocal calls
        if not repeatable:
            return {}
        if calls is None:
            calls = exact_oracles.witness_calls(run)
        return exact_oracles.own_round_off(run, checked, calls) if calls else {}

    passed_by = exact_oracles.compare_exact(exact, checked, tol, by_name, run.eps, run.witnesses, round_off())
    forward_ok = not any(r.check in _FORWARD_CHECKS and r.failed for r in rows)

    def trusted(name: str) -> bool:
        """An exact oracle of this very forward passed the gradient: autograd of the user's own forward,
        or a reference when the forward agrees with it."""
        oracles = passed_by.get(name, set())
        return "torch_numpy" in oracles or (bool(oracles - {"torch_numpy"}) and forward_ok)

    settled = all(trusted(n) for n in checked)
    if settled and wanted != first and "fd" in options.oracles:
        # The reference decided alone: two forward calls check its pass against the user's own forward.
        gradients = {name: actual for name, (actual, _context) in checked.items()}
        settled = fd.agrees_along_a_direction(run, gradients, case.seed + 17)
    if wanted != first and not settled:
        # Judged again as if every oracle had run first: the others may raise the precision (a forward
        # computing in float32 inside) and bring witnesses of what it can resolve, which widen every
        # comparison (the forward's too), so the first oracle's rows are replaced, not kept.
        exact, oracle_rows_again = exact_oracles.in_process_rows(target, case, run, wanted, tol)
        rows[at : at + len(oracle_rows)] = oracle_rows_again
        by_name = {name: list(own) for name, own in own_rows.items()}
        passed_by = exact_oracles.compare_exact(
            exact, checked, tol, by_name, run.eps, run.witnesses, round_off()
        )
        forward_ok = not any(r.check in _FORWARD_CHECKS and r.failed for r in rows)
    if "fd" in options.oracles and run.objective is not None:
        for name, (actual, context) in checked.items():
            if lazy and trusted(name):
                continue  # an exact oracle passed it: finite differences could only agree
            best_exact = next((g[name] for g in exact.values() if name in g), None)
            by_name[name].append(
                _fd_checked(
                    name, actual, run, options.mode, tol, rng, context, best_exact, passed_by, trusted
                )
            )
    for own in by_name.values():
        rows.extend(own)
    if target.unroll is not None and any(r.failed for r in rows):
        rows.extend(over_time.step_rows(target, rows, for_precision(tol.fd, run.eps)))
    if run.broadcasts:
        label = "forward" if target.takes_dout else "loss"
        rows = forward_lint.lint_rows(run.broadcasts, label) + forward_lint.not_the_backward(
            rows, run.broadcasts
        )
    return _stamp(rows, target, case, started, run.eps)


def _gradient_rows(
    target: Target,
    case: Case,
    run: Execution,
    grads: dict[str, object],
    exact: Mapping[str, Mapping[str, np.ndarray]],
    reference: Answers | None,
    rows: list[CheckResult],
) -> tuple[dict[str, tuple[np.ndarray, GradientContext]], dict[str, list[CheckResult]]]:
    """Shape, finiteness and determinism of each returned gradient; the usable ones, and each input's
    rows (emitted in input order)."""
    again = None
    if run.second_call_failed is not None:
        rows.append(CheckResult("determinism", run.where, "error", run.second_call_failed.message))
    elif run.raw_grads_again is not None:
        again, _ = normalize_gradients(run.raw_grads_again, run.differentiable, run.where)
    # Each returned gradient is copied once checked: drop the originals as we go (peak memory).
    run.raw_grads = run.raw_grads_again = None
    checked: dict[str, tuple[np.ndarray, GradientContext]] = {}
    by_name: dict[str, list[CheckResult]] = {}
    for name in run.differentiable:
        if name not in grads:
            continue
        own = by_name.setdefault(name, [])
        context = _context(target, case, run, name, reference)
        best_exact = next((g[name] for g in exact.values() if name in g), None)
        shape_row, actual = check_shape(name, grads.pop(name), context.param_shape, context, best_exact)
        own.append(shape_row)
        if actual is None or shape_row.status != "pass":
            continue
        finite_row = check_finite(name, actual, gradient_name(name))
        own.append(finite_row)
        if finite_row.status != "pass":
            continue
        if again is not None:
            second, _ = as_gradient_array(again.pop(name, None))
            if second is not None:
                call = "backward" if target.takes_dout else f"call of {run.where}"
                own.append(check_deterministic(name, actual, second, run.where, call))
            else:
                message = f"the second call returned no usable {gradient_name(name)}"
                own.append(CheckResult("determinism", name, "fail", message, diagnosis="stateful"))
            del second
        checked[name] = (actual, context)
    return checked, by_name


def _fd_checked(
    name: str,
    actual: np.ndarray,
    run: Execution,
    mode: str,
    tol: OracleTolerances,
    rng: np.random.Generator,
    context: GradientContext,
    best_exact: np.ndarray | None,
    passed_by: Mapping[str, set[str]],
    trusted: object,
) -> CheckResult:
    """The finite-difference row of one gradient: an exact oracle's pass settles a disagreement, a
    failure gets the Taylor test's second opinion and the error-against-step curve."""
    started = time.perf_counter()
    assert run.objective is not None and callable(trusted)
    try:
        row = fd.fd_row(name, actual, run, mode, tol, rng, context, best_exact)
        if row.status == "fail" and trusted(name):
            row = exact_oracles.deferred_to_exact(row, set(passed_by[name]))
        if row.status == "fail":
            row = fd.taylor_second_opinion(row, name, actual, run, rng)
        if row.status == "fail":
            curve = finite_diff.step_curve(run.objective, dict(run.param_values), name, actual)
            row = replace(row, evidence=row.evidence | {"step_curve": curve})
    except UserError as err:
        row = CheckResult("grad_fd", name, "error", f"while taking finite differences: {err.message}")
    return replace(row, seconds=time.perf_counter() - started)


def _context(
    target: Target, case: Case, run: Execution, name: str, reference: Answers | None = None
) -> GradientContext:
    spec = target.inputs.get(name)
    shape = np.shape(run.param_values[name])
    outputs = [o for o in run.outputs if isinstance(o, np.ndarray)]
    if reference is not None and target.takes_dout:
        outputs = list(reference.outputs)  # the user's outputs may be refused or of the wrong shape
    return GradientContext(
        name=name,
        param_shape=tuple(int(s) for s in shape),
        symbols=spec.shape if spec is not None else (),
        dims={k: v for k, v in case.dims.items() if k in target.dims},  # sizes, not hyper-parameter choices
        output_shapes=tuple(o.shape for o in outputs),
        inputs={k: np.asarray(v) for k, v in case.arrays.items()}
        | {k: np.asarray(v) for k, v in run.param_values.items()},
        douts=run.douts,
        batch=_batch_symbol(target, case) if target.style == "model" else None,
        dout_name=run.dout_names[0] if run.dout_names else "dout",
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


def _finite_outputs(run: Execution) -> list[CheckResult]:
    if run.outputs:
        label = "out" if len(run.outputs) == 1 else "outputs"
        merged = np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in run.outputs])
        return [check_finite("forward", merged, label)]
    return [check_finite("loss", np.array([run.value]), "the loss")]


def _stamp(
    rows: Sequence[CheckResult], target: Target, case: Case, started: float, eps: float | None = None
) -> list[CheckResult]:
    """Each row with its function, case and time; given ``eps``, the precision it was judged at too (a
    failure computed below float64 says so in words). One copy of each row."""
    elapsed = time.perf_counter() - started
    name = precision_name(eps) if eps is not None else None
    note = f" (compared at {name} accuracy: the code computes in {name})" if eps and eps > FLOAT64_EPS else ""
    precision = {} if name is None else {"precision": name}
    return [
        replace(
            r,
            function=target.name,
            case=case.index,
            case_label=case.label,
            dims=case.dims_text,
            seed=case.run_seed,
            seconds=r.seconds or elapsed / max(1, len(rows)),
            message=r.message + note
            if r.status == "fail" and note and r.check not in _NO_ACCURACY
            else r.message,
            **precision,
        )
        for r in rows
    ]
