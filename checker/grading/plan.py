"""The grader's side of an exercise: the cases, the calls a worker runs, and the reference's answers.

Everything here runs trusted code only (the registered reference). The same ``seed`` gives every
submission the same cases, so grading is deterministic and fair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checker.cases import Case, make_case
from checker.execution import in_process
from checker.execution.calls import normalize_gradients
from checker.fuzz import plan_dims
from checker.grading.records import Call
from checker.registry import Target, get_target

__all__ = ["ExerciseCase", "plan_exercise", "plan_exercises"]

#: Cases per exercise when grading (each case is one call in the student's worker).
DEFAULT_GRADING_CASES = 4


@dataclass(frozen=True, eq=False)
class ExerciseCase:
    """One case of one exercise: the call sent to the worker and the reference's answers."""

    exercise: Any  # reference_impls.bank.Exercise
    target: Target
    case: Case
    call: Call
    sent: dict[str, np.ndarray]  # input / dout / param name -> the array the student got
    douts: tuple[np.ndarray, ...]
    expected_outputs: tuple[np.ndarray, ...]  # layer: outputs; loss/model: (loss,)
    expected_grads: dict[str, np.ndarray]
    differentiable: tuple[str, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # key -> array, for the worker


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        raise ValueError("hyper-parameters holding arrays cannot be sent to a worker")
    return value


def _reference_answers(
    target: Target, case: Case, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(outputs, douts, gradients, model params) of the registered reference, run as every target is
    run (:func:`checker.execution.in_process.run`): a layer's outputs, or ``(loss,)``."""
    run = in_process.run(target, case, rng)
    grads, _ = normalize_gradients(run.raw_grads, run.differentiable, "reference")
    outputs = run.outputs if target.style == "layer" else (np.array(run.value),)
    return (
        tuple(np.asarray(o, dtype=np.float64) for o in outputs),
        run.douts,
        {k: np.asarray(v, dtype=np.float64) for k, v in grads.items()},
        dict(run.model_params or {}),
    )


def plan_exercise(exercise: Any, *, seed: int = 0, cases: int | None = None) -> list[ExerciseCase]:
    """The graded cases of ``exercise`` (an ``Exercise`` record of the bank)."""
    target = get_target(exercise.name, module=exercise.module)
    planned: list[ExerciseCase] = []
    for index, (label, dims) in enumerate(plan_dims(target, cases or DEFAULT_GRADING_CASES, seed)):
        case = make_case(target, dims, seed, index, label)
        rng = np.random.default_rng(case.seed + 1)
        outs, douts, grads, params = _reference_answers(target, case, rng)
        prefix = f"{exercise.name}/{index}/"
        arrays = {prefix + k: v for k, v in case.arrays.items()}
        dout_keys = tuple(f"{prefix}dout{i}" for i in range(len(douts)))
        arrays |= dict(zip(dout_keys, douts, strict=True))
        param_keys = tuple(prefix + k for k in params)
        arrays |= {prefix + k: v for k, v in params.items()}
        inputs = tuple(prefix + k for k in target.inputs)
        hyper = _json_safe(case.hyper)
        if exercise.style == "layer":
            forward, backward = exercise.functions
            call = Call(
                id=prefix.rstrip("/"),
                style="layer",
                inputs=inputs,
                forward=forward,
                backward=backward,
                hyper=hyper,
                outputs=target.outputs,
                douts=dout_keys,
                repeat_backward=True,
            )
        elif exercise.style == "loss":
            call = Call(
                id=prefix.rstrip("/"),
                style="loss",
                inputs=inputs,
                value_and_grad=exercise.functions[0],
                hyper=hyper,
                repeat_backward=True,
            )
        else:
            init = _json_safe(exercise.init(dims) if exercise.init else {})
            call = Call(
                id=prefix.rstrip("/"),
                style="model",
                inputs=inputs,
                model=exercise.functions[0],
                init=init,
                params=param_keys,
                repeat_backward=True,
            )
        sent = {k: v for k, v in case.arrays.items()} | params
        differentiable = tuple(params) if params else tuple(target.differentiable)
        planned.append(
            ExerciseCase(exercise, target, case, call, sent, douts, outs, grads, differentiable, arrays)
        )
    return planned


def plan_exercises(
    exercises: list[Any], *, seed: int = 0, cases: int | None = None
) -> tuple[list[ExerciseCase], dict[str, np.ndarray]]:
    """Every case of every exercise, and the arrays the worker needs (by key)."""
    planned = [c for e in exercises for c in plan_exercise(e, seed=seed, cases=cases)]
    arrays: dict[str, np.ndarray] = {}
    for c in planned:
        arrays |= c.arrays
    return planned, arrays
