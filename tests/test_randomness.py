"""Random forwards are checked as functions: the same draws for every forward call of one case."""

from __future__ import annotations

import random

import numpy as np
import pytest

import checker as bc
from tests.conftest import failing


def dropout_forward(x, p=0.5):
    """Inverted dropout drawing its own mask from numpy's global generator, as written in class."""
    mask = (np.random.rand(*x.shape) < p) / p
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout * cache


def statuses(report, check):
    return set(report.frame[report.frame.check == check].status)


def test_a_dropout_layer_drawing_its_own_mask_is_checked_without_seeding_by_hand():
    bc.register("dropout_global", forward=dropout_forward, backward=dropout_backward, inputs={"x": "N,D"})
    report = bc.check("dropout_global", cases=3, shrink=False, mode="full")
    assert report.passed
    # Finite differences and autograd of the forward saw the very mask the forward drew.
    assert statuses(report, "grad_fd") == {"pass"} and statuses(report, "grad_autograd") == {"pass"}


def test_a_dropout_backward_ignoring_the_mask_still_fails():
    bc.register(
        "dropout_no_mask", forward=dropout_forward, backward=lambda dout, cache: dout, inputs={"x": "N,D"}
    )
    bad = failing(bc.check("dropout_no_mask", cases=2, shrink=False))
    assert {"grad_fd", "grad_autograd"} <= set(bad.check)


def test_a_float32_dropout_layer_stays_quiet():
    def forward(x):
        mask = (np.random.rand(*x.shape) < 0.7).astype(np.float32) / np.float32(0.7)
        return x.astype(np.float32) * mask, mask

    bc.register("dropout_f32", forward=forward, backward=dropout_backward, inputs={"x": "N,D"})
    assert bc.check("dropout_f32", cases=3, shrink=False).passed


@pytest.mark.parametrize("parameter", ["rng", "random_state"])
def test_a_generator_parameter_left_empty_gets_a_fresh_seeded_generator_each_call(parameter):
    def forward(x, **kwargs):
        source = kwargs[parameter]
        draw = source.random if parameter == "rng" else source.random_sample
        mask = (draw(x.shape) < 0.5) * 2.0
        return x * mask, mask

    # The signature a user writes: rng=None / random_state=None, filled by the caller.
    namespace = {}
    exec(
        f"def wrapped(x, {parameter}=None):\n    return forward(x, {parameter}={parameter})",
        {"forward": forward},
        namespace,
    )
    bc.register(
        f"dropout_{parameter}", forward=namespace["wrapped"], backward=dropout_backward, inputs={"x": "N,D"}
    )
    assert bc.check(f"dropout_{parameter}", cases=2, shrink=False).passed


def test_a_generator_given_in_hyper_starts_from_the_same_state_every_call():
    def forward(x, rng):
        mask = (rng.random(x.shape) < 0.5) * 2.0
        return x * mask, mask

    bc.register(
        "dropout_hyper_rng",
        forward=forward,
        backward=dropout_backward,
        inputs={"x": "N,D"},
        hyper={"rng": np.random.default_rng(7)},
    )
    assert bc.check("dropout_hyper_rng", cases=2, shrink=False).passed


def test_a_forward_drawing_from_an_unseeded_generator_is_an_error_row_that_says_so():
    def forward(x):
        mask = (np.random.default_rng().random(x.shape) < 0.5) * 2.0
        return x * mask, mask

    forward.__name__ = "dropout_forward"
    bc.register("dropout_unseeded", forward=forward, backward=dropout_backward, inputs={"x": "N,D"})
    report = bc.check("dropout_unseeded", cases=2, shrink=False)
    errors = report.frame[report.frame.status == "error"]
    assert list(errors.check.unique()) == ["forward"]
    message = errors.message.iloc[0]
    assert message.startswith("dropout_forward gives different outputs on two calls with the same inputs")
    assert "parameter named rng" in message
    # No finite differences or autograd against a forward that is not a function.
    case = report.frame[report.frame.case == errors.case.iloc[0]]
    assert not {"grad_fd", "grad_autograd"} & set(case.check)


def test_a_loss_with_a_random_draw_inside_is_checked_like_a_function():
    def noisy_mse(pred, y):
        keep = (np.random.rand(*pred.shape) < 0.8) / 0.8
        diff = (pred - y) * keep
        return float(np.mean(diff**2)), 2 * diff * keep / diff.size

    bc.register("noisy_mse", value_and_grad=noisy_mse, inputs={"pred": "N,D", "y": bc.const("N,D")})
    assert bc.check("noisy_mse", cases=3, shrink=False).passed


def test_the_callers_random_state_is_left_as_it_was():
    bc.register("dropout_state", forward=dropout_forward, backward=dropout_backward, inputs={"x": "N,D"})
    np.random.seed(123)
    random.seed(123)
    bc.check("dropout_state", cases=2, shrink=False)
    after = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    assert after == (np.random.rand(), random.random())
