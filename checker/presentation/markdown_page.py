"""The Markdown report: a pull-request comment or a GitHub Actions job summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from checker.presentation.summary import diagnosis_groups, failing_first, function_facts, headline, run_line

if TYPE_CHECKING:
    from checker.results import Report

__all__ = ["ROW_LIMIT", "render_markdown"]

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
        for fact in function_facts(s, records):
            if fact.key == "reproduce":
                lines += ["", "Reproduce:", "", "```sh", fact.text, "```"]
            else:
                text = _code(fact.text) if fact.literal else md_cell(fact.text)
                lines.append(f"- {fact.label}: {text}")
        shown = rows[:ROW_LIMIT]
        more = f" (first {ROW_LIMIT})" if len(rows) > ROW_LIMIT else ""
        lines += ["", f"<details><summary>{len(rows)} failing checks{more}</summary>", ""]
        lines += md_table(
            ["case", "dims", "check", "target", "diagnosis", "max abs err", "message"],
            [[r.case, r.dims, r.check, r.target, r.diagnosis, r.max_abs_err, r.message] for r in shown],
        )
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
