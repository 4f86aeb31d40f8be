"""Layer objects registered with no adapter: parameters set by the harness (also when made lazily),
gradients found where the layer leaves them, accumulating gradients zeroed, a recording optimizer."""

from __future__ import annotations

import numpy as np
import pytest

import checker as bc
from checker.cases import make_case
from checker.execution import in_process
from reference_impls import objects
from tests.conftest import failing

DENSE = {"inputs": {"X": "N,D"}, "params": {"W": "D,M", "b": "M"}}


@pytest.mark.parametrize(
    "name",
    ["dense_lazy", "dense_accumulating", "dense_self_updating", "dense_returning_none", "dropout_object"],
)
def test_each_object_style_of_the_bank_passes_with_every_oracle(name):
    report = bc.check(bc.get_target(name, module="reference_impls.objects"), cases=4, mode="full")
    assert report.passed
    assert {"grad_fd", "grad_autograd", "determinism", "mutation"} <= set(report.frame.check)


def test_a_lazy_layer_gets_the_harness_parameters_not_its_own_random_ones():
    target = bc.register("lazy_probe", layer=lambda d: objects.LazyDense(d["M"]), **DENSE)
    case = make_case(target, {"N": 2, "D": 3, "M": 4}, seed=0)
    run = in_process.run(target, case, np.random.default_rng(1))
    x, w, b = (case.arrays[n] for n in ("X", "W", "b"))
    np.testing.assert_array_equal(run.outputs[0], x @ w + b)
    np.testing.assert_allclose(run.raw_grads["W"], x.T @ run.douts[0])


def test_a_layer_that_initialises_on_its_first_forward_over_existing_attributes_is_set_again():
    class FlagLazy:
        def __init__(self, units):
            self.units, self.W, self.b, self.ready = units, None, None, False

        def forward(self, X):
            if not self.ready:  # replaces whatever W is there
                self.W, self.b, self.ready = np.ones((X.shape[1], self.units)), np.zeros(self.units), True
            self.X = X
            return X @ self.W + self.b

        def backward(self, dout):
            self.grad_W, self.grad_b = self.X.T @ dout, dout.sum(axis=0)
            return dout @ self.W.T

    bc.register("flag_lazy", layer=lambda d: FlagLazy(d["M"]), **DENSE)
    assert bc.check("flag_lazy", cases=3).passed


def test_a_float32_layer_object_stays_quiet():
    class Dense32(objects.LazyDense):
        def forward(self, X):
            return super().forward(X.astype(np.float32)).astype(np.float32)

    bc.register("dense32", layer=lambda d: Dense32(d["M"]), **DENSE)
    assert bc.check("dense32", cases=4).passed


def test_a_torch_reference_checks_a_layer_object_like_a_function():
    bc.register(
        "dense_lazy_torch",
        layer=lambda d: objects.LazyDense(d["M"]),
        torch_forward=lambda X, W, b: X @ W + b,
        **DENSE,
    )
    report = bc.check("dense_lazy_torch", cases=2)
    assert report.passed and set(report.frame[report.frame.check == "grad_torch"].status) == {"pass"}


