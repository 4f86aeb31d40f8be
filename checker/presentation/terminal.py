"""The terminal: a console that wraps to the terminal's width (and never when piped), the summary
table of a run and the text of ``print(report)``.

Everything a user's code or a student could have written (messages, names) is printed as
:class:`rich.text.Text`, never parsed as markup: ``[call f]`` stays ``[call f]``.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from checker.presentation.summary import failing_first, function_facts

if TYPE_CHECKING:
    from checker.results import CheckResult, FunctionSummary, Report

__all__ = ["console_for", "print_report", "render_text", "report_lines"]

#: Width of a console whose output is not a terminal: wide enough that nothing is ever wrapped.
UNWRAPPED = 1_000_000


def console_for(file: IO[str] | None = None, *, terminal: bool | None = None) -> Console:
    """A console on ``file`` (stdout): on a terminal, wrapped to its width; piped or redirected, never
    wrapped (lines as long as their text), without colours or cursor movement."""
    stream = file if file is not None else sys.stdout
    if terminal is None:
        terminal = Console(file=stream).is_terminal
    if terminal:
        return Console(file=stream, highlight=False, emoji=False)
    return Console(
        file=stream, highlight=False, emoji=False, width=UNWRAPPED, soft_wrap=True, color_system=None
    )


def summary_table(summaries: Sequence[FunctionSummary], title: str = "backprop-check") -> Table:
    """One row per function, failing functions first: status, cases, diagnoses, worst error, time."""
    table = Table(title=title, show_lines=False)
    right = ("cases", "failed", "worst abs err", "seconds")
    for column in ("function", "status", "cases", "failed", "diagnoses", "worst abs err", "seconds"):
        table.add_column(column, justify="right" if column in right else "left")
    for s in failing_first(summaries):
        table.add_row(
            Text(s.function),
            Text(s.status, style="green" if s.status == "pass" else "red"),
            str(s.cases),
            str(s.failed_cases),
            Text(s.diagnoses),
            f"{s.worst_abs_err:.2g}",
            f"{s.seconds:.2f}",
        )
    return table


def _facts(summary: FunctionSummary, records: Sequence[CheckResult], wrapped: bool) -> list[Any]:
    """``label: text`` per fact, the texts aligned. ``wrapped`` (a terminal): each text wraps under
    itself (a hanging indent); otherwise one plain line per fact, however long."""
    facts = function_facts(summary, records)
    if not facts:
        return []
    width = max(len(f.label) for f in facts) + 1
    if not wrapped:
        return [Text(f"  {f.label + ':':<{width}} {f.text}") for f in facts]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for fact in facts:
        grid.add_row(f"  {fact.label + ':':<{width}}", Text(fact.text))
    return [grid]


def report_lines(report: Report, *, quiet: bool = False, wrapped: bool = True) -> list[Any]:
    """What the CLI prints for a run, as rich renderables: the table, then per failing function its
    first failure and facts, then ``N passed, M failed: names``. ``quiet``: the last line only;
    ``wrapped``: for a terminal (facts wrap under themselves), else one line per fact."""
    parts: list[Any] = []
    if not quiet:
        parts.append(summary_table(report.summaries))
        for s in failing_first(report.summaries):
            if s.status == "pass":
                continue
            rows = [r for r in report.records if r.function == s.function]
            head = Text.assemble((s.function, "bold red"), ": ", s.first_failure)
            parts += [head, *_facts(s, rows, wrapped)]
    failed = [s.function for s in failing_first(report.summaries) if s.status != "pass"]
    total = len(report.summaries)
    line = f"{total - len(failed)} passed, {len(failed)} failed" + (
        f": {', '.join(failed)}" if failed else ""
    )
    parts.append(Text(line))
    return parts


def print_report(console: Console, report: Report, *, quiet: bool = False) -> None:
    for part in report_lines(report, quiet=quiet, wrapped=console.width < UNWRAPPED):
        console.print(part)


def render_text(report: Report, width: int | None = None) -> str:
    """``print(report)``: the CLI's table and failures as plain text, as wide as the terminal when
    stdout is one (else unwrapped)."""
    if width is None:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else UNWRAPPED
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        highlight=False,
        emoji=False,
        color_system=None,
        soft_wrap=width == UNWRAPPED,
    )
    console.print(Group(*report_lines(report, wrapped=width < UNWRAPPED)))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
