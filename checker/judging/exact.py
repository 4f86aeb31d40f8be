"""Judging against exact oracles: the torch reference, autograd of the user's own forward, and (when
grading) a reference solution's answers. Every comparison is made at the accuracy the code computes in.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from checker.cases import Case
from checker.checks import check_gradient, shape_text
from checker.compare import FLOAT64_EPS, Tolerance, compare_arrays, for_precision, with_noise
from checker.diagnose import GradientContext
from checker.execution.calls import normalize_gradients
from checker.execution.fingerprints import values_equal
from checker.execution.record import RESCALE, Execution
from checker.execution.user_code import USER_ERRORS, UserError
from checker.oracles.threads import torch_threads_for
from checker.presentation.words import mismatch_text
from checker.registry import OracleTolerances, Target
from checker.results import CheckResult

__all__ = [
    "GRADIENT_CHECKS",
    "compare_exact",
    "deferred_to_exact",
    "forward_rows",
    "in_process_answers",
    "in_process_rows",
    "oracle_disagreement",
    "own_round_off",
    "witness_calls",
]

#: The check name of a gradient compared with each exact oracle.
GRADIENT_CHECKS = {
    "torch_reference": "grad_torch",
    "torch_numpy": "grad_autograd",
    "reference": "grad_reference",
}


def in_process_answers(
    target: Target, case: Case, run: Execution, which: Sequence[str], tol: OracleTolerances
) -> tuple[dict[str, dict[str, np.ndarray]], list[CheckResult]]:
    """Gradients from torch (reference) and autograd (user's own forward), as ``which`` asks, and their rows.

    The autograd run also tells the precision the forward really computes in (``run.eps`` is raised to
    it). Below float64, the gradients of the forward's float64 shadow and of the torch reference run in
    the user's precision become ``run.witnesses``, and the reference's outputs in that precision widen
    the forward's comparison by what the precision can resolve at this input.
    """
    from checker.oracles import torch_numpy, torch_reference

    found: dict[str, dict[str, np.ndarray]] = {}
    rows: list[CheckResult] = []
    ref = None
    started = time.perf_counter()
    if "torch" in which and target.torch_forward is not None:
        ref = torch_reference.reference_gradients(
            target, case.arrays, case.fresh_hyper(), run.douts, run.differentiable, params=run.model_params
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
            ref = None
        else:
            found["torch_reference"] = ref.gradients
    seconds = time.perf_counter() - started
    if "autograd" in which and run.objective is not None:
        namespaces = [f.__globals__ for f in target.user_functions.values() if hasattr(f, "__globals__")]
        auto = torch_numpy.autograd_gradients(
            run.objective, dict(case.arrays) | run.param_values, run.differentiable, run.value, namespaces
        )
        run.eps = max(run.eps, auto.eps)
        if auto.shadow:
            run.witnesses["shadow"] = auto.shadow
        run.broadcasts = auto.broadcasts
        if auto.skipped:
            rows.append(CheckResult("grad_autograd", "", "skip", auto.skipped, oracle="torch_numpy"))
        else:
            found["torch_numpy"] = auto.gradients
    if ref is not None:
        noise = 0.0
        low = _torch_dtype(run.eps)
        if low is not None:
            in_precision = torch_reference.reference_gradients(
                target, case.arrays, case.fresh_hyper(), run.douts, run.differentiable,
                params=run.model_params, precision=low,
            )  # fmt: skip
            if not in_precision.error:
                run.witnesses["reference_low"] = in_precision.gradients
                noise = _spread(in_precision.outputs, ref.outputs)
        user_outs = run.outputs if target.takes_dout else (np.array(run.value),)
        exact_tol = for_precision(tol.exact, run.eps)
        forward = forward_rows(user_outs, ref.outputs, exact_tol, seconds, noise=noise)
        rows[:0] = forward
    return found, rows


def _torch_dtype(eps: float) -> object:
    """The torch dtype of code computing with machine epsilon ``eps`` (None for float64)."""
    if eps <= FLOAT64_EPS:
        return None
    import torch

    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        if eps == float(torch.finfo(dtype).eps):
            return dtype
    return torch.float32


def _spread(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """The largest difference between two sets of outputs of the same shapes (0 when they differ in shape)."""
    if len(a) != len(b) or any(np.shape(x) != np.shape(y) for x, y in zip(a, b, strict=True)):
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        spread = max(
            (float(np.max(np.abs(x - y))) if np.size(x) else 0.0 for x, y in zip(a, b, strict=True)),
            default=0.0,
        )
    return spread if np.isfinite(spread) else 0.0


def forward_rows(
    user_outs: Sequence[np.ndarray],
    ref_outs: Sequence[np.ndarray],
    tol: Tolerance,
    seconds: float,
    oracle: str = "torch_reference",
    noise: float = 0.0,
) -> list[CheckResult]:
    """The user's outputs (the loss, for a loss or a model) against an oracle's: ``forward_torch`` rows
    for the torch reference, ``forward_reference`` rows for a reference solution (grading)."""
    check, label_of = (
        ("forward_torch", "the torch reference")
        if oracle == "torch_reference"
        else (
            "forward_reference",
            "the reference solution",
        )
    )
    rows = []
    for i, (mine, ref) in enumerate(zip(user_outs, ref_outs, strict=False)):
        label = "forward" if len(user_outs) == 1 else f"forward[{i}]"
        ref = np.asarray(ref, dtype=np.float64)
        if mine.shape != ref.shape:
            rows.append(
                CheckResult(
                    check,
                    label,
                    "fail",
                    f"the forward's output has shape {mine.shape}, {label_of}'s {ref.shape}",
                    diagnosis="forward_mismatch",
                    expected_shape=shape_text(ref.shape),
                    actual_shape=shape_text(mine.shape),
                    oracle=oracle,
                )
            )
            continue
        comparison = compare_arrays(mine, ref, with_noise(tol, ref, noise))
        status = "pass" if comparison.passed else "fail"
        message = (
            ""
            if comparison.passed
            else (
                f"the forward differs from {label_of}: {mismatch_text(comparison, relative=False)}; "
                "gradients are judged against the reference"
            )
        )
        rows.append(
            CheckResult(
                check,
                label,
                status,
                message,
                diagnosis="" if comparison.passed else "forward_mismatch",
                max_abs_err=comparison.max_abs_err,
                max_rel_err=comparison.max_rel_err,
                expected_shape=shape_text(ref.shape),
                actual_shape=shape_text(mine.shape),
                oracle=oracle,
                seconds=seconds,
                evidence={} if comparison.passed else {"actual": mine, "expected": ref},
            )
        )
    return rows


def in_process_rows(
    target: Target, case: Case, run: Execution, which: Sequence[str], tol: OracleTolerances
) -> tuple[dict[str, dict[str, np.ndarray]], list[CheckResult]]:
    """:func:`in_process_answers` for ``which``, with a user error as an error row."""
    if not which:
        return {}, []
    elements = sum(int(np.size(v)) for v in case.arrays.values())
    try:
        with torch_threads_for(elements):
            return in_process_answers(target, case, run, which, tol)
    except UserError as err:
        return {}, [CheckResult("call", err.where, "error", err.message)]


#: What the backward answered on its witness calls (:func:`witness_calls`): as at first, then with
#: every upstream gradient times ``RESCALE``, each normalised by gradient name.
WitnessCalls = tuple[dict[str, object], dict[str, object]]


def witness_calls(run: Execution) -> WitnessCalls | None:
    """Reduced precision only: the user's backward called twice more, with the same upstream gradients
    and with them times ``RESCALE`` (None for float64 code, a backward that cannot be called here, or
    one that raises: its first call succeeded, the checks of that one stand). Made before any oracle
    runs the forward again, so a layer object or a cell over time is in the state of its first calls."""
    if run.eps <= FLOAT64_EPS or run.rescaled is None:
        return None
    try:
        plain, _ = normalize_gradients(run.rescaled(1.0), run.differentiable, run.where)
        scaled, _ = normalize_gradients(run.rescaled(RESCALE), run.differentiable, run.where)
    except USER_ERRORS:
        return None
    return plain, scaled


def _floats(value: object, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as float64 of ``shape``, or None: a witness call may return anything (text, a ragged list)."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except USER_ERRORS:
        return None
    return array if array.shape == shape else None


def own_round_off(
    run: Execution,
    checked: Mapping[str, tuple[np.ndarray, GradientContext]],
    calls: WitnessCalls | None = None,
) -> dict[str, float]:
    """Reduced precision only: per gradient, how far the user's backward moves when every upstream
    gradient is scaled by ``RESCALE`` (its answer divided back). A backward is linear in them, so that
    is its own round-off at this input: what its order of operations can resolve, which no oracle
    computing the gradient another way can tell. Nothing for float64 code or a backward that cannot be
    called here (a sandboxed submission); the caller asks only of a backward whose two calls agreed.
    A gradient whose third call (``calls``, made here when not given) differs from its first gets no
    witness: a backward that is not the same function on every call cannot vouch for its round-off."""
    calls = witness_calls(run) if calls is None else calls
    if calls is None:
        return {}
    plain, scaled = calls
    noise: dict[str, float] = {}
    for name, (actual, _context) in checked.items():
        shape = np.shape(actual)
        same, again = _floats(plain.get(name), shape), _floats(scaled.get(name), shape)
        if same is None or again is None or not np.size(actual):
            continue
        if not values_equal(same, np.asarray(actual, np.float64)):
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            moved = np.abs(again / RESCALE - np.asarray(actual, np.float64))
        moved = moved[np.isfinite(moved)]
        if moved.size:
            noise[name] = float(moved.max())
    return noise


def compare_exact(
    exact: Mapping[str, Mapping[str, np.ndarray]],
    checked: Mapping[str, tuple[np.ndarray, GradientContext]],
    tol: OracleTolerances,
    by_name: dict[str, list[CheckResult]],
    eps: float = FLOAT64_EPS,
    witnesses: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    round_off: Mapping[str, float] | None = None,
) -> dict[str, set[str]]:
    """Compare each checked gradient with each exact oracle's, at the accuracy of code computing with
    machine epsilon ``eps`` (rows go to ``by_name``); returns, per name, the oracles that passed it.
    Below float64 the comparison widens by the larger of the oracles' disagreement (``witnesses``
    included) and the user's backward's own ``round_off`` (:func:`own_round_off`)."""
    passed: dict[str, set[str]] = {}
    exact_tol = for_precision(tol.exact, eps)
    for name, (actual, context) in checked.items():
        noise = 0.0
        if eps > FLOAT64_EPS:
            disagreement = oracle_disagreement({**exact, **(witnesses or {})}, name)
            noise = max(disagreement, (round_off or {}).get(name, 0.0))
        for oracle, gradients in exact.items():
            if name in gradients:
                check = GRADIENT_CHECKS.get(oracle, f"grad_{oracle}")
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


def oracle_disagreement(exact: Mapping[str, Mapping[str, np.ndarray]], name: str) -> float:
    """How far the exact oracles' gradients of ``name`` are apart (0 when fewer than two have one)."""
    found = [np.asarray(g[name], dtype=np.float64) for g in exact.values() if name in g]
    if len(found) < 2 or any(f.shape != found[0].shape for f in found):
        return 0.0
    with np.errstate(invalid="ignore"):
        spread = max(
            float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in itertools.combinations(found, 2)
        )
    return spread if np.isfinite(spread) else 0.0


def deferred_to_exact(row: CheckResult, oracles: set[str]) -> CheckResult:
    """A finite-difference failure of a gradient that an exact oracle of the same forward passed is the
    finite differences' own error (round-off, a kink, curvature at the step): the exact oracle decides."""
    which = " and ".join(sorted(oracles))
    note = (
        f"finite differences disagreed (max abs err {row.max_abs_err:.3g}), but the exact oracle ({which}) "
        "agrees with the gradient: treated as finite-difference error"
    )
    return replace(row, status="pass", diagnosis="", message=note, evidence={})
