"""Recurrent cells checked unrolled over time: the cell's own step functions (hidden- and cell-state
paths carried by the harness) or a cell object keeping its state; a dropped path through the state is
caught and located at its step."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc
from reference_impls import objects
from reference_impls.sequence import (
    lstm_step_backward,
    lstm_step_forward,
    rnn_step_backward,
    rnn_step_forward,
)
from tests.conftest import failing

LSTM = {"x": "N,D", "prev_h": "N,H", "prev_c": "N,H", "Wx": "D,4H", "Wh": "H,4H", "b": "4H"}
LSTM_OVER_TIME = bc.over_time("T", sequence="x", state=("prev_h", "prev_c"))
CELL = {"inputs": {"x": "N,D"}, "params": {"Wx": "D,H", "Wh": "H,H", "b": "H"}, "dims": {"T": range(1, 5)}}


def lstm_step_backward_drops_dnext_c(dnext_h, dnext_c, cache):
    """The cell state's gradient from the next step is forgotten: only the path through next_h."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_h * o * (1.0 - tanh_c**2)
    da = np.concatenate(
        [
            dc * g * i * (1.0 - i),
            dc * prev_c * f * (1.0 - f),
            dnext_h * tanh_c * o * (1.0 - o),
            dc * i * (1.0 - g**2),
        ],
        axis=1,
    )
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, np.sum(da, axis=0)


def localize_rows(report):
    return report.frame[report.frame.check == "localize"]


def test_lstm_step_functions_unrolled_over_time_pass_with_every_path():
    bc.register(
        "lstm_over_time",
        forward=lstm_step_forward,
        backward=lstm_step_backward,
        inputs=LSTM,
        outputs=2,
        dims={"T": range(1, 5)},
        unroll=LSTM_OVER_TIME,
    )
    report = bc.check("lstm_over_time", cases=4)
    assert report.passed
    shapes = dict(
        zip(report.frame[report.frame.check == "shape"].target, report.frame.expected_shape, strict=False)
    )
    assert set(shapes) == {"x", "prev_h", "prev_c", "Wx", "Wh", "b"}
    assert "T=" in report.frame.dims.iloc[0]


def test_a_dropped_cell_state_path_is_caught_and_located_at_its_step():
    bc.register(
        "lstm_drops_c",
        forward=lstm_step_forward,
        backward=lstm_step_backward_drops_dnext_c,
        inputs=LSTM,
        outputs=2,
        dims={"T": (3, 4)},
        unroll=LSTM_OVER_TIME,
    )
    report = bc.check("lstm_drops_c", cases=3, shrink=False)
    assert not report.passed
    located = localize_rows(report)
    assert len(located)
    for _, row in located.iterrows():
        steps = int(row.dims.split("T=")[1].split(",")[0])
        # The last step gets no dnext_c from a later one: right; the one before it is where it is lost.
        assert row.first_wrong == f"dx[:, {steps - 2}]" and row.location.startswith(
            f"step {steps - 2} of {steps}"
        )
        assert "through the recurrent state (prev_h, prev_c) is lost or wrong" in row.message


def test_a_step_wrong_on_its_own_is_located_at_the_last_step():
    def rnn_backward_wrong_dx(dnext_h, cache):
        dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
        return 2 * dx, dprev_h, dWx, dWh, db

    bc.register(
        "rnn_wrong_dx",
        forward=rnn_step_forward,
        backward=rnn_backward_wrong_dx,
        inputs={"x": "N,D", "prev_h": "N,H", "Wx": "D,H", "Wh": "H,H", "b": "H"},
        dims={"T": (3,)},
        unroll=bc.over_time("T", sequence="x", state="prev_h"),
    )
    located = localize_rows(bc.check("rnn_wrong_dx", cases=2, shrink=False))
    assert set(located.first_wrong) == {"dx[:, 2]"}
    assert "wrong already at the last step" in located.message.iloc[0]


class CellDropsHiddenPath(objects.RNNCell):
    def backward(self, dh):
        if not self.going_back:
            self.dh_prev = np.zeros_like(dh)
            self.grads = {k: np.zeros_like(getattr(self, k)) for k in ("Wx", "Wh", "b")}
            self.going_back = True
        x, h_prev, h = self.steps.pop()
        da = dh * (1.0 - h**2)  # + self.dh_prev forgotten: the path through the hidden state
        self.grads["Wx"] += x.T @ da
        self.grads["Wh"] += h_prev.T @ da
        self.grads["b"] += da.sum(axis=0)
        self.dh_prev = da @ self.Wh.T
        return da @ self.Wx.T


def test_a_cell_object_keeping_its_state_passes_over_time():
    report = bc.check(
        bc.get_target("rnn_cell_over_time", module="reference_impls.objects"), cases=4, mode="full"
    )
    assert report.passed and {"grad_fd", "grad_autograd", "determinism"} <= set(report.frame.check)


def test_a_cell_object_dropping_its_hidden_path_is_located_at_its_step():
    bc.register(
        "cell_drops_h",
        layer=lambda d: CellDropsHiddenPath(d["D"], d["H"]),
        unroll=bc.over_time("T", sequence="x"),
        **CELL,
    )
    report = bc.check("cell_drops_h", cases=3, shrink=False)
    located = localize_rows(report)
    assert len(located) and all(row.startswith("dx is right at step") for row in located.message)
    assert "the state the cell keeps between calls" in located.message.iloc[0]
    steps = int(located.dims.iloc[0].split("T=")[1].split(",")[0])
    assert located.first_wrong.iloc[0] == f"dx[:, {steps - 2}]"


