"""Misuse of register() and of the spec helpers raises at once, naming the argument and the fix."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import checker as bc
from checker.errors import RegistrationError, SpecError
from checker.spec import parse_shape
from tests.conftest import affine_backward, affine_forward

LAYER = {"forward": affine_forward, "backward": affine_backward, "inputs": {"x": "N,D", "w": "D,M", "b": "M"}}
X, W, B = np.ones((2, 3)), np.ones((3, 4)), np.ones(4)
MODEL = {"model": lambda dims: None, "loss": lambda model, X: (0.0, {}), "data": {"X": "N,D"}}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {**LAYER, "backward": "affine_backward"},
            "backward='affine_backward' is not callable; pass the function itself, not its name",
        ),
        # The result of a call instead of the function: described, never dumped.
        (
            {**LAYER, "forward": affine_forward(X, W, B)},
            "register('bad'): forward= got a tuple of 2 values (array (2, 4), tuple), which is not callable: "
            "the result of calling a function? Pass the function itself",
        ),
        (
            {**LAYER, "backward": affine_backward(np.ones((2, 4)), (X, W, B))},
            "backward= got a tuple of 3 arrays, shapes (2, 3), (3, 4), (4,), which is not callable",
        ),
        (
            {**LAYER, "backward": np.zeros((500, 500))},
            "backward= got an array of shape (500, 500), which is not",
        ),
        ({**LAYER, "backward": {"dx": X}}, "backward= got a dict with keys ['dx'], which is not callable"),
        # Signatures that cannot take the call the runner makes.
        (
            {**LAYER, "forward": lambda x, w: (x @ w, None)},
            "forward=<lambda>(x, w) cannot be called as forward(x, w, b): it takes 2 positional arguments, not 3",
        ),
        ({**LAYER, "backward": lambda dout: dout}, "cannot be called as backward(dout, cache)"),
        ({**LAYER, "outputs": 2}, "cannot be called as backward(dout1, dout2, cache)"),
        (
            {**LAYER, "hyper": {"eps": 1e-5}},
            "forward(x, w, b, eps=...): got an unexpected keyword argument 'eps'",
        ),
        (
            {**LAYER, "forward": lambda x, w, b, *, eps: (x, None)},
            "cannot be called as forward(x, w, b): missing a required argument: 'eps'",
        ),
        (
            {"value_and_grad": lambda x: (0.0, x), "inputs": {"x": "N", "y": "N"}},
            "value_and_grad=<lambda>(x) cannot be called as value_and_grad(x, y)",
        ),
        ({**MODEL, "model": lambda: None}, "model=<lambda>() cannot be called as model(dims)"),
        ({**MODEL, "loss": lambda model: 0.0}, "loss=<lambda>(model) cannot be called as loss(model, X)"),
        ({**LAYER, "torch_forward": lambda x, w: x @ w}, "torch_forward=<lambda>(x, w) cannot be called as"),
        ({**LAYER, "constraint": lambda: True}, "constraint=<lambda>() cannot be called as constraint(dims)"),
        ({**LAYER, "hyper": lambda n, d: {}}, "hyper=<lambda>(n, d) cannot be called as hyper(dims)"),
        ({**LAYER, "backward": None}, "needs both forward= and backward="),
        ({**LAYER, "value_and_grad": affine_forward}, "exactly one style"),
        ({}, "exactly one style"),
        ({**LAYER, "inputs": {"x": "N,,D"}}, "'' is not a dimension"),
        ({**LAYER, "inputs": {"x": "N;D"}}, "'N;D' is not a dimension"),
        ({**LAYER, "inputs": {"x": "N,0"}}, "must be >= 1"),
        ({**LAYER, "inputs": None}, "inputs= is required"),
        (
            {**LAYER, "inputs": [np.ones((50, 50))]},
            "inputs= must be a dict of name -> spec like {'x': 'N,D'}, got a list",
        ),
        ({**MODEL, "data": "N,D"}, "data= must be a dict of name -> spec like {'x': 'N,D'}, got 'N,D'"),
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
    "changes",
    [
        {"forward": lambda *inputs, **hyper: (inputs[0], None), "backward": lambda *args: args[:3]},
        {"forward": lambda x, w, b, bias_scale=1.0: (x, None)},  # a default left alone
        {"forward": lambda x, w, b, *, eps: (x, None), "hyper": {"eps": 1e-5}},  # keyword-only, given
        {"forward": lambda x, w, b, *, eps: (x, None), "hyper": lambda dims: {"eps": 1e-5}},  # given per case
        {"forward": lambda x, w, b, conv_param: (x, None), "hyper": {"conv_param": {}}},
        {"forward": functools.partial(lambda scale, x, w, b: (x, None), 2.0)},
        {"backward": lambda dout, cache, /: cache},  # positional-only
        {"torch_forward": max},  # a builtin without a signature is judged when called
    ],
)
def test_signatures_the_runner_can_call_are_accepted(changes):
    bc.register("accepted", **{**LAYER, **changes})


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        # (bad timeout=, cases=, mode=, ... are OptionErrors: tests/test_api.py)
        # Too large for memory: refused before anything is allocated, naming the input, dims and bytes.
        (
            {"dims": {"N": 10**6, "D": 10**6, "M": 2}},
            "affine_for_check: dims N=1000000, D=1000000, M=2 are too large for this machine: input 'x' has "
            "shape (1000000, 1000000), 7.28 TiB as float64",
        ),
    ],
)
def test_bad_check_arguments_raise_with_the_argument_and_the_fix(kwargs, fragment):
    target = bc.register("affine_for_check", **LAYER)
    with pytest.raises(RegistrationError) as err:
        bc.check(target, **kwargs)
    assert fragment in str(err.value)


def test_a_case_is_refused_only_when_its_estimated_peak_exceeds_the_memory_bound():
    from checker.cases import CASE_COPIES, MEMORY_FRACTION, check_case_memory

    target = bc.register(
        "memory_bound", forward=lambda x: (x, x), backward=lambda d, c: d, inputs={"x": "N,D"}
    )
    dims = {"N": 4096, "D": 4096}  # 128 MiB of input
    peak = CASE_COPIES * 8 * 4096 * 4096
    check_case_memory(target, dims, available=int(peak / MEMORY_FRACTION) + 1)
    with pytest.raises(RegistrationError) as err:
        check_case_memory(target, dims, available=int(peak / MEMORY_FRACTION) - 1)
    message = str(err.value)
    assert "input 'x' has shape (4096, 4096), 128 MiB as float64" in message
    assert f"about {CASE_COPIES} times over (1 GiB)" in message
    assert "dims= in register() (or --dims on the command line)" in message
    check_case_memory(target, {"N": 6, "D": 6}, available=0)  # small cases never look the memory up


def test_the_available_memory_is_read_from_the_system():
    from checker.cases import available_memory

    available = available_memory()
    assert available is None or available > 0


USER_MODULE = """
import numpy as np
import checker as bc


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


