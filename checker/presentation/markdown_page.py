"""The Markdown report: a pull-request comment or a GitHub Actions job summary."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from checker.presentation.summary import diagnosis_groups, failing_first, function_facts, headline, run_line
from checker.presentation.where import MARKS, shown_steps, unchecked_names, where_row
from checker.presentation.words import gradient_name

if TYPE_CHECKING:
    from checker.results import CheckResult, Report

__all__ = ["ROW_LIMIT", "render_markdown", "where_lines"]

#: Failing rows listed per function (HTML and Markdown); the CSV and JSON keep every row.
ROW_LIMIT = 40
MARK = {"pass": "✅ pass", "fail": "❌ fail", "error": "💥 error"}


def md_cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return lines


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _inline(text: str) -> str:
    """``text`` whose backticked parts (a statement) stay code spans, verbatim; the rest escaped."""
    parts = text.replace("\r", " ").replace("\n", " ").split("`")
    if len(parts) % 2 == 0:  # unbalanced: no code spans
        return md_cell(text)
    return "".join(f"`{p}`" if i % 2 else md_cell(p) for i, p in enumerate(parts))


def _fenced(lines: Sequence[str]) -> list[str]:
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", *lines, fence]


def where_lines(rows: Sequence[CheckResult]) -> list[str]:
    """The backward's steps up to the first wrong one (mark, step, line, statement), its diagnosis,
    then the verdicts of the steps after it on one line, as a fenced block; [] when nothing was located."""
    row = where_row(rows)
    steps = shown_steps(row) if row is not None else []
    if row is None or not steps:
        return []
    at = next((i for i, s in enumerate(steps) if s.verdict == "first_wrong"), len(steps) - 1)
    width = max(len(MARKS.get(s.verdict, s.verdict)) for s in steps[: at + 1])
    names = max(len(s.name) for s in steps[: at + 1])
    places = max(len(s.location) for s in steps[: at + 1])
    block = []
    for step in steps[: at + 1]:
        block.append(f"{step.mark:<{width}}  {step.name:<{names}}  {step.location:<{places}}  {step.source}")
    first = steps[at]
    if first.diagnosis or first.message:
        said = f"{first.diagnosis}: {first.message}" if first.diagnosis else first.message
        block.append(" " * (width + 2) + said.replace("\n", " "))
    after = [
        f"{'✓' if s.verdict == 'right' else '✗' if s.verdict != 'partial' else '~'} {s.name}"
        for s in steps[at + 1 :]
    ]
    if after:
        block.append(f"after it: {', '.join(after)}")
    unmatched, left_out = unchecked_names(row)
    if unmatched:
        block.append(f"not checked (no forward value has their name): {', '.join(unmatched)}")
    if left_out:
        block.append(f"{left_out} more step{'s' if left_out != 1 else ''} not listed")
    head = (
        f"Where the backward goes wrong (gradient `{gradient_name(row.target)}`, case {row.case}, "
        f"{md_cell(row.dims)}):"
    )
    return ["", head, "", *_fenced(block)]


def render_markdown(report: Report) -> str:
    """A summary table (failing functions first) and, per failing function, its diagnoses, facts, the
    reproduce command and its failing checks (folded), in GitHub-flavoured Markdown."""
    summaries = failing_first(report.summaries)
    lines = [f"## backprop-check: {headline(summaries)}", "", run_line(report.settings, summaries), ""]
    lines += md_table(
        ["function", "status", "failing cases", "diagnoses", "worst abs err", "shapes that fail"],
        [
            [
                f"`{s.function}`",
                MARK.get(s.status, s.status),
                f"{s.failed_cases} / {s.cases}",
                s.diagnoses,
                s.worst_abs_err,
                s.shape_pattern if s.status != "pass" else "",
            ]
            for s in summaries
        ],
    )
    for s in summaries:
        if s.status == "pass":
            continue
        records = [r for r in report.records if r.function == s.function]
        rows = [r for r in records if r.failed]
        lines += ["", f"### {MARK.get(s.status, s.status).split()[0]} `{s.function}`", ""]
        for code, message, count, raised in diagnosis_groups(rows):
            label = f"**`{code}`**" if code else "*raised*" if raised else "*no diagnosis*"
            times = f" ({count} checks)" if count > 1 else ""
            lines.append(f"- {label}: {md_cell(message)}{times}")
        reproduce = []
        for fact in function_facts(s, records):
            if fact.key == "reproduce":
                reproduce = ["", "Reproduce:", "", "```sh", fact.text, "```"]
            else:
                text = (
                    _code(fact.text)
                    if fact.literal
                    else _inline(fact.text)
                    if fact.key == "where"
                    else md_cell(fact.text)
                )
                lines.append(f"- {fact.label}: {text}")
        lines += where_lines(rows) + reproduce
        shown = rows[:ROW_LIMIT]
        more = f" (first {ROW_LIMIT})" if len(rows) > ROW_LIMIT else ""
        lines += ["", f"<details><summary>{len(rows)} failing checks{more}</summary>", ""]
        lines += md_table(
            ["case", "dims", "check", "target", "diagnosis", "max abs err", "message"],
            [[r.case, r.dims, r.check, r.target, r.diagnosis, r.max_abs_err, r.message] for r in shown],
        )
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
