"""Planted mistakes in realistic numpy backprop get named; correct or unexplained gradients never do."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from checker.compare import FINITE_DIFFERENCE
from checker.diagnose import (
    CODES,
    Diagnosis,
    GradientContext,
    broadcast_axes,
    diagnose_gradient,
    diagnose_shape,
)


def diagnose(actual: np.ndarray, layer: Layer, name: str, **kwargs) -> Diagnosis:
    found = diagnose_gradient(
        np.asarray(actual, dtype=np.float64), layer.grads[name], layer.ctx[name], **kwargs
    )
    assert found.code in (*CODES, ""), found.code  # every code given is a known code
    # Messages are read by people: short, and never a dump of the arrays.
    assert len(found.message) < 400 and "[[" not in found.message, found.message
    return found


# ---------------------------------------------------------------------------------------------
# Tiny numpy layers: forward, the oracle's gradients, and a second correct way to compute them


@dataclass
class Layer:
    a: dict[str, np.ndarray]  # every array a planted mistake may use (inputs, dout, intermediates)
    grads: dict[str, np.ndarray]  # oracle gradient of each input
    alt: dict[str, np.ndarray]  # the same gradients computed another (correct) way
    ctx: dict[str, GradientContext]


def contexts(
    inputs: dict[str, np.ndarray],
    symbols: dict[str, tuple],
    dims: dict[str, int],
    out_shape: tuple[int, ...] | None,
    out_symbols: tuple = (),
    douts: tuple[np.ndarray, ...] = (),
) -> dict[str, GradientContext]:
    return {
        name: GradientContext(
            name=name,
            param_shape=inputs[name].shape,
            symbols=symbols[name],
            dims=dims,
            output_shapes=(out_shape,) if out_shape is not None else (),
            output_symbols=out_symbols,
            inputs=inputs,
            douts=douts,
        )
        for name in symbols
    }


def affine(seed: int = 0, N: int = 4, D: int = 3, M: int = 5, with_out_symbols: bool = True) -> Layer:
    """out = x @ w + b: x (N, D), w (D, M), b (M,), out (N, M)."""
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(N, D)), rng.normal(size=(D, M)), rng.normal(size=M)
    dout = rng.normal(size=(N, M))
    grads = {"x": dout @ w.T, "w": x.T @ dout, "b": dout.sum(axis=0)}
    alt = {
        "x": np.einsum("nm,dm->nd", dout, w),
        "w": sum(np.outer(x[n], dout[n]) for n in range(N)),
        "b": np.einsum("nm->m", dout),
    }
    inputs = {"x": x, "w": w, "b": b}
    ctx = contexts(
        inputs,
        {"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)},
        {"N": N, "D": D, "M": M},
        (N, M),
        ("N", "M") if with_out_symbols else (),
        (dout,),
    )
    return Layer({**inputs, "dout": dout}, grads, alt, ctx)


def colmajor_affine(seed: int = 0, D: int = 3, N: int = 4, M: int = 5) -> Layer:
    """out = w @ x + b: x (D, N), w (M, D), b (M, 1), out (M, N)."""
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(D, N)), rng.normal(size=(M, D)), rng.normal(size=(M, 1))
    dout = rng.normal(size=(M, N))
    grads = {"x": w.T @ dout, "w": dout @ x.T, "b": dout.sum(axis=1, keepdims=True)}
    alt = {
        "x": np.einsum("md,mn->dn", w, dout),
        "w": np.einsum("mn,dn->md", dout, x),
        "b": np.einsum("mn->m", dout)[:, None],
    }
    inputs = {"x": x, "w": w, "b": b}
    ctx = contexts(
        inputs,
        {"x": ("D", "N"), "w": ("M", "D"), "b": ("M", 1)},
        {"D": D, "N": N, "M": M},
        (M, N),
        ("M", "N"),
        (dout,),
    )
    return Layer({**inputs, "dout": dout}, grads, alt, ctx)


def batchnorm(seed: int = 0, N: int = 4, D: int = 3, eps: float = 1e-5) -> Layer:
    """Training-mode batchnorm: x (N, D), gamma (D,), beta (D,), out (N, D)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)) * 2 + 1
    gamma, beta = rng.normal(size=D), rng.normal(size=D)
    mu, var = x.mean(axis=0), x.var(axis=0)
    xhat = (x - mu) / np.sqrt(var + eps)
    dout = rng.normal(size=(N, D))
    dgamma, dbeta = (dout * xhat).sum(axis=0), dout.sum(axis=0)
    dx = gamma / np.sqrt(var + eps) / N * (N * dout - dbeta - xhat * dgamma)
    # The long way round, through the computational graph.
    dxhat = dout * gamma
    dvar = np.sum(dxhat * (x - mu) * -0.5 * (var + eps) ** -1.5, axis=0)
    dmu = np.sum(-dxhat / np.sqrt(var + eps), axis=0) + dvar * np.mean(-2 * (x - mu), axis=0)
    dx_alt = dxhat / np.sqrt(var + eps) + dvar * 2 * (x - mu) / N + dmu / N
    inputs = {"x": x, "gamma": gamma, "beta": beta}
    ctx = contexts(
        inputs,
        {"x": ("N", "D"), "gamma": ("D",), "beta": ("D",)},
        {"N": N, "D": D},
        (N, D),
        ("N", "D"),
        (dout,),
    )
    grads = {"x": dx, "gamma": dgamma, "beta": dbeta}
    alt = {"x": dx_alt, "gamma": np.einsum("nd,nd->d", dout, xhat), "beta": np.add.reduce(dout, axis=0)}
    return Layer({**inputs, "dout": dout, "xhat": xhat}, grads, alt, ctx)