class MeanBias(objects.LazyDense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout.mean(axis=0)
        return dx


class SignFlippedAccumulator(objects.AccumulatingDense):
    def backward(self, dLdy):
        self.gradients["W"] += self.X.T @ dLdy
        self.gradients["b"] -= dLdy.sum(axis=0, keepdims=True)
        return dLdy @ self.parameters["W"].T


class TransposedSelfUpdating(objects.SelfUpdatingDense):
    def backward_pass(self, accum_grad):
        W = self.W
        self.W = self.W_opt.update(self.W, accum_grad.T @ self.layer_input)  # (M, D): transposed
        self.w0 = self.w0_opt.update(self.w0, np.sum(accum_grad, axis=0, keepdims=True))
        return accum_grad @ W.T


class FlatBiases(objects.Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dbiases = np.sum(dvalues, axis=0)  # keepdims forgotten: (M,) for biases of shape (1, M)


@pytest.mark.parametrize(
    ("name", "register", "gradient", "code"),
    [
        ("obj_mean_bias", {"layer": lambda d: MeanBias(d["M"]), **DENSE}, "b", "mean_instead_of_sum"),
        (
            "obj_sign",
            {
                "layer": lambda d: SignFlippedAccumulator(d["M"]),
                "inputs": {"X": "N,D"},
                "params": {"W": "D,M", "b": "1,M"},
            },
            "b",
            "sign_flipped",
        ),
        (
            "obj_transposed",
            {
                "layer": lambda d, optimizer: TransposedSelfUpdating(d["D"], d["M"], optimizer),
                "forward": "forward_pass",
                "backward": "backward_pass",
                "inputs": {"X": "N,D"},
                "params": {"W": "D,M", "w0": "1,M"},
            },
            "W",
            "transposed",
        ),
        (
            "obj_flat",
            {
                "layer": lambda d: FlatBiases(d["D"], d["M"]),
                "inputs": {"inputs": "N,D"},
                "params": {"weights": "D,M", "biases": "1,M"},
            },
            "biases",
            "keepdims",
        ),
    ],
)
def test_each_object_style_has_its_mistake_found_and_named(name, register, gradient, code):
    bc.register(name, **register)
    bad = failing(bc.check(name, cases=4, shrink=False))
    assert code in set(bad[bad.target == gradient].diagnosis)


def test_a_gradient_left_nowhere_is_a_shape_row_listing_the_layer_attributes():
    class Forgets(objects.LazyDense):
        def backward(self, dout):
            self.weight_gradient = self.X.T @ dout
            self.db = dout.sum(axis=0)
            return dout @ self.W.T

    bc.register("obj_forgets", layer=lambda d: Forgets(d["M"]), **DENSE)
    bad = failing(bc.check("obj_forgets", cases=1))
    message = bad[bad.target == "W"].message.iloc[0]
    assert message.startswith("dW was not found after Forgets.backward: it returned ndarray")
    assert "weight_gradient" in message


def test_an_optimizer_step_the_harness_was_not_given_is_named():
    bc.register(
        "obj_own_sgd",
        layer=lambda d: objects.SelfUpdatingDense(d["D"], d["M"]),  # no optimizer= : it makes its own SGD
        forward="forward_pass",
        backward="backward_pass",
        inputs={"X": "N,D"},
        params={"W": "D,M", "w0": "1,M"},
    )
    bad = failing(bc.check("obj_own_sgd", cases=1))
    mutation = bad[bad.check == "mutation"].message.iloc[0]
    assert "changed the layer's W, w0: an optimizer step inside backward?" in mutation
    assert "optimizer=" in mutation


def test_a_parameter_the_layer_does_not_have_is_an_error_row_naming_what_it_has():
    bc.register(
        "obj_wrong_name",
        layer=lambda d: objects.Dense(d["D"], d["M"]),
        inputs={"inputs": "N,D"},
        params={"W": "D,M"},
    )
    errors = failing(bc.check("obj_wrong_name", cases=1))
    assert list(errors.check) == ["call"]
    assert (
        "Dense keeps no parameter called 'W'" in errors.message.iloc[0]
        and "weights" in errors.message.iloc[0]
    )


def test_an_accumulating_layer_that_hides_its_buffer_is_still_stateful():
    buffers = {}

    class Hidden(objects.LazyDense):
        def backward(self, dout):
            key = self.W.shape
            buffers[key] = buffers.get(key, 0) + self.X.T @ dout  # kept outside the layer: never zeroed
            self.dW, self.db = buffers[key].copy(), dout.sum(axis=0)
            return dout @ self.W.T

    bc.register("obj_hidden_buffer", layer=lambda d: Hidden(d["M"]), **DENSE)
    bad = failing(bc.check("obj_hidden_buffer", cases=1))
    assert list(bad.check) == ["determinism"] and "dW doubles on a second backward" in bad.message.iloc[0]


def test_a_mutation_by_an_object_names_the_upstream_gradient_as_its_method_does():
    class Writes(objects.Dense):
        def backward(self, dvalues):
            dvalues *= 2.0
            super().backward(dvalues / 2.0)

    bc.register(
        "obj_writes",
        layer=lambda d: Writes(d["D"], d["M"]),
        inputs={"inputs": "N,D"},
        params={"weights": "D,M", "biases": "1,M"},
    )
    bad = failing(bc.check("obj_writes", cases=1))
    assert "modified dvalues in place" in bad[bad.check == "mutation"].message.iloc[0]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"forward": lambda x: x}, "with layer=, forward= names the object's method as a string"),
        ({"params": ["W"]}, "params= must be a dict"),
        ({"params": {"X": "D,M"}}, "'X' is in both inputs= and params="),
        ({"layer": lambda: None}, "layer is called with one dict of sizes"),
        ({"value_and_grad": lambda x: x}, "layer= (a layer object) cannot be combined with value_and_grad="),
    ],
)
def test_object_registrations_that_cannot_work_are_refused(kwargs, says):
    arguments = {"layer": lambda d: objects.LazyDense(d["M"]), **DENSE} | kwargs
    with pytest.raises(
        bc.RegistrationError, match=".*".join(map(str, [says.replace("(", r"\(").replace(")", r"\)")]))
    ):
        bc.register("obj_refused", **arguments)


def test_params_belong_to_layer_objects_only():
    with pytest.raises(bc.RegistrationError, match="params= is for a layer object"):
        bc.register(
            "fn_params",
            forward=lambda x: (x, None),
            backward=lambda d, c: d,
            inputs={"x": "N"},
            params={"W": "N"},
        )


def test_a_lazy_layer_that_draws_in_its_forward_is_still_a_function():
    class LazyNoisy(objects.LazyDense):
        """Parameters made on the first forward, then a dropout mask at every forward."""

        def forward(self, X):
            self.mask = (np.random.rand(*X.shape) < 0.8) / 0.8
            return super().forward(X * self.mask)

        def backward(self, dout):
            return super().backward(dout) * self.mask

    bc.register("lazy_noisy", layer=lambda d: LazyNoisy(d["M"]), **DENSE)
    assert bc.check("lazy_noisy", cases=4).passed
