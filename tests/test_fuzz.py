"""Dimension fuzzing: forced edge cases, limits and constraints, determinism, shrinking, shape summaries."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

import checker as bc
from checker.fuzz import edge_dims, plan_dims, shape_pattern
from checker.strategies import cases_for, dims_for
from tests.conftest import affine_backward, affine_forward, failing

AFFINE = {
    "forward": affine_forward,
    "backward": affine_backward,
    "inputs": {"x": "N,D", "w": "D,M", "b": "M"},
}


def test_edge_cases_include_distinct_sizes_a_batch_of_one_and_equal_dims():
    target = bc.register("fuzz_affine", **AFFINE)
    plan = dict(edge_dims(target))
    base = plan["baseline"]
    assert len({base["N"], base["D"], base["M"]}) == 3
    assert plan["N=1"]["N"] == 1
    assert plan["equal"]["D"] == plan["equal"]["M"]
    assert set(plan["ones"].values()) == {1}


def test_plan_respects_limits_pins_and_constraints():
    target = bc.register(
        "fuzz_conv_like",
        **AFFINE,
        dims={"N": range(2, 5), "D": range(3, 9), "M": 5},
        constraint=lambda d: (d["D"] - 1) % 2 == 0,
    )
    plan = plan_dims(target, cases=12, seed=3)
    assert plan
    for _, dims in plan:
        assert 2 <= dims["N"] <= 4 and dims["M"] == 5 and (dims["D"] - 1) % 2 == 0


def test_the_same_seed_gives_the_same_plan():
    target = bc.register("fuzz_det", **AFFINE)
    assert plan_dims(target, 10, seed=5) == plan_dims(target, 10, seed=5)
    assert len(plan_dims(target, 10, seed=5)) == 10


def test_bias_not_summed_fails_only_when_n_is_not_1_and_shrinks_to_small_dims():
    def backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, x.T @ dout, dout[0]  # takes the first row instead of summing

    bc.register("fuzz_db_first_row", forward=affine_forward, backward=backward, inputs=AFFINE["inputs"])
    report = bc.check("fuzz_db_first_row", cases=8)
    summary = report.summaries[0]
    assert summary.shape_pattern == "fails whenever N > 1"
    assert "shape_dependent" in summary.diagnoses
    assert summary.shrunk_dims.startswith("N=2")
    assert "--dims N=2" in summary.reproduce and "--seed 0" in summary.reproduce
    assert set(failing(report).case_label) >= {"baseline"}


def test_transposed_dw_fails_at_every_registration_including_square_cases():
    def backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, (x.T @ dout).T, dout.sum(0)

    bc.register("fuzz_dw_T", forward=affine_forward, backward=backward, inputs=AFFINE["inputs"])
    report = bc.check("fuzz_dw_T", cases=6)
    bad = failing(report)
    square = bad[bad.case_label == "equal"]
    assert len(square) and "transposed" in set(square.diagnosis)
    assert report.summaries[0].shrunk_dims


def test_shape_pattern_words():
    n1 = [({"N": 1, "D": 2}, True), ({"N": 3, "D": 2}, False), ({"N": 1, "D": 4}, True)]
    assert shape_pattern(n1) == "fails only when N = 1"
    neq = [({"D": 2, "M": 3}, True), ({"D": 3, "M": 3}, False), ({"D": 4, "M": 1}, True)]
    assert shape_pattern(neq) == "fails whenever D != M"
    assert shape_pattern([({"N": 1}, True), ({"N": 2}, True)]) == "fails at every shape"
    assert shape_pattern([({"N": 1}, False)]) == ""
    lucky = [({"N": 1, "D": 1}, False), ({"N": 2, "D": 3}, True), ({"N": 4, "D": 2}, True)]
    # A one-element pass proves nothing, and the words say where it was.
    assert shape_pattern(lucky) == "passes only where every size is 1 (too small to tell)"


def test_a_correct_function_never_fails_across_many_seeds():
    bc.register("fuzz_ok", **AFFINE, torch_forward=lambda x, w, b: x @ w + b)
    for seed in range(15):
        report = bc.check("fuzz_ok", seed=seed, cases=4)
        assert report.passed, failing(report).message.tolist()


@settings(max_examples=15, deadline=None)
@given(cases_for(bc.register("fuzz_strategy", **AFFINE)))
def test_exported_strategies_draw_valid_cases(case):
    x, w, b = case.arrays["x"], case.arrays["w"], case.arrays["b"]
    assert x.shape[1] == w.shape[0] and w.shape[1] == b.shape[0]
    assert np.isfinite(x).all()


@settings(max_examples=20, deadline=None)
@given(dims_for({"H": range(3, 9), "F": (1, 3)}, constraint=lambda d: (d["H"] - d["F"]) % 2 == 0))
def test_dims_strategy_honours_the_constraint(dims):
    assert (dims["H"] - dims["F"]) % 2 == 0
