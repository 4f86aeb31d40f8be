"""Judging a worker's answers in the grader: the same checks and diagnoses as the harness, then a score.

Partial credit: each case of an exercise has a fixed set of *graded checks* (the forward or loss
value; one per gradient; no mutation; determinism). An exercise scores
``points * passed / total`` over all its cases. A call that raised, timed out or never ran fails
every graded check of its case, and a call that produced nothing (a value of the wrong type or shape,
or no right value at all) gets no credit for "no mutation" and "determinism" either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from checker.calls import normalize_gradients
from checker.checks import check_deterministic, check_finite, check_gradient, check_shape, check_unchanged
from checker.compare import EXACT, compare_arrays
from checker.diagnose import GradientContext
from checker.grading.plan import ExerciseCase
from checker.grading.records import CallResult, Returned, SubmissionRun, Value
from checker.results import CheckResult

__all__ = ["ExerciseGrade", "grade_exercise", "hint_for", "run_problem"]

HINTS = {
    "unreduced_broadcast": "d{name} keeps an axis of the output: {name} was broadcast over it in the forward pass. "
    "What happens to the gradient of a value that was copied to many places?",
    "mean_instead_of_sum": "d{name} is too small by the size of the batch: a parameter shared by every example "
    "collects the gradient of each one.",
    "keepdims": "d{name} has the right values but not the shape of {name}: check which axes of size 1 you keep.",
    "transposed": "d{name} has its axes the wrong way round: write out the shape of each factor of the product.",
    "scaled": "d{name} is off by a constant factor: look for a normalisation you missed or applied twice.",
    "sign_flipped": "d{name} points the wrong way: check the sign of each term.",
    "zero": "d{name} is all zeros: is it ever written?",
    "wrong_mask": "d{name} lets the gradient through where it should be blocked, or blocks it where it should pass: "
    "which entries were active in the forward pass?",
    "partial": "d{name} is right on most entries but not all: look at the entries that are special "
    "(repeated indices, the label's entry, a window's maximum, the first or last step).",
    "forward_mismatch": "the forward pass differs from the reference: fix it first, the gradients depend on it.",
    "mutates_input": "your code writes into one of its arguments: work on a copy.",
    "stateful": "a second call gives a different result: something accumulates between calls.",
    "nonfinite": "NaN or Inf: check divisions and logarithms (subtract the maximum before exp).",
    "": "d{name} is wrong: compare it with a finite-difference estimate on a tiny case.",
}


def hint_for(code: str, name: str = "") -> str:
    """A hint that teaches without giving the solution away."""
    return HINTS.get(code, HINTS[""]).format(name=name or "x")


@dataclass(frozen=True)
class ExerciseGrade:
    """One submission x exercise: the score, the graded checks, the leading diagnosis and its hint."""

    submission: str
    exercise: str
    score: float
    max_score: float
    passed: int
    total: int
    diagnosis: str
    hint: str
    message: str
    seconds: float
    rows: tuple[CheckResult, ...] = ()

    @property
    def status(self) -> str:
        return "passed" if self.passed == self.total else "failed"


def run_problem(run: SubmissionRun) -> str:
    """Why a whole submission produced nothing useful ("" when it ran normally)."""
    limits = run.limits
    if run.forbidden_imports:
        first = run.forbidden_imports[0]
        where = f" ({first.file} line {first.line})" if first.file and first.line else ""
        return (
            f"imports {first.module}{where}, which is not allowed in a submission: write the numpy yourself"
        )
    if run.import_error:
        return f"could not be imported: {run.import_error}"
    if run.timed_out and run.signal == "SIGXCPU":
        return f"timed out (limit {limits.for_worker()['cpu_s']} s of CPU time)"
    if run.timed_out:
        return f"timed out (limit {limits.timeout_s:g} s wall clock)"
    if run.memory_exceeded:
        return f"ran out of memory (limit {limits.memory_mb} MB)"
    if run.crashed:
        return f"crashed ({run.signal or 'killed by a signal'})"
    if run.protocol_error:
        return f"broke the grader's protocol: {run.protocol_error}"
    if run.worker_error:
        return f"could not be graded: {run.worker_error}"
    return ""


def _student_gradients(returned: Returned | None) -> Any:
    """The student's gradient structure rebuilt with plain arrays (a refused value becomes ``_Refused``)."""
    if returned is None or returned.structure == "none":
        return None
    values = [_array_of(v) for v in returned.values]
    if returned.structure == "tuple":
        return tuple(values)
    if returned.structure == "list":
        return values
    if returned.structure == "dict":
        return dict(zip(returned.keys, values, strict=True))
    return values[0] if values else None


def _array_of(value: Any) -> Any:
    if isinstance(value, Value):
        return value.array if value.array is not None else _Refused(value)
    return value


@dataclass(frozen=True)
class _Refused:
    value: Value

    def message(self, name: str) -> str:
        return self.value.message(name)


