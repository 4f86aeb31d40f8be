"""Messages and summaries that are true: each case a newcomer met, with its expected text or code.

A correct float32 forward is not a false alarm and gets no diagnosis; a function's summary is the code
that explains its informative cases (a code true only where a size-1 dimension makes a term vanish is a
note); the advice on size-1 axes points the right way; a NaN forward is not called "zero"; the
harness's own warnings stay inside; "zero" says what zeros can mean; an ambiguous factor is narrowed by
the other cases; the model style names a bias averaged over the batch as the layer style does.
"""

from __future__ import annotations

import warnings

import numpy as np

import checker as bc
import reference_impls
from checker.diagnose import GradientContext, diagnose_gradient
from reference_impls.mistakes import MISTAKES
from tests.conftest import affine_backward, affine_forward

AFFINE_INPUTS = {"x": "N,D", "w": "D,M", "b": "M"}


def planted(exercise: str, name: str) -> bc.Report:
    mistake = next(m for m in MISTAKES if m.exercise == exercise and m.name == name)
    found = reference_impls.exercise(exercise)
    target = bc.variant(bc.get_target(found.name, module=found.module), mistake.replaces)
    return bc.check(target, cases=6)


# --------------------------------------------------------------------------------- precision


def test_a_correct_float32_affine_passes_and_says_it_was_judged_in_float32():
    def forward(x, w, b):
        x, w, b = (a.astype(np.float32) for a in (x, w, b))
        return x @ w + b, (x, w, b)

    target = bc.register(
        "affine_f32_trust", forward=forward, backward=affine_backward, inputs=AFFINE_INPUTS,
        torch_forward=lambda x, w, b: x @ w + b,
    )  # fmt: skip
    report = bc.check(target, seed=3, cases=8)
    assert report.passed
    assert set(report.frame.precision) == {"float32"}
    assert not report.frame.diagnosis.ne("").any()


def test_a_float32_gradient_off_by_one_percent_still_fails_and_says_at_what_accuracy():
    def forward(x, w, b):
        x, w, b = (a.astype(np.float32) for a in (x, w, b))
        return x @ w + b, (x, w, b)

    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw * 1.01, db

    target = bc.register("affine_f32_bad_trust", forward=forward, backward=backward, inputs=AFFINE_INPUTS)
    failing = bc.check(target, cases=3, shrink=False).failures
    assert failing and all(
        "(compared at float32 accuracy" in r.message for r in failing if r.status == "fail"
    )


# --------------------------------------------------------------------------------- summaries


def test_a_doubled_regularization_gradient_is_summarised_as_regularization_not_scaled():
    summary = planted("two_layer_net_staged", "W2_reg_doubled").summaries[0]
    headline = summary.diagnoses.split(", ")[0]
    assert headline.startswith("regularization")
    assert "scaled" not in headline
    assert "scaled at " in summary.notes and "only, where a size-1 dimension" in summary.notes


def test_a_missing_regularization_term_is_not_summarised_as_zero():
    summary = planted("two_layer_net", "missing_reg_gradient").summaries[0]
    assert summary.diagnoses.split(", ")[0].startswith("regularization")
    assert "zero" not in summary.diagnoses.split(", ")[0]
    assert "zero at " in summary.notes


def test_a_staged_batchnorm_mistake_is_summarised_by_its_step():
    summary = planted("batchnorm_staged", "sqrtvar_sign").summaries[0]
    assert summary.diagnoses.split(", ")[0].startswith("sign_flipped (in dsqrtvar)")
    assert summary.where.startswith("dsqrtvar at staged_norms.py:")


def test_when_no_code_explains_the_informative_cases_the_summary_says_so():
    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        noise = np.sin(np.arange(dw.size) ** 2).reshape(dw.shape)
        return dx, dw + 0.3 * noise * (dw.shape[0] > 1 and dw.shape[1] > 1), db

    target = bc.register(
        "affine_unexplained", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS
    )
    summary = bc.check(target, cases=6).summaries[0]
    assert summary.status == "fail"
    assert "no diagnosis explains the failures at informative shapes" in summary.notes


# --------------------------------------------------------------------------------- messages


def test_a_missing_size_one_axis_is_told_to_be_kept_not_dropped():
    t = np.arange(1.0, 4.0).reshape(1, 3)
    ctx = GradientContext("b2", (1, 3), ("1", "C"), {"C": 3})
    found = diagnose_gradient((2 * t).reshape(3), t, ctx)
    assert found.code == "scaled"
    assert (
        "db2 has shape (3,) but b2 has shape (1, 3) (keep the size-1 axes: sum with keepdims=True"
        in found.message
    )
    assert "drop keepdims" not in found.message


