"""Shape patterns that are true: passes too small to tell are said to be so, and hyper-parameters
declared with values to try (bc.choices) are varied and named ("fails exactly when pad = 0")."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc
from checker.fuzz import plan_dims, shape_pattern
from tests.conftest import failing


def test_passes_at_one_or_two_elements_are_named_not_counted():
    outcomes = [
        ({"N": 2, "D": 1}, False),
        ({"N": 1, "D": 1}, False),
        ({"N": 3, "D": 2}, True),
        ({"N": 1, "D": 4}, True),
    ]
    assert shape_pattern(outcomes) == "passes only where D = 1 (too small to tell)"
    assert shape_pattern([(d, True) for d, _ in outcomes]) == "fails at every shape"


def test_a_value_of_a_choice_that_alone_fails_is_named():
    outcomes = [
        ({"N": 2, "pad": 0}, True),
        ({"N": 3, "pad": 1}, False),
        ({"N": 4, "pad": 2}, False),
        ({"N": 3, "pad": 0}, True),
        ({"N": 2, "pad": 1}, False),
    ]
    assert shape_pattern(outcomes, choices=("pad",)) == "fails exactly when pad = 0"


def test_one_case_is_no_pattern():
    outcomes = [({"N": 2, "pad": 0}, True), ({"N": 3, "pad": 1}, False), ({"N": 4, "pad": 2}, False)]
    assert shape_pattern(outcomes, choices=("pad",)).startswith("fails at N=2, pad=0; passes at")


def rowsum_forward(x):
    return x.sum(axis=1), x.shape


def rowsum_backward_divides_by_d(dout, shape):
    return np.repeat(dout[:, None], shape[1], axis=1) / shape[1]  # a mean's gradient for a sum


def test_a_function_right_only_where_d_is_1_is_not_said_to_depend_on_shape():
    bc.register(
        "rowsum_mean",
        forward=rowsum_forward,
        backward=rowsum_backward_divides_by_d,
        inputs={"x": "N,D"},
        dims={"N": (1, 2), "D": range(1, 5)},
    )
    summary = bc.check("rowsum_mean", cases=6, shrink=False).summaries[0]
    assert summary.shape_pattern == "passes only where D = 1 (too small to tell)"
    assert "shape_dependent" not in summary.diagnoses


def pairsum_forward(x, pad):
    """Sum of neighbours after zero-padding ``pad`` columns on each side: (N, D) -> (N, D + 2 pad - 1)."""
    xp = np.pad(x, ((0, 0), (pad, pad)))
    return xp[:, :-1] + xp[:, 1:], (x.shape, pad)


def pairsum_backward(dout, cache):
    shape, pad = cache
    dxp = np.zeros((shape[0], shape[1] + 2 * pad))
    dxp[:, :-1] += dout
    dxp[:, 1:] += dout
    return dxp[:, pad : dxp.shape[1] - pad]


def pairsum_backward_unpads_with_minus_pad(dout, cache):
    shape, pad = cache
    dxp = np.zeros((shape[0], shape[1] + 2 * pad))
    dxp[:, :-1] += dout
    dxp[:, 1:] += dout
    return dxp[:, pad:-pad]  # empty when pad = 0: x[:, 0:-0]


PAIRSUM = {"inputs": {"x": "N,D"}, "dims": {"D": range(2, 6)}, "hyper": {"pad": bc.choices(0, 1, 2)}}


def test_every_value_of_a_choice_is_tried_in_turn_at_different_sizes():
    target = bc.register("pairsum_plan", forward=pairsum_forward, backward=pairsum_backward, **PAIRSUM)
    plan = plan_dims(target, 6, seed=0)
    pads = [dims["pad"] for _, dims in plan]
    assert sorted(pads) == [0, 0, 1, 1, 2, 2]
    assert len({tuple(d.items()) for _, d in plan}) == 6


def test_a_convolution_style_bug_at_pad_0_is_found_and_named():
    bc.register(
        "pairsum_pad0", forward=pairsum_forward, backward=pairsum_backward_unpads_with_minus_pad, **PAIRSUM
    )
    report = bc.check("pairsum_pad0", cases=6)
    summary = report.summaries[0]
    assert summary.shape_pattern == "fails exactly when pad = 0"
    bad = failing(report)
    assert all("pad=0" in dims for dims in bad.dims)
    assert "pad=0" in summary.reproduce.split("--dims ")[1]
    pinned = dict(p.split("=") for p in summary.reproduce.split("--dims ")[1].split(","))
    again = bc.check("pairsum_pad0", dims={k: int(v) for k, v in pinned.items()})
    assert not again.passed and set(again.frame.dims) == {summary.shrunk_dims}


def test_a_correct_function_with_choices_passes_also_in_float32():
    def forward32(x, pad):
        out, cache = pairsum_forward(x.astype(np.float32), pad)
        return out, cache

    bc.register("pairsum_ok", forward=pairsum_forward, backward=pairsum_backward, **PAIRSUM)
    bc.register("pairsum_f32", forward=forward32, backward=pairsum_backward, **PAIRSUM)
    for name in ("pairsum_ok", "pairsum_f32"):
        report = bc.check(name, cases=6)
        assert report.passed and {d.split("pad=")[1] for d in report.frame.dims} == {"0", "1", "2"}


def test_a_tuple_in_hyper_stays_one_fixed_value():
    seen = []

    def forward(x, stride):
        seen.append(stride)
        return x * 2.0, None

    bc.register(
        "fixed_tuple",
        forward=forward,
        backward=lambda dout, c: 2.0 * dout,
        inputs={"x": "N"},
        hyper={"stride": (1, 2)},
    )
    assert bc.check("fixed_tuple", cases=2).passed and set(seen) == {(1, 2)}


def test_choices_nested_in_a_param_dict_and_seen_by_the_constraint():
    def forward(x, conv_param):
        pad = conv_param["pad"]
        return pairsum_forward(x, pad)

    target = bc.register(
        "pairsum_nested",
        forward=forward,
        backward=pairsum_backward,
        inputs={"x": "N,D"},
        dims={"D": range(2, 6)},
        hyper={"conv_param": {"stride": 1, "pad": bc.choices(0, 1, 2)}},
        constraint=lambda d: (d["D"] + 2 * d["pad"]) % 2 == 1,
    )
    report = bc.check(target, cases=6)
    assert report.passed
    for dims in report.frame.dims:
        values = dict(part.split("=") for part in dims.split(", "))
        assert (int(values["D"]) + 2 * int(values["pad"])) % 2 == 1


@pytest.mark.parametrize(
    ("hyper", "says"),
    [
        ({"N": bc.choices(1, 2)}, "also a dimension symbol"),
        (
            {"a": {"pad": bc.choices(0, 1)}, "b": {"pad": bc.choices(0, 1)}},
            "two hyper-parameters called 'pad'",
        ),
    ],
)
def test_choices_that_cannot_work_are_refused_at_registration(hyper, says):
    with pytest.raises(bc.RegistrationError, match=says):
        bc.register(
            "bad_choices",
            forward=pairsum_forward,
            backward=pairsum_backward,
            inputs={"x": "N,D"},
            hyper=hyper,
        )


def test_choices_needs_a_value():
    with pytest.raises(bc.SpecError, match=r"bc.choices\(0, 1, 2\)"):
        bc.choices()


def test_pinning_a_value_not_among_the_choices_is_a_usage_error():
    bc.register("pairsum_pin", forward=pairsum_forward, backward=pairsum_backward, **PAIRSUM)
    with pytest.raises(bc.RegistrationError, match=r"pad=5 is not one of its choices \[0, 1, 2\]"):
        bc.check("pairsum_pin", dims={"pad": 5})
