"""Misuse of register() and of the spec helpers raises at once, naming the argument and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc
from checker.errors import RegistrationError, SpecError
from checker.spec import parse_shape
from tests.conftest import affine_backward, affine_forward

LAYER = {"forward": affine_forward, "backward": affine_backward, "inputs": {"x": "N,D", "w": "D,M", "b": "M"}}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({**LAYER, "backward": "affine_backward"}, "backward='affine_backward' is not callable"),
        ({**LAYER, "backward": None}, "needs both forward= and backward="),
        ({**LAYER, "value_and_grad": affine_forward}, "exactly one style"),
        ({}, "exactly one style"),
        ({**LAYER, "inputs": {"x": "N,,D"}}, "'' is not a dimension"),
        ({**LAYER, "inputs": {"x": "N;D"}}, "'N;D' is not a dimension"),
        ({**LAYER, "inputs": {"x": "N,0"}}, "must be >= 1"),
        ({**LAYER, "inputs": None}, "inputs= is required"),
        ({**LAYER, "inputs": {"y": bc.labels("N", classes="C")}}, "no differentiable input"),
        ({**LAYER, "dims": {"N": "big"}}, "dims['N']='big' must be an int"),
        ({**LAYER, "dims": {"N": range(0)}}, "at least one size"),
        ({**LAYER, "dims": [1, 2]}, "must be a dict"),
        ({**LAYER, "hyper": 3}, "hyper= must be a dict"),
        ({**LAYER, "constraint": True}, "constraint=True is not callable"),
        ({**LAYER, "outputs": 0}, "outputs=0"),
        ({**LAYER, "tol": {"rtoll": 1}}, "unknown keys ['rtoll']"),
        ({**LAYER, "tol": {"rtol": -1}}, "rtol=-1 must be a finite number"),
        ({**LAYER, "data": {"X": "N,D"}}, "data= is for models"),
        ({"model": lambda d: None}, "a model needs model="),
        ({"model": lambda d: None, "loss": lambda m: 0, "inputs": {"x": "N"}}, "a model takes data="),
    ],
)
def test_bad_registration_raises_with_the_argument_and_the_fix(kwargs, fragment):
    with pytest.raises(RegistrationError) as err:
        bc.register("bad", **kwargs)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: bc.labels("N", classes=0), "classes must be a symbol"),
        (lambda: bc.labels("N", classes="1C"), "classes must be a symbol"),
        (lambda: bc.mask("N", keep=0), "keep must be a probability"),
        (lambda: parse_shape(3.5), "must be a string like 'N,D'"),
    ],
)
def test_bad_spec_helpers_raise_spec_error(call, fragment):
    with pytest.raises(SpecError) as err:
        call()
    assert fragment in str(err.value)


def test_spec_strings_parse_symbols_and_fixed_sizes():
    assert parse_shape("N,3,H,W") == ("N", 3, "H", "W")
    assert parse_shape("") == ()
    assert parse_shape(" N , D ") == ("N", "D")
    assert parse_shape("D,4H") == ("D", "4H") == parse_shape("D,4*H")


def test_a_multiple_of_a_symbol_resolves_to_that_multiple():
    from checker.spec import InputSpec

    spec = InputSpec(parse_shape("D,4H"))
    assert spec.symbols == ("D", "H")
    assert spec.resolve({"D": 3, "H": 2}) == (3, 8)


def test_registration_orders_symbols_by_appearance_and_applies_dims_rules():
    target = bc.register(
        "ordered", **LAYER, dims={"M": 4, "D": range(2, 5), "Z": (1, 2)}, constraint=lambda d: d["D"] != 3
    )
    assert list(target.dims)[:3] == ["N", "D", "M"]
    assert target.dims["M"] == (4,)
    assert target.dims["D"] == (2, 3, 4)
    assert target.dims["Z"] == (1, 2)
    assert target.differentiable == ["x", "w", "b"]


def test_input_kinds_are_drawn_in_their_domains():
    from checker.cases import make_case

    target = bc.register(
        "kinds",
        value_and_grad=lambda *a: (0.0, None),
        inputs={
            "x": "N,C",
            "y": bc.labels("N", classes="C"),
            "p": bc.positive("N"),
            "q": bc.probability("N"),
            "t": bc.probability("N", differentiable=False),
            "k": bc.const("N"),
            "m": bc.mask("N,C", keep=0.25),
        },
        dims={"N": 50, "C": 3},
    )
    case = make_case(target, {"N": 50, "C": 3}, seed=1)
    a = case.arrays
    assert a["y"].dtype == np.int64 and a["y"].min() >= 0 and a["y"].max() < 3
    assert (a["p"] > 0.5).all() and (a["p"] < 2).all()
    assert (a["q"] > 0).all() and (a["q"] < 1).all()
    assert set(np.unique(a["m"])) <= {0.0, 4.0}
    assert target.differentiable == ["x", "p", "q"]


def test_the_same_seed_draws_the_same_inputs_and_another_seed_does_not():
    from checker.cases import make_case

    target = bc.register("seeded", **LAYER)
    dims = {"N": 2, "D": 3, "M": 4}
    first, again, other = (make_case(target, dims, s) for s in (7, 7, 8))
    assert np.array_equal(first.arrays["x"], again.arrays["x"])
    assert not np.array_equal(first.arrays["x"], other.arrays["x"])


def test_unknown_name_lists_what_is_registered():
    bc.register("known_one", **LAYER)
    with pytest.raises(bc.TargetNotFound) as err:
        bc.check("no_such_function")
    assert "known_one" in str(err.value)