def test_a_forward_that_produces_nan_is_not_called_zero_and_no_harness_warning_escapes():
    def forward(x):
        out = np.log(x)  # NaN where x < 0
        return out, x

    target = bc.register("log_nan", forward=forward, backward=lambda dout, x: dout / x, inputs={"x": "N,D"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = bc.check(target, cases=3, shrink=False)
    frame = report.frame
    assert not (frame.diagnosis == "zero").any()
    assert not frame.message.str.contains("is zero everywhere").any()
    finite = frame[(frame.check == "finite") & (frame.target == "forward")]
    assert (finite.status == "fail").any() and finite.message.str.contains("NaN").any()
    skipped = frame[frame.check.str.startswith("grad_") & (frame.status == "skip")]
    assert skipped.message.str.contains("not finite").all() and len(skipped)
    harness = [w for w in caught if "/checker/" in w.filename.replace("\\", "/")]
    assert harness == [], [f"{w.filename}:{w.lineno}: {w.message}" for w in harness]


def test_zero_says_what_zeros_can_mean():
    t = np.array([1.0, -2.0, 3.0])
    found = diagnose_gradient(np.zeros(3), t, GradientContext("x", (3,)))
    assert found.code == "zero"
    assert (
        "a mask that blocks every entry, a missing term, or an array that is never filled in" in found.message
    )
    assert "is never filled in;" not in found.message


def test_an_ambiguous_factor_is_named_by_what_the_other_cases_tell_apart():
    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw / dout.shape[0], db  # an extra 1/N

    target = bc.register("affine_dw_over_n", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    frame = bc.check(target, cases=8, shrink=False).frame
    scaled = frame[(frame.diagnosis == "scaled") & (frame.target == "w")]
    assert len(scaled) >= 3
    equal = scaled[scaled.dims.str.contains("N=3, D=3, M=3")]
    assert len(equal), "the equal-sizes case is among the failures"
    assert all(" or " not in m.split(";")[0] for m in scaled.message), list(scaled.message)
    assert equal.message.str.contains("an extra factor 1/N (N=3)", regex=False).all(), list(equal.message)


class _Net:
    """A one-layer softmax classifier whose bias gradient is averaged over the batch."""

    def __init__(self, d: int, c: int) -> None:
        self.params = {"W": np.zeros((d, c)), "b": np.zeros(c)}

    def loss(self, X, y):
        W, b = self.params["W"], self.params["b"]
        scores = X @ W + b
        scores = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        n = X.shape[0]
        loss = -np.log(probs[np.arange(n), y]).mean()
        dscores = probs.copy()
        dscores[np.arange(n), y] -= 1
        dscores /= n
        return loss, {"W": X.T @ dscores, "b": dscores.mean(axis=0)}  # the bias: mean, not sum


def test_the_model_style_names_a_bias_averaged_over_the_batch_as_the_layer_style_does():
    target = bc.register(
        "net_bias_mean", model=lambda d: _Net(d["D"], d["C"]), loss=lambda m, X, y: m.loss(X, y),
        data={"X": "N,D", "y": bc.labels("N", classes="C")},
    )  # fmt: skip
    frame = bc.check(target, cases=6, shrink=False).frame
    bias = frame[(frame.target == "b") & (frame.status == "fail") & (frame.check == "grad_autograd")]
    informative = bias[~bias.dims.str.contains("N=1")]
    assert len(informative) and (informative.diagnosis == "mean_instead_of_sum").all()
    assert informative.message.str.contains("the gradient of a bias shared by every example is the SUM").all()
    assert not (frame[frame.target == "W"].status == "fail").any()


def test_only_comparisons_say_at_what_accuracy_they_were_made():
    # A float32 backward that writes into its cache and is 1 % off: the mutation row compares nothing.
    def forward(x, w, b):
        x, w, b = (a.astype(np.float32) for a in (x, w, b))
        return x @ w + b, [x, w, b]

    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, tuple(cache))
        cache[0] = cache[0] * 2  # replaces an entry of the cache: a mutation
        return dx, dw * 1.01, db

    target = bc.register(
        "affine_f32_mutating_trust", forward=forward, backward=backward, inputs=AFFINE_INPUTS
    )
    failing = [r for r in bc.check(target, cases=2, shrink=False).failures if r.status == "fail"]
    checks = {r.check for r in failing}
    assert {"mutation", "grad_autograd"} <= checks
    for row in failing:
        noted = "(compared at float32 accuracy" in row.message
        assert noted == (row.check not in ("mutation", "determinism")), (row.check, row.message)
