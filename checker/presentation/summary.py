"""One function's summary in words, under one set of labels for every door (CLI, pytest, HTML, Markdown).

:func:`function_facts` is the single place that decides what a summary says and what each fact is
called; the doors only choose the layout (a line per fact, a list item, a table cell).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checker.presentation.advice import shape_advice
from checker.presentation.where import where_text

if TYPE_CHECKING:
    from checker.results import CheckResult, FunctionSummary

__all__ = [
    "LABELS",
    "Fact",
    "cases_text",
    "diagnosis_groups",
    "failing_first",
    "function_facts",
    "headline",
    "run_line",
    "status_verb",
]

#: What each fact of a summary is called, everywhere.
LABELS = {
    "where": "where",
    "notes": "note",
    "shape_pattern": "shapes",
    "shrunk_dims": "smallest failing dims",
    "first_dims": "first failing dims",
    "advice": "advice",
    "reproduce": "reproduce",
}

_ORDER = {"error": 0, "fail": 1, "skip": 2, "pass": 3}


@dataclass(frozen=True)
class Fact:
    """One labelled fact of a summary; ``literal`` facts (dims, commands) are shown as code."""

    key: str
    text: str
    literal: bool = False

    @property
    def label(self) -> str:
        return LABELS[self.key]


def function_facts(summary: FunctionSummary, records: Iterable[CheckResult] = ()) -> list[Fact]:
    """What to tell about a function that did not pass, in the order every door shows it.

    ``records``: the function's rows (for the statement of the first wrong step, the first failing
    dims when nothing was shrunk, and the advice when its code raised at some shapes only).
    """
    if summary.status == "pass":
        return []
    rows = [r for r in records if r.function in ("", summary.function)]
    facts = []
    if summary.where:  # the first wrong step of the backward, its statement and its diagnosis
        facts.append(Fact("where", where_text(summary.where, rows)))
    if summary.notes:  # among them, when nothing was located, why ("not located: ...")
        facts.append(Fact("notes", summary.notes))
    if summary.shape_pattern:
        facts.append(Fact("shape_pattern", summary.shape_pattern))
    if summary.shrunk_dims:
        facts.append(Fact("shrunk_dims", summary.shrunk_dims, literal=True))
    else:
        first = next((r for r in rows if r.failed and r.dims), None)
        if first is not None:
            facts.append(Fact("first_dims", first.dims, literal=True))
    advice = shape_advice(summary, rows)
    if advice:
        facts.append(Fact("advice", advice))
    if summary.reproduce:
        facts.append(Fact("reproduce", summary.reproduce, literal=True))
    return facts


def status_verb(status: str) -> str:
    return "raised an error" if status == "error" else "failed"


def failing_first(summaries: Sequence[FunctionSummary]) -> list[FunctionSummary]:
    """Errors, then failures, then the rest, each in the order they ran."""
    return sorted(summaries, key=lambda s: _ORDER.get(s.status, 2))


def headline(summaries: Sequence[FunctionSummary]) -> str:
    """``2 of 5 functions failed`` / ``all 5 functions passed``."""
    failing = sum(s.status != "pass" for s in summaries)
    total = len(summaries)
    if not failing:
        return f"all {total} functions passed" if total != 1 else "1 function passed"
    return f"{failing} of {total} functions failed"


def cases_text(summaries: Sequence[FunctionSummary]) -> str:
    """The cases that ran (not the setting, which may be "auto"): ``6 cases per function``, or
    ``6 to 7 cases per function (a shrunk case is one more)``."""
    counts = sorted({s.cases for s in summaries})
    if not counts:
        return "no cases"
    ran = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    text = f"{ran} case{'s' if counts[-1] != 1 else ''} per function"
    if len(counts) > 1:
        text += " (a shrunk case is one more)"
    return text


def run_line(settings: Mapping[str, Any], summaries: Sequence[FunctionSummary], quote: str = "`") -> str:
    """``seed 0 · 6 cases per function · mode auto · targets `mod```; ``quote`` wraps each target."""
    targets = ", ".join(f"{quote}{t}{quote}" for t in settings.get("targets", [])) or "—"
    return (
        f"seed {settings.get('seed', 0)} · {cases_text(summaries)} · "
        f"mode {settings.get('mode', 'auto')} · targets {targets}"
    )


def diagnosis_groups(rows: Sequence[CheckResult]) -> list[tuple[str, str, int, bool]]:
    """``(code, first message, count, raised)`` per (diagnosis, target), diagnosed ones first;
    ``raised``: the group's rows are errors (the user's code raised), not wrong values.

    Undiagnosed failures of a target that has a diagnosis are left out: they are the same mistake
    seen by an oracle that does not diagnose (finite differences), and stay in the rows table.
    """
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        entry = groups.setdefault((r.diagnosis, r.target), [r.message or r.check, 0, True])
        entry[1] += 1
        entry[2] &= r.status == "error"
    diagnosed = {target for code, target in groups if code}
    kept = [(key, value) for key, value in groups.items() if key[0] or key[1] not in diagnosed]
    kept.sort(key=lambda item: not item[0][0])
    return [(code, message, count, raised) for (code, _), (message, count, raised) in kept]
