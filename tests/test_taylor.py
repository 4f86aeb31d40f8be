"""The Taylor test separates right gradients (remainder ~ h**2, or round-off) from wrong ones (~ h)."""

from __future__ import annotations

import numpy as np
import pytest

from checker.oracles.taylor import taylor_test
from reference_impls import layers
from reference_impls.mistakes import layers as mistakes


def layer_objective(forward, dout, **hyper):
    """L(values) = sum(forward(*values in order, **hyper)[0] * dout): the scalar the harness checks."""

    def objective(values):
        out, _ = forward(*(values[n] for n in values), **hyper)
        return float(np.sum(out * dout))

    return objective


def test_a_right_tanh_gradient_converges_at_order_two_and_a_wrong_one_at_order_one():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    dout = rng.standard_normal(x.shape)
    objective = layer_objective(layers.tanh_forward, dout)
    _, cache = layers.tanh_forward(x)
    right = taylor_test(objective, {"x": x}, "x", layers.tanh_backward(dout, cache), rng)
    wrong = taylor_test(objective, {"x": x}, "x", mistakes.tanh_backward_missing_square(dout, cache), rng)
    assert right.passed and right.verdict == "second order"
    assert 1.8 < right.order < 2.2
    assert not wrong.passed and wrong.verdict == "first order"
    assert 0.8 < wrong.order < 1.2


def test_the_verdict_does_not_depend_on_the_scale_of_the_loss():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    dout = rng.standard_normal(x.shape)
    _, cache = layers.sigmoid_forward(x)
    for scale in (1e-8, 1.0, 1e8):
        objective = layer_objective(layers.sigmoid_forward, dout * scale)
        right = layers.sigmoid_backward(dout * scale, cache)
        wrong = mistakes.sigmoid_backward_missing_one_minus(dout * scale, cache)
        direction = np.random.default_rng(2).standard_normal(x.shape)
        assert taylor_test(objective, {"x": x}, "x", right, direction=direction).passed, scale
        assert not taylor_test(objective, {"x": x}, "x", wrong, direction=direction).passed, scale


def test_a_layer_linear_in_its_input_passes_as_exact_and_a_wrong_gradient_still_fails():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 4)), rng.standard_normal(4)
    dout = rng.standard_normal((5, 4))
    values = {"x": x, "w": w, "b": b}
    objective = layer_objective(layers.affine_forward, dout)
    _, cache = layers.affine_forward(x, w, b)
    dx, dw, db = layers.affine_backward(dout, cache)
    for name, grad in (("x", dx), ("w", dw), ("b", db)):
        result = taylor_test(objective, values, name, grad, rng)
        assert result.passed and result.verdict == "exact", (name, result)
    _, dw_transposed, _ = mistakes.affine_backward_dw_transposed(dout, cache)  # square: a value bug
    _, _, db_mean = mistakes.affine_backward_db_mean(dout, cache)
    assert taylor_test(objective, values, "w", dw_transposed, rng).verdict == "first order"
    assert taylor_test(objective, values, "b", db_mean, rng).verdict == "first order"


def test_relu_stays_right_at_a_kink_free_point_and_times_x_is_caught():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6))
    x = np.where(np.abs(x) < 0.2, 0.2 * np.sign(x) + x, x)  # every entry further than any step from 0
    dout = rng.standard_normal(x.shape)
    objective = layer_objective(layers.relu_forward, dout)
    _, cache = layers.relu_forward(x)
    right = taylor_test(objective, {"x": x}, "x", layers.relu_backward(dout, cache), rng)
    assert right.passed
    assert max(right.steps) * 4 < np.abs(x).min()  # no step reaches a kink (|v| < 4 here)
    wrong = taylor_test(objective, {"x": x}, "x", mistakes.relu_backward_times_x(dout, cache), rng)
    assert not wrong.passed and 0.8 < wrong.order < 1.2


def test_batchnorm_missing_mean_path_is_first_order_and_the_reference_second_order():
    rng = np.random.default_rng(5)
    x, gamma, beta = rng.standard_normal((6, 4)), rng.standard_normal(4), rng.standard_normal(4)
    dout = rng.standard_normal(x.shape)
    values = {"x": x, "gamma": gamma, "beta": beta}
    objective = layer_objective(layers.batchnorm_forward, dout, bn_param={"mode": "train", "eps": 1e-5})
    _, cache = layers.batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 1e-5})
    dx, dgamma, _ = layers.batchnorm_backward(dout, cache)
    bad_dx, _, _ = mistakes.batchnorm_backward_missing_mean_path(dout, cache)
    right = taylor_test(objective, values, "x", dx, rng)
    assert right.verdict == "second order" and right.passed
    assert taylor_test(objective, values, "gamma", dgamma, rng).passed
    assert not taylor_test(objective, values, "x", bad_dx, rng).passed


def test_a_small_relative_error_is_caught_at_a_million_elements():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(10**6)

    def objective(values):
        return float(np.sum(np.sin(values["x"])))

    assert taylor_test(objective, {"x": x}, "x", np.cos(x), rng).passed
    result = taylor_test(objective, {"x": x}, "x", np.cos(x) * 0.999, rng)
    assert not result.passed and result.verdict == "first order"


def test_a_gradient_of_the_wrong_shape_is_refused_not_judged():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"shape \(3,\) but x has shape \(2, 3\)"):
        taylor_test(lambda v: float(v["x"].sum()), {"x": x}, "x", np.ones(3), np.random.default_rng(0))
