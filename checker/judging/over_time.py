"""Where in time an unrolled cell goes wrong: the step whose input gradient is first wrong, going backward.

The backward of an unrolled cell runs from the last step to the first. The last step receives no
gradient from a later step, so its input gradient is right whenever the step's own backward is;
every earlier step also receives, through the recurrent state, what the step after it passed back.
A dropped or wrong path through the state leaves the last steps right and makes every step from
some ``t`` down to the first wrong: ``t`` is where the gradient through the state went wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from checker.compare import Tolerance, mismatch_mask
from checker.execution.recurrent import time_axis
from checker.registry import Target
from checker.results import CheckResult

__all__ = ["step_rows"]

#: Rows whose evidence can locate a step, most trusted first.
_SOURCES = ("grad_torch", "grad_autograd", "grad_fd")


def step_rows(target: Target, rows: Sequence[CheckResult], tol: Tolerance) -> list[CheckResult]:
    """One ``localize`` row per sequence input whose failing gradient shows where in time it goes wrong."""
    over = target.unroll
    if over is None:
        return []
    found = []
    for name in over.sequence:
        evidence = _evidence(rows, name)
        if evidence is None:
            continue
        actual, expected, oracle = evidence
        axis = time_axis(target, name)
        steps = actual.shape[axis]
        if steps < 2:
            continue
        mask = mismatch_mask(actual, expected, tol)
        others = tuple(a for a in range(mask.ndim) if a != axis)
        wrong = np.flatnonzero(mask.any(axis=others) if others else mask)
        if not wrong.size:
            continue
        last = int(wrong.max())
        found.append(
            CheckResult(
                "localize",
                name,
                "fail",
                _message(target, name, last, steps),
                oracle=oracle,
                first_wrong=f"d{name}[{':, ' * axis}{last}]",
                location=f"step {last} of {steps} (counting from 0)",
            )
        )
    return found


def _evidence(rows: Sequence[CheckResult], name: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    for check in _SOURCES:
        for row in rows:
            if row.check != check or row.target != name or row.status != "fail":
                continue
            actual, expected = row.evidence.get("actual"), row.evidence.get("expected")
            if (
                isinstance(actual, np.ndarray)
                and isinstance(expected, np.ndarray)
                and actual.shape == expected.shape
            ):
                return actual, expected, row.oracle
    return None


def _message(target: Target, name: str, last: int, steps: int) -> str:
    assert target.unroll is not None
    dname = f"d{name}"
    if last == steps - 1:
        return (
            f"{dname} is wrong already at the last step ({last}), which receives no gradient from a later "
            "step: the step's own backward is wrong; check the step on its own (register it as a layer)"
        )
    state = (
        ", ".join(target.unroll.state) if target.unroll.state else "the state the cell keeps between calls"
    )
    right = f"step {steps - 1}" if last == steps - 2 else f"steps {last + 1} to {steps - 1}"
    return (
        f"{dname} is right at {right} and wrong from step {last} down to step 0: the gradient that step "
        f"{last + 1} passes back to step {last} through the recurrent state ({state}) is lost or wrong "
        "(a dropped path through the hidden state?); the last step, which receives none, is right"
    )
