"""One small function per check; each takes arrays (never user functions) and returns a record.

The runner calls user code and hands the arrays here; the grader hands over arrays that came
back from a sandboxed worker. Both get the same verdicts and the same diagnoses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from checker.compare import EXACT, Tolerance, compare_arrays
from checker.diagnose import GradientContext, diagnose_gradient, diagnose_shape
from checker.execution.calls import INTEGER_HINT, as_gradient_array
from checker.execution.fingerprints import values_equal
from checker.execution.record import MutationEvidence
from checker.presentation.words import gradient_name, mismatch_text
from checker.results import CheckResult

__all__ = [
    "check_deterministic",
    "check_finite",
    "check_gradient",
    "check_shape",
    "check_unchanged",
    "gradient_name",
    "shape_text",
]


def shape_text(shape: tuple[int, ...] | None) -> str:
    return "" if shape is None else str(tuple(int(s) for s in shape))


def check_shape(
    name: str,
    value: Any,
    expected_shape: tuple[int, ...],
    context: GradientContext | None = None,
    expected: np.ndarray | None = None,
    tol: Tolerance = EXACT,
) -> tuple[CheckResult, np.ndarray | None]:
    """The gradient of ``name`` is a float array of exactly ``expected_shape``.

    Returns the record and the coerced array (None when unusable). A wrong shape gets a diagnosis
    from the values when ``expected`` is known (a missing sum), else from the shapes alone.
    """
    dname = gradient_name(name)
    array, problem = as_gradient_array(value)
    if array is None:
        return CheckResult(
            "shape",
            name,
            "fail",
            f"{dname} {problem}{INTEGER_HINT if 'integer dtype' in problem else ''}",
            expected_shape=shape_text(expected_shape),
        ), None
    if array.shape == tuple(expected_shape):
        return CheckResult(
            "shape",
            name,
            "pass",
            expected_shape=shape_text(expected_shape),
            actual_shape=shape_text(array.shape),
        ), array
    message = f"{dname} has shape {array.shape} but {name} has shape {tuple(expected_shape)}"
    diagnosis_code = ""
    if context is not None:
        found = (
            diagnose_gradient(array, expected, context, tol)
            if expected is not None and np.all(np.isfinite(array))
            else diagnose_shape(array.shape, context)
        )
        if found.code:
            diagnosis_code, message = found.code, found.message
    return CheckResult(
        "shape",
        name,
        "fail",
        message,
        diagnosis=diagnosis_code,
        expected_shape=shape_text(expected_shape),
        actual_shape=shape_text(array.shape),
        evidence={"actual": array, "expected": expected} if expected is not None else {},
    ), array


def check_finite(where: str, array: np.ndarray, label: str) -> CheckResult:
    """No NaN or Inf in ``array`` (an output or a gradient called ``label``)."""
    bad = ~np.isfinite(array)
    if bad.any():
        kinds = [k for k, m in (("NaN", np.isnan(array)), ("Inf", np.isinf(array))) if m.any()]
        return CheckResult(
            "finite",
            where,
            "fail",
            f"{label} has {int(bad.sum())} / {array.size} non-finite entries ({', '.join(kinds)})",
            diagnosis="nonfinite",
            actual_shape=shape_text(array.shape),
        )
    return CheckResult("finite", where, "pass", actual_shape=shape_text(array.shape))


def check_gradient(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    check: str,
    oracle: str,
    tol: Tolerance,
    context: GradientContext | None = None,
    note: str = "",
) -> CheckResult:
    """The user's gradient of ``name`` against an oracle's, element-wise, with a diagnosis on failure.

    An oracle gradient with NaN entries (the forward is not finite at this input) judges nothing: the
    row is a ``skip`` that says so, and the ``finite`` check of the forward carries the failure.
    """
    if np.isnan(expected).any():
        return CheckResult(
            check,
            name,
            "skip",
            f"the oracle's gradient has {int(np.isnan(expected).sum())} NaN entries (the forward is not finite "
            f"at this input): {gradient_name(name)} is not judged here",
            oracle=oracle,
        )
    comparison = compare_arrays(actual, expected, tol)
    common = {
        "max_abs_err": comparison.max_abs_err,
        "max_rel_err": comparison.max_rel_err,
        "expected_shape": shape_text(expected.shape),
        "actual_shape": shape_text(actual.shape),
        "oracle": oracle,
    }
    if comparison.passed:
        return CheckResult(check, name, "pass", note, **common)
    dname = gradient_name(name)
    found = diagnose_gradient(actual, expected, context, tol) if context is not None else None
    if found is not None and found.code:
        message = found.message
    else:
        message = f"{dname} differs from {oracle}: {mismatch_text(comparison)}"
    evidence: dict[str, Any] = {"actual": actual, "expected": expected}
    if found is not None and found.code:
        evidence["diagnosis"] = found.details
    return CheckResult(
        check,
        name,
        "fail",
        message,
        diagnosis=found.code if found is not None else "",
        evidence=evidence,
        **common,
    )


def check_unchanged(evidence: MutationEvidence) -> CheckResult:
    """Arrays passed to user code are unchanged after it returns (no writes into inputs, dout or cache)."""
    if evidence.changed:
        listed = ", ".join(evidence.changed)
        return CheckResult(
            "mutation",
            evidence.where,
            "fail",
            f"{evidence.by} modified {listed} in place; work on a copy (e.g. dx = dout.copy()) instead of "
            "writing into its arguments",
            diagnosis="mutates_input",
        )
    return CheckResult("mutation", evidence.where, "pass")


def check_deterministic(name: str, first: np.ndarray, second: np.ndarray, by: str) -> CheckResult:
    """Calling backward twice on the same cache gives the same gradient (nothing accumulates)."""
    if first.shape == second.shape and values_equal(first, second):
        return CheckResult("determinism", name, "pass")
    if first.shape == second.shape:
        err = float(np.max(np.abs(first - second))) if first.size else 0.0
        ratio = float(np.sum(second * first) / np.sum(first * first)) if np.any(first) else float("nan")
        hint = (
            " (the second call returned about twice the first: a gradient accumulates across calls)"
            if abs(ratio - 2) < 1e-6
            else ""
        )
        message = f"calling {by} twice on the same cache gave a different {gradient_name(name)}{hint}; max difference {err:.3g}"
    else:
        message = f"calling {by} twice gave {gradient_name(name)} of shapes {first.shape} then {second.shape}"
    return CheckResult("determinism", name, "fail", message, diagnosis="stateful")
