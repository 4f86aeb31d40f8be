"""A localisation as report rows: one ``check = "localize"`` row per failing gradient it locates.

The row's ``first_wrong`` is the backward's local (``dsqrtvar``), ``location`` where it was last
assigned (``mylayers.py:123``), ``diagnosis`` the code of that step's diagnosis, and ``message``
the right steps it was computed from, the wrong one with its statement, and the diagnosis. A
localisation with no wrong step gives no row; its ``reason`` is for the summary.

The row's ``evidence`` (never the frame's columns) carries what a report draws of it, as plain data:

- ``steps``: the judged steps in the backward's order, each a dict with ``name`` (``dsqrtvar``),
  ``matches`` (the forward name, ``sqrtvar``), ``location``, ``source`` (the statement), ``verdict``
  (``right``, ``first_wrong`` for the row's step, or ``wrong``), and for the first wrong one its
  ``diagnosis`` and ``message``; at most :data:`MAX_STEPS`, the first wrong one always among them;
- ``steps_left_out``: how many steps were left out (right ones before it, then any after it);
- ``unmatched``: the backward's locals that match no forward name (never checked);
- ``actual`` / ``expected``: the first wrong step's value and its exact gradient (for its heatmap),
  when it has at most :data:`MAX_PICTURED` entries.
"""

from __future__ import annotations

from typing import Any

from checker.localize.localization import Localization
from checker.localize.match import StepVerdict
from checker.results import CheckResult

__all__ = [
    "MAX_PICTURED",
    "MAX_STEPS",
    "ORACLE",
    "localization_evidence",
    "localization_message",
    "localization_rows",
]

ORACLE = "torch_numpy(intermediates)"
_LISTED = 8  # right steps named before "and N more"
#: Steps kept in a row's evidence (an LSTM unrolled in a loop has many); the first wrong one is always kept.
MAX_STEPS = 40
#: Entries of the first wrong step's value kept for its picture (the pytest door sends at most 4096).
MAX_PICTURED = 4096
_MAX_SOURCE = 200  # characters of a statement
_MAX_UNMATCHED = 20


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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _step_entry(step: StepVerdict, verdict: str) -> dict[str, Any]:
    entry = {
        "name": step.name,
        "matches": step.forward_name,
        "location": step.location,
        "source": _clip(step.source, _MAX_SOURCE),
        "verdict": verdict,
    }
    if verdict == "first_wrong":
        entry |= {"diagnosis": step.diagnosis, "message": step.message}
    return entry


def _kept(count: int, at: int) -> range:
    """The indices of at most :data:`MAX_STEPS` steps around the first wrong one (``at``): the right
    steps just before it count most, then the steps after it."""
    after = min(count - at - 1, MAX_STEPS // 4)
    start = max(0, at - (MAX_STEPS - 1 - after))
    return range(start, min(count, start + MAX_STEPS))


def localization_evidence(localization: Localization, step: StepVerdict) -> dict[str, Any]:
    """The evidence of the row that blames ``step``: the step list, the unmatched names, and the
    step's value against its exact gradient (see the module's docstring)."""
    at = localization.steps.index(step)
    kept = _kept(len(localization.steps), at)
    steps = [
        _step_entry(s, "first_wrong" if i == at else "right" if s.right else "wrong")
        for i, s in ((i, localization.steps[i]) for i in kept)
    ]
    evidence: dict[str, Any] = {
        "steps": steps,
        "steps_left_out": len(localization.steps) - len(steps),
        "unmatched": list(localization.unmatched[:_MAX_UNMATCHED]),
    }
    arrays = localization.arrays_of(step)
    if arrays is not None and max(a.size for a in arrays) <= MAX_PICTURED:
        evidence |= {"actual": arrays[0], "expected": arrays[1]}
    return evidence


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
                evidence=localization_evidence(localization, step),
                first_wrong=step.name,
                location=step.location,
            )
        )
    return rows
