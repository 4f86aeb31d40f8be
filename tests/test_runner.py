"""Every check catches the mistake it is for, and stays quiet on correct code."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc
from tests.conftest import affine_backward, affine_forward, failing

AFFINE_INPUTS = {"x": "N,D", "w": "D,M", "b": "M"}


def torch_affine(x, w, b):
    return x @ w + b


def check_backward(name, backward, forward=affine_forward, mode="auto", **kwargs):
    kwargs.setdefault("inputs", AFFINE_INPUTS)
    bc.register(name, forward=forward, backward=backward, **kwargs)
    return bc.check(name, cases=3, shrink=False, mode=mode)


def rows(report, check, target=None):
    frame = failing(report)
    frame = frame[frame.check == check]
    return frame if target is None else frame[frame.target == target]


def test_correct_affine_passes_every_check_with_every_oracle():
    report = check_backward("affine_ok", affine_backward, torch_forward=torch_affine, mode="full")
    assert report.passed
    checks = set(report.frame.check)
    assert {
        "shape",
        "grad_fd",
        "grad_torch",
        "grad_autograd",
        "mutation",
        "determinism",
        "finite",
        "forward_torch",
    } <= checks
    assert set(report.frame.status) == {"pass"}
    assert set(report.frame.oracle) >= {"torch_reference", "torch_numpy", "finite_diff(full)"}


def test_bias_gradient_not_summed_is_a_shape_failure_named_unreduced_broadcast():
    def backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, x.T @ dout, dout

    report = check_backward("affine_db_unsummed", backward)
    bad = rows(report, "shape", "b")
    by_label = dict(zip(bad.case_label, bad.diagnosis, strict=True))
    assert by_label["baseline"] == "unreduced_broadcast"
    assert by_label["N=1"] == "keepdims"  # at N = 1, dout has the right values, only an extra axis
    assert "sum the gradient over axis 0" in bad.message.iloc[0]


def test_transposed_weight_gradient_is_caught_even_when_square():
    def backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, (x.T @ dout).T, dout.sum(0)

    bc.register("affine_dw_T", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    square = bc.check("affine_dw_T", dims={"N": 3, "D": 4, "M": 4})
    bad = rows(square, "grad_autograd", "w")
    assert len(bad) and bad.diagnosis.iloc[0] == "transposed"
    assert len(rows(square, "grad_fd", "w"))
    rectangular = bc.check("affine_dw_T", dims={"N": 3, "D": 2, "M": 4})
    assert rows(rectangular, "shape", "w").diagnosis.iloc[0] == "transposed"


def test_missing_one_over_n_is_caught_by_finite_differences_alone():
    def loss(x, y):
        n = x.shape[0]
        shifted = x - x.max(axis=1, keepdims=True)
        p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        value = -np.log(p[np.arange(n), y]).mean()
        dx = p.copy()
        dx[np.arange(n), y] -= 1
        return value, dx  # missing / n

    bc.register(
        "softmax_no_1_over_n", value_and_grad=loss, inputs={"x": "N,C", "y": bc.labels("N", classes="C")}
    )
    report = bc.check("softmax_no_1_over_n", cases=3, oracles=["fd"], shrink=False)
    bad = rows(report, "grad_fd", "x")
    assert len(bad) and "scaled" in set(bad.diagnosis)
    assert report.summaries[0].shape_pattern == "fails whenever N > 1"


def test_relu_times_x_instead_of_mask_is_a_wrong_mask_and_the_kink_control_passes():
    def relu_forward(x):
        return np.maximum(0, x), x

    def relu_times_x(dout, cache):
        return dout * cache

    def relu_mask_ge(dout, cache):
        return dout * (cache >= 0)

    wrong = check_backward("relu_times_x", relu_times_x, forward=relu_forward, inputs={"x": "N,D"})
    assert "wrong_mask" in set(rows(wrong, "grad_autograd", "x").diagnosis)
    control = check_backward("relu_mask_ge", relu_mask_ge, forward=relu_forward, inputs={"x": "N,D"})
    assert control.passed


def test_backward_writing_into_dout_in_place_is_mutates_input():
    def backward(dout, cache):
        x, w, _ = cache
        dout *= 1.0 + 0.0 * dout  # a no-op value-wise...
        dout += 0.5  # ...then a real in-place write
        return (dout - 0.5) @ w.T, x.T @ (dout - 0.5), (dout - 0.5).sum(0)

    report = check_backward("affine_inplace_dout", backward)
    bad = rows(report, "mutation", "backward")
    assert len(bad) and bad.diagnosis.iloc[0] == "mutates_input"
    assert "dout" in bad.message.iloc[0]


def test_forward_modifying_its_input_is_mutates_input():
    def forward(x, w, b):
        out = x @ w + b
        x[...] = 0
        return out, (x, w, b)

    report = check_backward("affine_zeroes_x", affine_backward, forward=forward)
    assert "x" in rows(report, "mutation", "forward").message.iloc[0]


def test_gradient_accumulating_across_calls_is_stateful():
    state = {}

    def backward(dout, cache):
        x, w, _ = cache
        state["dw"] = state.get("dw", 0) + x.T @ dout
        return dout @ w.T, state["dw"], dout.sum(0)

    def fresh_forward(x, w, b):
        state.clear()
        return affine_forward(x, w, b)

    report = check_backward("affine_accumulates", backward, forward=fresh_forward)
    bad = rows(report, "determinism", "w")
    assert len(bad) and bad.diagnosis.iloc[0] == "stateful"
    assert "dw doubles on a second backward: it accumulates (+=) across calls" in bad.message.iloc[0]


def test_forward_that_differs_from_the_torch_reference_is_forward_mismatch():
    def forward(x, w, b):
        return x @ w + 2 * b, (x, w, b)

    def backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, x.T @ dout, 2 * dout.sum(0)

    report = check_backward("affine_2b", backward, forward=forward, torch_forward=torch_affine)
    assert set(rows(report, "forward_torch").diagnosis) == {"forward_mismatch"}
    assert len(rows(report, "grad_torch", "b"))
    assert not len(rows(report, "grad_fd"))  # consistent with its own forward


def test_shape_m_for_a_1_by_m_parameter_is_keepdims():
    def forward(x, w, b):
        return x @ w + b, (x, w, b)

    def backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    report = check_backward(
        "affine_row_bias", backward, forward=forward, inputs={"x": "N,D", "w": "D,M", "b": "1,M"}
    )
    bad = rows(report, "shape", "b")
    assert len(bad) and set(bad.diagnosis) == {"keepdims"}


def test_nan_gradient_is_nonfinite():
    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        db = db.copy()
        db[0] = np.nan
        return dx, dw, db

    report = check_backward("affine_nan", backward)
    assert set(rows(report, "finite", "b").diagnosis) == {"nonfinite"}


@pytest.mark.parametrize(
    ("returned", "fragment"),
    [
        (lambda dx, dw, db: None, "returned None"),
        (lambda dx, dw, db: (dx, dw), "returned 2 gradients; expected 3: (dx, dw, db)"),
        (lambda dx, dw, db: (dx, dw, "db"), "db is a str, expected a numpy array"),
        (lambda dx, dw, db: (dx, dw, db.astype(int)), "integer dtype"),
        (lambda dx, dw, db: {"dx": dx, "dw": dw}, "no gradient for 'b'"),
        (lambda dx, dw, db: {"dx": dx, "dw": dw, "db": db, "dz": db}, "extra gradient 'dz'"),
    ],
)
def test_unusable_returns_are_shape_failures_with_a_message(returned, fragment):
    def backward(dout, cache):
        return returned(*affine_backward(dout, cache))

    report = check_backward(f"affine_returns_{abs(hash(fragment))}", backward)
    messages = " | ".join(rows(report, "shape").message)
    assert fragment in messages


def test_list_and_dict_and_bare_array_returns_are_accepted():
    as_list = check_backward("affine_list", lambda dout, cache: list(affine_backward(dout, cache)))
    as_dict = check_backward(
        "affine_dict",
        lambda dout, cache: dict(zip(("x", "dw", "db"), affine_backward(dout, cache), strict=True)),
    )
    bare = check_backward(
        "relu_bare",
        lambda dout, x: dout * (x > 0),
        forward=lambda x: (np.maximum(x, 0), x),
        inputs={"x": "N,D"},
    )
    assert as_list.passed and as_dict.passed and bare.passed


def test_user_code_that_raises_is_an_error_row_and_the_run_goes_on():
    def backward(dout, cache):
        raise ValueError("shapes (2,3) and (4,5) not aligned")

    bc.register("raises_in_backward", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    bc.register("fine_after", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    report = bc.run(["raises_in_backward", "fine_after"], cases=2, shrink=False)
    errors = failing(report)
    assert set(errors.status) == {"error"}
    assert "affine_backward raised ValueError: shapes (2,3) and (4,5) not aligned" in errors.message.iloc[
        0
    ] or ("backward raised ValueError" in errors.message.iloc[0])
    assert [s.status for s in report.summaries] == ["error", "pass"]


def test_forward_returning_a_bare_array_says_what_was_expected():
    bc.register("no_cache", forward=lambda x, w, b: x @ w + b, backward=affine_backward, inputs=AFFINE_INPUTS)
    report = bc.check("no_cache", cases=1)
    assert "expected a tuple (out, cache)" in failing(report).message.iloc[0]


def test_lstm_style_two_outputs_are_checked():
    def forward(x, w):
        a = x @ w
        return np.tanh(a), a * 2.0, (x, w, a)

    def backward(dh, dc, cache):
        x, w, a = cache
        da = dh * (1 - np.tanh(a) ** 2) + 2.0 * dc
        return da @ w.T, x.T @ da

    bc.register("two_outputs", forward=forward, backward=backward, inputs={"x": "N,D", "w": "D,H"}, outputs=2)
    assert bc.check("two_outputs", cases=3).passed


class TinyNet:
    def __init__(self, d, c, reg=0.1):
        self.params = {"W": np.zeros((d, c)), "b": np.zeros(c)}
        self.reg = reg

    def loss(self, X, y):
        W, b = self.params["W"], self.params["b"]
        scores = X @ W + b
        n = X.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), y]).mean() + 0.5 * self.reg * np.sum(W * W)
        d = p.copy()
        d[np.arange(n), y] -= 1
        d /= n
        return loss, {"W": X.T @ d + self.reg * W, "b": d.sum(axis=0)}


class TinyNetNoReg(TinyNet):
    def loss(self, X, y):
        loss, grads = super().loss(X, y)
        grads["W"] = grads["W"] - self.reg * self.params["W"]
        return loss, grads


@pytest.mark.parametrize(("cls", "passes"), [(TinyNet, True), (TinyNetNoReg, False)])
def test_model_style_checks_every_parameter(cls, passes):
    bc.register(
        f"tiny_{cls.__name__}",
        model=lambda d, cls=cls: cls(d["D"], d["C"]),
        loss=lambda m, X, y: m.loss(X, y),
        data={"X": "N,D", "y": bc.labels("N", classes="C")},
    )
    report = bc.check(f"tiny_{cls.__name__}", cases=3, shrink=False)
    assert report.passed is passes
    if not passes:
        assert set(failing(report).target) == {"W"}


def test_large_inputs_use_directional_checks_and_still_catch_a_scaled_gradient():
    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx * 1.01, dw, db

    bc.register(
        "big_affine",
        forward=affine_forward,
        backward=backward,
        inputs=AFFINE_INPUTS,
        dims={"N": 40, "D": 30, "M": 20},
    )
    report = bc.check("big_affine", cases=1, oracles=["fd"])
    bad = rows(report, "grad_fd", "x")
    assert len(bad) and bad.oracle.iloc[0].startswith("finite_diff(directional")
    bc.register("big_affine_ok", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    ok = bc.check("big_affine_ok", dims={"N": 40, "D": 30, "M": 20}, oracles=["fd"])
    assert ok.passed


@pytest.mark.parametrize("mode", ["full", "directional", "sampled"])
def test_every_mode_catches_a_wrong_gradient_and_passes_a_right_one(mode):
    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw, db * 0.5

    bc.register("half_db", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    bc.register("affine_right", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    assert not bc.check("half_db", cases=2, mode=mode, oracles=["fd"], shrink=False).passed
    assert bc.check("affine_right", cases=2, mode=mode, oracles=["fd"]).passed


def test_user_code_that_hangs_is_an_error_row_and_the_run_goes_on():
    def backward(dout, cache):
        while True:
            try:  # noqa: SIM105 - a student's blanket except must not swallow the time limit
                sum(range(10))
            except Exception:
                pass

    bc.register("hangs_in_backward", forward=affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    bc.register("fine_after_hang", forward=affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    report = bc.run(["hangs_in_backward", "fine_after_hang"], cases=1, shrink=False, timeout=0.5)
    errors = failing(report)
    assert list(errors.target) == ["timeout"] and "did not finish within 0.5 s" in errors.message.iloc[0]
    assert [s.status for s in report.summaries] == ["error", "pass"]


def f32_affine_forward(x, w, b):
    return x.astype(np.float32) @ w.astype(np.float32) + b.astype(np.float32), (x, w, b)


@pytest.mark.parametrize("seed", range(3))
def test_a_correct_forward_computing_in_float32_is_not_a_false_alarm(seed):
    def sigmoid_forward(x):
        out = 1 / (1 + np.exp(-x.astype(np.float32)))
        return out, out

    bc.register(
        "sigmoid_f32",
        forward=sigmoid_forward,
        backward=lambda d, out: d * out * (1 - out),
        inputs={"x": "N,D"},
    )
    bc.register("affine_f32", forward=f32_affine_forward, backward=affine_backward, inputs=AFFINE_INPUTS)
    assert bc.check("sigmoid_f32", seed=seed, cases=10).passed
    assert bc.check("affine_f32", seed=seed, cases=10).passed


def test_a_float32_forward_still_fails_a_one_percent_gradient_error_by_finite_differences():
    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw * 1.01, db

    bc.register("affine_f32_bad", forward=f32_affine_forward, backward=backward, inputs=AFFINE_INPUTS)
    report = bc.check("affine_f32_bad", cases=3, oracles=["fd"], shrink=False)
    bad = rows(report, "grad_fd", "w")
    assert len(bad) == 3 and "eps=1e-07" in bad.oracle.iloc[0]


@pytest.mark.parametrize("seed", range(3))
def test_a_large_output_offset_is_not_a_false_alarm(seed):
    bc.register("offset_1e7", forward=lambda x: (x + 1e7, None), backward=lambda d, c: d, inputs={"x": "N,D"})
    assert bc.check("offset_1e7", seed=seed, cases=10, oracles=["fd"]).passed


def test_taylor_second_opinion_clears_a_finite_difference_false_alarm_but_not_a_bug(monkeypatch):
    from checker.oracles import finite_diff

    def tanh_forward(x):
        out = np.tanh(x)
        return out, out

    bc.register(
        "tanh_ok", forward=tanh_forward, backward=lambda d, out: d * (1 - out**2), inputs={"x": "N,D"}
    )
    bc.register("tanh_bug", forward=tanh_forward, backward=lambda d, out: d * (1 - out), inputs={"x": "N,D"})
    # Simulate finite differences that misjudge every entry (what noise or a kink could do).
    monkeypatch.setattr(
        finite_diff,
        "confirm_entries",
        lambda _o, _v, _n, actual, est, *a, **k: (est + 1.0, np.ones(actual.shape, bool)),
    )
    report = bc.check("tanh_ok", cases=2, oracles=["fd"], shrink=False)
    assert report.passed
    assert any("Taylor test converges" in m for m in report.frame.message)
    bad = rows(bc.check("tanh_bug", cases=2, oracles=["fd"], shrink=False), "grad_fd", "x")
    assert len(bad) and "Taylor test: first order" in bad.message.iloc[0]


BIG = {"N": 64, "D": 64, "M": 64}  # 8256 differentiable elements


def test_by_default_the_torch_reference_decides_a_small_case_and_nothing_else_runs_on_a_pass():
    report = check_backward("small_affine_ref", affine_backward, torch_forward=torch_affine)
    assert report.passed and {"forward_torch", "grad_torch"} <= set(report.frame.check)
    assert not {"grad_autograd", "grad_fd"} & set(report.frame.check)
    plain = check_backward("small_affine", affine_backward)  # no reference: autograd of the forward decides
    assert plain.passed and "grad_autograd" in set(plain.frame.check)
    assert "grad_fd" not in set(plain.frame.check)


def test_a_large_case_lets_the_torch_reference_decide_and_the_other_oracles_explain_a_failure():
    bc.register(
        "big_affine_ref",
        forward=affine_forward,
        backward=affine_backward,
        inputs=AFFINE_INPUTS,
        torch_forward=torch_affine,
    )
    ok = bc.check("big_affine_ref", dims=BIG)
    assert ok.passed
    assert {"forward_torch", "grad_torch"} <= set(ok.frame.check)
    assert not {"grad_autograd", "grad_fd"} & set(ok.frame.check)  # the reference settled every gradient

    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx * 1.01, dw, db

    bad = check_backward("big_affine_ref_dx", backward, torch_forward=torch_affine, dims=BIG)
    frame = bad.frame
    assert set(rows(bad, "grad_torch").target) == {"x"}
    assert set(frame[frame.check == "grad_autograd"].target) == {"x", "w", "b"}  # ran to explain
    assert set(frame[frame.check == "grad_fd"].target) == {"x"}  # only where no exact oracle passed
    assert set(rows(bad, "grad_fd").target) == {"x"}


def test_a_backward_writing_into_a_large_cache_is_caught_without_copying_it():
    def forward(x, w, b):
        return x @ w + b, {"x": x, "w": w, "buffer": np.zeros((256, 256))}

    def backward(dout, cache):
        cache["buffer"][17, 3] = 1.0  # one element of a 0.5 MB array in the cache
        x, w = cache["x"], cache["w"]
        return dout @ w.T, x.T @ dout, dout.sum(0)

    report = check_backward("affine_writes_cache", backward, forward=forward)
    bad = rows(report, "mutation", "backward")
    assert len(bad) and "cache['buffer']" in bad.message.iloc[0]
