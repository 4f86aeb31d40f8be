"""The terminal: a console that wraps to the terminal's width (and never when piped), the summary
table of a run, the text of ``print(report)``, and progress bars for long runs.

Everything a user's code or a student could have written (messages, names) is printed as
:class:`rich.text.Text`, never parsed as markup: ``[call f]`` stays ``[call f]``.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from checker.presentation.summary import failing_first, function_facts

if TYPE_CHECKING:
    from checker.results import CheckResult, FunctionSummary, Report

__all__ = ["GradeProgress", "RunProgress", "console_for", "print_report", "render_text", "report_lines"]

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


class Unwrapped(Text):
    """A line never wrapped, even on a terminal: a command or dims to copy whole (the terminal shows
    it folded, and a copy of it is still one line)."""


def _facts(summary: FunctionSummary, records: Sequence[CheckResult], wrapped: bool) -> list[Any]:
    """``label: text`` per fact, the texts aligned. ``wrapped`` (a terminal): each text wraps under
    itself (a hanging indent), except commands and dims; otherwise one plain line per fact."""
    facts = function_facts(summary, records)
    width = max((len(f.label) for f in facts), default=0) + 1
    parts: list[Any] = []
    grid: Table | None = None
    for fact in facts:
        label = f"  {fact.label + ':':<{width}}"
        if not wrapped or fact.literal:
            parts.append(Unwrapped(f"{label} {fact.text}"))
            grid = None
            continue
        if grid is None:
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column(overflow="fold")
            parts.append(grid)
        grid.add_row(label, Text(fact.text))
    return parts


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
        console.print(part, soft_wrap=isinstance(part, Unwrapped) or None)


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
    print_report(console, report)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def _progress(console: Console, *columns: Any) -> Progress:
    return Progress(
        SpinnerColumn(),
        *columns,
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class _Bar:
    """A rich progress bar, only on an interactive terminal, started and erased by ``with``."""

    def __init__(self, console: Console, enabled: bool = True, style: str = "none") -> None:
        self.enabled = enabled and console.is_interactive
        column = TextColumn("{task.description}", style=style, markup=False)
        self.bar = _progress(console, column) if self.enabled else None
        self.task: Any = None

    def __enter__(self) -> Self:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


class RunProgress(_Bar):
    """A progress bar for ``backprop-check run``: the function, its case, the functions done and the
    time elapsed. Shown only on an interactive terminal, erased when the run ends.

    Use as a context manager and pass the object as ``progress=`` to :func:`checker.suite.run`.
    """

    def __init__(self, console: Console, enabled: bool = True) -> None:
        super().__init__(console, enabled, style="bold")

    def __call__(self, event: Any) -> None:
        """``event``: a :class:`checker.suite.CaseProgress`."""
        if self.bar is None:
            return
        if event.stage == "done":
            where, completed = f"{event.function} done", event.index + 1
        elif event.stage == "shrink":
            where, completed = f"{event.function} · shrinking a failure", event.index + 0.99
        else:
            where = f"{event.function} · case {event.case + 1}/{event.cases}"
            completed = event.index + event.case / max(event.cases, 1)
        if self.task is None:
            self.task = self.bar.add_task(where, total=event.functions)
        self.bar.update(self.task, description=where, completed=completed, total=event.functions)


class GradeProgress(_Bar):
    """A progress bar for ``backprop-check grade``: the submissions graded, the last one finished and
    the time elapsed; only on an interactive terminal, erased at the end."""

    def __call__(self, done: int, total: int, last: str) -> None:
        """``done`` of ``total`` submissions graded; ``last``: the one that just finished ("" at the start)."""
        if self.bar is None:
            return
        text = f"graded {last}" if last else "planning the cases"
        if self.task is None:
            self.task = self.bar.add_task(text, total=total)
        self.bar.update(self.task, description=text, completed=done, total=total)
