"""A sandboxed worker's answers for one call, read as an :class:`~checker.execution.record.Execution`.

The student's code ran in the sandbox; what came back is data (``CallResult``: plain arrays, or
values refused with the reason). Here it becomes the same record an in-process run makes, so that
the runner judges a submission exactly as it judges ``bc.check``. Nothing can be called again: no
objective, so no finite differences and no autograd; the reference solution's answers are the
oracle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from checker.compare import precision_eps
from checker.execution.fingerprints import changed_names
from checker.execution.record import Execution, MutationEvidence, Refused
from checker.grading.plan import ExerciseCase
from checker.grading.records import CallResult, Returned, Value, article

__all__ = ["execution_of"]


def execution_of(case: ExerciseCase, result: CallResult) -> Execution:
    """The Execution of a call that ran (``result.status == "ok"``)."""
    style = case.exercise.style
    outputs: tuple[Any, ...] = ()
    value = float("nan")
    problem = ""
    if style == "layer":
        got = [v.array for v in result.outputs]
        if len(got) != len(case.expected_outputs) or any(g is None for g in got):
            refused = next((v for v in result.outputs if v.array is None), None)
            problem = (
                refused.message("out")
                if refused
                else f"the forward returned {len(got)} outputs, expected {len(case.expected_outputs)}"
            )
        else:
            outputs = tuple(np.asarray(g, dtype=np.float64) for g in got)
    else:
        loss = result.loss.array if result.loss is not None else None
        if loss is None or np.size(loss) != 1:
            problem = result.loss.message("the loss") if result.loss is not None else "no loss returned"
        else:
            value = float(np.reshape(loss, ()))
    returned = [v for r in (result.gradients, result.gradients_again) if r is not None for v in r.values]
    loss_values = [result.loss] if result.loss is not None else []
    dtypes = [np.dtype(v.dtype) for v in [*result.outputs, *loss_values, *returned] if _known(v.dtype)]
    return Execution(
        differentiable=list(case.differentiable),
        param_values=dict(case.sent),
        raw_grads=_student_gradients(result.gradients),
        raw_grads_again=_student_gradients(result.gradients_again) if result.gradients_again else None,
        where=case.exercise.functions[-1],
        outputs=outputs,
        douts=case.douts,
        value=value,
        mutations=[MutationEvidence("call", "your code", _changed(case, result))],
        eps=precision_eps(*(np.empty(0, dtype=d) for d in dtypes)),
        forward_problem=problem,
    )


def _known(dtype: str) -> bool:
    try:
        return bool(dtype) and np.dtype(dtype).kind == "f"
    except TypeError:
        return False


def _student_gradients(returned: Returned | None) -> Any:
    """The student's gradient structure rebuilt with plain arrays (a refused value becomes ``Refused``)."""
    if returned is None or returned.structure == "none":
        return None
    values = [_array_of(v) for v in returned.values]
    if returned.structure == "tuple":
        return tuple(values)
    if returned.structure == "list":
        return values
    if returned.structure == "dict":
        return dict(zip(returned.keys, values, strict=True))
    return values[0] if values else None


def _array_of(value: Value) -> Any:
    if value.array is not None:
        return value.array
    return Refused(value.error or f"is {article(value.type)} {value.type}")


def _changed(case: ExerciseCase, result: CallResult) -> tuple[str, ...]:
    """The arrays the student was given (inputs, model parameters, douts) that differ after the call."""
    before: dict[str, np.ndarray] = {}
    after: dict[str, np.ndarray] = {}
    prefix = f"{case.call.id}/"
    for name, array in case.sent.items():
        found = _after(result.inputs_after, prefix + name, name)
        if found is not None:
            before[name], after[name] = array, found
    for i, dout in enumerate(case.douts):
        label = "dout" if len(case.douts) == 1 else f"dout{i + 1}"
        found = _after(result.douts_after, f"{prefix}dout{i}", label)
        if found is not None:
            before[label], after[label] = dout, found
    return changed_names(before, after)


def _after(mapping: Mapping[str, Value], key: str, name: str) -> np.ndarray | None:
    value = mapping.get(key) or mapping.get(name)
    return None if value is None else value.array
