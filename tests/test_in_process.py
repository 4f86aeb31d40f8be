"""Running user code in-process: what a first call returned is kept, and messages use the user's names."""

from __future__ import annotations

import numpy as np

import checker as bc
from reference_impls.sequence import lstm_step_backward, lstm_step_forward
from tests.conftest import affine_backward, affine_forward, failing

AFFINE_INPUTS = {"x": "N,D", "w": "D,M", "b": "M"}
LSTM_INPUTS = {"x": "N,D", "prev_h": "N,H", "prev_c": "N,H", "Wx": "D,4H", "Wh": "H,4H", "b": "4H"}


class AccumulatingDense:
    """A layer of a framework whose backward adds into ``self.gradients`` (zeroed by its optimizer step)."""

    def __init__(self, W, b):
        self.W, self.b = W, b
        self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}

    def backward(self, X, dout):
        self.gradients["W"] += X.T @ dout
        self.gradients["b"] += dout.sum(axis=0)
        return dout @ self.W.T


def adapter_forward(x, w, b):
    layer = AccumulatingDense(w, b)
    return x @ w + b, (layer, x)


def adapter_backward(dout, cache):
    layer, x = cache
    dx = layer.backward(x, dout)
    return dx, layer.gradients["W"], layer.gradients["b"]  # the buffers themselves, not copies


def test_a_gradient_returned_from_an_accumulating_buffer_is_stateful_not_scaled():
    bc.register(
        "adapter_accumulates", forward=adapter_forward, backward=adapter_backward, inputs=AFFINE_INPUTS
    )
    report = bc.check("adapter_accumulates", cases=3, shrink=False)
    bad = failing(report)
    # The first call's gradients are right: judged as returned, before the second call doubled them.
    assert set(bad.check) == {"determinism"} and set(bad.diagnosis) == {"stateful"}
    message = bad[bad.target == "w"].message.iloc[0]
    assert message.startswith("dw doubles on a second backward: it accumulates (+=) across calls; zero it")
    assert "scaled" not in set(report.frame.diagnosis)


def test_a_backward_returning_fresh_arrays_passes_the_determinism_check():
    bc.register("affine_fresh", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    report = bc.check("affine_fresh", cases=2, shrink=False)
    assert report.passed and set(report.frame[report.frame.check == "determinism"].status) == {"pass"}


def test_a_loss_whose_gradient_accumulates_in_a_module_buffer_says_so():
    buffers = {}

    def mse(pred, y):
        diff = pred - y
        buffers[pred.shape] = buffers.get(pred.shape, np.zeros_like(pred)) + 2 * diff / diff.size
        return float(np.mean(diff**2)), buffers[pred.shape]

    bc.register("mse_accumulates", value_and_grad=mse, inputs={"pred": "N,D", "y": bc.const("N,D")})
    bad = failing(bc.check("mse_accumulates", cases=1, shrink=False))
    assert set(bad.check) == {"determinism"}
    assert bad.message.iloc[0].startswith("dpred doubles on a second call of mse: it accumulates (+=)")


def test_a_mutation_names_the_upstream_gradient_as_the_backward_calls_it():
    def lstm_backward_scales_dnext_c(dnext_h, dnext_c, cache):
        dnext_c *= 1.0001  # written into the caller's array
        return lstm_step_backward(dnext_h, dnext_c, cache)

    bc.register(
        "lstm_writes_dnext_c",
        forward=lstm_step_forward,
        backward=lstm_backward_scales_dnext_c,
        inputs=LSTM_INPUTS,
        outputs=2,
    )
    bad = failing(bc.check("lstm_writes_dnext_c", cases=1, shrink=False))
    message = bad[bad.check == "mutation"].message.iloc[0]
    assert "modified dnext_c in place" in message and "dout2" not in message


def test_a_diagnosis_names_the_upstream_gradient_as_the_backward_calls_it():
    def relu_forward(x):
        return np.maximum(x, 0), x

    def relu_backward(dvalues, cache):
        return dvalues.copy()  # the mask (cache > 0) is forgotten

    bc.register("relu_dvalues", forward=relu_forward, backward=relu_backward, inputs={"x": "N,D"})
    bad = failing(bc.check("relu_dvalues", cases=2, shrink=False))
    diagnosed = bad[bad.diagnosis == "wrong_mask"]
    assert len(diagnosed) and all("dvalues" in m and "dout" not in m for m in diagnosed.message)


def test_a_forward_returning_too_few_values_is_told_the_outputs_by_their_names():
    def lstm_forward_without_cache(*args):
        next_h, next_c, _ = lstm_step_forward(*args)
        return next_h, next_c

    bc.register(
        "lstm_no_cache",
        forward=lstm_forward_without_cache,
        backward=lstm_step_backward,
        inputs=LSTM_INPUTS,
        outputs=2,
    )
    bad = failing(bc.check("lstm_no_cache", cases=1, shrink=False))
    assert "expected a tuple (next_h, next_c, cache)" in bad.message.iloc[0]


def test_an_unusable_output_is_named_after_its_gradient_in_the_backward():
    def lstm_forward_loses_next_c(*args):
        next_h, _, cache = lstm_step_forward(*args)
        return next_h, None, cache

    bc.register(
        "lstm_none_c",
        forward=lstm_forward_loses_next_c,
        backward=lstm_step_backward,
        inputs=LSTM_INPUTS,
        outputs=2,
    )
    errors = failing(bc.check("lstm_none_c", cases=1, shrink=False))
    assert "lstm_forward_loses_next_c returned next_c that is a None" in errors.message.iloc[0]