x, w, b = np.ones((3, 4)), np.ones((4, 4)), np.ones(4)
bc.register("affine", forward=FORWARD, backward=affine_backward, inputs={"x": "N,D", "w": "D,M", "b": "M"})
"""


@pytest.mark.parametrize(
    ("forward", "argv", "fragment"),
    [
        (
            "affine_forward(x, w, b)",
            [],
            "bad_call.py line 16: register('affine'): forward= got a tuple of 2 values (array (3, 4), tuple)",
        ),
        (
            "lambda x, w: affine_forward(x, w, 0)",
            [],
            "forward=<lambda>(x, w) cannot be called as forward(x, w, b)",
        ),
        (
            "affine_forward",
            ["--timeout", "0"],
            "argument --timeout: '0' must be a finite number of seconds > 0",
        ),
        ("affine_forward", ["--timeout", "-1"], "argument --timeout: '-1' must be"),
        (
            "affine_forward",
            ["--dims", "N=200000,D=200000,M=4"],
            "input 'x' has shape (200000, 200000), 298 GiB as float64",
        ),
    ],
    ids=["result-of-a-call", "arity", "timeout-0", "timeout-negative", "too-large"],
)
def test_misuse_from_the_command_line_exits_2_with_the_message_and_no_traceback(
    tmp_path, capsys, forward, argv, fragment
):
    from checker.cli import main

    path = tmp_path / "bad_call.py"
    path.write_text(USER_MODULE.replace("FORWARD", forward))
    assert main(["run", str(path), "--cases", "1", *argv]) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert "internal error" not in captured.err
    assert "[1., 1." not in captured.err  # arrays are described, never dumped


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
