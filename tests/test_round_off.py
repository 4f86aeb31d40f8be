"""The user's backward's own round-off, measured by its linearity in the upstream gradients, widens the
exact comparisons of reduced-precision code only: a correct float32 backward whose order of operations
loses digits at an ill-conditioned input is not failed, and a wrong one still is."""

from __future__ import annotations

import numpy as np

import checker as bc
from checker.cases import make_case
from checker.execution import in_process
from checker.execution.calls import normalize_gradients
from checker.execution.record import RESCALE
from checker.judging.exact import own_round_off
from tests.test_precision_sweep import false_alarms
from tests.variants import bank_targets, rewritten, sweep_variants


def _staged_batchnorm_float32_at_scale() -> bc.Target:
    target = next(t for t in bank_targets() if t.name == "batchnorm_staged")
    return dict(sweep_variants(target))["float32 scale 1e3"]


def test_a_correct_float32_staged_batchnorm_at_two_samples_is_not_a_false_alarm():
    # Found by the 100-seed sweep: at N = 2 the right dx is 0, and this order of operations leaves
    # round-off of 1e-3 against terms of 1e3; the torch reference in float32 happens to leave less.
    report = bc.check(_staged_batchnorm_float32_at_scale(), seed=16)
    assert report.passed and not false_alarms(report)


def test_the_round_off_is_measured_on_reduced_precision_code_only():
    target = _staged_batchnorm_float32_at_scale()
    case = make_case(target, {"N": 2, "D": 3}, seed=16)
    run = in_process.run(target, case, np.random.default_rng(case.seed + 1))
    assert run.rescaled is not None and run.eps > 1e-10
    grads, _ = normalize_gradients(run.raw_grads, run.differentiable, run.where)
    checked = {n: (g, None) for n, g in grads.items()}
    noise = own_round_off(run, checked)
    assert set(noise) == set(run.differentiable) and noise["x"] > 0
    run.eps = float(np.finfo(np.float64).eps)
    assert own_round_off(run, checked) == {}  # float64 code: nothing widens


def test_a_wrong_float32_backward_is_still_failed_and_named():
    target = _staged_batchnorm_float32_at_scale()

    def backward(dout, cache):
        grads = dict(target.backward(dout, cache))  # the rewrite returns them by name
        return {**grads, "beta": -grads["beta"]}

    wrong = bc.variant(target, {"backward": backward})
    report = bc.check(wrong, seed=16, cases=3, shrink=False)
    failing = report.frame[report.frame.status == "fail"]
    assert not report.passed and "sign_flipped" in set(failing[failing.target == "beta"].diagnosis)


def test_a_backward_that_is_not_linear_in_dout_moves_by_a_small_fraction_of_its_error():
    # dx = dout ** 2: rescaling dout by RESCALE moves dx / RESCALE by (RESCALE - 1) * dx, about 1e-4 of
    # it, so the widening stays far below the mistake.
    def forward(x):
        return np.tanh(x).astype(np.float32), x.astype(np.float32)

    def backward(dout, cache):
        return (dout.astype(np.float32) ** 2) * (1 - np.tanh(cache) ** 2)

    bc.register("tanh_dout_squared_f32", forward=forward, backward=backward, inputs={"x": "N,D"})
    report = bc.check("tanh_dout_squared_f32", cases=3, shrink=False)
    assert not report.passed
    assert RESCALE - 1 < 1e-3


def test_float32_rewrites_of_the_bank_stay_quiet_with_the_round_off_witness():
    for target in bank_targets():
        if target.name not in ("batchnorm", "layernorm", "batchnorm_staged", "layernorm_staged"):
            continue
        report = bc.check(rewritten(target, dtype=np.float32, scale=1e3), seed=3)
        assert report.passed, target.name
