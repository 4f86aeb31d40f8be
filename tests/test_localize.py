"""Localisation of the first wrong step of a backward, on the bank's staged exercises.

Each planted mistake is located at its planted step (name and line) with its diagnosis; correct
staged code, float32 forwards included, never has a wrong step, at many seeds. The helpers at the
top build cases the way the runner does (the other localisation tests import them).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import checker as bc
import reference_impls
from checker.cases import make_case
from checker.execution.calls import build_model, call_forward
from checker.fuzz import plan_dims
from checker.localize import Localization, localization_rows, localize
from checker.results import COLUMNS, records_to_frame
from reference_impls import staged
from reference_impls.mistakes import MISTAKES

STAGED = [e.name for e in reference_impls.EXERCISES if e.module == "reference_impls.staged"]
PLANTED = [m for m in MISTAKES if m.exercise in STAGED and not m.control]


def bank_target(name: str) -> bc.Target:
    return bc.get_target(name, module=reference_impls.exercise(name).module)


def case_arguments(target: bc.Target, seed: int, index: int, cases: int = 4) -> dict[str, Any]:
    """The keyword arguments of ``localize`` for one planned case of ``target``, as the runner has them."""
    label, dims = plan_dims(target, cases, seed)[index]
    case = make_case(target, dims, seed, index, label)
    rng = np.random.default_rng(case.seed + 1)
    arguments: dict[str, Any] = {"inputs": case.arrays, "hyper": case.fresh_hyper(), "dims": case.dims}
    arguments["seed"] = case.seed
    if target.style == "layer":
        outs, _ = call_forward(target, {k: v.copy() for k, v in case.arrays.items()}, case.fresh_hyper())
        arguments["douts"] = tuple(rng.standard_normal(np.shape(o)) for o in outs)
    if target.style == "model":
        state = np.random.get_state()
        np.random.seed(case.seed % (2**32))
        try:
            model = build_model(target, case.dims)
        finally:
            np.random.set_state(state)
        arguments["params"] = {k: rng.standard_normal(np.shape(v)) * 0.5 for k, v in model.params.items()}
    return arguments


def localize_case(
    target: bc.Target, seed: int = 0, index: int = 0, cases: int = 4, **extra: Any
) -> Localization:
    return localize(target, **(case_arguments(target, seed, index, cases) | extra))


def planted_line(function: Callable[..., Any], step: str) -> int:
    """The line of the last statement of ``function`` that assigns ``step`` (or, for a quoted key, the
    line of that key in a dict literal)."""
    lines, start = inspect.getsourcelines(function)
    found = None
    for offset, text in enumerate(lines):
        if re.match(rf"\s*{re.escape(step)}\s*(\[.*\])?\s*([-+*/]?=(?!=)|:)", text):
            found = start + offset
    assert found is not None, f"{function.__name__} never assigns {step}"
    return found


def distinct_sizes(dims: dict[str, int]) -> bool:
    """No size-1 axis and no two equal sizes: the diagnosis of a step is then the planted one."""
    return min(dims.values()) > 1 and len(set(dims.values())) == len(dims)


# ---------------------------------------------------------------------------------------------
# Planted mistakes: located at their step and line, with their diagnosis


@pytest.mark.parametrize("mistake", PLANTED, ids=[f"{m.exercise}-{m.name}" for m in PLANTED])
def test_planted_mistake_is_localized_to_its_step_and_line(mistake):
    target = bc.variant(bank_target(mistake.exercise), mistake.replaces)
    function = next(iter(mistake.replaces.values()))
    line = planted_line(function, mistake.step)
    located = diagnosed = 0
    for seed in range(2):
        for index in range(6):
            arguments = case_arguments(target, seed, index, cases=6)
            found = localize(target, **arguments)
            if found.limit == "gradients_right":
                continue  # the slip makes no difference on this case (N = 1, a single key)
            wrong = found.first_wrong
            assert wrong is not None, (seed, index, found.limit, found.reason)
            assert (wrong.name, wrong.line, Path(wrong.file).name) == (
                mistake.step,
                line,
                Path(inspect.getfile(function)).name,
            ), (seed, arguments["dims"])
            located += 1
            if distinct_sizes(arguments["dims"]):
                assert wrong.diagnosis == mistake.step_diagnosis, (arguments["dims"], wrong.message)
                diagnosed += 1
            rows = localization_rows(found)
            assert rows and all(r.first_wrong == mistake.step for r in rows)
            assert all(r.location == wrong.location == f"{Path(wrong.file).name}:{line}" for r in rows)
    assert located >= 4 and diagnosed >= 2


def test_staged_mistakes_cover_several_steps_of_every_exercise():
    for exercise in STAGED:
        steps = {m.step for m in PLANTED if m.exercise == exercise}
        assert len(steps) >= 3, (exercise, steps)
    codes = {m.step_diagnosis for m in PLANTED}
    assert {"regularization", "missing_path"} <= codes


def test_the_message_lists_the_right_steps_the_wrong_line_and_the_diagnosis():
    mistake = next(m for m in PLANTED if m.name == "sqrtvar_sign")
    target = bc.variant(bank_target("batchnorm_staged"), mistake.replaces)
    found = localize_case(target)
    (row,) = localization_rows(found)
    line = planted_line(next(iter(mistake.replaces.values())), "dsqrtvar")
    assert row.check == "localize" and row.target == "x" and row.status == "fail"
    assert row.message.startswith(
        f"dgammax, dxhat, divar are right; dsqrtvar is wrong (staged_norms.py:{line}: "
        "`dsqrtvar = 1.0 / sqrtvar**2 * divar`): dsqrtvar has the wrong sign: it equals -1 × "
    )
    assert (row.first_wrong, row.location, row.diagnosis) == (
        "dsqrtvar",
        f"staged_norms.py:{line}",
        "sign_flipped",
    )
    assert found.right == found.steps[: found.steps.index(found.first_wrong)]


def test_localize_rows_fill_the_two_new_columns_next_to_the_diagnosis():
    mistake = next(m for m in PLANTED if m.name == "W1_reg_missing")
    found = localize_case(bc.variant(bank_target("two_layer_net_staged"), mistake.replaces))
    frame = records_to_frame([*localization_rows(found), bc.CheckResult("grad_fd", "W1", "fail")])
    assert list(frame.columns) == list(COLUMNS)
    assert COLUMNS.index("first_wrong") == COLUMNS.index("diagnosis") + 1
    assert list(frame.first_wrong) == ["dW1", ""] and frame.location.iloc[0].startswith("staged_nets.py:")
    assert frame.diagnosis.iloc[0] == "regularization"
    assert "by exactly -0.1 × W1" in frame.message.iloc[0]


def test_two_independent_slips_are_each_located_behind_their_own_gradient():
    def backward(dout, cache):
        xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
        N = dout.shape[0]
        dbeta = dout.sum(axis=0)
        dgamma = dout * xhat  # slip 1: not summed over the batch
        dxhat = dout * gamma
        divar = (dxhat * xmu).sum(axis=0)
        dxmu1 = dxhat * ivar
        dsqrtvar = 1.0 / sqrtvar**2 * divar  # slip 2: the sign of d(1/s)/ds
        dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
        dsq = np.ones_like(xmu) / N * dvar
        dxmu = dxmu1 + 2 * xmu * dsq
        dmu = -dxmu.sum(axis=0)
        dx = dxmu + dmu / N
        return dx, dgamma, dbeta

    found = localize_case(bc.variant(bank_target("batchnorm_staged"), {"backward": backward}))
    assert found.first_wrong.name == "dgamma"
    assert found.for_gradient("gamma").name == "dgamma" and found.for_gradient("x").name == "dsqrtvar"
    assert found.for_gradient("beta") is None
    assert [(r.target, r.first_wrong) for r in localization_rows(found)] == [
        ("x", "dsqrtvar"),
        ("gamma", "dgamma"),
    ]


# ---------------------------------------------------------------------------------------------
# Correct code is never localized


@pytest.mark.parametrize("exercise", STAGED)
def test_correct_staged_code_has_no_wrong_step_at_many_seeds(exercise):
    target = bank_target(exercise)
    for seed in range(8):
        for index in range(6):
            # Told that every gradient failed, it still finds every step right.
            found = localize_case(target, seed, index, cases=6, failing=target.differentiable)
            assert found.first_wrong is None and found.limit == "all_steps_right", (seed, index, found.reason)
            assert all(step.right for step in found.steps) and len(found.steps) >= 5
            assert localization_rows(found) == []
        assert localize_case(target, seed).limit == "gradients_right"


def test_a_control_mistake_that_is_right_another_way_is_never_localized():
    (control,) = [m for m in MISTAKES if m.exercise == "batchnorm_staged" and m.control]
    target = bc.variant(bank_target("batchnorm_staged"), control.replaces)
    for seed in range(5):
        found = localize_case(target, seed, failing=["x"])
        assert found.first_wrong is None and not any(not s.right for s in found.steps)


def float32_batchnorm_forward(x, gamma, beta, eps=1e-5):
    f = np.float32
    return staged.batchnorm_staged_forward(x.astype(f), gamma.astype(f), beta.astype(f), eps)


def float32_net_loss(X, y, W1, b1, W2, b2, reg=0.1):
    f = np.float32
    return staged.two_layer_net_loss(
        X.astype(f), y, W1.astype(f), b1.astype(f), W2.astype(f), b2.astype(f), reg
    )


def float32_lstm_forward(x, prev_h, prev_c, Wx, Wh, b):
    f = np.float32
    arrays = (a.astype(f) for a in (x, prev_h, prev_c, Wx, Wh, b))
    return staged.lstm_step_staged_forward(*arrays)


FLOAT32 = {
    "batchnorm_staged": {"forward": float32_batchnorm_forward},
    "two_layer_net_staged": {"value_and_grad": float32_net_loss},
    "lstm_step_staged": {"forward": float32_lstm_forward},
}


@pytest.mark.parametrize("exercise", sorted(FLOAT32))
def test_correct_staged_code_computing_in_float32_has_no_wrong_step(exercise):
    target = bc.variant(bank_target(exercise), FLOAT32[exercise])
    for seed in range(10):
        for index in range(4):
            found = localize_case(target, seed, index, failing=target.differentiable)
            assert found.limit == "all_steps_right", (seed, index, found.reason)
            assert all(step.right for step in found.steps)


def test_a_planted_mistake_in_float32_code_is_still_localized():
    mistake = next(m for m in PLANTED if m.name == "sqrtvar_sign")
    target = bc.variant(bank_target("batchnorm_staged"), {**FLOAT32["batchnorm_staged"], **mistake.replaces})
    for seed in range(3):
        found = localize_case(target, seed)
        assert (found.first_wrong.name, found.first_wrong.diagnosis) == ("dsqrtvar", "sign_flipped")
