"""Scoring a submission's exercise from the rows the runner produced: the grader judges nothing itself.

Each case of an exercise is judged by :func:`checker.runner.judge_case`, exactly as ``bc.check``
judges, with the reference solution's answers as the oracle. Partial credit: each case has a fixed
set of *graded units* (the forward or loss value; one per gradient; no mutation; determinism), and a
unit passes when every row of it passes. An exercise scores ``points * passed / total`` over all its
cases. A call that raised, timed out or never ran fails every unit of its case, and a call that
produced nothing (a value of the wrong type or shape, or no right value at all) gets no credit for
"no mutation" and "determinism" either.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from checker.grading.executions import execution_of
from checker.grading.plan import ExerciseCase
from checker.grading.records import CallResult, SubmissionRun
from checker.results import CheckResult
from checker.runner import Answers, CheckOptions, judge_case

__all__ = ["ExerciseGrade", "grade_exercise", "hint_for", "run_problem", "units_of"]

#: The grader's oracle is the reference solution: nothing else runs in the grader.
_OPTIONS = CheckOptions(oracles=())
_FORWARD_ROWS = ("forward", "forward_reference")


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
    "regularization": "d{name} is off by a multiple of {name} itself: the gradient of the regularization term "
    "is missing or counted twice (0.5·reg·‖W‖² has the gradient reg·W).",
    "missing_path": "d{name} is off by the same amount in every row: a path through a mean or a sum over that "
    "axis is missing from the chain rule.",
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


def _judged(case: ExerciseCase, result: CallResult) -> list[tuple[str, CheckResult]]:
    """(graded unit, row) pairs for a call that ran: the runner's rows, sorted into units."""
    run = execution_of(case, result)
    reference = Answers(case.expected_outputs, case.expected_grads)
    rows = judge_case(case.target, case.case, run, _OPTIONS, reference=reference)
    pairs = [(units_of(row, case), row) for row in rows]
    return _nothing_for_nothing(case, pairs)


def units_of(row: CheckResult, case: ExerciseCase) -> str:
    """The graded unit a row counts for: ``forward``, ``grad:NAME`` (``grad:*`` for a problem with the
    returned structure), ``mutation`` or ``determinism``."""
    if row.check in ("mutation", "determinism"):
        return row.check
    if row.check in _FORWARD_ROWS or (row.check == "finite" and row.target in ("forward", "loss")):
        return "forward"
    return f"grad:{row.target}" if row.target in case.differentiable else "grad:*"


def _nothing_for_nothing(
    case: ExerciseCase, rows: list[tuple[str, CheckResult]]
) -> list[tuple[str, CheckResult]]:
    """No mutation or determinism credit for a call that produced nothing: every value must have the
    right type and shape, and the forward output or one gradient must be right."""
    typed_forward = not any(
        u == "forward"
        and r.failed
        and (r.check == "forward" or (r.check == "forward_reference" and r.actual_shape != r.expected_shape))
        for u, r in rows
    )
    typed = typed_forward and all(
        any(u == f"grad:{n}" and r.check == "shape" and r.status == "pass" for u, r in rows)
        for n in case.differentiable
    )
    right = any(
        r.status == "pass"
        and (r.check == "forward_reference" or (u.startswith("grad:") and r.check not in ("shape", "finite")))
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
            pairs = _judged(case, result)
        for unit in _units(case):
            unit_rows = [r for u, r in pairs if u == unit or (u == "grad:*" and unit.startswith("grad:"))]
            total += 1
            if all(r.status in ("pass", "skip") for r in unit_rows) and (unit_rows or unit == "determinism"):
                passed += 1  # determinism without a row: nothing was there to differ
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
            else f"your submission {problem}"
            if problem
            else f"your code raised or did not finish ({message}): run it on a small case"
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
