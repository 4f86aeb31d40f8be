"""Grading outputs: scores CSV, Gradescope ``results.json``, JUnit XML. All written atomically.

Every text goes through ``clean_text`` (no control characters: a student's exception message cannot
make ``junit.xml`` unparseable for the class), every number through ``_number`` (finite, or 0), and
every file states the sandbox the submissions ran in, or that there was none (``--no-sandbox``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree as ET

import pandas as pd  # imported before any student code runs (see grade.py)

from checker.grading.records import clean_text
from checker.report import atomic_write

__all__ = ["gradescope_results", "junit_xml", "sandbox_notice", "warm_up", "write_outputs"]


def _number(value: Any, digits: int = 4) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return round(number, digits) if math.isfinite(number) else 0.0


def sandbox_notice(report: Any) -> str:
    """``Sandbox: ...``, or a warning that the submissions ran without one."""
    sandbox = clean_text(getattr(report, "sandbox", ""), 300)
    if getattr(report, "sandboxed", True):
        return f"Sandbox: {sandbox}."
    return f"WARNING: graded WITHOUT a sandbox ({sandbox})."


def _test_output(g: Any) -> str:
    lines = [f"{g.passed}/{g.total} checks passed."]
    if g.status != "passed":
        if g.diagnosis:
            lines.append(f"Diagnosis: {g.diagnosis}")
        if g.message:
            lines.append(g.message)
        if g.hint:
            lines.append(f"Hint: {g.hint}")
    return clean_text("\n".join(lines), 4000)


def gradescope_results(report: Any, submission: str) -> dict[str, Any]:
    """Gradescope's documented results.json for one submission (score, execution_time, output, tests)."""
    grades = [g for g in report.grades if g.submission == submission]
    score, most = report.totals().get(submission, (0.0, 0.0))
    problem = clean_text(report.problem(submission), 1000)
    tests = [
        {
            "name": clean_text(g.exercise, 200),
            "number": str(i + 1),
            "score": _number(g.score),
            "max_score": _number(g.max_score),
            "status": "passed" if g.status == "passed" else "failed",
            "output": _test_output(g),
            "output_format": "text",
            "tags": [clean_text(g.diagnosis, 100)] if g.diagnosis else [],
            "visibility": "visible",
        }
        for i, g in enumerate(grades)
    ]
    name = clean_text(submission, 200)
    output = f"{name}: {_number(score):.4g} / {_number(most):g} points." + (f" {problem}" if problem else "")
    return {
        "score": _number(score),
        "execution_time": _number(sum(_number(g.seconds, 6) for g in grades), 3),
        "output": f"{output}\n{sandbox_notice(report)}",
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def junit_xml(report: Any) -> str:
    """One <testsuite> per submission, one <testcase> per exercise; a failure carries the hint, and a
    submission that was not graded (``report.not_graded``) has an <error> per case instead."""
    root = ET.Element("testsuites", name="backprop-check grade")
    notice = sandbox_notice(report)
    not_graded = getattr(report, "not_graded", {})
    for submission in report.totals():
        grades = [g for g in report.grades if g.submission == submission]
        errors = len(grades) if submission in not_graded else 0
        failures = sum(g.status != "passed" for g in grades) - errors
        suite = ET.SubElement(
            root,
            "testsuite",
            name=clean_text(submission, 200),
            tests=str(len(grades)),
            failures=str(failures),
            errors=str(errors),
            time=f"{sum(_number(g.seconds, 6) for g in grades):.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="sandbox", value=notice)
        for g in grades:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=clean_text(submission, 200),
                name=clean_text(g.exercise, 200),
                time=f"{_number(g.seconds, 6):.3f}",
            )
            ET.SubElement(case, "properties")
            if errors:
                error = ET.SubElement(case, "error", message=clean_text(g.message, 500), type="not graded")
                error.text = _test_output(g)
            elif g.status != "passed":
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=clean_text(
                        f"{_number(g.score):g}/{_number(g.max_score):g}: {g.diagnosis or g.message}", 500
                    ),
                    type=clean_text(g.diagnosis or "wrong", 100),
                )
                failure.text = _test_output(g)
        system_out = ET.SubElement(suite, "system-out")
        system_out.text = notice
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _cell(value: object) -> str:
    """A text cell a spreadsheet shows as text: cleaned, and one that starts like a formula (``=``,
    ``+``, ``-``, ``@``: a file name or an exception message a student chose) is prefixed with ``'``."""
    text = clean_text(value, 4000)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def scores_csv(report: Any) -> str:
    """One row per submission x exercise and a TOTAL row each; the ``sandbox`` column states the sandbox."""
    frame = report.frame()
    for column in frame.columns:
        kind = frame[column].dtype
        if pd.api.types.is_float_dtype(kind):
            frame[column] = frame[column].map(_number)
        elif pd.api.types.is_object_dtype(kind) or pd.api.types.is_string_dtype(kind):
            frame[column] = frame[column].map(_cell)
    return frame.to_csv(index=False)


def write_outputs(report: Any, out_dir: Path) -> list[Path]:
    """scores.csv, junit.xml, gradescope/<submission>.json (and results.json for a single submission)."""
    written = [atomic_write(out_dir / "scores.csv", scores_csv(report))]
    written.append(atomic_write(out_dir / "junit.xml", junit_xml(report)))
    submissions = list(report.totals())
    for submission in submissions:
        text = json.dumps(gradescope_results(report, submission), indent=1, allow_nan=False)
        written.append(atomic_write(out_dir / "gradescope" / f"{clean_text(submission, 200)}.json", text))
        if len(submissions) == 1:
            written.append(atomic_write(out_dir / "results.json", text))
    return written


def warm_up() -> None:
    """Render every output once for an empty report, so that every module the writers use (pandas'
    CSV writer included, which it imports lazily) is loaded before any student code runs."""
    empty = SimpleNamespace(
        grades=[],
        sandbox="",
        sandboxed=True,
        totals=lambda: {},
        problem=lambda _s: "",
        frame=lambda: pd.DataFrame({"text": ["x"], "number": [1.0]}),
    )
    scores_csv(empty)
    junit_xml(empty)
    json.dumps(gradescope_results(empty, ""), allow_nan=False)