def _after(mapping: Mapping[str, Value], key: str, name: str) -> np.ndarray | None:
    value = mapping.get(key) or mapping.get(name)
    return None if value is None else value.array


def _judge_ok(case: ExerciseCase, result: CallResult) -> list[tuple[str, CheckResult]]:
    """(graded check, row) pairs for a call that ran."""
    rows: list[tuple[str, CheckResult]] = []
    style = case.exercise.style
    # forward / loss value
    if style == "layer":
        got = [v.array for v in result.outputs]
        typed_forward = len(got) == len(case.expected_outputs) and all(
            g is not None and g.shape == e.shape for g, e in zip(got, case.expected_outputs, strict=False)
        )
        if len(got) != len(case.expected_outputs) or any(g is None for g in got):
            refused = next((v for v in result.outputs if v.array is None), None)
            message = (
                refused.message("out")
                if refused
                else f"the forward returned {len(got)} outputs, expected {len(case.expected_outputs)}"
            )
            rows.append(
                ("forward", CheckResult("forward", "forward", "fail", message, diagnosis="forward_mismatch"))
            )
        else:
            rows.append(("forward", _compare_values("forward", got, case.expected_outputs)))
    else:
        loss = result.loss.array if result.loss is not None else None
        typed_forward = loss is not None and np.size(loss) == 1
        if loss is None or np.size(loss) != 1:
            message = result.loss.message("the loss") if result.loss is not None else "no loss returned"
            rows.append(
                ("forward", CheckResult("forward", "loss", "fail", message, diagnosis="forward_mismatch"))
            )
        else:
            rows.append(("forward", _compare_values("loss", [np.reshape(loss, ())], case.expected_outputs)))
    # gradients
    where = case.exercise.functions[-1]
    grads, problems = normalize_gradients(
        _student_gradients(result.gradients), list(case.differentiable), where
    )
    again, _ = normalize_gradients(
        _student_gradients(result.gradients_again), list(case.differentiable), where
    )
    for problem in problems:
        unit = f"grad:{problem.target}" if problem.target in case.differentiable else "grad:*"
        rows.append((unit, CheckResult("shape", problem.target or where, "fail", problem.message)))
    arrays_given = case.sent
    context_inputs = {k: np.asarray(v) for k, v in arrays_given.items()}
    for name in case.differentiable:
        unit = f"grad:{name}"
        if name not in grads:
            continue
        value = grads[name]
        if isinstance(value, _Refused):
            rows.append((unit, CheckResult("shape", name, "fail", value.message(f"d{name}"))))
            continue
        expected = case.expected_grads[name]
        context = GradientContext(
            name=name,
            param_shape=tuple(expected.shape),
            symbols=case.target.inputs[name].shape if name in case.target.inputs else (),
            dims=dict(case.case.dims),
            output_shapes=tuple(o.shape for o in case.expected_outputs) if style == "layer" else (),
            inputs=context_inputs,
            douts=case.douts,
        )
        shape_row, actual = check_shape(name, value, tuple(expected.shape), context, expected)
        rows.append((unit, shape_row))
        if actual is None or shape_row.status != "pass":
            continue
        finite_row = check_finite(name, actual, f"d{name}")
        rows.append((unit, finite_row))
        if finite_row.status != "pass":
            continue
        rows.append(
            (
                unit,
                check_gradient(
                    name,
                    actual,
                    expected,
                    check="grad_reference",
                    oracle="reference",
                    tol=EXACT,
                    context=context,
                ),
            )
        )
        second = again.get(name)
        if isinstance(second, np.ndarray):
            rows.append(
                (
                    "determinism",
                    check_deterministic(name, actual, np.asarray(second, dtype=np.float64), where),
                )
            )
        elif result.gradients_again is not None:
            rows.append(
                (
                    "determinism",
                    CheckResult(
                        "determinism",
                        name,
                        "fail",
                        f"the second call returned no usable d{name}",
                        diagnosis="stateful",
                    ),
                )
            )
    # mutation
    before: dict[str, np.ndarray] = {}
    after: dict[str, Any] = {}
    prefix = f"{case.call.id}/"
    for name, array in arrays_given.items():
        before[name] = array
        after[name] = _after(result.inputs_after, prefix + name, name)
    for i, dout in enumerate(case.douts):
        label = "dout" if len(case.douts) == 1 else f"dout{i + 1}"
        before[label] = dout
        after[label] = _after(result.douts_after, f"{prefix}dout{i}", label)
    after = {k: v for k, v in after.items() if v is not None}
    before = {k: v for k, v in before.items() if k in after}
    rows.append(("mutation", check_unchanged("call", before, after, "your code")))
    if not any(u == "determinism" for u, _ in rows):
        rows.append(("determinism", CheckResult("determinism", where, "pass")))
    return _nothing_for_nothing(case, rows, typed_forward)


