"""Judging against finite differences of the user's own forward: cheap decides, expensive explains.

``auto`` mode: element-wise central differences up to ``FULL_LIMIT`` elements, random directions
above. A failure is confirmed at other steps (kinks, round-off), explained with a full expected
gradient when one can be had, and given a tolerance-free second opinion (the Taylor test).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from checker.checks import check_gradient, shape_text
from checker.compare import FLOAT64_EPS, compare_arrays, for_precision
from checker.diagnose import GradientContext
from checker.execution.record import Execution
from checker.execution.user_code import UserError
from checker.oracles import finite_diff
from checker.presentation.words import gradient_name
from checker.registry import OracleTolerances
from checker.results import CheckResult

__all__ = [
    "DIRECTIONS",
    "EXPLAIN_LIMIT",
    "FULL_LIMIT",
    "PROBE_TOLERANCE",
    "SAMPLES",
    "agrees_along_a_direction",
    "explained",
    "fd_row",
    "taylor_second_opinion",
]

#: How far (relative to the sum of the terms' sizes) the probe of :func:`agrees_along_a_direction`
#: lets the directional derivative stray before every oracle is asked: loose, since it only escalates.
PROBE_TOLERANCE = 0.02

#: ``auto`` uses element-wise finite differences up to this many elements, directions above it.
FULL_LIMIT = 64
#: Element-wise finite differences are computed to *explain* a failure up to this size.
EXPLAIN_LIMIT = 4096
#: Random directions of the ``directional`` mode, and entries of the ``sampled`` mode.
DIRECTIONS = 2
SAMPLES = 16


def fd_row(
    name: str,
    actual: np.ndarray,
    run: Execution,
    mode: str,
    tol: OracleTolerances,
    rng: np.random.Generator,
    context: GradientContext,
    exact: np.ndarray | None,
) -> CheckResult:
    """The finite-difference check of one gradient, in the chosen mode."""
    values = {k: np.asarray(v) for k, v in run.param_values.items()}
    x = values[name]
    tol = replace(tol, fd=for_precision(tol.fd, run.eps))
    samples, directions = SAMPLES, DIRECTIONS
    if mode == "auto":
        mode = "full" if x.size <= FULL_LIMIT else "directional"
    h = finite_diff.step_size(x, run.eps)
    jitter = finite_diff.evaluation_noise(run.objective, values, name, run.eps, rng)
    precision = "" if run.eps <= FLOAT64_EPS else f", eps={run.eps:.1g} forward"
    if mode in ("full", "sampled"):
        indices = None if mode == "full" else rng.choice(x.size, size=min(samples, x.size), replace=False)
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
        message = f"{gradient_name(name)} differs from finite differences at {int(wrong.sum())} of {int(considered.sum())} sampled entries, e.g. at {', '.join(str(tuple(int(j) for j in w)) for w in where)}"
        return explained(
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
        directions=directions,
        eps=run.eps,
        jitter=jitter,
    )
    oracle = f"finite_diff(directional x{directions}{precision})"
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
    dname = gradient_name(name)
    message = (
        f"{dname} disagrees with finite differences along a random direction: <{dname}, v> = "
        f"{result.predicted:.6g} but (L(x+hv) - L(x-hv)) / 2h = {result.measured:.6g}"
    )
    return explained(
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


def taylor_second_opinion(
    row: CheckResult, name: str, actual: np.ndarray, run: Execution, rng: np.random.Generator
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


def explained(
    row: CheckResult,
    name: str,
    actual: np.ndarray,
    run: Execution,
    tol: OracleTolerances,
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


def agrees_along_a_direction(
    run: Execution, gradients: Mapping[str, np.ndarray], seed: int, tolerance: float = PROBE_TOLERANCE
) -> bool:
    """Whether ``gradients`` are those of the user's own forward along one random direction of every
    input at once: two forward calls, ``(L(x+d) - L(x-d)) / 2`` against ``sum <g, d>``.

    A cheap probe for a gradient a torch reference passed: a reference whose values are right but whose
    derivative is not (a ``.detach()``, an ``.item()``) passes a backward with the same mistake. It
    never fails anything: a disagreement (a kink within the step, round-off, a forward that raises)
    only asks every oracle to judge the case.
    """
    values = {k: np.asarray(v) for k, v in run.param_values.items()}
    names = [
        n for n, g in gradients.items()
        if n in values and values[n].dtype.kind == "f" and np.shape(g) == values[n].shape and values[n].size
    ]  # fmt: skip
    if run.objective is None or not names:
        return True
    rng = np.random.default_rng(seed)
    step = {
        n: finite_diff.step_size(values[n], run.eps) * rng.standard_normal(values[n].shape) for n in names
    }
    try:
        plus = float(run.objective(values | {n: values[n] + step[n] for n in names}))
        minus = float(run.objective(values | {n: values[n] - step[n] for n in names}))
    except UserError:
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        terms = [np.asarray(gradients[n], dtype=np.float64) * step[n] for n in names]
        exact = float(sum(np.sum(t) for t in terms))
        size = float(sum(np.sum(np.abs(t)) for t in terms))
    estimate = (plus - minus) / 2
    noise = finite_diff.roundoff(plus, minus, 1.0, run.eps)  # the estimate is (plus - minus) / (2 * 1)
    return bool(
        np.isfinite(estimate) and np.isfinite(exact) and abs(estimate - exact) <= tolerance * size + noise
    )
