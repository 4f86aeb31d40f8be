"""Where a backward goes wrong, read from a function's ``localize`` rows for every door.

A ``localize`` row names the first wrong step of the backward (``first_wrong``, ``location``) and
carries, in its evidence, the judged steps in the backward's order and that step's value against its
exact gradient (:mod:`checker.localize.rows` writes them). A report read back from CSV or JSON has
the columns only: then the "where" line is all there is, and no door fails for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from checker.results import CheckResult

__all__ = [
    "MARKS",
    "ShownStep",
    "localize_rows",
    "located_gradients",
    "shown_steps",
    "step_arrays",
    "unchecked_names",
    "where_row",
    "where_text",
]

#: How each verdict of a step is marked in the step lists (HTML, Markdown).
MARKS = {
    "right": "✓ right",
    "first_wrong": "✗ first wrong",
    "wrong": "✗ wrong",
    "partial": "~ differs (partial value)",
}


@dataclass(frozen=True)
class ShownStep:
    """One step of the backward as the reports list it (see :mod:`checker.localize.rows`)."""

    name: str
    matches: str
    location: str
    source: str
    verdict: str
    diagnosis: str = ""
    message: str = ""

    @property
    def mark(self) -> str:
        return MARKS.get(self.verdict, self.verdict)


def localize_rows(rows: Sequence[CheckResult]) -> list[CheckResult]:
    """The failing ``localize`` rows, in the order they ran."""
    return [r for r in rows if r.check == "localize" and r.failed and r.first_wrong]


def _has_arrays(row: CheckResult) -> bool:
    return all(isinstance(row.evidence.get(k), np.ndarray) for k in ("actual", "expected"))


def _readability(row: CheckResult) -> tuple[bool, bool, float]:
    # Steps listed, then a picture, then about 20 entries (a 1x1 case shows nothing, 4096 no value).
    if not _has_arrays(row):
        return (not row.evidence.get("steps"), True, 0.0)
    size = max(row.evidence["actual"].size, row.evidence["expected"].size, 1)
    return (not row.evidence.get("steps"), False, abs(math.log(size / 20)))


def where_row(rows: Sequence[CheckResult], limit: int | None = None) -> CheckResult | None:
    """The ``localize`` row a report shows for a function: one that blames the same step as the
    first one (the summary's "where"), the one whose step list and picture read best. ``limit``:
    only rows whose arrays have at most that many entries have a picture (the pytest door's cap)."""
    located = localize_rows(rows)
    if not located:
        return None
    first = located[0]
    same = [r for r in located if (r.first_wrong, r.location) == (first.first_wrong, first.location)]

    def rank(row: CheckResult) -> tuple[bool, bool, float]:
        steps, no_picture, size = _readability(row)
        if not no_picture and limit is not None:
            no_picture = max(row.evidence["actual"].size, row.evidence["expected"].size) > limit
        return (steps, no_picture, size)

    return min(same, key=rank)


def shown_steps(row: CheckResult) -> list[ShownStep]:
    """The steps a ``localize`` row's evidence lists ([] for a row read back from a file)."""
    steps = row.evidence.get("steps") or []
    fields = ("name", "matches", "location", "source", "verdict", "diagnosis", "message")
    return [ShownStep(**{k: str(s.get(k, "")) for k in fields}) for s in steps if isinstance(s, Mapping)]


def _statement(row: CheckResult) -> str:
    first = next((s for s in shown_steps(row) if s.verdict == "first_wrong"), None)
    return first.source if first is not None else ""


def where_text(where: str, rows: Sequence[CheckResult]) -> str:
    """The "where" fact: ``dsqrtvar at mylayers.py:28: `dsqrtvar = 1.0 / sqrtvar**2 * divar` (sign_flipped)``.

    ``where``: the summary's (``dsqrtvar at mylayers.py:28``); ``rows``: the function's rows, for the
    statement and the diagnosis of the step (left out when the rows do not have them)."""
    if not where:
        return ""
    row = where_row(rows)
    if row is None or f"{row.first_wrong} at {row.location}" != where:
        return where
    statement = _statement(row)
    text = where + (f": `{statement}`" if statement else "")
    return text + (f" ({row.diagnosis})" if row.diagnosis else "")


def located_gradients(rows: Sequence[CheckResult]) -> list[tuple[str, str, str]]:
    """``(gradient, first wrong step, location)`` for each located gradient, once each."""
    seen: dict[tuple[str, str, str], None] = {}
    for r in localize_rows(rows):
        seen.setdefault((r.target, r.first_wrong, r.location), None)
    return list(seen)


def step_arrays(row: CheckResult) -> tuple[Any, Any] | None:
    """``(exact gradient, the step's value)`` of a ``localize`` row, when its evidence has them."""
    return (row.evidence["expected"], row.evidence["actual"]) if _has_arrays(row) else None


def unchecked_names(row: CheckResult) -> tuple[list[str], int]:
    """The backward's locals no forward name matches (never checked), and how many steps the row's
    list left out."""
    names = [str(n) for n in row.evidence.get("unmatched") or []]
    return names, int(row.evidence.get("steps_left_out") or 0)
