"""The composite diagnoses ``regularization`` and ``missing_path`` name their planted mistakes and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from checker.compare import EXACT, FINITE_DIFFERENCE
from checker.diagnose import GradientContext, diagnose_gradient
from checker.diagnose.composite_rules import missing_path, regularization
from tests.test_diagnose import LAYERS, affine, batchnorm, contexts

RULES = (regularization, missing_path)


def two_layer_weight(seed: int = 0, N: int = 5, D: int = 4, H: int = 3) -> tuple[np.ndarray, GradientContext]:
    """dW1 of a relu net with L2 regularisation: the right gradient and its context."""
    rng = np.random.default_rng(seed)
    X, W1, dh = rng.normal(size=(N, D)), rng.normal(size=(D, H)), rng.normal(size=(N, H))
    right = X.T @ (dh * (X @ W1 > 0)) + 0.1 * W1
    ctx = contexts({"X": X, "W1": W1}, {"W1": ("D", "H")}, {"N": N, "D": D, "H": H}, None)["W1"]
    return right, ctx


# ---------------------------------------------------------------------------------------------
# regularization


def test_missing_weight_decay_term_is_regularization_with_the_issue_message():
    right, ctx = two_layer_weight()
    found = regularization(right - 0.1 * ctx.inputs["W1"], right, ctx, EXACT)
    assert found is not None and found.code == "regularization"
    assert found.message == (
        "dW1 differs from the right gradient by exactly -0.1 × W1: the gradient of the regularization "
        "term is missing (0.5·reg·‖W1‖² gives reg·W1)"
    )
    assert found.details["scale"] == pytest.approx(-0.1)


def test_weight_decay_term_added_twice_is_regularization_counted_twice():
    right, ctx = two_layer_weight(seed=3)
    found = regularization(right + 0.1 * ctx.inputs["W1"], right, ctx, EXACT)
    assert found is not None and found.code == "regularization"
    assert "by exactly 0.1 × W1" in found.message and "counted twice" in found.message


@pytest.mark.parametrize("seed", range(10))
def test_regularization_is_found_for_any_strength_and_under_finite_difference_tolerance(seed):
    right, ctx = two_layer_weight(seed=seed)
    reg = 10.0 ** np.random.default_rng(seed).uniform(-3, 0)
    for tol in (EXACT, FINITE_DIFFERENCE):
        found = regularization(right - reg * ctx.inputs["W1"], right, ctx, tol)
        assert found is not None and found.details["scale"] == pytest.approx(-reg)


def test_regularization_needs_the_parameter_among_the_inputs():
    right, ctx = two_layer_weight()
    unknown = GradientContext(name="W1", param_shape=right.shape)
    assert regularization(right - 0.1 * ctx.inputs["W1"], right, unknown, EXACT) is None


def test_an_error_that_is_not_a_multiple_of_the_parameter_is_not_regularization():
    right, ctx = two_layer_weight()
    W1 = ctx.inputs["W1"]
    assert regularization(right - 0.1 * W1 + 1e-3 * np.sign(W1), right, ctx, EXACT) is None


def test_regularization_leaves_a_multiple_of_the_right_gradient_to_scaled():
    # A loss that is only the penalty: t = reg * W, and 2t is as much "scaled" as "doubled".
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 4))
    ctx = contexts({"W": W}, {"W": ("D", "H")}, {"D": 3, "H": 4}, None)["W"]
    assert regularization(0.2 * W, 0.1 * W, ctx, EXACT) is None
    assert diagnose_gradient(0.2 * W, 0.1 * W, ctx).code == "scaled"


# ---------------------------------------------------------------------------------------------
# missing_path


def batchnorm_without_mu_path(seed: int) -> tuple[np.ndarray, np.ndarray, GradientContext]:
    """dx of batchnorm with the path through mu left out: (wrong, right, context with mu)."""
    layer = batchnorm(seed=seed)
    x, gamma, dout = layer.a["x"], layer.a["gamma"], layer.a["dout"]
    ivar = 1 / np.sqrt(x.var(axis=0) + 1e-5)
    dxhat = dout * gamma
    wrong = layer.grads["x"] + ivar * dxhat.mean(axis=0)  # dmu / N, never added
    ctx = layer.ctx["x"]
    with_mu = GradientContext(**{**ctx.__dict__, "inputs": ctx.inputs | {"mu": x.mean(axis=0)}})
    return wrong, layer.grads["x"], with_mu


def test_batchnorm_dx_without_the_mean_path_is_missing_path_with_the_issue_message():
    wrong, right, ctx = batchnorm_without_mu_path(seed=0)
    found = missing_path(wrong, right, ctx, EXACT)
    assert found is not None and found.code == "missing_path"
    assert found.message == (
        "the error in dx is the same in every row (constant along axis 0, N): a path through a mean over "
        "axis 0 is missing (for example through mu)"
    )
    assert found.details == {"axes": (0,), "through": ("mu",)}


def test_missing_path_without_the_mean_in_the_context_names_no_example():
    layer = batchnorm(seed=1)
    wrong, right, _ = batchnorm_without_mu_path(seed=1)
    found = missing_path(wrong, right, layer.ctx["x"], EXACT)
    assert found is not None and found.message.endswith("a path through a mean over axis 0 is missing")


def test_missing_path_over_the_feature_axis_says_every_column():
    rng = np.random.default_rng(2)
    right, offset = rng.normal(size=(4, 6)), rng.normal(size=(4, 1))
    ctx = contexts({"x": rng.normal(size=(4, 6))}, {"x": ("N", "D")}, {"N": 4, "D": 6}, None)["x"]
    found = missing_path(right + offset, right, ctx, EXACT)
    assert found is not None and "the same in every column (constant along axis 1, D)" in found.message


def test_an_error_in_one_row_only_is_not_missing_path():
    layer = batchnorm(seed=2)
    wrong = layer.grads["x"].copy()
    wrong[1] += 1.0
    assert missing_path(wrong, layer.grads["x"], layer.ctx["x"], EXACT) is None


def test_missing_path_leaves_scaled_and_zero_to_the_existing_rules_when_the_gradient_is_constant():
    # dout / N broadcast over the rows (the gradient of a mean): a wrong scale is constant along
    # axis 0 too, but so is the right gradient: no evidence of a missing path.
    rng = np.random.default_rng(0)
    right = np.broadcast_to(rng.normal(size=3) / 4, (4, 3)).copy()
    ctx = contexts({"x": rng.normal(size=(4, 3))}, {"x": ("N", "D")}, {"N": 4, "D": 3}, None)["x"]
    for wrong in (4 * right, -right, np.zeros_like(right)):
        assert missing_path(wrong, right, ctx, EXACT) is None


# ---------------------------------------------------------------------------------------------
# No false hits: the diagnosis tests' random-gradient sweep, correct gradients, and the mistakes
# the existing rules explain.


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_random_unrelated_gradients_never_get_a_composite_code(layer_name):
    for seed in range(50):
        layer = LAYERS[layer_name](seed)
        rng = np.random.default_rng(2000 + seed)
        for name, expected in layer.grads.items():
            g = rng.normal(size=expected.shape)
            for rule in RULES:
                assert rule(g, expected, layer.ctx[name], EXACT) is None, (layer_name, seed, name, rule)


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_correct_and_noisy_gradients_never_get_a_composite_code(layer_name):
    for seed in range(20):
        layer = LAYERS[layer_name](seed)
        rng = np.random.default_rng(1000 + seed)
        for name, expected in layer.grads.items():
            noisy = expected * (1 + 1e-8 * rng.normal(size=expected.shape))
            for g in (layer.alt[name], noisy):
                for rule in RULES:
                    assert rule(g, expected, layer.ctx[name], EXACT) is None


def classic_mistakes(t: np.ndarray, ctx: GradientContext) -> list[tuple[str, np.ndarray]]:
    """What the existing rules explain, made from the right gradient: they must keep explaining it."""
    mistakes = [("zero", np.zeros_like(t)), ("sign_flipped", -t), ("scaled", 2.0 * t), ("scaled", t / 4)]
    if t.ndim == 2 and t.shape[0] == t.shape[1]:
        mistakes.append(("transposed", t.T.copy()))
    if t.ndim >= 1 and t.size >= 4:
        masked = t.copy()
        masked.reshape(-1)[::2] = 0.0
        mistakes.append(("wrong_mask/partial", masked))
    return mistakes


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_mistakes_the_existing_rules_explain_are_not_stolen(layer_name):
    for seed in range(10):
        layer = LAYERS[layer_name](seed)
        for name, expected in layer.grads.items():
            for label, g in classic_mistakes(expected, layer.ctx[name]):
                for rule in RULES:
                    assert rule(g, expected, layer.ctx[name], EXACT) is None, (layer_name, name, label, rule)


def test_the_existing_rules_still_name_the_affine_mistakes_first():
    layer = affine(N=4, D=4, M=4)
    t = layer.grads["w"]
    assert diagnose_gradient(t.T, t, layer.ctx["w"]).code == "transposed"
    assert regularization(t.T, t, layer.ctx["w"], EXACT) is None
    assert missing_path(t.T, t, layer.ctx["w"], EXACT) is None