def _nothing_for_nothing(
    case: ExerciseCase, rows: list[tuple[str, CheckResult]], typed_forward: bool
) -> list[tuple[str, CheckResult]]:
    """No mutation or determinism credit for a call that produced nothing: every value must have the
    right type and shape, and the forward output or one gradient must be right."""
    typed = typed_forward and all(
        any(u == f"grad:{n}" and r.check == "shape" and r.status == "pass" for u, r in rows)
        for n in case.differentiable
    )
    right = any(
        r.status == "pass"
        and (u == "forward" or (u.startswith("grad:") and r.check not in ("shape", "finite")))
        for u, r in rows
    )
    if typed and right:
        return rows
    why = (
        "the call returned no value of the right type and shape"
        if not typed
        else "none of the values the call returned is right"
    )
    kept = [(u, r) for u, r in rows if u not in ("mutation", "determinism")]
    for unit in ("mutation", "determinism"):
        kept.append((unit, CheckResult(unit, "call", "fail", f"no credit for {unit}: {why}")))
    return kept


def _compare_values(label: str, got: list[np.ndarray], expected: tuple[np.ndarray, ...]) -> CheckResult:
    for mine, ref in zip(got, expected, strict=True):
        mine = np.asarray(mine, dtype=np.float64)
        if mine.shape != ref.shape:
            return CheckResult(
                "forward",
                label,
                "fail",
                f"the {label} has shape {mine.shape}, expected {ref.shape}",
                diagnosis="forward_mismatch",
            )
        comparison = compare_arrays(mine, ref, EXACT)
        if not comparison.passed:
            return CheckResult(
                "forward",
                label,
                "fail",
                f"the {label} differs from the reference: Mismatched elements: {comparison.mismatch_summary}, "
                f"Max absolute difference: {comparison.max_abs_err:.3g}",
                diagnosis="forward_mismatch",
                max_abs_err=comparison.max_abs_err,
                max_rel_err=comparison.max_rel_err,
            )
    return CheckResult("forward", label, "pass")


def _units(case: ExerciseCase) -> list[str]:
    return ["forward", *(f"grad:{n}" for n in case.differentiable), "mutation", "determinism"]


def _failed_call(case: ExerciseCase, message: str) -> list[tuple[str, CheckResult]]:
    return [(unit, CheckResult("call", unit, "error", message)) for unit in _units(case)]


def _call_message(result: CallResult | None, problem: str) -> str:
    if problem:
        return problem
    if result is None or result.status == "not_run":
        return "the call never ran (the worker ended before reaching it)"
    error = result.error
    if error is None:
        return "the call failed"
    if error.type == "NotImplementedError":
        return "not implemented"
    return error.summary


def grade_exercise(
    submission: str, exercise: Any, cases: list[ExerciseCase], run: SubmissionRun
) -> ExerciseGrade:
    """Score one exercise of one submission from its worker's results."""
    problem = run_problem(run)
    passed = total = 0
    all_rows: list[CheckResult] = []
    diagnoses: Counter[str] = Counter()
    first_failure: CheckResult | None = None
    seconds = 0.0
    for case in cases:
        result = run.calls.get(case.call.id)
        seconds += result.seconds if result is not None else 0.0
        if problem or result is None or result.status != "ok":
            pairs = _failed_call(case, _call_message(result, problem))
        else:
            pairs = _judge_ok(case, result)
        for unit in _units(case):
            unit_rows = [r for u, r in pairs if u == unit or (u == "grad:*" and unit.startswith("grad:"))]
            total += 1
            if unit_rows and all(r.status in ("pass", "skip") for r in unit_rows):
                passed += 1
        for _, row in pairs:
            row = replace(
                row,
                function=exercise.name,
                case=case.case.index,
                case_label=case.case.label,
                dims=case.case.dims_text,
                seed=case.case.seed,
            )
            all_rows.append(row)
            if row.failed:
                first_failure = first_failure or row
                if row.diagnosis:
                    diagnoses[row.diagnosis] += 1
    code = diagnoses.most_common(1)[0][0] if diagnoses else ""
    if first_failure is None:
        hint = message = ""
    elif first_failure.status == "error":
        message = first_failure.message
        hint = (
            "implement the functions of the exercise"
            if message == "not implemented"
            else "your code raised or did not finish: run it on a small case"
        )
    else:
        named = next((r for r in all_rows if r.failed and r.diagnosis == code), first_failure)
        message = named.message
        if not code and named.check == "shape":
            hint = "return one numpy float array per differentiable input, each of its input's shape"
        else:
            hint = hint_for(code, named.target if named.target not in ("forward", "loss", "call") else "")
    score = exercise.points * passed / total if total else 0.0
    return ExerciseGrade(
        submission,
        exercise.name,
        round(score, 4),
        float(exercise.points),
        passed,
        total,
        code,
        hint,
        message,
        seconds,
        tuple(all_rows),
    )
