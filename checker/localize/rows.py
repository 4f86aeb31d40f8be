"""A localisation as report rows: one ``check = "localize"`` row per failing gradient it locates.

The row's ``first_wrong`` is the backward's local (``dsqrtvar``), ``location`` where it was last
assigned (``mylayers.py:123``), ``diagnosis`` the code of that step's diagnosis, and ``message``
the right steps it was computed from, the wrong one with its statement, and the diagnosis. A
localisation with no wrong step gives no row; its ``reason`` is for the summary.
"""

from __future__ import annotations

from checker.localize.localization import Localization
from checker.localize.match import StepVerdict
from checker.results import CheckResult

__all__ = ["ORACLE", "localization_message", "localization_rows"]

ORACLE = "torch_numpy(intermediates)"
_LISTED = 8  # right steps named before "and N more"


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(s) for s in shape))


def _right_text(right: tuple[StepVerdict, ...]) -> str:
    if not right:
        return "it is the first step checked"
    names = [s.name for s in right]
    shown = ", ".join(names[:_LISTED]) + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
    verb = "is" if len(names) == 1 else "are"
    return f"{shown} {verb} right"


def localization_message(localization: Localization, step: StepVerdict) -> str:
    """``dxhat, divar are right; dsqrtvar is wrong (mylayers.py:123: `dsqrtvar = ...`): <diagnosis>``."""
    right = localization.right_before(step)
    text = f"{_right_text(right)}; {step.name} is wrong ({step.location}"
    text += f": `{step.source}`)" if step.source else ")"
    if step.diagnosis or step.message:
        text += f": {step.message}"
    if step.unchecked:
        were = "was" if len(step.unchecked) == 1 else "were"
        text += (
            f"; it reads {', '.join(step.unchecked)}, which no forward name matches and so {were} not "
            "checked: the mistake may be there"
        )
    return text


def localization_rows(localization: Localization) -> list[CheckResult]:
    """One ``localize`` row per failing gradient with a first wrong step (``target`` = that gradient's
    input or parameter name). ``function``, ``case``, ``dims`` and ``seed`` are the runner's to stamp."""
    rows = []
    for gradient, index in localization.gradients:
        step = localization.steps[index]
        rows.append(
            CheckResult(
                "localize",
                gradient,
                "fail",
                localization_message(localization, step),
                diagnosis=step.diagnosis,
                max_abs_err=step.max_abs_err,
                expected_shape=_shape(step.expected_shape),
                actual_shape=_shape(step.actual_shape),
                oracle=ORACLE,
                seconds=localization.seconds,
                first_wrong=step.name,
                location=step.location,
            )
        )
    return rows