def test_a_float32_cell_stays_quiet():
    class Cell32(objects.RNNCell):
        def forward(self, x):
            return super().forward(x.astype(np.float32)).astype(np.float32)

    bc.register(
        "cell_f32", layer=lambda d: Cell32(d["D"], d["H"]), unroll=bc.over_time("T", sequence="x"), **CELL
    )
    assert bc.check("cell_f32", cases=4).passed


def test_a_step_gradient_of_the_wrong_shape_is_diagnosed_as_for_one_step():
    def rnn_backward_unsummed_db(dnext_h, cache):
        dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
        return dx, dprev_h, dWx, dWh, db * np.ones((dx.shape[0], 1))  # db not summed over the batch

    bc.register(
        "rnn_db_unsummed",
        forward=rnn_step_forward,
        backward=rnn_backward_unsummed_db,
        inputs={"x": "N,D", "prev_h": "N,H", "Wx": "D,H", "Wh": "H,H", "b": "H"},
        dims={"N": (2,), "T": (2,)},
        unroll=bc.over_time("T", sequence="x", state="prev_h"),
    )
    bad = failing(bc.check("rnn_db_unsummed", cases=1))
    assert list(bad.check) == ["shape"] and bad.diagnosis.iloc[0] == "unreduced_broadcast"


def test_a_state_gradient_of_the_wrong_shape_is_an_error_row_naming_the_step():
    def rnn_backward_flat_dprev_h(dnext_h, cache):
        dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
        return dx, dprev_h.sum(axis=0), dWx, dWh, db

    bc.register(
        "rnn_flat_state",
        forward=rnn_step_forward,
        backward=rnn_backward_flat_dprev_h,
        inputs={"x": "N,D", "prev_h": "N,H", "Wx": "D,H", "Wh": "H,H", "b": "H"},
        dims={"N": (2,), "H": (3,), "T": (2,)},
        unroll=bc.over_time("T", sequence="x", state="prev_h"),
    )
    errors = failing(bc.check("rnn_flat_state", cases=1))
    assert list(errors.check) == ["call"]
    assert "at step 1 returned dprev_h of shape (3,) for prev_h of shape (2, 3)" in errors.message.iloc[0]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"unroll": bc.over_time("T", sequence="y", state="prev_h")}, "'y', which is not an input"),
        ({"unroll": bc.over_time("T", sequence="x")}, "step functions pass their state along"),
        ({"unroll": bc.over_time("N", sequence="x", state="prev_h")}, "already a dimension"),
        ({"unroll": ("T", "x")}, "unroll= takes bc.over_time"),
    ],
)
def test_over_time_registrations_that_cannot_work_are_refused(kwargs, says):
    arguments = {
        "forward": rnn_step_forward,
        "backward": rnn_step_backward,
        "inputs": {"x": "N,D", "prev_h": "N,H", "Wx": "D,H", "Wh": "H,H", "b": "H"},
    } | kwargs
    with pytest.raises(bc.RegistrationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        bc.register("rnn_refused", **arguments)


def test_a_cell_object_has_no_state_inputs():
    with pytest.raises(bc.RegistrationError, match="keeps its state on itself"):
        bc.register(
            "cell_with_state",
            layer=lambda d: objects.RNNCell(d["D"], d["H"]),
            inputs={"x": "N,D", "h0": "N,H"},
            params={"Wx": "D,H", "Wh": "H,H", "b": "H"},
            unroll=bc.over_time("T", sequence="x", state="h0"),
        )


class ConcatCell:
    """A tanh cell with one weight over the concatenated input and state: W (D + H, H)."""

    def __init__(self, d, h):
        self.W, self.b, self.hidden, self.seen = np.random.randn(d + h, h) * 0.1, np.zeros(h), h, []

    def forward(self, x):
        h_prev = self.seen[-1][1] if self.seen else np.zeros((x.shape[0], self.hidden))
        z = np.concatenate([x, h_prev], axis=1)
        h = np.tanh(z @ self.W + self.b)
        self.seen.append((z, h))
        self.dh_next = None
        return h

    def backward(self, dh):
        z, h = self.seen.pop()
        if self.dh_next is not None:
            dh = dh + self.dh_next
        da = dh * (1 - h**2)
        self.dW = (self.dW if hasattr(self, "dW") else 0) + z.T @ da
        self.db = (self.db if hasattr(self, "db") else 0) + da.sum(axis=0)
        dz = da @ self.W.T
        d = z.shape[1] - self.hidden
        self.dh_next = dz[:, d:]
        return dz[:, :d]


def test_a_weight_over_the_concatenated_input_and_state_is_a_sum_spec():
    bc.register(
        "concat_cell",
        layer=lambda d: ConcatCell(d["D"], d["H"]),
        inputs={"x": "N,D"},
        params={"W": "D+H,H", "b": "H"},
        dims={"T": range(1, 4)},
        unroll=bc.over_time("T", sequence="x"),
    )
    report = bc.check("concat_cell", cases=4)
    assert report.passed
    sizes = report.frame[(report.frame.check == "shape") & (report.frame.target == "W")]
    for dims, shape in zip(sizes.dims, sizes.expected_shape, strict=True):
        values = dict(part.split("=") for part in dims.split(", "))
        assert shape == str((int(values["D"]) + int(values["H"]), int(values["H"])))
