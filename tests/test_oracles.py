"""Oracles: finite differences stay quiet at kinks and catch real bugs; torch._numpy behaviour is pinned."""

from __future__ import annotations

import numpy as np
import pytest

from checker.compare import FINITE_DIFFERENCE
from checker.oracles import finite_diff, torch_numpy


def relu_sum(values):
    return float(np.maximum(values["x"], 0).sum())


def test_entries_within_a_step_of_a_relu_kink_are_not_false_failures():
    x = np.array([0.0, 3e-7, -4e-7, 1.0, -1.0])
    right = (x > 0).astype(float)
    h = finite_diff.step_size(x)
    estimate = finite_diff.elementwise_gradient(relu_sum, {"x": x}, "x", h)
    assert not np.allclose(estimate[:3], right[:3])  # the naive estimate is wrong at the kinks
    _, wrong = finite_diff.confirm_entries(relu_sum, {"x": x}, "x", right, estimate, h, FINITE_DIFFERENCE)
    assert not wrong[1:].any()  # confirmation at a smaller step resolves the near-kink entries


def test_a_real_bug_fails_at_every_step():
    x = np.array([0.5, -2.0, 1.5])
    buggy = x.copy()  # relu backward that multiplies by x
    h = finite_diff.step_size(x)
    estimate = finite_diff.elementwise_gradient(relu_sum, {"x": x}, "x", h)
    _, wrong = finite_diff.confirm_entries(relu_sum, {"x": x}, "x", buggy, estimate, h, FINITE_DIFFERENCE)
    assert wrong.tolist() == [True, True, True]


def test_directional_check_is_quiet_for_relu_with_many_entries_near_kinks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000) * 1e-5  # thousands of entries within a step of the kink
    right = (x > 0).astype(float)
    result = finite_diff.directional_check(
        relu_sum, {"x": x}, "x", right, rng, FINITE_DIFFERENCE, directions=3
    )
    assert result.passed


def test_directional_check_catches_a_small_scale_error_at_a_million_elements():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(10**6)

    def objective(values):
        return float(np.sum(np.sin(values["x"])))

    wrong = np.cos(x) * 0.999
    result = finite_diff.directional_check(objective, {"x": x}, "x", wrong, rng, FINITE_DIFFERENCE)
    assert not result.passed
    assert finite_diff.directional_check(objective, {"x": x}, "x", np.cos(x), rng, FINITE_DIFFERENCE).passed


def test_torch_numpy_runs_a_cs231n_two_layer_loss_exactly():
    if not torch_numpy.available():
        pytest.skip("this torch has no torch._numpy")
    rng = np.random.default_rng(0)
    X, W1, W2 = rng.standard_normal((5, 4)), rng.standard_normal((4, 6)), rng.standard_normal((6, 3))
    y = np.array([0, 2, 1, 1, 0])

    def loss(values):
        h = np.maximum(0, values["X"].dot(values["W1"]))
        scores = h.dot(values["W2"])
        scores = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
        return -np.sum(np.log(probs[np.arange(5), values["y"]])) / 5

    point = {"X": X, "W1": W1, "W2": W2, "y": y}
    value = float(loss(point))
    result = torch_numpy.autograd_gradients(loss, point, ["W1", "W2"], value)
    assert result.skipped == ""
    assert result.gradients["W1"].shape == (4, 6) and result.gradients["W2"].shape == (6, 3)
    h = finite_diff.step_size(W2)
    fd = finite_diff.elementwise_gradient(lambda v: float(loss(v)), point, "W2", h)
    np.testing.assert_allclose(result.gradients["W2"], fd, rtol=1e-6, atol=1e-8)
    assert np.isclose(result.value, value)


def test_torch_numpy_skips_with_the_reason_when_the_forward_leaves_it():
    def leaves(values):
        return float(np.sum(values["x"] ** 2))  # float() of a traced array drops the graph

    point = {"x": np.ones(3)}
    result = torch_numpy.autograd_gradients(leaves, point, ["x"], 3.0)
    assert result.gradients == {}
    assert "not traced" in result.skipped or "does not run" in result.skipped


def test_torch_numpy_rebinding_is_undone_after_the_call():
    import sys

    module = sys.modules[__name__]
    torch_numpy.autograd_gradients(lambda v: np.sum(v["x"]), {"x": np.ones(2)}, ["x"], 2.0)
    assert module.np is np


def test_autograd_reaches_code_defined_in_a_notebook_cell():
    import checker as bc

    cell = """
import numpy as np

def softmax_fwd(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return p, p

def softmax_bwd(dout, p):
    return p * (dout - (dout * p).sum(axis=1, keepdims=True))
"""
    namespace: dict[str, object] = {"__name__": "__main__"}  # like a notebook: globals without a __file__
    exec(compile(cell, "<cell>", "exec"), namespace)
    bc.register(
        "cell_softmax",
        forward=namespace["softmax_fwd"],
        backward=namespace["softmax_bwd"],
        inputs={"x": "N,C"},
    )
    frame = bc.check("cell_softmax", cases=2).frame
    autograd = frame[frame.check == "grad_autograd"]
    assert len(autograd) and set(autograd.status) == {"pass"}