def softmax_loss(seed: int = 0, N: int = 4, C: int = 5) -> Layer:
    """Mean cross-entropy of softmax(x): x (N, C), labels y (N,); a scalar loss, no dout."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(N, C)), rng.integers(0, C, size=N)
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    onehot = np.eye(C)[y]
    dx = (p - onehot) / N
    dx_alt = p.copy()
    for n in range(N):
        dx_alt[n, y[n]] -= 1.0
    inputs = {"x": x, "y": y}
    ctx = contexts(inputs, {"x": ("N", "C")}, {"N": N, "C": C}, None)
    return Layer({**inputs, "p": p, "onehot": onehot}, {"x": dx}, {"x": dx_alt / N}, ctx)


def relu(seed: int = 0, N: int = 4, D: int = 3, slope: float = 0.0, with_dout: bool = True) -> Layer:
    """Leaky relu (plain relu for ``slope=0``): x (N, D), out (N, D)."""
    rng = np.random.default_rng(seed)
    x, dout = rng.normal(size=(N, D)), rng.normal(size=(N, D))
    dx = dout * np.where(x > 0, 1.0, slope)
    dx_alt = np.where(x > 0, dout, slope * dout)
    inputs = {"x": x}
    ctx = contexts(
        inputs, {"x": ("N", "D")}, {"N": N, "D": D}, (N, D), ("N", "D"), (dout,) if with_dout else ()
    )
    return Layer({**inputs, "dout": dout}, {"x": dx}, {"x": dx_alt}, ctx)


def elementwise_max(seed: int = 0, N: int = 4, D: int = 3) -> Layer:
    """out = maximum(x, y): x, y, out (N, D)."""
    rng = np.random.default_rng(seed)
    x, y, dout = rng.normal(size=(N, D)), rng.normal(size=(N, D)), rng.normal(size=(N, D))
    grads = {"x": dout * (x >= y), "y": dout * (x < y)}
    alt = {"x": np.where(x >= y, dout, 0.0), "y": np.where(x < y, dout, 0.0)}
    inputs = {"x": x, "y": y}
    ctx = contexts(inputs, {"x": ("N", "D"), "y": ("N", "D")}, {"N": N, "D": D}, (N, D), ("N", "D"), (dout,))
    return Layer({**inputs, "dout": dout}, grads, alt, ctx)


def max_pool(seed: int = 0, N: int = 2, C: int = 2, H: int = 4, W: int = 4) -> Layer:
    """2x2 max-pool, stride 2: x (N, C, H, W), out (N, C, H/2, W/2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, C, H, W))
    windows = x.reshape(N, C, H // 2, 2, W // 2, 2)
    out = windows.max(axis=(3, 5))
    dout = rng.normal(size=out.shape)
    is_max = windows == out[:, :, :, None, :, None]
    dx = (is_max * dout[:, :, :, None, :, None]).reshape(x.shape)
    dx_alt = np.zeros_like(x)
    for n, c, i, j in np.ndindex(out.shape):
        window = x[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        di, dj = np.unravel_index(np.argmax(window), (2, 2))
        dx_alt[n, c, 2 * i + di, 2 * j + dj] = dout[n, c, i, j]
    inputs = {"x": x}
    ctx = contexts(
        inputs,
        {"x": ("N", "C", "H", "W")},
        {"N": N, "C": C, "H": H, "W": W},
        out.shape,
        ("N", "C", "Ho", "Wo"),
        (dout,),
    )
    return Layer({**inputs, "dout": dout}, {"x": dx}, {"x": dx_alt}, ctx)


def bias_4d(seed: int = 0, N: int = 2, F: int = 3, H: int = 4, W: int = 5) -> Layer:
    """out = z + b[None, :, None, None] (a conv bias): z (N, F, H, W), b (F,)."""
    rng = np.random.default_rng(seed)
    z, b, dout = rng.normal(size=(N, F, H, W)), rng.normal(size=F), rng.normal(size=(N, F, H, W))
    inputs = {"z": z, "b": b}
    ctx = contexts(
        inputs,
        {"z": ("N", "F", "H", "W"), "b": ("F",)},
        {"N": N, "F": F, "H": H, "W": W},
        (N, F, H, W),
        ("N", "F", "H", "W"),
        (dout,),
    )
    grads = {"z": dout.copy(), "b": dout.sum(axis=(0, 2, 3))}
    alt = {"z": dout + 0.0, "b": np.einsum("nfhw->f", dout)}
    return Layer({**inputs, "dout": dout}, grads, alt, ctx)


LAYERS = {
    "affine": affine,
    "colmajor_affine": colmajor_affine,
    "batchnorm": batchnorm,
    "softmax_loss": softmax_loss,
    "relu": relu,
    "leaky_relu": lambda seed: relu(seed, slope=0.01),
    "elementwise_max": elementwise_max,
    "max_pool": max_pool,
    "bias_4d": bias_4d,
}


# ---------------------------------------------------------------------------------------------
# A correct gradient never gets a diagnosis; an unexplained one never gets a guess


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_correct_gradients_get_no_diagnosis_across_50_seeds(layer_name):
    for seed in range(50):
        layer = LAYERS[layer_name](seed)
        for name, alt in layer.alt.items():
            assert diagnose(alt, layer, name) == Diagnosis("", "", {}), (layer_name, seed, name)


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_gradient_within_tolerance_noise_gets_no_diagnosis(layer_name):
    for seed in range(10):
        layer = LAYERS[layer_name](seed)
        rng = np.random.default_rng(1000 + seed)
        for name, expected in layer.grads.items():
            noisy = expected * (1 + 1e-8 * rng.normal(size=expected.shape)) + 1e-11 * rng.normal(
                size=expected.shape
            )
            assert diagnose(noisy, layer, name) == Diagnosis("", "", {})


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_random_unrelated_gradient_is_never_guessed(layer_name):
    for seed in range(50):
        layer = LAYERS[layer_name](seed)
        rng = np.random.default_rng(2000 + seed)
        for name, expected in layer.grads.items():
            found = diagnose(rng.normal(size=expected.shape), layer, name)
            assert found.code == "", (layer_name, seed, name, found)
            assert found.message.startswith(f"d{name} differs from the oracle: Mismatched elements: ")
            assert "Max absolute difference" in found.message and "Max relative difference" in found.message


def test_unrelated_gradient_of_a_wrong_shape_names_the_shapes_without_a_code():
    layer = affine()
    found = diagnose(np.ones(7), layer, "b")
    assert found.code == ""
    assert found.message.startswith("db has shape (7,) but b has shape (5,)")


# ---------------------------------------------------------------------------------------------
# unreduced_broadcast


def test_bias_gradient_left_unsummed_names_the_broadcast_axis_and_the_fix():
    layer = affine(N=4, D=2, M=3)
    found = diagnose(layer.a["dout"], layer, "b")
    assert found.code == "unreduced_broadcast"
    assert found.message == (
        "db has shape (4, 3) but b has shape (3,): b was broadcast over axis 0 of the output (N=4); "
        "sum the gradient over axis 0"
    )
    assert found.details["axes"] == (0,)


def test_unsummed_batchnorm_parameters_are_diagnosed():
    layer = batchnorm(seed=3)
    for name, unsummed in (("gamma", layer.a["dout"] * layer.a["xhat"]), ("beta", layer.a["dout"])):
        found = diagnose(unsummed, layer, name)
        assert found.code == "unreduced_broadcast", name
        assert f"d{name} has shape (4, 3) but {name} has shape (3,)" in found.message
        assert "sum the gradient over axis 0" in found.message


def test_unsummed_colmajor_bias_says_to_keep_dims():
    layer = colmajor_affine(D=3, N=4, M=5)
    found = diagnose(layer.a["dout"], layer, "b")
    assert found.code == "unreduced_broadcast"
    assert "b has shape (5, 1)" in found.message
    assert "axis 1 of the output (N=4)" in found.message
    assert found.message.endswith("with keepdims=True")


def test_conv_bias_unsummed_over_several_axes_names_them_all():
    layer = bias_4d()
    found = diagnose(layer.a["dout"], layer, "b")
    assert found.code == "unreduced_broadcast"
    assert found.details["axes"] == (0, 2, 3)
    assert "(N=2, H=4, W=5)" in found.message


def test_conv_bias_summed_over_batch_only_is_still_unreduced():
    layer = bias_4d()
    found = diagnose(layer.a["dout"].sum(axis=0), layer, "b")
    assert found.code == "unreduced_broadcast"
    assert "axes (1, 2)" in found.message


def test_per_example_weight_gradients_are_unreduced_over_the_extra_leading_axis():
    layer = affine()
    per_example = np.einsum("nd,nm->ndm", layer.a["x"], layer.a["dout"])
    found = diagnose(per_example, layer, "w")
    assert found.code == "unreduced_broadcast"
    assert found.details["axes"] == (0,)
    assert "sum over axis 0" in found.message


def test_unsummed_bias_found_from_shapes_when_output_symbols_are_unknown():
    layer = affine(with_out_symbols=False)
    found = diagnose(layer.a["dout"], layer, "b")
    assert found.code == "unreduced_broadcast"
    assert "broadcast over axis 0 of the output (N=4)" in found.message


def test_bias_summed_over_the_wrong_axis_is_caught_when_the_shapes_agree_by_accident():
    layer = affine(N=4, D=3, M=4)
    found = diagnose(layer.a["dout"].sum(axis=1), layer, "b")
    assert found.code == "unreduced_broadcast"
    assert found.message == (
        "db equals dout summed over axis 1, but b was broadcast over axis 0 (N=4): sum dout over axis 0"
    )


def test_bias_gradient_taken_from_one_row_of_dout_is_named():
    layer = affine(N=4, D=3, M=5)
    found = diagnose(layer.a["dout"][0], layer, "b")
    assert found.code == "unreduced_broadcast"
    assert "db equals dout[0]" in found.message


def test_square_unreduced_bias_uses_the_broadcast_axis_not_the_other_one():
    layer = affine(N=5, D=3, M=5)
    found = diagnose(layer.a["dout"], layer, "b")
    assert found.code == "unreduced_broadcast"
    assert found.details["axes"] == (0,)


def test_bias_summed_to_a_scalar_is_named():
    layer = affine()
    found = diagnose(np.array(layer.a["dout"].sum()), layer, "b")
    assert found.code == "unreduced_broadcast"
    assert "dout summed over all axes" in found.message


def test_unreduced_with_wrong_values_keeps_the_shape_advice_and_says_values_differ():
    layer = affine()
    found = diagnose(2 * layer.a["dout"] + 1, layer, "b")
    assert found.code == "unreduced_broadcast"
    assert found.details["values_match"] is False
    assert "values differ" in found.message


# ---------------------------------------------------------------------------------------------
# mean_instead_of_sum


@pytest.mark.parametrize("seed", range(5))
def test_mean_over_batch_for_a_broadcast_parameter_is_mean_not_scaled(seed):
    layer = batchnorm(seed=seed, N=4)
    found = diagnose(layer.a["dout"].mean(axis=0), layer, "beta")
    assert found.code == "mean_instead_of_sum"
    assert found.details["scale"] == pytest.approx(0.25)
    assert found.details["scale_name"] == "1/N"
    assert found.message.startswith(
        "dbeta = mean over axis 0 (N=4); the gradient of a broadcast parameter is the SUM over axis 0"
    )


def test_mean_instead_of_sum_for_dgamma_and_affine_bias():
    bn = batchnorm(seed=1)
    assert diagnose((bn.a["dout"] * bn.a["xhat"]).mean(axis=0), bn, "gamma").code == "mean_instead_of_sum"
    layer = affine(N=6)
    found = diagnose(layer.a["dout"].mean(axis=0), layer, "b")
    assert found.code == "mean_instead_of_sum"
    assert "(N=6)" in found.message


def test_mean_of_colmajor_bias_with_keepdims_is_mean_instead_of_sum():
    layer = colmajor_affine()
    found = diagnose(layer.a["dout"].mean(axis=1, keepdims=True), layer, "b")
    assert found.code == "mean_instead_of_sum"
    assert "axis 1 (N=4)" in found.message


def test_mean_with_a_kept_axis_reports_the_mean_and_the_shape():
    layer = affine()
    found = diagnose(layer.a["dout"].mean(axis=0, keepdims=True), layer, "b")
    assert found.code == "mean_instead_of_sum"
    assert found.details["shape_code"] == "keepdims"
    assert found.message.startswith("db has shape (1, 5) but b has shape (5,)")


def test_conv_bias_averaged_over_every_broadcast_axis_is_mean_instead_of_sum():
    layer = bias_4d()
    found = diagnose(layer.a["dout"].mean(axis=(0, 2, 3)), layer, "b")
    assert found.code == "mean_instead_of_sum"
    assert found.details["scale_name"] == "1/N*H*W"


# ---------------------------------------------------------------------------------------------
# keepdims


def test_bias_summed_with_keepdims_is_keepdims():
    layer = affine()
    found = diagnose(layer.a["dout"].sum(axis=0, keepdims=True), layer, "b")
    assert found.code == "keepdims"
    assert found.message.startswith("db has shape (1, 5) but b has shape (5,): the values are right")
    assert "keepdims=True" in found.message


def test_colmajor_bias_that_lost_its_size_one_axis_is_keepdims():
    layer = colmajor_affine()
    found = diagnose(layer.a["dout"].sum(axis=1), layer, "b")
    assert found.code == "keepdims"
    assert "sum with keepdims=True" in found.message


def test_batchnorm_beta_with_leading_axis_is_keepdims():
    layer = batchnorm()
    assert diagnose(layer.a["dout"].sum(axis=0)[None, :], layer, "beta").code == "keepdims"


# ---------------------------------------------------------------------------------------------
# transposed


def test_transposed_weight_gradient_names_both_shapes():
    layer = affine(N=4, D=3, M=5)
    found = diagnose(layer.a["dout"].T @ layer.a["x"], layer, "w")
    assert found.code == "transposed"
    assert found.message.startswith("dw is transposed: expected shape (D, M) = (3, 5), got (5, 3);")


def test_transposed_gradient_is_diagnosed_even_when_square():
    for seed in range(5):
        layer = affine(seed=seed, N=4, D=3, M=3)
        found = diagnose(layer.a["dout"].T @ layer.a["x"], layer, "w")
        assert found.code == "transposed"
        assert "D == M = 3" in found.message


def test_transposed_input_gradient_and_colmajor_weight():
    layer = affine(N=4, D=3, M=5)
    assert diagnose((layer.a["dout"] @ layer.a["w"].T).T, layer, "x").code == "transposed"
    col = colmajor_affine()
    assert diagnose(col.a["x"] @ col.a["dout"].T, col, "w").code == "transposed"


def test_swapped_spatial_axes_of_a_pooling_gradient_are_transposed():
    layer = max_pool()
    found = diagnose(layer.grads["x"].transpose(0, 1, 3, 2), layer, "x")
    assert found.code == "transposed"
    assert found.details["axes"] == (0, 1, 3, 2)


# ---------------------------------------------------------------------------------------------
# scaled and sign_flipped


def test_softmax_gradient_missing_the_batch_mean_is_scaled_by_n():
    layer = softmax_loss(N=4, C=5)
    found = diagnose(layer.a["p"] - layer.a["onehot"], layer, "x")
    assert found.code == "scaled"
    assert found.details["scale"] == pytest.approx(4)
    assert found.details["scale_name"] == "N"
    assert "missing 1/N (N=4)" in found.message


def test_weight_gradient_divided_by_batch_is_an_extra_one_over_n():
    layer = affine(N=6, D=3, M=5)
    found = diagnose(layer.a["x"].T @ layer.a["dout"] / 6, layer, "w")
    assert found.code == "scaled"
    assert found.details["scale_name"] == "1/N"
    assert "an extra factor 1/N (N=6)" in found.message


def test_factor_two_one_half_and_unnamed_factors_are_scaled():
    layer = relu(seed=2)
    found = diagnose(2 * layer.grads["x"], layer, "x")
    assert (found.code, found.details["scale_name"]) == ("scaled", "2")
    found = diagnose(0.5 * layer.grads["x"], layer, "x")
    assert (found.code, found.details["scale_name"]) == ("scaled", "1/2")
    found = diagnose(0.37 * layer.grads["x"], layer, "x")
    assert (found.code, found.details["scale_name"]) == ("scaled", "")
    assert "0.37 × the oracle's gradient" in found.message


def test_scale_equal_to_two_dims_names_both():
    layer = affine(N=3, D=3, M=5)
    found = diagnose(layer.grads["x"] * 3, layer, "x")
    assert found.code == "scaled"
    assert found.details["scale_name"] == "N or D"


def test_scale_by_a_product_of_dims_is_named():
    layer = affine(N=4, D=3, M=5)
    found = diagnose(layer.grads["w"] / 20, layer, "w")
    assert found.details["scale_name"] == "1/N*M"


def test_sign_flipped_softmax_and_affine():
    layer = softmax_loss()
    found = diagnose((layer.a["onehot"] - layer.a["p"]) / 4, layer, "x")
    assert found.code == "sign_flipped"
    assert found.details["scale"] == -1.0
    aff = affine()
    assert diagnose(-aff.grads["x"], aff, "x").code == "sign_flipped"
    assert diagnose(-aff.grads["b"], aff, "b").code == "sign_flipped"


def test_negative_scale_names_sign_and_factor():
    layer = softmax_loss(N=4)
    found = diagnose(layer.a["onehot"] - layer.a["p"], layer, "x")
    assert found.code == "scaled"
    assert found.details["scale_name"] == "-N"
    assert "wrong sign" in found.message


def test_scaled_under_finite_difference_tolerance_with_a_noisy_oracle():
    layer = softmax_loss(N=4)
    rng = np.random.default_rng(7)
    noisy = layer.grads["x"] + 1e-8 * rng.normal(size=layer.grads["x"].shape)
    found = diagnose_gradient(4 * layer.grads["x"], noisy, layer.ctx["x"], FINITE_DIFFERENCE)
    assert (found.code, found.details["scale_name"]) == ("scaled", "N")


# ---------------------------------------------------------------------------------------------
# zero


def test_zero_gradient_is_zero():
    layer = affine()
    found = diagnose(np.zeros_like(layer.grads["w"]), layer, "w")
    assert found.code == "zero"
    assert found.message.startswith("dw is zero everywhere")
    bn = batchnorm()
    assert diagnose(np.zeros(3), bn, "gamma").code == "zero"


def test_zero_gradient_where_the_oracle_is_zero_too_is_not_diagnosed():
    layer = relu()
    ctx = layer.ctx["x"]
    assert diagnose_gradient(np.zeros((4, 3)), np.zeros((4, 3)), ctx) == Diagnosis("", "", {})


# ---------------------------------------------------------------------------------------------
# wrong_mask


@pytest.mark.parametrize("seed", range(5))
def test_relu_backward_multiplying_by_x_instead_of_the_mask(seed):
    layer = relu(seed=seed)
    found = diagnose(layer.a["dout"] * layer.a["x"], layer, "x")
    assert found.code == "wrong_mask"
    assert "dx multiplies dout by x instead of by the mask (x > 0)" in found.message


def test_relu_backward_without_a_mask_leaks_where_x_is_not_positive():
    layer = relu(seed=1)
    found = diagnose(layer.a["dout"], layer, "x")
    assert found.code == "wrong_mask"
    assert "nonzero where x <= 0" in found.message
    assert "(x > 0)" in found.message


def test_relu_backward_with_the_opposite_mask():
    layer = relu(seed=4)
    found = diagnose(layer.a["dout"] * (layer.a["x"] <= 0), layer, "x")
    assert found.code == "wrong_mask"
    assert "opposite mask" in found.message


def test_relu_inside_a_loss_without_dout_names_the_comparison():
    layer = relu(seed=5, with_dout=False)
    found = diagnose(layer.a["dout"], layer, "x")
    assert found.code == "wrong_mask"
    assert found.details["where"] == "x <= 0"
    assert found.details["mask"] == "x > 0"


def test_leaky_relu_with_the_wrong_negative_slope():
    layer = relu(seed=6, slope=0.01)
    found = diagnose(layer.a["dout"] * np.where(layer.a["x"] > 0, 1.0, 0.1), layer, "x")
    assert found.code == "wrong_mask"
    assert "0.1" in found.message and "0.01" in found.message and "x <= 0" in found.message


def test_leaky_relu_with_the_wrong_slope_without_dout_reports_the_ratio():
    layer = relu(seed=7, slope=0.01, with_dout=False)
    found = diagnose(layer.a["dout"] * np.where(layer.a["x"] > 0, 1.0, 0.1), layer, "x")
    assert found.code == "wrong_mask"
    assert found.details["ratio"] == pytest.approx(10)
    assert found.details["where"] in ("x <= 0", "x < 0")


def test_leaky_relu_treated_as_plain_relu():
    layer = relu(seed=8, slope=0.2)
    found = diagnose(layer.a["dout"] * (layer.a["x"] > 0), layer, "x")
    assert found.code == "wrong_mask"
    assert "0.2" in found.message


def test_max_pool_routing_to_every_window_element():
    layer = max_pool(seed=2)
    dout = layer.a["dout"]
    everywhere = np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3)
    found = diagnose(everywhere, layer, "x")
    assert found.code == "wrong_mask"
    assert "nonzero at 48 / 64 entries where the oracle's gradient is zero" in found.message


def test_max_pool_routing_to_the_first_element_of_each_window_is_misrouted():
    for seed in range(5):
        layer = max_pool(seed=seed)
        first = np.zeros_like(layer.a["x"])
        first[:, :, ::2, ::2] = layer.a["dout"]
        found = diagnose(first, layer, "x")
        assert found.code == "wrong_mask"
        assert "the right values at the wrong entries" in found.message


def test_dropout_backward_without_the_mask_says_what_the_gradient_is():
    rng = np.random.default_rng(1)
    x, dout = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    mask = (rng.random(size=(5, 4)) < 0.5) / 0.5
    ctx = GradientContext(
        "x", (5, 4), ("N", "D"), {"N": 5, "D": 4}, ((5, 4),), ("N", "D"), {"x": x, "mask": mask}, (dout,)
    )
    found = diagnose_gradient(dout, dout * mask, ctx)
    assert found.code == "wrong_mask"
    assert found.message == (
        "dx equals dout, but the forward multiplied x by mask: the gradient must be multiplied by mask too "
        "(dx = dout * mask)"
    )


def test_missing_branch_of_a_piecewise_loss_gradient_is_named():
    rng = np.random.default_rng(2)
    pred, target = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    ctx = GradientContext(
        "pred", (4, 3), ("N", "D"), {"N": 4, "D": 3}, (), (), {"pred": pred, "target": target}
    )
    expected = np.sign(pred - target) / 12
    found = diagnose_gradient(np.where(pred > target, 1.0, 0.0) / 12, expected, ctx)
    assert found.code == "wrong_mask"
    assert found.message.startswith("dpred is zero where pred <= target")


def test_elementwise_max_with_the_comparison_reversed_names_both_inputs():
    layer = elementwise_max(seed=3)
    found = diagnose(layer.a["dout"] * (layer.a["x"] < layer.a["y"]), layer, "x")
    assert found.code == "wrong_mask"
    assert "x > y" in found.message or "x >= y" in found.message


# ---------------------------------------------------------------------------------------------
# partial


def test_softmax_forgetting_the_label_term_is_partial_with_one_entry_per_row():
    layer = softmax_loss(N=4, C=5)
    found = diagnose(layer.a["p"] / 4, layer, "x")
    assert found.code == "partial"
    assert found.details["mismatched"] == 4
    assert found.details["fraction"] == pytest.approx(0.2)
    assert found.message.startswith("dx is wrong at 4 / 20 entries (20%) and right elsewhere")


def test_single_wrong_entry_reports_its_row_and_column():
    layer = affine()
    wrong = layer.grads["w"].copy()
    wrong[2, 1] += 1.0
    found = diagnose(wrong, layer, "w")
    assert found.code == "partial"
    assert (found.details["rows"], found.details["columns"]) == ([2], [1])
    assert "rows (axis 0, D) [2] of 3" in found.message


def test_partial_names_the_one_wrong_row_of_a_batchnorm_input_gradient():
    layer = batchnorm(seed=4, N=5, D=3)
    wrong = layer.grads["x"].copy()
    wrong[1] *= 3.0
    found = diagnose(wrong, layer, "x")
    assert found.code == "partial"
    assert found.details["rows"] == [1]
    assert "rows (axis 0, N) [1] of 5" in found.message


def test_a_stray_coincidental_match_is_not_partial():
    rng = np.random.default_rng(0)
    x, dout = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    x[2, 3] = 1e-3  # where 1 - x² and 1 - tanh(x)² agree
    ctx = GradientContext("x", (6, 6), ("N", "D"), {"N": 6, "D": 6}, ((6, 6),), ("N", "D"), {"x": x}, (dout,))
    found = diagnose_gradient(dout * (1 - x**2), dout * (1 - np.tanh(x) ** 2), ctx)
    assert found.code == ""


def test_matching_only_where_both_are_zero_is_not_partial():
    layer = relu(seed=9, with_dout=False)
    rng = np.random.default_rng(0)
    garbage = rng.normal(size=(4, 3)) * (layer.a["x"] > 0)
    assert diagnose(garbage, layer, "x").code == ""


# ---------------------------------------------------------------------------------------------
# nonfinite, shapes alone, and the list of codes


def test_nan_in_the_gradient_is_nonfinite():
    layer = affine()
    bad = layer.grads["w"].copy()
    bad[1, 2] = np.nan
    found = diagnose(bad, layer, "w")
    assert found.code == "nonfinite"
    assert found.details["first"] == (1, 2)


def test_diagnose_shape_names_unreduced_keepdims_and_transposed_shapes():
    layer = affine(N=4, D=3, M=5)
    assert diagnose_shape((4, 5), layer.ctx["b"]).code == "unreduced_broadcast"
    assert diagnose_shape((1, 5), layer.ctx["b"]).code == "keepdims"
    found = diagnose_shape((5, 3), layer.ctx["w"])
    assert found.code == "transposed"
    assert "expected shape (D, M) = (3, 5), got (5, 3)" in found.message
    assert diagnose_shape((3, 5), layer.ctx["w"]) == Diagnosis("", "", {})
    assert diagnose_shape((7,), layer.ctx["b"]).code == ""


def test_diagnose_shape_does_not_guess_between_equal_axes_without_an_output():
    ctx = GradientContext(name="b", param_shape=(5,), symbols=("M",), dims={"N": 5, "M": 5})
    assert diagnose_shape((5, 5), ctx).code == ""
    with_output = GradientContext(name="b", param_shape=(5,), output_shapes=((5, 5),))
    assert diagnose_shape((5, 5), with_output).details["axes"] == (0,)


def test_broadcast_axes_from_symbols_and_from_shapes():
    assert broadcast_axes(affine().ctx["b"]) == (0,)
    assert broadcast_axes(affine().ctx["w"]) == ()
    assert broadcast_axes(colmajor_affine().ctx["b"]) == (1,)
    assert broadcast_axes(bias_4d().ctx["b"]) == (0, 2, 3)
    assert broadcast_axes(softmax_loss().ctx["x"]) == ()
    assert broadcast_axes(GradientContext("b", (1, 5), output_shapes=((4, 5),))) == (0,)


def test_codes_list_every_code_given_here_and_elsewhere():
    assert len(set(CODES)) == len(CODES)
    produced = {
        "unreduced_broadcast",
        "mean_instead_of_sum",
        "keepdims",
        "transposed",
        "scaled",
        "sign_flipped",
        "zero",
        "wrong_mask",
        "regularization",
        "missing_path",
        "partial",
        "nonfinite",
    }
    elsewhere = {"forward_mismatch", "mutates_input", "stateful", "shape_dependent"}
    assert produced | elsewhere == set(CODES)


def test_relu_mask_times_x_is_a_wrong_mask_naming_the_extra_factor():
    rng = np.random.default_rng(4)
    x, dout = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    ctx = GradientContext("x", (4, 5), ("N", "D"), {"N": 4, "D": 5}, ((4, 5),), ("N", "D"), {"x": x}, (dout,))
    expected = dout * (x > 0)
    found = diagnose_gradient(dout * x * (x > 0), expected, ctx)
    assert found.code == "wrong_mask"
    assert "not multiplied by x" in found.message
    assert diagnose_gradient(expected, expected, ctx).code == ""
