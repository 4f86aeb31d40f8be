"""Honest limits of localisation: no row, and the reason, when there is nothing it can stand on.

A one-expression backward, locals named after nothing in the forward, a forward that torch._numpy
cannot trace, a mistake only in the returned expression, partial values completed out of sight, a
backward that raises or runs too long. The tracer and the patched conversions leave nothing behind.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import checker as bc
from checker.localize import LIMITS, localization_rows, localize
from checker.localize.intermediates import Binding, ForwardTrace
from checker.localize.locate import _disagreeing_leaf
from reference_impls.mistakes import MISTAKES
from tests.test_localize import bank_target, case_arguments, localize_case

AFFINE_INPUTS = {"x": "N,D", "w": "D,M", "b": "M"}


def affine_forward(x, w, b):
    out = x @ w + b
    return out, (x, w)


def bank_mistake(exercise: str, name: str) -> bc.Target:
    mistake = next(m for m in MISTAKES if m.exercise == exercise and m.name == name)
    return bc.variant(bank_target(exercise), mistake.replaces)


def test_a_one_expression_backward_has_no_named_steps():
    found = localize_case(bank_mistake("affine", "dw_transposed"))
    assert found.limit == "no_named_steps" and not found.localized
    assert "no named intermediate arrays (one expression)" in found.reason
    assert localization_rows(found) == []


def test_locals_named_after_nothing_are_listed_and_never_guessed():
    def backward(dout, cache):
        x, w = cache
        t1 = dout @ w.T
        t2 = x.T @ dout * 2.0
        t3 = dout.sum(axis=0)
        return t1, t2, t3

    target = bc.register(
        "affine_unnamed_steps", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS
    )
    found = localize_case(target)
    assert found.limit == "no_match" and found.unmatched == ("t1", "t2", "t3")
    assert "no local of the backward (t1, t2, t3) is named after a forward value" in found.reason


def test_unmatched_partial_sums_a_wrong_step_reads_are_named_as_unchecked():
    def backward(dout, cache):
        x, w = cache
        dout1 = dout * 0.5
        dout2 = dout * 0.25  # should be 0.5: the two halves no longer add up to dout
        dx = (dout1 + dout2) @ w.T
        dw = x.T @ dout
        db = dout.sum(axis=0)
        return dx, dw, db

    target = bc.register("affine_partials", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    found = localize_case(target)
    assert found.first_wrong.name == "dx" and found.unmatched == ("dout1", "dout2")
    (row,) = localization_rows(found)
    assert "it reads dout1, dout2, which no forward name matches and so were not checked" in row.message


def scaled_forward(x, w):
    scale = float(np.abs(x).max())  # a Python number: torch._numpy loses this path
    h = x / scale
    out = h @ w
    return out, (x, w, h, scale)


def scaled_backward(dout, cache):
    _x, w, h, scale = cache
    dh = dout @ w.T
    dx = dh / scale
    dw = h.T @ dout
    return dx, dw


def test_a_forward_that_leaves_torch_numpy_is_not_traceable_and_says_where():
    target = bc.register(
        "scaled_by_max", forward=scaled_forward, backward=scaled_backward, inputs={"x": "N,D", "w": "D,M"}
    )
    found = localize_case(target, failing=["x"])
    assert found.limit == "not_traceable"
    assert "turns a traced array into a Python number (float() at test_localize_limits.py:" in found.reason
    assert "__float__" not in vars(torch.Tensor) and "item" not in vars(torch.Tensor)  # the wrappers are gone


def test_a_forward_that_raises_under_torch_numpy_is_not_traceable():
    found = localize_case(bank_mistake("softmax_loss", "shifts_scores_in_place"))
    assert found.limit == "not_traceable" and "does not run under torch._numpy" in found.reason


def test_traced_gradients_that_finite_differences_contradict_are_not_trusted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2))

    def objective(values):
        return float(np.sum(values["x"] ** 2))

    def forward(gradient):
        return ForwardTrace({"x": (Binding("x", x, gradient, "", 0, 0, "x"),)}, objective({"x": x}))

    tol = bc.OracleTolerances().fd
    assert _disagreeing_leaf(objective, {"x": x}, forward(2 * x), tol, 2.2e-16, 0) == ""
    assert _disagreeing_leaf(objective, {"x": x}, forward(x), tol, 2.2e-16, 0) == "x"


def test_a_mistake_only_in_the_returned_expression_leaves_every_step_right():
    found = localize_case(bank_mistake("attention", "missing_scale_in_backward"))
    assert found.limit == "all_steps_right" and all(s.right for s in found.steps)
    assert "the mistake is in the returned expression" in found.reason


def test_a_partial_value_completed_out_of_sight_is_never_blamed():
    def backward(dout, cache):
        x, w = cache
        dx = dout @ w.T * 3.0  # three times too big here, divided by 3 on return: right in the end
        return dx / 3.0, x.T @ dout * 2.0, dout.sum(axis=0)

    target = bc.register(
        "affine_partial_value", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS
    )
    found = localize_case(target)
    assert found.limit == "unconfirmed" and not found.localized
    assert found.reason.startswith("dx (test_localize_limits.py:")
    assert "partial values completed out of sight" in found.reason


def test_right_gradients_need_no_localization():
    found = localize_case(bank_target("batchnorm_staged"))
    assert found.limit == "gradients_right" and found.steps == ()


def test_a_backward_that_raises_is_reported_not_raised():
    def backward(dout, cache):
        dx = dout * 2.0
        raise ValueError(f"shapes {dx.shape} do not fit")

    target = bc.register("affine_raises", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    found = localize_case(target)
    assert found.limit == "backward_failed" and "ValueError: shapes" in found.reason


def test_a_backward_too_long_to_trace_stops_even_inside_a_blanket_except():
    def backward(dout, cache):
        x, w = cache
        dx = dout @ w.T
        for _ in range(10**6):
            try:  # noqa: SIM105 - a student's blanket except must not swallow the budget
                dx = dx + 0.0
            except Exception:
                pass
        return dx, x.T @ dout, dout.sum(axis=0)

    target = bc.register("affine_long_loop", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    found = localize(target, **case_arguments(target, 0, 0), budget=2000, failing=["x"])
    assert found.limit == "backward_failed" and "more than 2000 traced lines" in found.reason


def test_a_model_needs_its_parameter_values():
    found = localize(
        bank_target("two_layer_net"), **(case_arguments(bank_target("two_layer_net"), 0, 0) | {"params": {}})
    )
    assert found.limit == "backward_failed" and "params=" in found.reason


def test_every_limit_is_named_and_the_previous_trace_function_is_restored():
    assert set(LIMITS) >= {
        "not_traceable",
        "no_named_steps",
        "no_match",
        "all_steps_right",
        "gradients_right",
    }

    def tracer(frame, event, arg):
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        localize_case(bank_mistake("batchnorm_staged", "sqrtvar_sign"))
        current = sys.gettrace()
    finally:
        sys.settrace(previous)
    assert current is tracer


def test_a_time_limit_running_out_while_localising_is_a_reason_not_an_exception():
    import time

    from checker.execution.user_code import time_limit

    def backward(dout, cache):
        x, w = cache
        dx = dout @ w.T
        time.sleep(5)
        return dx, x.T @ dout, dout.sum(axis=0)

    target = bc.register("affine_sleeps", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    arguments = case_arguments(target, 0, 0)
    with time_limit(0.3):
        found = localize(target, **arguments, failing=["x"])
    assert found.limit == "backward_failed" and "did not finish within 0.3 s" in found.reason
