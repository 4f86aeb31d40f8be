"""The forward lint: an elementwise operation that pairs every entry of two operands (the (m,) against
(m, 1) trap) is a warning on the forward, and the gradient's mismatch is then not blamed on the backward."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc
from checker.oracles.broadcast_lint import Broadcast
from tests.conftest import failing


def mse_loss(y_pred, y):
    """y_pred: (N,), y: (N, 1). The forward's subtraction broadcasts into (N, N); the backward does not."""
    loss = 0.5 * np.mean((y_pred - y) ** 2)
    dy_pred = (y_pred - y.ravel()) / y_pred.size
    return loss, dy_pred


def lint(report):
    return report.frame[report.frame.check == "forward_lint"]


def test_the_m_against_m_by_1_trap_is_a_warning_naming_the_inputs_and_the_fix():
    bc.register(
        "mse_trap", value_and_grad=mse_loss, inputs={"y_pred": "N", "y": bc.const("N,1")}, dims={"N": (5,)}
    )
    report = bc.check("mse_trap", cases=1)
    rows = lint(report)
    assert list(rows.status) == ["warn"] and list(rows.diagnosis) == ["forward_broadcast"]
    message = rows.message.iloc[0]
    assert message.startswith("mse_loss broadcasts y_pred (5,) with y (5, 1) into (5, 5)")
    assert "did you mean y.ravel()?" in message and "test_forward_lint.py:" in message


def test_then_no_backward_code_explains_the_gradient_mismatch():
    bc.register("mse_trap_codes", value_and_grad=mse_loss, inputs={"y_pred": "N", "y": bc.const("N,1")})
    report = bc.check("mse_trap_codes", cases=4)
    bad = failing(report)
    assert len(bad) and set(bad.diagnosis) == {""}
    assert all("no backward mistake is named: the forward broadcasts y_pred" in m for m in bad.message)
    summary = report.summaries[0]
    assert "forward_broadcast" in summary.diagnoses and "forward_lint rows say why" in summary.notes


def test_a_layer_broadcasting_into_every_pair_is_linted_too():
    def residual_forward(x, y):
        return x.sum(axis=1) - y, None  # (N,) - (N, 1): (N, N)

    bc.register(
        "residual_trap",
        forward=residual_forward,
        backward=lambda dout, cache: np.ones((dout.shape[0], 3)) * dout.sum(axis=1, keepdims=True),
        inputs={"x": "N,3", "y": bc.const("N,1")},
        dims={"N": (4,)},
    )
    message = lint(bc.check("residual_trap", cases=1)).message.iloc[0]
    assert "broadcasts an array of shape (4,) with y (4, 1) into (4, 4)" in message


def outer_by_none(x, y):
    return x[:, None] * y[None, :], (x, y)


def outer_one_none(x, y):
    return x[:, None] * y, (x, y)


def outer_np(x, y):
    return np.outer(x, y), (x, y)


def outer_reshape(x, y):
    return x.reshape(-1, 1) * y, (x, y)


def outer_backward(dout, cache):
    x, y = cache
    return dout @ y, x @ dout


@pytest.mark.parametrize("forward", [outer_by_none, outer_one_none, outer_np, outer_reshape])
def test_an_outer_product_written_on_purpose_stays_quiet(forward):
    name = f"quiet_{forward.__name__}"
    bc.register(name, forward=forward, backward=outer_backward, inputs={"x": "N", "y": "M"})
    report = bc.check(name, cases=4)
    assert report.passed and lint(report).empty


def test_an_outer_product_of_a_keepdims_reduction_stays_quiet():
    def scaled_rows_forward(x, y):
        norms = (x**2).sum(axis=1, keepdims=True)  # (N, 1), on purpose
        return norms * y, (x, y, norms)

    def scaled_rows_backward(dout, cache):
        x, y, norms = cache
        return 2 * x * (dout @ y)[:, None], (norms.T @ dout).ravel()

    bc.register(
        "quiet_keepdims",
        forward=scaled_rows_forward,
        backward=scaled_rows_backward,
        inputs={"x": "N,D", "y": "M"},
    )
    report = bc.check("quiet_keepdims", cases=4)
    assert report.passed and lint(report).empty


def test_correct_code_with_matching_shapes_stays_quiet_also_in_float32():
    def mse32(y_pred, y):
        diff = y_pred.astype(np.float32) - y.astype(np.float32)
        return np.mean(diff**2), 2 * diff / diff.size

    bc.register("mse32_ok", value_and_grad=mse32, inputs={"y_pred": "N,1", "y": bc.const("N,1")})
    report = bc.check("mse32_ok", cases=4)
    assert report.passed and lint(report).empty


def test_the_bank_gives_no_lint_warning():
    report = bc.run("reference_impls", cases=2, only=["mse", "attention", "batchnorm", "conv", "lstm_step"])
    assert lint(report).empty


def test_the_fix_suggested_follows_the_shapes():
    assert "did you mean y.ravel()?" in Broadcast("subtract", ((5,), (5, 1)), (5, 5), ("p", "y")).message()
    assert (
        "did you mean t.reshape(4, 3)?"
        in Broadcast("add", ((4, 3), (4, 1, 3)), (4, 4, 3), ("a", "t")).message()
    )
    assert "give both the same shape?" in Broadcast("add", ((4, 1), (1, 3)), (4, 3)).message()
