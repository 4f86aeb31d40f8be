"""Grading outputs: scores CSV, Gradescope ``results.json``, JUnit XML. All written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from checker.report import atomic_write

__all__ = ["gradescope_results", "junit_xml", "write_outputs"]


def _test_output(g: Any) -> str:
    if g.status == "passed":
        return f"{g.passed}/{g.total} checks passed."
    lines = [f"{g.passed}/{g.total} checks passed."]
    if g.diagnosis:
        lines.append(f"Diagnosis: {g.diagnosis}")
    if g.message:
        lines.append(g.message)
    if g.hint:
        lines.append(f"Hint: {g.hint}")
    return "\n".join(lines)


def gradescope_results(report: Any, submission: str) -> dict[str, Any]:
    """Gradescope's documented results.json for one submission (score, execution_time, output, tests)."""
    grades = [g for g in report.grades if g.submission == submission]
    score, most = report.totals().get(submission, (0.0, 0.0))
    problem = report.problem(submission)
    tests = [
        {
            "name": g.exercise,
            "number": str(i + 1),
            "score": g.score,
            "max_score": g.max_score,
            "status": g.status,
            "output": _test_output(g),
            "output_format": "text",
            "tags": [g.diagnosis] if g.diagnosis else [],
            "visibility": "visible",
        }
        for i, g in enumerate(grades)
    ]
    return {
        "score": round(score, 4),
        "execution_time": round(sum(g.seconds for g in grades), 3),
        "output": f"{submission}: {score:.4g} / {most:g} points." + (f" {problem}" if problem else ""),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def junit_xml(report: Any) -> str:
    """One <testsuite> per submission, one <testcase> per exercise; a failure carries the hint."""
    root = ET.Element("testsuites", name="backprop-check grade")
    for submission in report.totals():
        grades = [g for g in report.grades if g.submission == submission]
        failures = sum(g.status != "passed" for g in grades)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=submission,
            tests=str(len(grades)),
            failures=str(failures),
            errors="0",
            time=f"{sum(g.seconds for g in grades):.3f}",
        )
        for g in grades:
            case = ET.SubElement(
                suite, "testcase", classname=submission, name=g.exercise, time=f"{g.seconds:.3f}"
            )
            ET.SubElement(case, "properties")
            if g.status != "passed":
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{g.score:g}/{g.max_score:g}: {g.diagnosis or g.message}"[:500],
                    type=g.diagnosis or "wrong",
                )
                failure.text = _test_output(g)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def write_outputs(report: Any, out_dir: Path) -> list[Path]:
    """scores.csv, junit.xml, gradescope/<submission>.json (and results.json for a single submission)."""
    written = [atomic_write(out_dir / "scores.csv", report.frame().to_csv(index=False))]
    written.append(atomic_write(out_dir / "junit.xml", junit_xml(report)))
    submissions = list(report.totals())
    for submission in submissions:
        text = json.dumps(gradescope_results(report, submission), indent=1, allow_nan=False)
        written.append(atomic_write(out_dir / "gradescope" / f"{submission}.json", text))
        if len(submissions) == 1:
            written.append(atomic_write(out_dir / "results.json", text))
    return written
